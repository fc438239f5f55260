package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/fraud"
	"github.com/modelgate/modelgate/internal/ortlib"
	"github.com/modelgate/modelgate/lifecycle"
	"github.com/modelgate/modelgate/runtime"
)

const (
	statsWindow = 3 * time.Second        // a ring of 3 minutes: the failover must come before the traffic ages out
	statsPush   = 250 * time.Millisecond // stale after 1s
)

// driftCluster starts three voters on 127.0.0.1 that monitor drift in
// windows of statsWindow and push every statsPush, and registers the demo
// fraud model with its reference profile through n1 (the leader). Every
// node holds the artifact already (distribution is not what this tests).
func driftCluster(ctx context.Context, t *testing.T) []*member {
	t.Helper()
	if testing.Short() {
		t.Skip("three nodes")
	}
	if err := runtime.Init(ortlib.Path()); err != nil {
		t.Skip(err)
	}
	res, err := demo.TrainFraudModel(demo.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	prof, err := demo.FraudProfile(demo.DefaultSeed, res.Model)
	if err != nil {
		t.Fatal(err)
	}
	var ms []*member
	for i := 1; i <= 3; i++ {
		ms = append(ms, &member{t: t, id: "n" + strconv.Itoa(i), dir: t.TempDir(), raft: freeRaftAddr(t), voter: true,
			applyTO: 5 * time.Second, drift: statsWindow, pushEvery: statsPush,
			// The test reads the merge on n1 as the leader: with the harness's
			// 300 ms timeouts a busy machine moved leadership mid-test.
			raftDefaults: true})
	}
	ms[0].start(true)
	if err := ms[0].c.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	for _, a := ms[0].c.LeaderAdmin(); a == ""; _, a = ms[0].c.LeaderAdmin() {
		select {
		case <-ctx.Done():
			t.Fatal("n1 never announced its admin address")
		case <-time.After(20 * time.Millisecond):
		}
	}
	for _, m := range ms[1:] {
		m.start(false)
		joinVia(t, ms[0], m)
	}
	for _, m := range ms {
		if _, _, err := m.store.Put(bytes.NewReader(res.ONNX)); err != nil {
			t.Fatal(err)
		}
	}
	pj, err := json.Marshal(prof)
	if err != nil {
		t.Fatal(err)
	}
	resp, b := uploadWithMeta(t, ms[0], "fraud", res.ONNX, `{"profile":`+string(pj)+`}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
	settle(ctx, t, ms[0], ms...)
	for _, m := range ms {
		reconcileUntilServing(ctx, t, m)
		if m.n.localDrift("fraud", 1) == nil {
			t.Fatalf("%s does not monitor fraud v1's drift", m.id)
		}
	}
	return ms
}

func uploadWithMeta(t *testing.T, m *member, model string, onnx []byte, meta string) (*http.Response, []byte) {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	_ = w.WriteField("metadata", meta)
	part, _ := w.CreateFormFile("model", "model.onnx")
	_, _ = part.Write(onnx)
	_ = w.Close()
	return call(t, "POST", m.admin()+"/api/v1/models/"+model+"/versions", &body, map[string]string{"Content-Type": w.FormDataContentType()})
}

// score sends n rows from the fraud generator (seed, drift d) to m's
// scoring endpoint in one request: they land in one drift window.
func score(t *testing.T, m *member, seed int64, n int, d fraud.Drift) {
	t.Helper()
	x, _ := fraud.NewGenerator(seed, fraud.WithDrift(d)).Batch(n)
	var b strings.Builder
	fmt.Fprintf(&b, `{"inputs":[{"name":"features","datatype":"FP32","shape":[%d,%d],"data":[`, n, fraud.NumFeatures)
	for i, v := range x {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatFloat(float64(v), 'g', -1, 32))
	}
	b.WriteString("]}]}")
	resp, err := http.Post("http://"+m.n.Addr()+"/v2/models/fraud/infer", "application/json", strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scoring on %s: %d", m.id, resp.StatusCode)
	}
}

// driftView is GET …/drift on m with query q.
func driftView(t *testing.T, m *member, q string) (int, gateway.DriftView, string) {
	t.Helper()
	resp, b := call(t, "GET", m.admin()+"/api/v1/models/fraud/versions/1/drift"+q, nil, nil)
	var v gateway.DriftView
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("drift view on %s: %v: %s", m.id, err, b)
		}
	}
	return resp.StatusCode, v, string(b)
}

// waitFor polls cond until it holds; the deadline only catches a hang.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("never: %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Logf("%s: %s", time.Now().Format("15:04:05.000"), what)
}

// closedRows is how many rows a node's own windows hold in the ring of
// windows that ends before window cur.
func closedRows(w *drift.Windows, cur int64) int64 {
	_, closed := w.ClosedSince(cur - ringOf(w) - 1)
	var n int64
	for _, c := range closed {
		if c.ID < cur {
			n += c.Rows
		}
	}
	return n
}

// TestClusterDriftJudgedOnMergedSketches: three nodes score the fraud
// model; n3's rows (a third of the cluster's) all carry a merchant
// category the reference never had, n1's and n2's none. The leader (n1)
// judges the merge of every node's pushed windows: its controller records
// a drift alert, and its drift API shows the cluster view (three nodes,
// every row, the alerts). Each node's own view alone tells a different
// story: the leader's own traffic shows no drift at all (before merging,
// nothing would ever have been raised), and n3's shows the shift but too
// few rows for the sustained alert the merge reaches. A follower shows its
// own view, and the cluster's with ?consistent=true. The rollout's
// evidence on the leader (requests, latencies, scores) and its evaluation
// endpoint count every node's requests too. After the leader
// stops, the new leader merges the pushes of the two survivors (their
// whole rings, resent to it, n3's in several pushes held to two windows'
// bytes each): exactly the rows they hold, drift still seen.
func TestClusterDriftJudgedOnMergedSketches(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute) // only a hang reaches it
	defer cancel()
	ms := driftCluster(ctx, t)
	n1, n2, n3 := ms[0], ms[1], ms[2]

	// Six windows of traffic: 400 rows per node per window, so the
	// cluster's windows hold 1,200 rows (one judgement each, at the
	// default min_count of 1,000) and n3's alone 400.
	const rounds, rows = 6, 400
	newCategory := fraud.Drift{Kind: fraud.NewCategory, Share: 1}
	began := time.Now()
	for r := range rounds {
		score(t, n1, int64(10*r+1), rows, fraud.Drift{})
		score(t, n2, int64(10*r+2), rows, fraud.Drift{})
		score(t, n3, int64(10*r+3), rows, newCategory)
		if r < rounds-1 {
			next := time.Now().Truncate(statsWindow).Add(statsWindow)
			time.Sleep(time.Until(next) + 10*time.Millisecond) // into the next window
		}
	}
	waitFor(ctx, t, "a drift alert recorded by the leader", func() bool {
		return strings.Contains(auditOf(t, n1), `"kind":"drift"`)
	})
	// Every window of the traffic closed and pushed: the merge holds them.
	waitFor(ctx, t, "the merge holding every row", func() bool {
		w, _, ok := n1.n.stats.DriftWindows("fraud", 1, "")
		return ok && w.Snapshot(time.Hour).Rows() == 3*rounds*rows
	})

	code, v, b := driftView(t, n1, "")
	if code != http.StatusOK || v.View != gateway.ViewCluster || len(v.Nodes) != 3 || v.Status != drift.StatusDrift || len(v.Alerts) == 0 {
		t.Fatalf("the leader's drift view: %d %s", code, b)
	}
	hasOther := false
	for _, a := range v.Alerts {
		hasOther = hasOther || a.Name == "mcc_other"
	}
	if !hasOther {
		t.Fatalf("the cluster's alerts do not name mcc_other: %s", b)
	}
	code, own, b := driftView(t, n1, "?node=n1")
	if code != http.StatusOK || own.View != gateway.ViewNode || own.Node != "n1" || own.Status != drift.StatusNoDrift || len(own.Alerts) != 0 {
		t.Fatalf("the leader's own view: %d %s", code, b)
	}
	code, own3, b := driftView(t, n3, "")
	if code != http.StatusOK || own3.View != gateway.ViewNode || own3.Node != "n3" || own3.Status != drift.StatusDrift || len(own3.Alerts) != 0 {
		t.Fatalf("n3's own view: %d %s, want drift without a sustained alert", code, b)
	}
	code, pushed3, b := driftView(t, n1, "?node=n3")
	if code != http.StatusOK || pushed3.View != gateway.ViewNode || pushed3.Node != "n3" || len(pushed3.Nodes) != 1 || pushed3.Status != drift.StatusDrift {
		t.Fatalf("n3's windows as the leader holds them: %d %s", code, b)
	}
	code, fwd, b := driftView(t, n2, "?consistent=true")
	if code != http.StatusOK || fwd.View != gateway.ViewCluster || fwd.Status != drift.StatusDrift {
		t.Fatalf("a consistent drift read on n2: %d %s", code, b)
	}
	if code, _, b = driftView(t, n2, "?node=n3"); code != http.StatusNotFound || !strings.Contains(b, "consistent=true") {
		t.Fatalf("another node's view asked of a follower: %d %s", code, b)
	}

	// The rollout's numbers on the leader are the cluster's too: every
	// node's requests, latencies and scores of v1 since the traffic began.
	src := rolloutSource{n1.n.Server, n1.n}
	var wantScores uint64
	for _, m := range ms {
		_, sc := m.n.Server.VersionPerf("fraud", 1, began, time.Now())
		for _, c := range sc {
			wantScores += c
		}
	}
	waitFor(ctx, t, "the leader's rollout evidence counting every node", func() bool {
		ev, err := src.RolloutEvidence(lifecycle.RolloutQuery{Model: "fraud", Candidate: 1, Against: 1, Since: began, Now: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		var scores uint64
		for _, c := range ev.Candidate.Scores {
			scores += c
		}
		return ev.Candidate.Requests == 3*rounds && ev.Candidate.Latency.TotalCount() == 3*rounds && scores == wantScores &&
			src.Served("fraud", 1) == 3*rounds
	})
	if served, _, _, _ := n1.n.Server.VersionCounts("fraud", 1); served != rounds {
		t.Fatalf("n1 itself served %d requests, want %d", served, rounds)
	}
	// The evaluation endpoint says the same: the cluster's on the leader,
	// a node's own on a follower or with ?node=.
	evalView := func(m *member, q string) (view string, preds uint64) {
		t.Helper()
		resp, b := call(t, "GET", m.admin()+"/api/v1/models/fraud/evaluation"+q, nil, nil)
		var out struct {
			View     string `json:"view"`
			Versions []struct {
				Version     int    `json:"version"`
				Predictions uint64 `json:"predictions"`
			} `json:"versions"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &out) != nil || len(out.Versions) != 1 || out.Versions[0].Version != 1 {
			t.Fatalf("evaluation on %s%s: %d %s", m.id, q, resp.StatusCode, b)
		}
		return out.View, out.Versions[0].Predictions
	}
	for _, c := range []struct {
		m        *member
		q, view  string
		requests uint64
	}{{n1, "", gateway.ViewCluster, 3 * rounds}, {n1, "?node=n1", gateway.ViewNode, rounds}, {n2, "", gateway.ViewNode, rounds}} {
		if view, preds := evalView(c.m, c.q); view != c.view || preds != c.requests {
			t.Fatalf("evaluation on %s%s: view %q, %d predictions; want %q, %d", c.m.id, c.q, view, preds, c.view, c.requests)
		}
	}
	if wantScores == 0 { // the score is read once the shadow loop set its spec: after the first rows
		t.Fatal("the nodes' own score histograms are empty")
	}

	// The leader stops: the new one merges the survivors' pushes, whole
	// rings resent, so exactly their rows; n3 resends in pushes of at most
	// two windows' bytes, so it takes it several.
	_, closed := n3.n.localDrift("fraud", 1).ClosedSince(-1 << 62)
	largest := 0
	for _, c := range closed {
		largest = max(largest, len(c.Sketch))
	}
	if len(closed) < 4 {
		t.Fatalf("n3 holds %d windows with rows, want at least 4", len(closed))
	}
	n3.n.pusher.mu.Lock()
	n3.n.pusher.budget = 2 * largest
	n3.n.pusher.mu.Unlock()
	n1.stop()
	var leader *member
	waitFor(ctx, t, "a new leader", func() bool {
		for _, m := range []*member{n2, n3} {
			if m.c.IsLeader() {
				leader = m
				return true
			}
		}
		return false
	})
	waitFor(ctx, t, "the new leader merging exactly the survivors' windows", func() bool {
		w, nodes, ok := leader.n.stats.DriftWindows("fraud", 1, "")
		if !ok || len(nodes) != 2 || nodes[0].ID != "n2" || nodes[1].ID != "n3" {
			return false
		}
		cur, _ := w.Current()
		want := closedRows(n2.n.localDrift("fraud", 1), cur) + closedRows(n3.n.localDrift("fraud", 1), cur)
		got := w.Snapshot(time.Hour).Rows()
		return got == want && got > 0 && cur > closed[len(closed)-1].ID // n3 caught up past its last traffic
	})
	waitFor(ctx, t, "the cluster view on the new leader", func() bool {
		code, v, _ := driftView(t, leader, "")
		return code == http.StatusOK && v.View == gateway.ViewCluster && len(v.Nodes) == 2 && v.Status == drift.StatusDrift
	})
}

// TestClusterStatsPushes: the push endpoint on a real three-node cluster.
// A duplicated push (same seq) is merged once and counted as a duplicate;
// a retry with a new seq replaces the windows it repeats rather than
// adding them again; a push to a follower is refused with 409 naming the
// leader; malformed bodies and another format version get 400, sketches in
// another export version are refused, logged and counted; and a node that
// stops pushing is marked stale and leaves the merge after the bound (four
// push intervals), visibly.
func TestClusterStatsPushes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute) // only a hang reaches it
	defer cancel()
	ms := driftCluster(ctx, t)
	n1, n2 := ms[0], ms[1]

	// A "ghost" node's push: two windows of real rows, sketched on n2's
	// profile, numbered just before the leader's live window.
	lw := n1.n.localDrift("fraud", 1)
	cur, _ := lw.Current()
	p := lw.Profile()
	var wins []gateway.PushedWindow
	for i, n := range []int{300, 500} {
		s, err := drift.NewSketchShards(p, 1)
		if err != nil {
			t.Fatal(err)
		}
		x, _ := fraud.NewGenerator(int64(i + 77)).Batch(n)
		for r := range n {
			row := x[r*fraud.NumFeatures : (r+1)*fraud.NumFeatures]
			_ = s.Observe(row, 0.1)
		}
		wins = append(wins, gateway.PushedWindow{ID: cur - 2 + int64(i), Sketch: s.Export()})
	}
	push := gateway.StatsPush{V: gateway.StatsPushVersion, Node: "ghost", Seq: 7, WindowNS: int64(statsWindow),
		Drift: []gateway.DriftPush{{Model: "fraud", Version: 1, Through: cur - 1, Windows: wins}}}
	send := func(m *member, body []byte) (int, string) {
		resp, b := call(t, "POST", m.admin()+"/api/v1/cluster/stats", bytes.NewReader(body), map[string]string{"Content-Type": "application/json"})
		return resp.StatusCode, string(b)
	}
	body, _ := json.Marshal(push)
	ghostRows := func() int64 {
		w, nodes, ok := n1.n.stats.DriftWindows("fraud", 1, "ghost")
		if !ok || len(nodes) != 1 {
			t.Fatalf("the leader holds nothing of ghost")
		}
		return w.Snapshot(time.Hour).Rows()
	}
	var ack gateway.StatsAck
	code, b := send(n1, body)
	if code != http.StatusOK || unmarshalFresh(b, &ack) != nil || ack.Duplicate || ack.Windows != 2 || ack.Leader != "n1" {
		t.Fatalf("first push: %d %s", code, b)
	}
	code, b = send(n1, body)
	if code != http.StatusOK || unmarshalFresh(b, &ack) != nil || !ack.Duplicate || ack.Windows != 0 {
		t.Fatalf("the same push again: %d %s, want a duplicate", code, b)
	}
	if got := ghostRows(); got != 800 {
		t.Fatalf("ghost's rows after a duplicated push: %d, want 800", got)
	}
	push.Seq = 8 // a retry after a lost acknowledgement: same windows, new seq
	body, _ = json.Marshal(push)
	if code, b = send(n1, body); code != http.StatusOK || unmarshalFresh(b, &ack) != nil || ack.Duplicate || ack.Windows != 2 {
		t.Fatalf("the retried push: %d %s", code, b)
	}
	if got := ghostRows(); got != 800 {
		t.Fatalf("ghost's rows after a retried push: %d, want 800 (windows replaced, not added)", got)
	}
	var st gateway.StatsStatus
	resp, sb := call(t, "GET", n1.admin()+"/api/v1/cluster/stats", nil, nil)
	if resp.StatusCode != http.StatusOK || unmarshalFresh(string(sb), &st) != nil || st.Duplicates != 1 || !st.Leader {
		t.Fatalf("stats status: %d %s, want one duplicate", resp.StatusCode, sb)
	}

	// A follower refuses, naming the leader; nothing is forwarded.
	push.Seq = 9
	body, _ = json.Marshal(push)
	if code, b = send(n2, body); code != http.StatusConflict || !strings.Contains(b, "not the leader") || !strings.Contains(b, "the leader is n1") {
		t.Fatalf("a push to follower n2: %d %s, want 409 naming n1", code, b)
	}

	// Bad input: 400, never a crash.
	for _, bad := range []string{`{`, `[]`, `{"v":2,"node":"x","seq":1,"window_ns":1}`, `{"v":1,"node":"","seq":1,"window_ns":1}`,
		`{"v":1,"node":"x","seq":1,"window_ns":1,"drift":[{"model":"fraud","version":1,"through":3,"windows":[{"id":4,"sketch":"AA=="}]}]}`} {
		if code, b = send(n1, []byte(bad)); code != http.StatusBadRequest {
			t.Fatalf("push %s: %d %s, want 400", bad, code, b)
		}
	}
	// Sketches of another export version: refused, counted.
	v2 := append([]byte(nil), wins[0].Sketch...)
	v2[4] = drift.ExportVersion + 1
	other := gateway.StatsPush{V: gateway.StatsPushVersion, Node: "newer", Seq: 1, WindowNS: int64(statsWindow),
		Drift: []gateway.DriftPush{{Model: "fraud", Version: 1, Through: cur - 1, Windows: []gateway.PushedWindow{{ID: cur - 1, Sketch: v2}}}}}
	body, _ = json.Marshal(other)
	if code, b = send(n1, body); code != http.StatusOK || unmarshalFresh(b, &ack) != nil || len(ack.Refused) != 1 ||
		ack.Refused[0].Reason != gateway.RefusedExportVersion || !strings.Contains(ack.Refused[0].Error, "format version") {
		t.Fatalf("a push in another sketch format: %d %s", code, b)
	}
	resp, sb = call(t, "GET", n1.admin()+"/api/v1/cluster/stats", nil, nil)
	if unmarshalFresh(string(sb), &st) != nil || st.Refused[gateway.RefusedExportVersion] != 1 {
		t.Fatalf("stats status after the refusal: %s", sb)
	}

	// ghost never pushes again: after the bound it is stale and out of the
	// merge, and the views say so.
	waitFor(ctx, t, "ghost stale and out of the merge", func() bool {
		_, nodes, ok := n1.n.stats.DriftWindows("fraud", 1, "")
		if !ok {
			return false
		}
		for _, n := range nodes {
			if n.ID == "ghost" {
				return n.Stale
			}
		}
		return false
	})
	w, _, _ := n1.n.stats.DriftWindows("fraud", 1, "")
	if rows := w.Snapshot(time.Hour).Rows(); rows != 0 {
		t.Fatalf("the merge holds %d rows once ghost is stale; the three real nodes scored none", rows)
	}
	code, v, b := driftView(t, n1, "")
	if code != http.StatusOK || v.View != gateway.ViewCluster {
		t.Fatalf("cluster view: %d %s", code, b)
	}
	stale := map[string]bool{}
	for _, n := range v.Nodes {
		stale[n.ID] = n.Stale
	}
	if len(stale) != 4 || !stale["ghost"] || stale["n1"] || stale["n2"] || stale["n3"] {
		t.Fatalf("nodes of the cluster view: %+v, want ghost stale and n1-n3 not", v.Nodes)
	}
	if st := n1.n.stats.Status(); st.StaleAfter != (statsStaleAfter * statsPush).String() {
		t.Fatalf("stale_after %s", st.StaleAfter)
	}
}

// unmarshalFresh decodes b into a zeroed v: fields b omits are not left
// from an earlier answer.
func unmarshalFresh[T any](b string, v *T) error {
	var zero T
	*v = zero
	return json.Unmarshal([]byte(b), v)
}
