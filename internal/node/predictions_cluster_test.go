package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/oiptest"
	"github.com/modelgate/modelgate/internal/ortlib"
	"github.com/modelgate/modelgate/internal/peer"
	"github.com/modelgate/modelgate/predlog"
	"github.com/modelgate/modelgate/runtime"
)

// Predictions and labels across nodes: three voters on 127.0.0.1, each
// with its own prediction log, serving the demo fraud model in ONNX
// Runtime. What one node logged is found, labelled and exported through
// the others.

// logged is a member with a prediction log of its own.
type logged struct {
	*member
	plog *predlog.Log
}

// startLoggedCluster starts n voters, each logging predictions, with the
// demo model registered (its bytes put in every node's artifact store
// first, so every node serves it) and served everywhere.
func startLoggedCluster(ctx context.Context, t *testing.T, n int) []*logged {
	t.Helper()
	ms := make([]*logged, n)
	for i := range ms {
		ms[i] = newLogged(t, fmt.Sprintf("n%d", i+1), true)
	}
	bootLogged(ctx, t, ms, nil)
	return ms
}

// newLogged makes a member (not started) with a prediction log of its own.
func newLogged(t *testing.T, id string, voter bool) *logged {
	t.Helper()
	if testing.Short() {
		t.Skip("a cluster of whole nodes")
	}
	if err := runtime.Init(ortlib.Path()); err != nil {
		t.Skip(err)
	}
	// Raft's default timeouts: these tests read the leader's log as the
	// center's, and the harness's 300 ms ones moved leadership on a busy
	// machine.
	m := &member{t: t, id: id, raft: freeRaftAddr(t), voter: voter, applyTO: 5 * time.Second, raftDefaults: true}
	m.dir = t.TempDir()
	plog, err := predlog.Open(predlog.DefaultConfig(filepath.Join(m.dir, "predictions")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { plog.Close() }) // after the member's stop, registered later
	// The node's own token, as serve --cluster-token gives it: edge
	// uploads carry it.
	peers := peer.New(peer.Config{Token: clusterSecret})
	m.configure = func(gw *gateway.Config) { gw.PredLog, gw.Peers = plog, peers }
	return &logged{member: m, plog: plog}
}

// bootLogged starts ms[0] as the bootstrapping leader and joins the others
// through it (raftAddr, when set, gives the Raft address a member is
// joined at: a link the test can cut), then registers the demo model and
// waits until every member serves it.
func bootLogged(ctx context.Context, t *testing.T, ms []*logged, raftAddr func(*logged) string) {
	t.Helper()
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
	all := []*member{ms[0].member}
	for _, m := range ms[1:] {
		m.start(false)
		addr := m.raft
		if raftAddr != nil {
			addr = raftAddr(m)
		}
		body := fmt.Sprintf(`{"id":%q,"raft_addr":%q,"admin_addr":%q,"voter":%v}`, m.id, addr, m.n.AdminAddr(), m.voter)
		if resp, b := call(t, "POST", ms[0].admin()+"/api/v1/cluster/join", strings.NewReader(body), nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("join %s: %d %s", m.id, resp.StatusCode, b)
		}
		all = append(all, m.member)
	}
	onnx, err := demo.FraudModel(demo.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	registerEverywhere(t, ms, onnx, "reg-fraud")
	settle(ctx, t, ms[0].member, all...)
	for _, m := range ms {
		for m.n.Server.Reconcile() != nil {
			select {
			case <-ctx.Done():
				t.Fatalf("%s never served fraud v1: %v", m.id, m.n.Server.Reconcile())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// registerEverywhere puts onnx in every member's artifact store (nodes do
// not fetch artifacts from each other here) and registers it through the
// first.
func registerEverywhere(t *testing.T, ms []*logged, onnx []byte, key string) {
	t.Helper()
	for _, m := range ms {
		if _, _, err := m.store.Put(bytes.NewReader(onnx)); err != nil {
			t.Fatal(err)
		}
	}
	if resp, b := upload(t, ms[0].member, "fraud", onnx, key); resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
}

// score sends one scoring request with request id id to m.
func (m *logged) score(t *testing.T, id string) {
	t.Helper()
	body := bytes.Replace(oiptest.GoodRequest(1), []byte(`"id":"42"`), []byte(`"id":"`+id+`"`), 1)
	req, err := http.NewRequest("POST", "http://"+m.n.Addr()+"/v2/models/fraud/infer", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+clusterSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scoring %s on %s: %d", id, m.id, resp.StatusCode)
	}
}

// committed waits until m's log has committed n records. The deadline
// only catches a hang: commits take milliseconds.
func (m *logged) committed(ctx context.Context, t *testing.T, n uint64) {
	t.Helper()
	for m.plog.Stats().Committed < n {
		select {
		case <-ctx.Done():
			t.Fatalf("%s committed %d records, want %d", m.id, m.plog.Stats().Committed, n)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// exportLine is what the tests read of an export row.
type exportLine struct {
	ID     string   `json:"id"`
	Node   string   `json:"node"`
	Label  *float64 `json:"label"`
	Cursor string   `json:"cursor"`
}

// exportPage fetches one export page through m.
func exportPage(t *testing.T, m *member, query string) (int, http.Header, []exportLine, []byte) {
	t.Helper()
	resp, b := call(t, "GET", m.admin()+"/api/v1/models/fraud/export?"+query, nil, nil)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, resp.Header, nil, b
	}
	var rows []exportLine
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var r exportLine
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("export line %q: %v", line, err)
		}
		rows = append(rows, r)
	}
	return resp.StatusCode, resp.Header, rows, b
}

// TestClusterPredictionFoundLabelledExported: a prediction scored on n1
// is found through n2 (naming n1), labelled through n3 (relayed to n1,
// stored there and only there; the retry changes nothing), and exported
// through n2 with its label. An id no node logged is 404 naming every
// node; a label for it is stored where it was posted, as on a single node.
func TestClusterPredictionFoundLabelledExported(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ns := startLoggedCluster(ctx, t, 3)
	n1, n2, n3 := ns[0], ns[1], ns[2]
	n1.score(t, "tx-on-n1")
	n1.committed(ctx, t, 1)

	resp, b := call(t, "GET", n2.admin()+"/api/v1/predictions/tx-on-n1", nil, nil)
	var found struct {
		Node       string `json:"node"`
		Prediction struct {
			ID   string `json:"id"`
			Node string `json:"node"`
		} `json:"prediction"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &found) != nil || found.Node != "n1" || found.Prediction.ID != "tx-on-n1" {
		t.Fatalf("GET the prediction through n2: %d %s", resp.StatusCode, b)
	}
	resp, b = call(t, "GET", n1.admin()+"/api/v1/predictions/tx-on-n1", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"node":"n1"`) {
		t.Fatalf("GET the prediction on n1 itself: %d %s", resp.StatusCode, b)
	}
	resp, b = call(t, "GET", n2.admin()+"/api/v1/predictions/never-scored", nil, nil)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(b), "not found on n2, n1, n3") {
		t.Fatalf("GET an id no node logged: %d %s, want 404 naming every node", resp.StatusCode, b)
	}

	labels := `[{"id":"tx-on-n1","label":1},{"id":"never-scored","label":0}]`
	var res struct {
		Received   int            `json:"received"`
		Stored     int            `json:"stored"`
		Evaluated  int            `json:"evaluated"`
		Unknown    int            `json:"unknown"`
		Duplicates int            `json:"duplicates"`
		Changed    int            `json:"changed"`
		Relayed    map[string]int `json:"relayed"`
	}
	resp, b = call(t, "POST", n3.admin()+"/api/v1/models/fraud/labels", strings.NewReader(labels), nil)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &res) != nil {
		t.Fatalf("labels through n3: %d %s", resp.StatusCode, b)
	}
	if res.Received != 2 || res.Stored != 2 || res.Evaluated != 1 || res.Unknown != 1 || res.Relayed["n1"] != 1 || len(res.Relayed) != 1 {
		t.Fatalf("labels through n3: %s, want 2 stored, tx-on-n1 relayed to n1 and evaluated there, never-scored unknown", b)
	}
	if lb, ok, err := n1.plog.LabelOf("fraud", "tx-on-n1"); err != nil || !ok || lb.Value != 1 {
		t.Fatalf("the label on n1, which holds the prediction: %+v %v %v", lb, ok, err)
	}
	for _, m := range []*logged{n2, n3} {
		if _, ok, err := m.plog.LabelOf("fraud", "tx-on-n1"); err != nil || ok {
			t.Fatalf("the label of n1's prediction is also stored on %s (%v, %v)", m.id, ok, err)
		}
	}
	if _, ok, _ := n3.plog.LabelOf("fraud", "never-scored"); !ok {
		t.Fatal("a label nobody holds is not stored on the node it was posted to")
	}
	// The client's retry (it lost the answer): nothing changes anywhere.
	resp, b = call(t, "POST", n3.admin()+"/api/v1/models/fraud/labels", strings.NewReader(labels), nil)
	res = struct {
		Received   int            `json:"received"`
		Stored     int            `json:"stored"`
		Evaluated  int            `json:"evaluated"`
		Unknown    int            `json:"unknown"`
		Duplicates int            `json:"duplicates"`
		Changed    int            `json:"changed"`
		Relayed    map[string]int `json:"relayed"`
	}{}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &res) != nil || res.Duplicates != 2 || res.Changed != 0 || res.Evaluated != 0 {
		t.Fatalf("the same labels again through n3: %d %s, want 2 duplicates and nothing evaluated twice", resp.StatusCode, b)
	}

	code, hdr, rows, b := exportPage(t, n2.member, "labelled=true")
	if code != http.StatusOK || len(rows) != 1 || rows[0].ID != "tx-on-n1" || rows[0].Node != "n1" || rows[0].Label == nil || *rows[0].Label != 1 {
		t.Fatalf("labelled export through n2: %d %s", code, b)
	}
	// The next cursor is past the row's: it also steps over n3's label
	// of an id nobody logged, which yields no row.
	if next := hdr.Get("Modelgate-Next-Cursor"); !strings.HasPrefix(next, "c1") || !strings.HasPrefix(rows[0].Cursor, "c1") {
		t.Fatalf("next cursor %q, the row's %q: want cluster cursors", next, rows[0].Cursor)
	}
	// Resumed from that cursor: nothing new.
	code, _, rows, b = exportPage(t, n2.member, "labelled=true&since="+url.QueryEscape(hdr.Get("Modelgate-Next-Cursor")))
	if code != http.StatusOK || len(rows) != 0 {
		t.Fatalf("export resumed after the last row: %d %s", code, b)
	}
}

// TestClusterExportWalksEveryRowOnce: rows scored on three nodes, exported
// through one in pages of 7 by one cursor: every row exactly once, in
// commit-stamp order per the nodes' own logs; a page resumed from a row's
// own cursor continues right after that row; a single-node cursor
// (CursorAt, as retraining webhooks carry) still starts an export; a
// damaged cursor, or one of the other mode, is 400. Then
// n3 stops: a page is 503 naming n3, and ?partial=true answers the others'
// rows, names n3 as missing and keeps its position; a lookup that could be
// on n3 is 503 naming it, a label that could be for n3 is refused.
func TestClusterExportWalksEveryRowOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	ns := startLoggedCluster(ctx, t, 3)
	const perNode = 12
	for i := 0; i < perNode; i++ {
		for _, m := range ns {
			m.score(t, fmt.Sprintf("%s-%02d", m.id, i))
		}
	}
	stamp := map[string]int64{} // each row's commit stamp in its node's own log
	for _, m := range ns {
		m.committed(ctx, t, perNode)
		_, err := m.plog.Export("fraud", "", false, 0, func(r *predlog.Row) error {
			stamp[r.Record.RequestID] = r.Record.Stamp
			if r.Record.Node != m.id {
				t.Errorf("row %s on %s says node %q", r.Record.RequestID, m.id, r.Record.Node)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(stamp) != 3*perNode {
		t.Fatalf("%d rows in the logs, want %d", len(stamp), 3*perNode)
	}

	walk := func(since string) []exportLine {
		t.Helper()
		var all []exportLine
		for pages := 0; ; pages++ {
			if pages > 3*perNode {
				t.Fatal("the export never ends")
			}
			code, hdr, rows, b := exportPage(t, ns[1].member, "limit=7&since="+url.QueryEscape(since))
			if code != http.StatusOK {
				t.Fatalf("export page at %q: %d %s", since, code, b)
			}
			if len(rows) > 7 {
				t.Fatalf("a page of %d rows, limit 7", len(rows))
			}
			all = append(all, rows...)
			next := hdr.Get("Modelgate-Next-Cursor")
			if len(rows) > 0 && next != rows[len(rows)-1].Cursor {
				t.Fatalf("next cursor %q is not the last row's %q", next, rows[len(rows)-1].Cursor)
			}
			if len(rows) == 0 {
				return all
			}
			since = next
		}
	}
	all := walk("")
	seen := map[string]bool{}
	for i, r := range all {
		if seen[r.ID] {
			t.Fatalf("row %s exported twice", r.ID)
		}
		seen[r.ID] = true
		if _, ok := stamp[r.ID]; !ok || !strings.HasPrefix(r.ID, r.Node+"-") {
			t.Fatalf("row %s (node %s) is not one scored", r.ID, r.Node)
		}
		if i > 0 && stamp[r.ID] < stamp[all[i-1].ID] {
			t.Fatalf("row %s (stamp %d) after %s (stamp %d): not in stamp order", r.ID, stamp[r.ID], all[i-1].ID, stamp[all[i-1].ID])
		}
	}
	if len(all) != 3*perNode {
		t.Fatalf("walked %d rows, want %d", len(all), 3*perNode)
	}
	rest := walk(all[10].Cursor)
	if len(rest) != len(all)-11 || rest[0].ID != all[11].ID {
		t.Fatalf("resumed from row 10's cursor: %d rows starting %v, want %d starting %s", len(rest), rest[0], len(all)-11, all[11].ID)
	}
	if code, _, _, b := exportPage(t, ns[1].member, "since=c1bAAA%3D"); code != http.StatusBadRequest || !strings.Contains(string(b), "malformed export cursor") {
		t.Fatalf("a damaged cluster cursor: %d %s, want 400", code, b)
	}
	if code, _, _, b := exportPage(t, ns[1].member, "labelled=true&since="+url.QueryEscape(all[3].Cursor)); code != http.StatusBadRequest {
		t.Fatalf("an all-rows cursor on the labelled export: %d %s, want 400", code, b)
	}
	if got := walk(string(predlog.CursorAt(start, false))); len(got) != 3*perNode {
		t.Fatalf("from a single-node cursor at the test's start: %d rows, want %d", len(got), 3*perNode)
	}

	// n3 goes away (it stays a member).
	ns[2].stop()
	code, _, _, b := exportPage(t, ns[1].member, "limit=7")
	if code != http.StatusServiceUnavailable || !strings.Contains(string(b), "n3 unreachable") {
		t.Fatalf("export with n3 down: %d %s, want 503 naming n3", code, b)
	}
	code, hdr, rows, b := exportPage(t, ns[1].member, "limit=100&partial=true")
	if code != http.StatusOK || hdr.Get(gateway.HeaderExportMissing) != "n3" || len(rows) != 2*perNode {
		t.Fatalf("partial export with n3 down: %d (missing %q) %d rows %s", code, hdr.Get(gateway.HeaderExportMissing), len(rows), b)
	}
	for _, r := range rows {
		if r.Node == "n3" {
			t.Fatalf("a row of n3 while it is down: %+v", r)
		}
	}
	cc, err := predlog.ParseClusterCursor(predlog.Cursor(hdr.Get("Modelgate-Next-Cursor")), false)
	if err != nil || cc.Stamp("n3") != 0 || cc.Stamp("n1") == 0 {
		t.Fatalf("the partial page's cursor %+v (%v): n3 must stay at the start", cc, err)
	}
	resp, b := call(t, "GET", ns[1].admin()+"/api/v1/predictions/n3-00", nil, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "not found on n2, n1; n3 unreachable") {
		t.Fatalf("lookup of n3's row with n3 down: %d %s, want 503 naming n3", resp.StatusCode, b)
	}
	resp, b = call(t, "GET", ns[1].admin()+"/api/v1/predictions/n1-00", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"node":"n1"`) {
		t.Fatalf("lookup of n1's row with n3 down: %d %s", resp.StatusCode, b)
	}
	resp, b = call(t, "POST", ns[1].admin()+"/api/v1/models/fraud/labels", strings.NewReader(`[{"id":"n3-00","label":1}]`), nil)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "n3 unreachable") {
		t.Fatalf("a label for n3's row with n3 down: %d %s, want 503 naming n3", resp.StatusCode, b)
	}
	if _, ok, _ := ns[1].plog.LabelOf("fraud", "n3-00"); ok {
		t.Fatal("the refused label was stored on n2")
	}
}
