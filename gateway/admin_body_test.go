package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const bodyTestSecret = "body-test-secret-0123456789"

// countingConn counts the bytes the server reads from a connection.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// startCounted starts a node whose connections count what the server
// reads into read.
func startCounted(t *testing.T, cfg Config, read *atomic.Int64) *Server {
	t.Helper()
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	s := New(cfg)
	s.connHook = func(c net.Conn) net.Conn { return countingConn{c, read} }
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s
}

// sendHead opens a connection, sends a request's headers and the first
// prefix bytes of its body (not the rest), and reads the answer. The
// server must answer from the headers: a server reading the body would
// wait for the rest and never answer (the client's deadline ends the test).
func sendHead(t *testing.T, addr, head string, prefix int) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Generous: only a server waiting for the rest of the body exceeds it.
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	// Written alongside: a server that answers from the headers closes the
	// connection while the client is still sending, which fails the write.
	go c.Write(make([]byte, prefix))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer before the body was sent (the server is waiting for it?): %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e struct{ Error string }
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("%d answer is not {\"error\":…}: %q", resp.StatusCode, b)
	}
	return resp, e.Error
}

// TestAdminRefusesUnauthenticatedBodyUnread: an unauthenticated POST that
// announces a 250 MB body gets 401 from its headers alone — the node reads
// no more than the headers and fasthttp's first read of the body, not the
// megabyte the client has already sent, let alone 250 MB. Before, the
// admin listener buffered bodies up to 256 MiB before the handler looked
// at the token.
func TestAdminRefusesUnauthenticatedBodyUnread(t *testing.T) {
	var read atomic.Int64
	s := startCounted(t, Config{Auth: NewAuth(NewToken("ci", bodyTestSecret, ScopeAdmin))}, &read)
	const prefix = 1 << 20
	for _, c := range []struct{ path, ctype string }{
		{"/api/v1/models/fraud/versions", "multipart/form-data; boundary=xyz"},
		{"/api/v1/models/fraud/labels", "application/json"},
	} {
		read.Store(0)
		head := "POST " + c.path + " HTTP/1.1\r\nHost: x\r\nContent-Type: " + c.ctype + "\r\nContent-Length: 250000000\r\n\r\n"
		resp, msg := sendHead(t, s.AdminAddr(), head, prefix)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(msg, "missing bearer token") {
			t.Fatalf("%s: %d %q, want 401 for the missing token", c.path, resp.StatusCode, msg)
		}
		if got := read.Load(); got >= prefix/2 {
			t.Errorf("%s: the node read %d bytes for an unauthenticated request; want the headers and at most a buffer of the body", c.path, got)
		}
		if resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", c.path)
		}
	}
}

// TestAdminRouteLimitsFromHeaders: an authorised request whose
// Content-Length is over its route's own limit gets 413 naming that limit
// (not the scoring listener's) before its body is read.
func TestAdminRouteLimitsFromHeaders(t *testing.T) {
	var read atomic.Int64
	s := startCounted(t, Config{Auth: NewAuth(NewToken("ci", bodyTestSecret, ScopeAdmin)), MaxModelBytes: 1 << 20}, &read)
	upload := strconv.FormatInt(s.uploadLimit(), 10)
	f := func(path, length, want string) {
		t.Helper()
		read.Store(0)
		head := "POST " + path + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + bodyTestSecret + "\r\nContent-Type: multipart/form-data; boundary=xyz\r\nContent-Length: " + length + "\r\n\r\n"
		resp, msg := sendHead(t, s.AdminAddr(), head, 256<<10)
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(msg, want) {
			t.Fatalf("%s with %s bytes: %d %q, want 413 naming %q", path, length, resp.StatusCode, msg, want)
		}
		if strings.Contains(msg, "scoring") {
			t.Errorf("%s: the 413 names the scoring limit: %q", path, msg)
		}
		if got := read.Load(); got >= 128<<10 {
			t.Errorf("%s: the node read %d bytes of a body it refused from its headers", path, got)
		}
	}
	f("/api/v1/models/fraud/versions", "300000000", "at most 1048576 bytes (serve --max-model-bytes)")
	f("/api/v1/models/fraud/versions", strconv.FormatInt(s.uploadLimit()+1, 10), upload+" bytes in all")
	f("/api/v1/models/fraud/labels", strconv.Itoa(32<<20+1), "POST /api/v1/models/{m}/labels takes at most 33554432 bytes")
	f("/api/v1/models/fraud/promote", strconv.Itoa(smallBody+1), "takes at most 1048576 bytes")
}
