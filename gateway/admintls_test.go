package gateway_test

import (
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/peer"
	"github.com/modelgate/modelgate/internal/peer/peertest"
)

// adminTLSGet is GET https://addr/healthz through a client trusting ca,
// presenting cert/key when given.
func adminTLSGet(t *testing.T, addr string, ca *peertest.CA, certFile, keyFile string) (int, string, error) {
	t.Helper()
	pool, err := peer.LoadCA(ca.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	tc := &tls.Config{RootCAs: pool}
	if certFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		// Presented whatever CAs the server names: Go's own client would
		// send no certificate rather than one of another CA, but a rogue or
		// misconfigured peer does.
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil }
	}
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: tc}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("https://" + addr + "/healthz")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// TestAdminTLSClientCertPolicy: with require (serve's default), the admin
// listener refuses a client without a certificate and one whose
// certificate another CA signed; with verify-if-given, it lets a client
// without one through (an operator's curl --cacert, on to token auth) and
// still refuses the other CA's. Members' certificates pass both. A plain HTTP request gets a 400 that says to use https.
func TestAdminTLSClientCertPolicy(t *testing.T) {
	ca, rogue := peertest.NewCA(t, "cluster-ca"), peertest.NewCA(t, "rogue-ca")
	srvCert, srvKey := ca.Leaf(t, "node")
	memberCert, memberKey := ca.Leaf(t, "member")
	rogueCert, rogueKey := rogue.Leaf(t, "rogue")
	start := func(policy peer.ClientCerts) string {
		tc, err := peer.LoadTLS(srvCert, srvKey, ca.CAFile, policy)
		if err != nil {
			t.Fatal(err)
		}
		return startServer(t, gateway.Config{AdminTLS: tc}).AdminAddr()
	}
	ok := func(addr, what, cert, key string) {
		t.Helper()
		status, body, err := adminTLSGet(t, addr, ca, cert, key)
		if err != nil || status != http.StatusOK || !strings.Contains(body, `"live":true`) {
			t.Fatalf("%s: %d %q %v, want 200", what, status, body, err)
		}
	}
	refused := func(addr, what, cert, key, alert string) {
		t.Helper()
		status, body, err := adminTLSGet(t, addr, ca, cert, key)
		if err == nil || !strings.Contains(err.Error(), "remote error: tls: "+alert) {
			t.Fatalf("%s: %d %q %v, want the handshake refused (%s)", what, status, body, err, alert)
		}
	}

	given := start(peer.VerifyIfGiven)
	ok(given, "verify-if-given, no client certificate", "", "")
	ok(given, "verify-if-given, a member's certificate", memberCert, memberKey)
	refused(given, "verify-if-given, a certificate another CA signed", rogueCert, rogueKey, "unknown certificate authority")

	required := start(peer.Require)
	refused(required, "require, no client certificate", "", "", "certificate required")
	ok(required, "require, a member's certificate", memberCert, memberKey)
	refused(required, "require, a certificate another CA signed", rogueCert, rogueKey, "unknown certificate authority")

	resp, err := (&http.Client{Timeout: time.Minute}).Get("http://" + given + "/healthz")
	if err != nil {
		t.Fatalf("plain http to the TLS admin port: %v, want a 400 that says why", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "speaks TLS") || !strings.Contains(string(b), "https://") {
		t.Fatalf("plain http to the TLS admin port: %d %s", resp.StatusCode, b)
	}

	if _, err := peer.LoadTLS(srvCert, srvKey, ca.CAFile, "sometimes"); err == nil || !strings.Contains(err.Error(), `"sometimes"`) {
		t.Fatalf("a bad client-certificate policy: %v", err)
	}
}
