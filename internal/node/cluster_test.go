package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelgate/modelgate/cluster"
	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/artifact"
	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/ortlib"
	"github.com/modelgate/modelgate/internal/peer"
	"github.com/modelgate/modelgate/internal/validate"
	"github.com/modelgate/modelgate/registry"
	"github.com/modelgate/modelgate/runtime"
)

// A cluster of whole nodes on 127.0.0.1: each a real Raft node with a TCP
// transport, an artifact store, a gateway with its admin API, and the
// reconciler loading versions into ONNX Runtime. Members join over the
// admin API, as `serve --join` does.

const clusterSecret = "cluster-test-admin-secret"

type member struct {
	t       *testing.T
	id      string
	dir     string
	raft    string // fixed Raft address: it must survive a restart
	voter   bool
	applyTO time.Duration
	store   *artifact.Store
	// faulty, when set, is the store the member serves artifacts from
	// (distribute_test.go's fault injection); logs receives its log.
	faulty *faultyStore
	logs   *logBuffer
	// validator replaces localValidator on this member.
	validator gateway.Validator
	// raftDefaults keeps cluster.DefaultConfig's timeouts instead of the
	// short ones that make tests fast (a measurement on a busy machine).
	raftDefaults bool
	c            *cluster.Node
	n            *Node
	// configure, when set, adjusts the member's gateway before it starts
	// (a prediction log, a peer client).
	configure func(*gateway.Config)

	// drift is the drift window (0: drift off), pushEvery the statistics
	// push interval (0: a quarter of it).
	drift, pushEvery time.Duration
}

func (m *member) admin() string { return "http://" + m.n.AdminAddr() }

