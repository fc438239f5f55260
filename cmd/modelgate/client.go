package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/modelgate/modelgate/internal/peer"
)

// apiClient talks to a node's admin API for the CLI commands.
type apiClient struct {
	base  string
	token string
	json  bool // print raw JSON instead of tables
	http  doer
	out   io.Writer
}

// doer sends a request: an *http.Client (the CLI's, with its TLS) or a
// node's *peer.Client.
type doer interface {
	Do(*http.Request) (*http.Response, error)
}

// clientFlags adds the flags every admin command shares.
func clientFlags(fs *flag.FlagSet) func(stdout io.Writer) (*apiClient, error) {
	admin := fs.String("admin", envOr("MODELGATE_ADMIN", "http://127.0.0.1:8081"), "the node's admin API (env MODELGATE_ADMIN)")
	token := fs.String("token", os.Getenv("MODELGATE_TOKEN"), "bearer token (env MODELGATE_TOKEN; default: the one in --data-dir/admin.token)")
	dataDir := fs.String("data-dir", "data", "where a local node keeps admin.token")
	asJSON := fs.Bool("json", false, "print the API's JSON instead of a table")
	ca := fs.String("ca", os.Getenv("MODELGATE_CA"), "PEM `file` of the CA that signed the admin API's certificate (serve --admin-tls-ca), for https:// (env MODELGATE_CA; a --admin without a scheme is then https)")
	cert := fs.String("cert", os.Getenv("MODELGATE_CERT"), "client certificate `file` (PEM) for an admin API that requires one (serve --admin-tls-client-certs require; env MODELGATE_CERT)")
	key := fs.String("key", os.Getenv("MODELGATE_KEY"), "the --cert's private key `file` (PEM; env MODELGATE_KEY)")
	return func(stdout io.Writer) (*apiClient, error) {
		t := *token
		if t == "" {
			b, err := os.ReadFile(filepath.Join(*dataDir, "admin.token"))
			if err == nil {
				t = strings.TrimSpace(string(b))
			}
		}
		tc, err := cliTLS(*ca, *cert, *key)
		if err != nil {
			return nil, err
		}
		base := strings.TrimRight(*admin, "/")
		if !strings.Contains(base, "://") {
			base = map[bool]string{true: "https://", false: "http://"}[tc != nil] + base
		}
		hc := &http.Client{Timeout: 10 * time.Minute}
		if tc != nil {
			hc.Transport = &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment}
		}
		return &apiClient{base: base, token: t, json: *asJSON, http: hc, out: stdout}, nil
	}
}

// cliTLS is the CLI's TLS configuration from --ca, --cert and --key; nil
// when none is given (https:// URLs then trust the system's CAs).
func cliTLS(ca, cert, key string) (*tls.Config, error) {
	if ca == "" && cert == "" && key == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pool, err := peer.LoadCA(ca)
		if err != nil {
			return nil, usageError("--ca: " + err.Error())
		}
		tc.RootCAs = pool
	}
	if (cert == "") != (key == "") {
		return nil, usageError("a client certificate needs both --cert and --key (or MODELGATE_CERT and MODELGATE_KEY)")
	}
	if cert != "" {
		c, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, usageError(fmt.Sprintf("cannot load the client certificate %s and key %s: %v", cert, key, err))
		}
		tc.Certificates = []tls.Certificate{c}
	}
	return tc, nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// apiError is an error answer of the admin API.
type apiError struct {
	Status int
	Msg    string
}

func (e *apiError) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.Msg, e.Status) }

// do sends a request and decodes a JSON answer into out (when non-nil). It
// returns the raw body too, for --json.
func (c *apiClient) do(method, path string, body io.Reader, contentType string, out any) ([]byte, error) {
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the admin API at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		var e struct{ Error string }
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		if resp.StatusCode == http.StatusUnauthorized && c.token == "" {
			e.Error += " — pass --token, set MODELGATE_TOKEN, or run from the node's directory so data/admin.token is found"
		}
		return b, &apiError{resp.StatusCode, e.Error}
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return b, fmt.Errorf("cannot decode the answer: %w", err)
		}
	}
	return b, nil
}

// send posts a JSON value.
func (c *apiClient) send(method, path string, in, out any) ([]byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	return c.do(method, path, body, "application/json", out)
}

// printJSON writes b indented.
func (c *apiClient) printJSON(b []byte) {
	var buf bytes.Buffer
	if json.Indent(&buf, b, "", "  ") != nil {
		c.out.Write(b)
		return
	}
	buf.WriteByte('\n')
	c.out.Write(buf.Bytes())
}
