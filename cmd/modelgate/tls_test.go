package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelgate/modelgate/internal/peer/peertest"
)

// TestServeAdminMutualTLS: two serve processes whose admin APIs and
// node-to-node HTTP are mutual TLS (--admin-tls-cert, --admin-tls-key,
// --admin-tls-ca; the same certificates serve Raft's): n2 joins through
// n1 over TLS, and `modelgate cluster status` with --ca, --cert and --key
// (an address without a scheme is then https) lists both serving, the
// leader probing n2 over TLS. Without a client certificate the CLI is
// refused by the default policy (require) and says so; half the flags, or
// an unknown policy, is a usage error.
func TestServeAdminMutualTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("two processes")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	model := filepath.Join(dir, "fraud.onnx")
	if out, err := exec.Command(bin, "demo", "model", "--out", model).CombinedOutput(); err != nil {
		t.Fatalf("demo model: %v\n%s", err, out)
	}
	ca := peertest.NewCA(t, "cluster-ca")
	tlsFlags := func(id string) []string {
		cert, key := ca.Leaf(t, id)
		return []string{"--admin-tls-cert", cert, "--admin-tls-key", key, "--admin-tls-ca", ca.CAFile,
			"--raft-tls-cert", cert, "--raft-tls-key", key, "--raft-tls-ca", ca.CAFile}
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
	if !strings.Contains(n1.logs.String(), "admin=https://"+n1.admin) {
		t.Fatalf("n1 does not log its admin API as https:\n%s", n1.logs.String())
	}

	opCert, opKey := ca.Leaf(t, "operator")
	var out, errb bytes.Buffer
	if code := run([]string{"cluster", "status", "--admin", n1.admin, "--token", n1.token, "--ca", ca.CAFile, "--cert", opCert, "--key", opKey}, &out, &errb); code != 0 {
		t.Fatalf("cluster status over TLS: %d %s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "leader: n1") || strings.Count(out.String(), "fraud@1") != 2 || strings.Contains(out.String(), "unreachable") {
		t.Fatalf("cluster status over TLS:\n%s", out.String())
	}

	out.Reset()
	errb.Reset()
	if code := run([]string{"cluster", "status", "--admin", "https://" + n2.admin, "--token", n1.token, "--ca", ca.CAFile}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "certificate required") {
		t.Fatalf("cluster status without a client certificate: exit %d: %s%s", code, out.String(), errb.String())
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--admin-tls-cert", opCert}, "needs all of --admin-tls-cert, --admin-tls-key and --admin-tls-ca"},
		{[]string{"--admin-tls-cert", opCert, "--admin-tls-key", opKey, "--admin-tls-ca", ca.CAFile, "--admin-tls-client-certs", "sometimes"}, `client certificate policy "sometimes"`},
	} {
		out.Reset()
		errb.Reset()
		if code := run(append([]string{"serve", "--data-dir", filepath.Join(dir, "n3")}, c.args...), &out, &errb); code == 0 || !strings.Contains(errb.String(), c.want) {
			t.Fatalf("serve %v: exit %d: %s, want %q", c.args, code, errb.String(), c.want)
		}
	}
}
