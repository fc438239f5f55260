package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA is a CA that signs member certificates for 127.0.0.1.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// leaf returns a member certificate for 127.0.0.1 and its PEM files.
func (ca *testCA) leaf(t *testing.T, name string) (tls.Certificate, []byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c, certPEM, keyPEM
}

// TestRaftMutualTLS runs three voters whose Raft traffic is mutual TLS,
// their configurations loaded from PEM files as serve loads them: they
// elect a leader and replicate to identical registries. A client whose
// certificate another CA signed is refused by a member, and so is a
// client with no certificate.
func TestRaftMutualTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("three raft nodes")
	}
	ca := newTestCA(t, "modelgate-test-ca")
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	peers := make([]Peer, 3)
	for i := range peers {
		peers[i] = Peer{ID: fmt.Sprintf("n%d", i+1), Addr: freeAddr(t)}
	}
	nodes := make([]*Node, 3)
	for i, p := range peers {
		_, certPEM, keyPEM := ca.leaf(t, p.ID)
		certFile, keyFile := filepath.Join(dir, p.ID+".pem"), filepath.Join(dir, p.ID+"-key.pem")
		if err := errors.Join(os.WriteFile(certFile, certPEM, 0o600), os.WriteFile(keyFile, keyPEM, 0o600)); err != nil {
			t.Fatal(err)
		}
		cfg := testConfig(t.TempDir(), p.ID)
		clusterTimings(&cfg)
		cfg.BindAddr, cfg.InitialCluster = p.Addr, peers
		tc, err := LoadMutualTLS(certFile, keyFile, caFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.TLS = tc
		nodes[i] = openNode(t, cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var leader *Node
	c := newCmds()
	for _, cmd := range story(c, "fraud") {
		leader = applyOnLeader(ctx, t, nodes, cmd)
	}
	want := nodeSnapshot(t, leader)
	for _, n := range nodes {
		waitSnapshot(ctx, t, n, want)
	}

	// Strangers: a certificate of another CA, and none at all.
	rogue, _, _ := newTestCA(t, "rogue-ca").leaf(t, "rogue")
	for name, cfg := range map[string]*tls.Config{
		// Sent whatever the server asks for (a Go client would otherwise
		// send no certificate the server's CA did not sign).
		"another CA's certificate": {GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &rogue, nil },
			RootCAs: ca.pool, MinVersion: tls.VersionTLS13},
		"no certificate": {RootCAs: ca.pool, MinVersion: tls.VersionTLS13},
	} {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", leader.Addr(), cfg)
		if err == nil {
			// TLS 1.3: the server's refusal of the client's certificate
			// arrives after the client's handshake, at the first read.
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("%s: dial = %v, want a refused certificate", name, err)
		}
		t.Logf("%s: %v", name, err)
	}

	// A config that would not authenticate its peers is refused up front.
	bad := testConfig(t.TempDir(), "n9")
	bad.TLS = &tls.Config{RootCAs: ca.pool}
	if err := bad.Validate(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "TLS") {
		t.Fatalf("Validate with a TLS config lacking a certificate = %v", err)
	}
	if _, err := LoadMutualTLS(filepath.Join(dir, "n1.pem"), filepath.Join(dir, "n1-key.pem"), filepath.Join(dir, "missing.pem")); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("LoadMutualTLS with a missing CA = %v", err)
	}
}
