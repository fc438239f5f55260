package peer_test

import (
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelgate/modelgate/internal/peer"
	"github.com/modelgate/modelgate/internal/peer/peertest"
)

// TestLoadTLS: the admin TLS configuration from PEM files, its policy
// mapped to Go's client-auth types, and errors that name the file or the
// value at fault; a Client with it builds https URLs.
func TestLoadTLS(t *testing.T) {
	ca := peertest.NewCA(t, "cluster-ca")
	cert, key := ca.Leaf(t, "n1")
	junk := filepath.Join(t.TempDir(), "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for policy, want := range map[peer.ClientCerts]tls.ClientAuthType{"": tls.RequireAndVerifyClientCert, peer.Require: tls.RequireAndVerifyClientCert, peer.VerifyIfGiven: tls.VerifyClientCertIfGiven} {
		tc, err := peer.LoadTLS(cert, key, ca.CAFile, policy)
		if err != nil || tc.ClientAuth != want || tc.RootCAs == nil || tc.ClientCAs == nil || len(tc.Certificates) != 1 {
			t.Fatalf("policy %q: %+v %v", policy, tc, err)
		}
		if u := peer.New(peer.Config{TLS: tc}).URL("http://127.0.0.1:9/", "/api/v1/cluster"); u != "https://127.0.0.1:9/api/v1/cluster" {
			t.Fatalf("URL with TLS: %s", u)
		}
	}
	f := func(certFile, keyFile, caFile string, policy peer.ClientCerts, want string) {
		t.Helper()
		_, err := peer.LoadTLS(certFile, keyFile, caFile, policy)
		if !errors.Is(err, peer.ErrBadTLS) || !strings.Contains(err.Error(), want) {
			t.Fatalf("LoadTLS(%s, %s, %s, %q) = %v, want ErrBadTLS naming %q", certFile, keyFile, caFile, policy, err, want)
		}
	}
	f(junk, key, ca.CAFile, peer.Require, "cannot load the certificate "+junk)
	f(cert, key, junk, peer.Require, "the CA file "+junk+" holds no PEM certificate")
	f(cert, key, junk+".missing", peer.Require, "cannot read the CA "+junk+".missing")
	f(cert, key, ca.CAFile, "always", `client certificate policy "always"`)
}