// start opens the member's Raft node (bootstrapping when boot is set and
// the dir is new) and its HTTP node.
func (m *member) start(boot bool) {
	t := m.t
	t.Helper()
	cfg := cluster.DefaultConfig()
	cfg.NodeID, cfg.DataDir, cfg.BindAddr, cfg.Bootstrap = m.id, m.dir, m.raft, boot
	if !m.raftDefaults {
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 300*time.Millisecond, 300*time.Millisecond, 150*time.Millisecond
	}
	cfg.ApplyTimeout = m.applyTO
	cfg.Logger = clusterTestLogger()
	c, err := cluster.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.c = c
	if m.store == nil {
		if m.store, err = artifact.Open(filepath.Join(m.dir, "artifacts"), artifact.Config{MaxBytes: 64 << 20}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.store.Close() })
	}
	gw := gateway.Config{
		Auth:          gateway.NewAuth(gateway.NewToken("ops", clusterSecret, gateway.ScopeAdmin)),
		Validator:     localValidator,
		MaxModelBytes: 64 << 20,
		ApplyTimeout:  m.applyTO,
		Logger:        clusterTestLogger(),
		Node:          m.id,
		Peers:         peer.New(peer.Config{Token: clusterSecret}),
	}
	var arts gateway.Artifacts = m.store
	if m.faulty != nil {
		m.faulty.Store = m.store
		arts = m.faulty
	}
	if m.validator != nil {
		gw.Validator = m.validator
	}
	if m.logs != nil {
		gw.Logger = slog.New(slog.NewTextHandler(m.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if m.configure != nil {
		m.configure(&gw)
	}
	m.n = startNode(t, Config{Gateway: gw, Control: c, Artifacts: arts, NoDrift: m.drift == 0, DriftWindow: m.drift, StatsPushInterval: m.pushEvery, Runtime: runtime.Config{Sessions: 1}})
	m.n.Server.SetReady(true)
	c.AdvertiseAdmin(m.n.AdminAddr())
	t.Cleanup(m.stop)
}

// stop shuts the member down (idempotent).
func (m *member) stop() {
	if m.n == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = m.n.Shutdown(ctx)
	_ = m.c.Close()
	m.n, m.c = nil, nil
}

func clusterTestLogger() *slog.Logger {
	if os.Getenv("CLUSTER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func localValidator(_ context.Context, onnx []byte, _ json.RawMessage, _ float64) (gateway.Validation, error) {
	rep, err := validate.Local(onnx, validate.Options{LatencyRuns: 1, ORTLib: ortlib.Path()})
	if err != nil {
		return gateway.Validation{}, err
	}
	v := gateway.Validation{Passed: rep.Passed, Reason: rep.Reason}
	if rep.Signature != nil {
		for _, in := range rep.Signature.Inputs {
			v.Signature.Inputs = append(v.Signature.Inputs, registry.TensorSpec{Name: in.Name, DataType: in.Datatype, Shape: in.Shape})
		}
		for _, out := range rep.Signature.Outputs {
			v.Signature.Outputs = append(v.Signature.Outputs, registry.TensorSpec{Name: out.Name, DataType: out.Datatype, Shape: out.Shape})
		}
	}
	return v, nil
}

func freeRaftAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// call sends an admin request with the cluster's token; hdr adds headers.
func call(t *testing.T, method, url string, body io.Reader, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+clusterSecret)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func joinVia(t *testing.T, via *member, m *member) {
	t.Helper()
	body := fmt.Sprintf(`{"id":%q,"raft_addr":%q,"admin_addr":%q,"voter":%v}`, m.id, m.raft, m.n.AdminAddr(), m.voter)
	resp, b := call(t, "POST", via.admin()+"/api/v1/cluster/join", strings.NewReader(body), nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("join %s via %s: %d %s", m.id, via.id, resp.StatusCode, b)
	}
}

// upload registers onnx as a version of model through m, streamed
// (chunked, through a pipe) as a client uploads it.
func upload(t *testing.T, m *member, model string, onnx []byte, key string) (*http.Response, []byte) {
	t.Helper()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		_ = mw.WriteField("metadata", `{"lineage":{"notes":"registered through a follower"}}`)
		part, _ := mw.CreateFormFile("model", "model.onnx")
		_, _ = part.Write(onnx)
		pw.CloseWithError(mw.Close())
	}()
	return call(t, "POST", m.admin()+"/api/v1/models/"+model+"/versions", pr, map[string]string{"Content-Type": mw.FormDataContentType(), "Idempotency-Key": key})
}

func auditOf(t *testing.T, m *member) string {
	t.Helper()
	resp, b := call(t, "GET", m.admin()+"/api/v1/audit", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("audit on %s: %d %s", m.id, resp.StatusCode, b)
	}
	return string(b)
}

// settle waits until every member has applied what the leader has.
func settle(ctx context.Context, t *testing.T, leader *member, ms ...*member) {
	t.Helper()
	idx := leader.c.AppliedIndex()
	for _, m := range ms {
		if err := m.c.WaitApplied(ctx, idx); err != nil {
			t.Fatalf("%s: %v", m.id, err)
		}
	}
}

// TestClusterForwarding runs three voters and a non-voter as whole nodes on
// 127.0.0.1. They join over the admin API (one through a follower, which
// forwards the join); GET /api/v1/cluster lists them with the leader; a
// version upload and a policy write sent to followers are forwarded,
// committed and visible at once on the follower that took them, and the
// audit logs of all four nodes are identical; the same write retried on
// another follower with the same Idempotency-Key returns the first result
// (replayed) and is recorded once; the followers fetch the version's
// artifact and serve it; ?consistent=true reads through
// the leader; the non-voter applies the log but is a non-voter in Raft's
// configuration; a removed member leaves; and with its quorum lost the
// leader fails a write within its deadline with a 503, leaving nothing
// half-applied (the retry after the quorum returns is applied once).
func TestClusterForwarding(t *testing.T) {
	if testing.Short() {
		t.Skip("four nodes")
	}
	if err := runtime.Init(ortlib.Path()); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const applyTO = 3 * time.Second
	mk := func(id string, voter bool) *member {
		return &member{t: t, id: id, dir: t.TempDir(), raft: freeRaftAddr(t), voter: voter, applyTO: applyTO}
	}
	n1, n2, n3, edge := mk("n1", true), mk("n2", true), mk("n3", true), mk("edge", false)
	n1.start(true)
	if err := n1.c.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	for _, a := n1.c.LeaderAdmin(); a == ""; _, a = n1.c.LeaderAdmin() {
		select { // AdvertiseAdmin records it once n1 leads
		case <-ctx.Done():
			t.Fatal("n1 never announced its admin address")
		case <-time.After(20 * time.Millisecond):
		}
	}
	for _, m := range []*member{n2, n3, edge} {
		m.start(false)
	}
	joinVia(t, n1, n2)
	if err := n2.c.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	joinVia(t, n2, n3) // forwarded by the follower n2
	joinVia(t, n1, edge)
	all := []*member{n1, n2, n3, edge}
	settle(ctx, t, n1, all...)

	// The cluster as a follower lists it.
	resp, b := call(t, "GET", n3.admin()+"/api/v1/cluster", nil, nil)
	var view struct {
		Leader  string `json:"leader"`
		Members []struct {
			ID           string `json:"id"`
			RaftAddr     string `json:"raft_addr"`
			AdminAddr    string `json:"admin_addr"`
			Voter        bool   `json:"voter"`
			AppliedIndex uint64 `json:"applied_index"`
			Source       string `json:"source"`
		} `json:"members"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &view) != nil {
		t.Fatalf("GET /api/v1/cluster on n3: %d %s", resp.StatusCode, b)
	}
	if view.Leader != "n1" || len(view.Members) != 4 {
		t.Fatalf("cluster on n3: %s", b)
	}
	for _, mv := range view.Members {
		want := map[string]*member{"n1": n1, "n2": n2, "n3": n3, "edge": edge}[mv.ID]
		if want == nil || mv.Voter != want.voter || mv.RaftAddr != want.raft || mv.AdminAddr != want.n.AdminAddr() || mv.AppliedIndex == 0 ||
			mv.Source != map[bool]string{true: "self", false: "peer"}[mv.ID == "n3"] {
			t.Fatalf("member %+v in %s", mv, b)
		}
	}
	// Raft's own configuration: edge does not vote.
	ms, err := n1.c.Members()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Voter != (m.ID != "edge") {
			t.Fatalf("raft configuration: %+v", ms)
		}
	}

	// A version uploaded to a follower: registered and validated on the
	// leader, visible on the follower as soon as it answers.
	onnx, err := demo.FraudModel(demo.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	resp, b = upload(t, n2, "fraud", onnx, "reg-fraud-1")
	if resp.StatusCode != http.StatusCreated || resp.Header.Get(gateway.HeaderForwardedTo) != "n1" {
		t.Fatalf("upload through n2: %d (forwarded to %q) %s", resp.StatusCode, resp.Header.Get(gateway.HeaderForwardedTo), b)
	}
	resp, b = call(t, "GET", n2.admin()+"/api/v1/models/fraud/versions/1", nil, nil)
	// The first version of a model becomes its champion. The leader, which
	// holds the bytes, serves it; the followers fetch them, verify and
	// validate them, report ready, and serve it too.
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"stage":"champion"`) || !strings.Contains(string(b), `"holders":["n1"]`) {
		t.Fatalf("v1 on n2 right after its upload: %d %s", resp.StatusCode, b)
	}
	waitReadyOn(ctx, t, n1, "fraud", 1, "n1", "n2", "n3", "edge")
	settle(ctx, t, n1, all...)
	for _, m := range all {
		if err := m.n.Server.Reconcile(); err != nil {
			t.Fatalf("%s cannot serve v1 after its report: %v", m.id, err)
		}
	}
	resp, b = call(t, "GET", n1.admin()+"/api/v1/cluster", nil, nil)
	if !strings.Contains(string(b), `"id":"n1","raft_addr":"`+n1.raft) || strings.Count(string(b), `"ready_versions":{"fraud":[1]}`) != 4 {
		t.Fatalf("cluster on n1 after v1 was distributed: %s", b)
	}

	// A policy write through n3, then retried through n2 with the same key.
	policy := `{"validation":{"latency_budget_ms":5000}}`
	hdr := map[string]string{"Idempotency-Key": "policy-1", "Content-Type": "application/json"}
	resp, b = call(t, "PUT", n3.admin()+"/api/v1/models/fraud/policy", strings.NewReader(policy), hdr)
	var first, again registry.Result
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &first) != nil || first.Replayed {
		t.Fatalf("policy through n3: %d %s", resp.StatusCode, b)
	}
	resp, b = call(t, "GET", n3.admin()+"/api/v1/models/fraud/policy", nil, nil)
	if !strings.Contains(string(b), `"latency_budget_ms":5000`) {
		t.Fatalf("policy on n3 right after its write: %s", b)
	}
	resp, b = call(t, "PUT", n2.admin()+"/api/v1/models/fraud/policy", strings.NewReader(policy), hdr)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &again) != nil || !again.Replayed || again.AuditSeq != first.AuditSeq {
		t.Fatalf("the retry through n2: %d %s, want the first result (audit seq %d) replayed", resp.StatusCode, b, first.AuditSeq)
	}
	settle(ctx, t, n1, all...)
	audit := auditOf(t, n1)
	if c := strings.Count(audit, `"action":"set_policy"`); c != 1 {
		t.Fatalf("%d set_policy records, want 1: %s", c, audit)
	}
	for _, m := range all[1:] {
		if got := auditOf(t, m); got != audit {
			t.Fatalf("audit log on %s differs from the leader's:\n%s\nwant\n%s", m.id, got, audit)
		}
	}

	// A consistent read on a follower goes through the leader; on the
	// leader it is answered there.
	resp, b = call(t, "GET", edge.admin()+"/api/v1/models/fraud/policy?consistent=true", nil, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get(gateway.HeaderForwardedTo) != "n1" || !strings.Contains(string(b), `"latency_budget_ms":5000`) {
		t.Fatalf("consistent read on edge: %d (forwarded to %q) %s", resp.StatusCode, resp.Header.Get(gateway.HeaderForwardedTo), b)
	}
	resp, _ = call(t, "GET", n1.admin()+"/api/v1/models/fraud?consistent=true", nil, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get(gateway.HeaderForwardedTo) != "" {
		t.Fatalf("consistent read on the leader: %d, forwarded to %q", resp.StatusCode, resp.Header.Get(gateway.HeaderForwardedTo))
	}

	// The non-voter leaves (removed through a follower).
	resp, b = call(t, "DELETE", n2.admin()+"/api/v1/cluster/members/edge", nil, nil)
	if resp.StatusCode != http.StatusOK || strings.Contains(string(b), `"edge"`) {
		t.Fatalf("remove edge through n2: %d %s", resp.StatusCode, b)
	}
	edge.stop()
	resp, b = call(t, "DELETE", n2.admin()+"/api/v1/cluster/members/ghost", nil, nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("remove ghost: %d %s, want 404", resp.StatusCode, b)
	}

	// Quorum lost: n2 and n3 stop. A write on the leader fails within its
	// deadline with a 503 that says so, and nothing is half-applied.
	n2.stop()
	n3.stop()
	lost := `{"validation":{"latency_budget_ms":7000}}`
	lostHdr := map[string]string{"Idempotency-Key": "policy-lost", "Content-Type": "application/json"}
	start := time.Now()
	resp, b = call(t, "PUT", n1.admin()+"/api/v1/models/fraud/policy", strings.NewReader(lost), lostHdr)
	took := time.Since(start)
	if resp.StatusCode != http.StatusServiceUnavailable || !bytes.Contains(b, []byte("cannot apply set_policy")) {
		t.Fatalf("write without quorum: %d %s, want 503 from the cluster", resp.StatusCode, b)
	}
	// The deadline is applyTO; the slack only catches a write that hangs.
	if took > applyTO+20*time.Second {
		t.Fatalf("write without quorum took %v, deadline %v", took, applyTO)
	}
	t.Logf("write without quorum: 503 after %v: %s", took.Round(time.Millisecond), b)

	// The quorum returns; the client retries with the same key: the write
	// is applied exactly once, identically everywhere.
	n2.start(false)
	n3.start(false)
	var res registry.Result
	for {
		resp, b = call(t, "PUT", n2.admin()+"/api/v1/models/fraud/policy", strings.NewReader(lost), lostHdr)
		if resp.StatusCode == http.StatusOK {
			if err := json.Unmarshal(b, &res); err != nil {
				t.Fatal(err)
			}
			break
		}
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("retry: %d %s", resp.StatusCode, b)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no quorum again: %s", b)
		case <-time.After(100 * time.Millisecond):
		}
	}
	leader := n1
	for _, m := range []*member{n1, n2, n3} {
		if m.c.IsLeader() {
			leader = m
		}
	}
	settle(ctx, t, leader, n1, n2, n3)
	audit = auditOf(t, leader)
	if c := strings.Count(audit, `"latency_budget_ms":7000`); c > 1 {
		t.Fatalf("the lost write is recorded %d times", c)
	}
	for _, m := range []*member{n1, n2, n3} {
		if got := auditOf(t, m); got != audit {
			t.Fatalf("audit log on %s differs from the leader's", m.id)
		}
		resp, b = call(t, "GET", m.admin()+"/api/v1/models/fraud/policy", nil, nil)
		if !strings.Contains(string(b), `"latency_budget_ms":7000`) {
			t.Fatalf("policy on %s after the retry: %s", m.id, b)
		}
	}
	t.Logf("retry after the quorum returned: %+v", res)
}

// waitReadyOn waits until the registry on m says version of model is
// ready on every node of ids (a hang is caught by ctx).
func waitReadyOn(ctx context.Context, t *testing.T, m *member, model string, version int, ids ...string) registry.Version {
	t.Helper()
	for {
		changed := m.c.Changed()
		var v registry.Version
		var err error
		m.c.View(func(st *registry.State) { v, err = st.Version(model, version) })
		if err != nil {
			t.Fatal(err)
		}
		missing := ""
		for _, id := range ids {
			if !v.IsReadyOn(id) {
				missing += " " + id
			}
		}
		if missing == "" {
			return v
		}
		select {
		case <-ctx.Done():
			b, _ := json.Marshal(v)
			t.Fatalf("%s v%d never became ready on%s: %s", model, version, missing, b)
		case <-changed:
		case <-time.After(time.Second):
		}
	}
}

// reconcileUntilServing waits until m routes what the registry names: a
// version registered on another node is fetched, verified and put through
// this node's own gate first (a hang is caught by ctx).
func reconcileUntilServing(ctx context.Context, t *testing.T, m *member) {
	t.Helper()
	for {
		err := m.n.Server.Reconcile()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never served what the registry names: %v", m.id, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
