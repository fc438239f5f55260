// Package peer is the HTTP client one node uses to reach another node's
// admin API: forwarded writes, membership probes, artifact fetches,
// statistics pushes, prediction lookups and edge uploads all go through
// one Client, so the scheme (plain or mutual TLS) and the node's own
// credential are decided in one place.
package peer

import (
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"time"
)

// Config is what a Client is built from.
type Config struct {
	// TLS, when set, makes every peer URL https and is the client side of
	// mutual TLS: it should carry this node's certificate and the cluster
	// CA as RootCAs. Nil: plain http.
	TLS *tls.Config
	// Token is the bearer token requests this node makes on its own
	// behalf carry (an admin-scoped token every member accepts). A
	// request that already carries an Authorization header — a caller's
	// request relayed — keeps the caller's.
	Token string
}

// Client sends requests to peers' admin APIs. It is safe for concurrent use.
type Client struct {
	cfg  Config
	http *http.Client
}

// New returns a Client over cfg.
func New(cfg Config) *Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		TLSClientConfig:     cfg.TLS,
		ForceAttemptHTTP2:   false,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     time.Minute,
	}
	return &Client{cfg: cfg, http: &http.Client{
		Transport: tr,
		// A peer's answer is relayed as it is, redirects included.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Scheme is "https" when the client speaks TLS, else "http".
func (c *Client) Scheme() string {
	if c.cfg.TLS != nil {
		return "https"
	}
	return "http"
}

// URL is the URL of pathAndQuery (starting with "/") on the peer whose
// admin API listens at addr (host:port; a URL's scheme is replaced).
func (c *Client) URL(addr, pathAndQuery string) string {
	if i := strings.Index(addr, "://"); i >= 0 {
		addr = addr[i+3:]
	}
	return c.Scheme() + "://" + strings.TrimSuffix(addr, "/") + pathAndQuery
}

// Transport is the client's round tripper (its TLS and connection pool),
// for a caller that needs an http.Client of its own, e.g. with an overall
// timeout. Requests sent through it carry no token unless the caller adds one.
func (c *Client) Transport() http.RoundTripper { return c.http.Transport }

// Do sends req, adding the node's token when req carries no
// Authorization of its own.
func (c *Client) Do(req *http.Request) (*http.Response, error) {
	if c.cfg.Token != "" && req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	}
	return c.http.Do(req)
}
