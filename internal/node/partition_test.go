package node

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelgate/modelgate/cluster"
	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/oiptest"
	"github.com/modelgate/modelgate/internal/ortlib"
	"github.com/modelgate/modelgate/runtime"
)

// scoreOnce scores one row of the demo model on m and returns the
// version that answered, failing the test on any other answer.
func scoreOnce(t *testing.T, m *member) string {
	t.Helper()
	resp, err := (&http.Client{Timeout: time.Minute}).Post("http://"+m.n.Server.Addr()+"/v2/models/fraud/infer", "application/json", bytes.NewReader(oiptest.GoodRequest(1)))
	if err != nil {
		t.Fatalf("scoring on %s: %v", m.id, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r struct {
		Version string `json:"model_version"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &r) != nil {
		t.Fatalf("scoring on %s: %d %s", m.id, resp.StatusCode, b)
	}
	return r.Version
}

// TestPartitionedNodeKeepsServing cuts the leader of three whole nodes off
// the others (a Fault on its Raft transport; real TCP otherwise). While
// cut it keeps scoring its champion, and a write through it fails within
// its deadline with a 503; the other two elect a leader and commit a
// policy written through either of them. Healed, the cut node follows
// the new leader: it applies what it missed (the policy reads back on it),
// its audit log is the others', and it still scores.
func TestPartitionedNodeKeepsServing(t *testing.T) {
	if testing.Short() {
		t.Skip("three nodes")
	}
	if err := runtime.Init(ortlib.Path()); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const applyTO = 2 * time.Second
	faults := map[string]*cluster.Fault{}
	mk := func(id string) *member {
		faults[id] = cluster.NewFault()
		return &member{t: t, id: id, dir: t.TempDir(), raft: freeRaftAddr(t), voter: true, applyTO: applyTO}
	}
	n1, n2, n3 := mk("n1"), mk("n2"), mk("n3")
	all := []*member{n1, n2, n3}
	n1.startWith(true, nil, faults["n1"])
	if err := n1.c.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	for _, a := n1.c.LeaderAdmin(); a == ""; _, a = n1.c.LeaderAdmin() {
		select {
		case <-ctx.Done():
			t.Fatal("n1 never announced its admin address")
		case <-time.After(20 * time.Millisecond):
		}
	}
	n2.startWith(false, nil, faults["n2"])
	n3.startWith(false, nil, faults["n3"])
	joinVia(t, n1, n2)
	joinVia(t, n1, n3)
	settle(ctx, t, n1, all...)

	// The leader registers the model's file, as serve --model does; the
	// others fetch the bytes from it and put them through their own gate.
	onnx, err := demo.FraudModel(demo.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	// (Leadership may move under a loaded machine: ServeFile registers
	// only on the leader, so the first is retried on whoever leads.)
	for {
		l := leaderOf(ctx, t, all...)
		_, err := l.n.Server.ServeFile(ctx, "fraud", onnx, nil, "test")
		if err == nil {
			settle(ctx, t, l, all...)
			break
		}
		if !strings.Contains(err.Error(), "not the leader") {
			t.Fatalf("serve the model on the leader %s: %v", l.id, err)
		}
	}
	for _, m := range all {
		reconcileUntilServing(ctx, t, m)
		if v := scoreOnce(t, m); v != "1" {
			t.Fatalf("%s answered with version %s", m.id, v)
		}
	}

	cut := leaderOf(ctx, t, all...)
	var rest []*member
	for _, m := range all {
		if m != cut {
			rest = append(rest, m)
		}
	}
	faults[cut.id].Cut()
	// The majority elects a leader of its own.
	leader := leaderOf(ctx, t, rest...)
	// A policy written through the majority, retried until its leader
	// has announced its admin address to the follower.
	policy := `{"validation":{"latency_budget_ms":4321}}`
	hdr := map[string]string{"Idempotency-Key": "while-cut", "Content-Type": "application/json"}
	for {
		resp, b := call(t, "PUT", rest[0].admin()+"/api/v1/models/fraud/policy", strings.NewReader(policy), hdr)
		if resp.StatusCode == http.StatusOK {
			break
		}
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("policy through %s while %s is cut: %d %s", rest[0].id, cut.id, resp.StatusCode, b)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the majority takes no write: %s", b)
		case <-time.After(50 * time.Millisecond):
		}
	}
	// The cut node serves what it served, and refuses a write in time.
	for i := range 20 {
		if v := scoreOnce(t, cut); v != "1" {
			t.Fatalf("cut %s, request %d: version %s", cut.id, i, v)
		}
	}
	start := time.Now()
	resp, b := call(t, "PUT", cut.admin()+"/api/v1/models/fraud/policy", strings.NewReader(`{"validation":{"latency_budget_ms":1}}`),
		map[string]string{"Idempotency-Key": "on-the-cut-node", "Content-Type": "application/json"})
	if took := time.Since(start); resp.StatusCode != http.StatusServiceUnavailable || took > applyTO+20*time.Second {
		t.Fatalf("a write through the cut %s: %d after %v: %s, want 503 within %v", cut.id, resp.StatusCode, took, b, applyTO)
	}
	t.Logf("write through the cut node: 503: %s", b)
	if resp, b := call(t, "GET", cut.admin()+"/api/v1/models/fraud/policy", nil, nil); bytes.Contains(b, []byte("4321")) {
		t.Fatalf("the cut %s has the majority's write: %d %s", cut.id, resp.StatusCode, b)
	}

	faults[cut.id].Heal()
	leader = leaderOf(ctx, t, all...)
	settle(ctx, t, leader, all...)
	audit := auditOf(t, leader)
	for _, m := range all {
		resp, b := call(t, "GET", m.admin()+"/api/v1/models/fraud/policy", nil, nil)
		if resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte(`"latency_budget_ms":4321`)) {
			t.Fatalf("policy on %s after the heal: %d %s", m.id, resp.StatusCode, b)
		}
		if got := auditOf(t, m); got != audit {
			t.Fatalf("audit log on %s differs from the leader's %s:\n%s\nwant\n%s", m.id, leader.id, got, audit)
		}
		if v := scoreOnce(t, m); v != "1" {
			t.Fatalf("%s after the heal: version %s", m.id, v)
		}
	}
	if c := strings.Count(audit, `"latency_budget_ms":1}`); c != 0 {
		t.Fatalf("the write refused on the cut node is in the audit log %d times", c)
	}
}
