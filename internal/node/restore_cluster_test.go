package node

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/oiptest"
)

// TestFollowerRestartedCutOffServesItsChampion (issue 15 part 5: a node
// cut off from the others keeps serving its versions): three voters on
// 127.0.0.1 serve fraud v1; a follower is stopped, then the other two, and
// the follower is restarted alone — no leader is reachable, none can be
// elected. It loads its champion from its own registry and artifact store
// and answers a real scoring request over HTTP with 200 and the model's
// output, instead of 404 "model not found". When the others return, the
// cluster elects a leader and every audit log is the leader's.
func TestFollowerRestartedCutOffServesItsChampion(t *testing.T) {
	ctx, mk := clusterTest(t)
	n1, n2, n3 := mk("n1"), mk("n2"), mk("n3")
	bootCluster(ctx, t, n1, n2, n3)
	onnx, err := demo.FraudModel(demo.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	if resp, b := upload(t, n1, "fraud", onnx, "reg-1"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload through n1: %d %s", resp.StatusCode, b)
	}
	waitReadyOn(ctx, t, n1, "fraud", 1, "n1", "n2", "n3")
	all := []*member{n1, n2, n3}
	leader := leaderOf(ctx, t, all...)
	settle(ctx, t, leader, all...)
	// A node persists the commit index with the entries it appends after
	// learning it: the last registry write (n3's ready record) is restored
	// once a later entry reached n3 — in service any write; here a barrier.
	if err := leader.c.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	for lastLogIndex(n3) < lastLogIndex(leader) {
		select {
		case <-ctx.Done():
			t.Fatalf("n3 holds the log to %d, the leader to %d", lastLogIndex(n3), lastLogIndex(leader))
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := n3.n.Server.Reconcile(); err != nil {
		t.Fatal(err)
	}
	if ver, err := scoreVersion(n3); err != nil || ver != "1" {
		t.Fatalf("n3 before the cut: version %q %v", ver, err)
	}
	audit := auditOf(t, leader)

	// n3 stops first, then the others: it restarts with no leader anywhere.
	n3.stop()
	n1.stop()
	n2.stop()
	n3.start(false)
	if id, _ := n3.c.Leader(); id != "" {
		t.Fatalf("n3 restarted alone sees leader %q", id)
	}
	// Loading the ONNX session takes a moment; a registry without the
	// champion would answer 404 for as long as the link is down.
	var status int
	var body []byte
	for {
		status, body = scoreOne(t, n3)
		if status == http.StatusOK {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("n3 restarted with no leader reachable answers %d %s, want 200 from its champion", status, body)
		case <-time.After(50 * time.Millisecond):
		}
	}
	var out struct {
		ModelName    string `json:"model_name"`
		ModelVersion string `json:"model_version"`
		Outputs      []struct {
			Name  string    `json:"name"`
			Shape []int64   `json:"shape"`
			Data  []float64 `json:"data"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("scoring answer %s: %v", body, err)
	}
	if out.ModelName != "fraud" || out.ModelVersion != "1" || len(out.Outputs) == 0 || len(out.Outputs[0].Data) == 0 {
		t.Fatalf("n3 alone answered %s, want fraud v1's output", body)
	}
	if id, _ := n3.c.Leader(); id != "" || n3.c.IsLeader() {
		t.Fatalf("n3 served with leader %q (leads: %v); the test needs it cut off", id, n3.c.IsLeader())
	}
	if a := auditOf(t, n3); a != audit {
		t.Fatalf("audit log of n3 restarted alone:\n%s\nwant what it had:\n%s", a, audit)
	}

	// The others return: a leader again, and n3 converges with it.
	n1.start(false)
	n2.start(false)
	leader = leaderOf(ctx, t, all...)
	if err := leader.c.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	settle(ctx, t, leader, all...)
	if err := n3.n.Server.Reconcile(); err != nil {
		t.Fatal(err)
	}
	audit = auditOf(t, leader)
	for _, m := range all {
		if a := auditOf(t, m); a != audit {
			t.Fatalf("audit log on %s after the others returned differs from the leader's:\n%s\nwant\n%s", m.id, a, audit)
		}
	}
	if ver, err := scoreVersion(n3); err != nil || ver != "1" {
		t.Fatalf("n3 after the others returned: version %q %v", ver, err)
	}
}

// leaderOf waits until one of ms leads.
func leaderOf(ctx context.Context, t *testing.T, ms ...*member) *member {
	t.Helper()
	for {
		for _, m := range ms {
			if m.c != nil && m.c.IsLeader() {
				return m
			}
		}
		select {
		case <-ctx.Done():
			t.Fatal("no leader")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func lastLogIndex(m *member) uint64 {
	i, _ := strconv.ParseUint(m.c.Stats()["last_log_index"], 10, 64)
	return i
}

// scoreOne sends one real row to m's scoring endpoint.
func scoreOne(t *testing.T, m *member) (int, []byte) {
	t.Helper()
	resp, err := http.Post("http://"+m.n.Addr()+"/v2/models/fraud/infer", "application/json", bytes.NewReader(oiptest.GoodRequest(1)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}
