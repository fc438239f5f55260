package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/oiptest"
	"github.com/modelgate/modelgate/predlog"
	"github.com/modelgate/modelgate/registry"
)

// link is a TCP relay on 127.0.0.1 to target that the test can cut (every
// connection through it closed, new ones refused) and restore: a site's
// poor link.
type link struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]struct{}
}

func newLink(t *testing.T, target string) *link {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	k := &link{l: l, target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() {
		l.Close()
		k.cut()
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			k.mu.Lock()
			down := k.down
			k.mu.Unlock()
			if down {
				c.Close()
				continue
			}
			d, err := net.Dial("tcp", k.target)
			if err != nil {
				c.Close()
				continue
			}
			k.mu.Lock()
			if k.down { // cut while dialling
				k.mu.Unlock()
				c.Close()
				d.Close()
				continue
			}
			k.conns[c], k.conns[d] = struct{}{}, struct{}{}
			k.mu.Unlock()
			pipe := func(dst, src net.Conn) {
				_, _ = io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			go pipe(d, c)
			go pipe(c, d)
		}
	}()
	return k
}

func (k *link) addr() string { return k.l.Addr().String() }

func (k *link) cut() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.down = true
	for c := range k.conns {
		c.Close()
	}
	clear(k.conns)
}

func (k *link) restore() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.down = false
}

// scoreVaried scores request id on m with row i of the demo features, so
// scores differ from row to row.
func (m *logged) scoreVaried(t *testing.T, id string, i int) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, `{"id":%q,"inputs":[{"name":"features","shape":[1,30],"datatype":"FP32","data":[`, id)
	for j := 0; j < oiptest.Features; j++ {
		if j > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatFloat(float64(oiptest.Feature(i, j)), 'f', -1, 32))
	}
	b.WriteString("]}]}")
	req, err := http.NewRequest("POST", "http://"+m.n.Addr()+"/v2/models/fraud/infer", strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+clusterSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scoring %s on %s: %d %s", id, m.id, resp.StatusCode, body)
	}
}

