package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeClusterJoin runs three separate `modelgate serve` processes on
// 127.0.0.1: n1 bootstraps, n2 joins through n1 and n3 joins through n2 as
// a non-voter (the join is forwarded to the leader), neither given the
// model: they fetch it from n1. `modelgate cluster status` on a follower
// lists all three with the leader and each serving it; a policy written through the non-voter is forwarded and read
// back on n2; `modelgate cluster remove` through a follower takes n3 out.
func TestServeClusterJoin(t *testing.T) {
	if testing.Short() {
		t.Skip("three processes")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	model := filepath.Join(dir, "fraud.onnx")
	if out, err := exec.Command(bin, "demo", "model", "--out", model).CombinedOutput(); err != nil {
		t.Fatalf("demo model: %v\n%s", err, out)
	}
	n1 := startNode(t, bin, filepath.Join(dir, "n1"), "--node-id", "n1", "--model", "fraud="+model)
	// Every member accepts the same admin token: a follower forwards the
	// caller's token to the leader.
	member := func(id, via string, extra ...string) *node {
		d := filepath.Join(dir, id)
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "admin.token"), []byte(n1.token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		// No --model: the joiner fetches the champion's bytes from a holder.
		return startNode(t, bin, d, append([]string{"--node-id", id, "--join", via, "--join-token", n1.token}, extra...)...)
	}
	n2 := member("n2", n1.admin)
	n3 := member("n3", n2.admin, "--non-voter")

	cli := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(append(args, "--admin", "http://"+n2.admin, "--token", n1.token), &out, &errb); code != 0 {
			t.Fatalf("modelgate %s: exit %d: %s%s", strings.Join(args, " "), code, out.String(), errb.String())
		}
		return out.String()
	}
	status := cli("cluster", "status")
	for _, want := range []string{"leader: n1 (asked n2)", "n1  leader     " + n1.raft, "n2  voter      " + n2.raft, "n3  non-voter  " + n3.raft} {
		if !strings.Contains(status, want) {
			t.Fatalf("cluster status lacks %q:\n%s", want, status)
		}
	}
	if strings.Count(status, "fraud@1") != 3 || strings.Count(status, "  ready") != 3 {
		t.Fatalf("not every node serves fraud@1:\n%s", status)
	}

	code, body := n3.api(t, "PUT", "/api/v1/models/fraud/policy", strings.NewReader(`{"validation":{"latency_budget_ms":900}}`), "application/json")
	if code != 200 {
		t.Fatalf("policy through the non-voter: %d %s", code, body)
	}
	if code, body = n2.api(t, "GET", "/api/v1/models/fraud/policy?consistent=true", nil, ""); code != 200 || !bytes.Contains(body, []byte(`"latency_budget_ms":900`)) {
		t.Fatalf("policy on n2: %d %s", code, body)
	}

	if out := cli("cluster", "remove", "n3"); !strings.Contains(out, "removed n3") {
		t.Fatalf("cluster remove: %s", out)
	}
	if status = cli("cluster", "status"); strings.Contains(status, "n3") {
		t.Fatalf("n3 still listed after its removal:\n%s", status)
	}
}

// TestServeRaftMutualTLS: two serve processes whose Raft traffic is mutual
// TLS (--raft-tls-cert, --raft-tls-key, --raft-tls-ca): n2 joins n1 and
// both serve; half the flags is a usage error.
func TestServeRaftMutualTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("two processes")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	model := filepath.Join(dir, "fraud.onnx")
	if out, err := exec.Command(bin, "demo", "model", "--out", model).CombinedOutput(); err != nil {
		t.Fatalf("demo model: %v\n%s", err, out)
	}
	caFile, certs := writeTestPKI(t, dir, "n1", "n2")
	tlsFlags := func(id string) []string {
		return []string{"--raft-tls-cert", certs[id][0], "--raft-tls-key", certs[id][1], "--raft-tls-ca", caFile}
	}
	n1 := startNode(t, bin, filepath.Join(dir, "n1"), append([]string{"--node-id", "n1", "--model", "fraud=" + model}, tlsFlags("n1")...)...)
	d2 := filepath.Join(dir, "n2")
	if err := os.MkdirAll(d2, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d2, "admin.token"), []byte(n1.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n2 := startNode(t, bin, d2, append([]string{"--node-id", "n2", "--join", n1.admin, "--join-token", n1.token, "--model", "fraud=" + model}, tlsFlags("n2")...)...)
	var out, errb bytes.Buffer
	if code := run([]string{"cluster", "status", "--admin", "http://" + n2.admin, "--token", n1.token}, &out, &errb); code != 0 {
		t.Fatalf("cluster status: %d %s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "leader: n1") || strings.Count(out.String(), "fraud@1") != 2 {
		t.Fatalf("cluster status:\n%s", out.String())
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"serve", "--data-dir", filepath.Join(dir, "n3"), "--raft-tls-cert", certs["n1"][0]}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "needs all of --raft-tls-cert, --raft-tls-key and --raft-tls-ca") {
		t.Fatalf("serve with half the TLS flags: exit %d: %s", code, errb.String())
	}
}

// writeTestPKI writes a CA and a certificate for 127.0.0.1 per name, and
// returns the CA's file and each name's certificate and key files.
func writeTestPKI(t *testing.T, dir string, names ...string) (string, map[string][2]string) {
	t.Helper()
	write := func(name string, blocks ...*pem.Block) string {
		var b []byte
		for _, bl := range blocks {
			b = append(b, pem.EncodeToMemory(bl)...)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	out := map[string][2]string{}
	for i, n := range names {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: n}, NotBefore: time.Now().Add(-time.Hour),
			NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kb, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		out[n] = [2]string{write(n+".pem", &pem.Block{Type: "CERTIFICATE", Bytes: der}), write(n+"-key.pem", &pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})}
	}
	return write("ca.pem", &pem.Block{Type: "CERTIFICATE", Bytes: caDER}), out
}
