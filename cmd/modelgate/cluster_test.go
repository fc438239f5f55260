package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeClusterJoin runs three separate `modelgate serve` processes on
// 127.0.0.1: n1 bootstraps, n2 joins through n1 and n3 joins through n2 as
// a non-voter (the join is forwarded to the leader). `modelgate cluster
// status` on a follower lists all three with the leader and what each
// serves; a policy written through the non-voter is forwarded and read
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
		// The same file: nodes do not fetch artifacts from each other yet.
		return startNode(t, bin, d, append([]string{"--node-id", id, "--join", via, "--join-token", n1.token, "--model", "fraud=" + model}, extra...)...)
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