// rowsOfLog returns every record of fraud in l by request id.
func rowsOfLog(t *testing.T, l *predlog.Log) (recs []predlog.Record, end predlog.Cursor) {
	t.Helper()
	end, err := l.Export("fraud", "", false, 0, func(r *predlog.Row) error {
		rec := r.Record
		rec.Inputs, rec.Outputs = cloneTensors(rec.Inputs), cloneTensors(rec.Outputs)
		recs = append(recs, rec)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return recs, end
}

func cloneTensors(ts []predlog.Tensor) []predlog.Tensor {
	out := make([]predlog.Tensor, len(ts))
	for i, x := range ts {
		x.Data = append([]byte(nil), x.Data...)
		x.Shape = append([]int64(nil), x.Shape...)
		out[i] = x
	}
	return out
}

// TestEdgeSitesStoreAndForward runs 3 voters and 2 non-voter edge sites
// on 127.0.0.1, the edge sites with the model's edge policy (a
// low-confidence band around the median score and a 20 % sample). The
// non-voters serve the registry's version and are non-voters in Raft's
// configuration. e1 is then cut off (its Raft link and its link to the
// center): it keeps serving and logging; a version registered meanwhile
// does not reach it; it is restarted while still cut off. When the link
// returns, e1 converges on the current registry and the center's log holds
// exactly the rows e1's policy selects — each once, none of the others,
// under the site's name — as it does for e2, never cut; the center's
// export shows them.
func TestEdgeSitesStoreAndForward(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	n1, n2, n3 := newLogged(t, "n1", true), newLogged(t, "n2", true), newLogged(t, "n3", true)
	e1, e2 := newLogged(t, "e1", false), newLogged(t, "e2", false)
	raftLink := newLink(t, e1.raft) // the leader reaches e1's Raft through it
	ms := []*logged{n1, n2, n3, e1, e2}
	bootLogged(ctx, t, ms, func(m *logged) string {
		if m == e1 {
			return raftLink.addr()
		}
		return m.raft
	})
	cfgMembers, err := n1.c.Members()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range cfgMembers {
		if m.Voter != strings.HasPrefix(m.ID, "n") {
			t.Fatalf("raft configuration: %+v, want n1-n3 voters and e1, e2 non-voters", cfgMembers)
		}
	}

	// Traffic before the policy: its scores place the band.
	for i := 0; i < 10; i++ {
		e1.scoreVaried(t, fmt.Sprintf("e1-a%02d", i), i)
		e2.scoreVaried(t, fmt.Sprintf("e2-a%02d", i), i)
	}
	e1.committed(ctx, t, 10)
	recs, _ := rowsOfLog(t, e1.plog)
	var scores []float64
	for i := range recs {
		v, _ := element(&recs[i].Outputs[0], 0)
		scores = append(scores, v)
	}
	slices.Sort(scores)
	band := registry.EdgeBand{Threshold: scores[len(scores)/2], Margin: max((scores[len(scores)-1]-scores[0])/8, 1e-6)}
	policy := fmt.Sprintf(`{"edge":{"low_confidence":{"threshold":%v,"margin":%v},"sample_rate":0.2,"max_bytes_per_second":1048576}}`, band.Threshold, band.Margin)
	resp, b := call(t, "PUT", n1.admin()+"/api/v1/models/fraud/policy", strings.NewReader(policy), map[string]string{"Content-Type": "application/json"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("edge policy: %d %s", resp.StatusCode, b)
	}
	settle(ctx, t, n1.member, e1.member, e2.member)
	pol := &registry.EdgePolicy{LowConfidence: &band, SampleRate: 0.2, MaxBytesPerSecond: 1 << 20}

	centerLink := newLink(t, n1.n.AdminAddr()) // e1's link to the center
	edgeCfg := func(m *logged, center func() (string, string)) EdgeConfig {
		return EdgeConfig{Log: m.plog, StateDir: m.dir, Interval: 20 * time.Millisecond, MinBackoff: 20 * time.Millisecond,
			MaxBackoff: 200 * time.Millisecond, center: center}
	}
	e1Center := func() (string, string) { return "n1", centerLink.addr() }
	if err := e1.n.StartEdge(edgeCfg(e1, e1Center)); err != nil {
		t.Fatal(err)
	}
	if err := e2.n.StartEdge(edgeCfg(e2, nil)); err != nil {
		t.Fatal(err)
	}

	// e1 cut off: it serves and logs.
	raftLink.cut()
	centerLink.cut()
	for i := 10; i < 40; i++ {
		e1.scoreVaried(t, fmt.Sprintf("e1-b%02d", i), i)
		e2.scoreVaried(t, fmt.Sprintf("e2-b%02d", i), i)
	}
	e1.committed(ctx, t, 40)
	// A version registered while e1 is away.
	v2, err := demo.FraudModel(demo.DefaultSeed + 1)
	if err != nil {
		t.Fatal(err)
	}
	registerEverywhere(t, ms, v2, "reg-fraud-2")
	if resp, b := call(t, "GET", e1.admin()+"/api/v1/models/fraud/versions/2", nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("v2 on e1 while it is cut off: %d %s, want 404 (the link is not cut?)", resp.StatusCode, b)
	}
	// Restarted while cut off: what it logged and what it still owes the
	// center survive. (It does not score again before the link returns: a
	// restarted node learns its registry from the leader — see the report.)
	e1.stop()
	e1.start(false)
	if err := e1.n.StartEdge(edgeCfg(e1, e1Center)); err != nil {
		t.Fatal(err)
	}

	raftLink.restore()
	centerLink.restore()
	if err := e1.c.WaitApplied(ctx, n1.c.AppliedIndex()); err != nil {
		t.Fatalf("e1 never caught up with the registry: %v", err)
	}
	if resp, b := call(t, "GET", e1.admin()+"/api/v1/models/fraud/versions/2", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("v2 on e1 after the link returned: %d %s", resp.StatusCode, b)
	}

	for _, site := range []*logged{e1, e2} {
		recs, end := rowsOfLog(t, site.plog)
		want := map[string]bool{}
		for i := range recs {
			if edgeSelects(pol, "", nil, &recs[i]) {
				want[recs[i].RequestID] = true
			}
		}
		if len(want) == 0 || len(want) == len(recs) {
			t.Fatalf("%s: the policy selects %d of %d rows: the test needs some of each", site.id, len(want), len(recs))
		}
		// Until the site's cursor reaches the end of its log and the
		// center holds as many of its rows as it selects: only a hang
		// outlasts the deadline.
		var got map[string]int
		for {
			// The center is whichever voter led when a batch arrived
			// (leadership may move on a busy machine): each row once
			// across all of them.
			got = map[string]int{}
			for _, v := range []*logged{n1, n2, n3} {
				center, _ := rowsOfLog(t, v.plog)
				for _, r := range center {
					if r.Node == site.id {
						got[r.RequestID]++
					}
				}
			}
			var st edgeState
			raw, _ := os.ReadFile(filepath.Join(site.dir, edgeCursorFile))
			_ = json.Unmarshal(raw, &st)
			if st.Cursors["fraud"] == end && len(got) >= len(want) {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%s: the voters hold %d of its %d selected rows; its cursor %q, its log's end %q", site.id, len(got), len(want), st.Cursors["fraud"], end)
			case <-time.After(50 * time.Millisecond):
			}
		}
		for id, c := range got {
			if !want[id] || c != 1 {
				t.Fatalf("%s: row %s is at the center %d times (selected: %v)", site.id, id, c, want[id])
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d rows at the center, %d selected", site.id, len(got), len(want))
		}
		t.Logf("%s: %d of %d rows selected and forwarded once each", site.id, len(want), len(recs))
	}

	// A batch delivered again (its answer was lost): acknowledged, not
	// written twice. A malformed one is refused whole.
	recs, _ = rowsOfLog(t, e2.plog)
	var again []byte
	for i := range recs {
		if edgeSelects(pol, "", nil, &recs[i]) {
			again, _ = json.Marshal(gateway.EdgeBatch{Site: "e2", Rows: []gateway.EdgeRow{gateway.EdgeRowOf(&recs[i])}})
			break
		}
	}
	resp, b = call(t, "POST", n2.admin()+"/api/v1/edge/rows", strings.NewReader(string(again)), map[string]string{"Content-Type": "application/json"})
	if resp.StatusCode != http.StatusOK || string(b) != `{"stored":0,"duplicates":1}` {
		t.Fatalf("a forwarded row sent again (through n2, forwarded to the leader): %d %s", resp.StatusCode, b)
	}
	resp, b = call(t, "POST", n1.admin()+"/api/v1/edge/rows", strings.NewReader(`{"site":"e2","rows":[{"id":"x","model":"fraud","version":"1","role":"shadow"}]}`), nil)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "served role") {
		t.Fatalf("a shadow row: %d %s, want 400", resp.StatusCode, b)
	}

	// The export (through another voter) carries them under the site's name.
	code, _, rows, b := exportPage(t, n2.member, "limit=1000")
	if code != http.StatusOK {
		t.Fatalf("export: %d %s", code, b)
	}
	bySite := map[string]int{}
	for _, r := range rows {
		bySite[r.Node]++
	}
	if bySite["e1"] == 0 || bySite["e2"] == 0 {
		t.Fatalf("export through n2 by node: %v", bySite)
	}
	// The counters say the same.
	resp, b = call(t, "GET", e1.admin()+"/metrics", nil, nil)
	if !strings.Contains(string(b), `modelgate_edge_rows_sent_total{site="e1"}`) {
		t.Fatalf("e1's /metrics has no edge counters: %d", resp.StatusCode)
	}
	resp, b = call(t, "GET", n1.admin()+"/metrics", nil, nil)
	if !strings.Contains(string(b), fmt.Sprintf(`modelgate_edge_rows_received_total{site="e2"} %d`, bySite["e2"])) {
		t.Fatalf("n1's /metrics lacks e2's %d received rows: %s", bySite["e2"], grepLines(string(b), "modelgate_edge_"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
