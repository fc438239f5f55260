package node

import (
	"log/slog"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/shadow"
)

// TestRolloutStatsMerge: the leader's store sums the rollout statistics of
// two nodes pushed as shadow's own exports — online evaluation and
// champion/shadow comparison, window by window — to exactly what one node
// that saw every row would hold; a window resent after it changed (labels
// arriving late) replaces its earlier copy; counters add over nodes and
// runs, and never go down when a node restarts with fresh counters.
func TestRolloutStatsMerge(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC)
	st := newStatsStore("a", time.Minute, 15*time.Second, func(string, int) *drift.Windows { return nil }, func() bool { return true }, slog.New(slog.DiscardHandler))
	st.now = func() time.Time { return now }
	win := time.Minute
	k := now.UnixNano() / int64(win) // the window of now

	r := rand.New(rand.NewPCG(1, 2))
	all, _ := shadow.NewEvaluation(shadow.EvalConfig{})
	allCmp := shadow.NewComparison(0.5)
	evs := map[string]*shadow.Evaluation{}
	cmps := map[string]*shadow.Comparison{}
	for _, node := range []string{"a", "b"} {
		evs[node], _ = shadow.NewEvaluation(shadow.EvalConfig{})
		cmps[node] = shadow.NewComparison(0.5)
		for range 500 {
			s, l := r.Float64(), float64(r.IntN(2))
			_ = evs[node].Add(s, l)
			_ = all.Add(s, l)
			c, sh := r.Float64(), r.Float64()
			_ = cmps[node].RecordRow(c, sh)
			_ = allCmp.RecordRow(c, sh)
			_ = cmps[node].RecordRun(time.Millisecond, 2*time.Millisecond, false)
			_ = allCmp.RecordRun(time.Millisecond, 2*time.Millisecond, false)
		}
	}
	seq := uint64(0)
	push := func(node string, boot uint64, counts []gateway.VersionCount, ws ...gateway.StatWindow) gateway.StatsAck {
		seq++
		return st.Ingest(&gateway.StatsPush{V: 1, Node: node, Seq: seq, Boot: boot, WindowNS: int64(time.Minute), Counts: counts, Stats: ws})
	}
	evalW := func(e *shadow.Evaluation) gateway.StatWindow {
		return gateway.StatWindow{Kind: gateway.StatEval, Model: "m", Version: 2, ID: k - 1, WindowNS: int64(win), Data: e.Export()}
	}
	cmpW := func(c *shadow.Comparison) gateway.StatWindow {
		return gateway.StatWindow{Kind: gateway.StatComparison, Model: "m", Version: 2, Against: 1, ID: k - 1, WindowNS: int64(win), Data: c.Export()}
	}
	// b's evaluation first pushed with half its labels, then in full.
	half, _ := shadow.NewEvaluation(shadow.EvalConfig{})
	_ = half.Add(0.9, 1)
	if ack := push("b", 1, nil, evalW(half)); ack.StatWindows != 1 || len(ack.Refused) != 0 {
		t.Fatalf("ack %+v", ack)
	}
	push("a", 1, []gateway.VersionCount{{Model: "m", Version: 2, Served: 100, Failed: 1}}, evalW(evs["a"]), cmpW(cmps["a"]))
	push("b", 1, []gateway.VersionCount{{Model: "m", Version: 2, Served: 50}}, evalW(evs["b"]), cmpW(cmps["b"]))

	got := st.EvaluationBetween("m", 2, now.Add(-time.Hour), now)
	gm, err1 := got.Metrics(0.95)
	wm, err2 := all.Metrics(0.95)
	if err1 != nil || err2 != nil || gm.Labelled != 1000 || gm.TP != wm.TP || gm.FP != wm.FP || gm.FN != wm.FN || gm.TN != wm.TN ||
		math.Abs(gm.AUC-wm.AUC) > 1e-12 || math.Abs(gm.LogLoss-wm.LogLoss) > 1e-9 { // sums in another order
		t.Fatalf("merged evaluation %+v (%v), want %+v (%v)", gm, err1, wm, err2)
	}
	if st.EvaluationBetween("m", 2, now.Add(time.Minute), now.Add(2*time.Minute)) != nil {
		t.Fatal("an evaluation from windows outside the period")
	}
	c := st.ShadowComparison("m", 1, 2, time.Hour)
	if c == nil {
		t.Fatal("no merged comparison")
	}
	gs, ws := c.Summary(), allCmp.Summary()
	if c.Runs != 1000 || gs.Agreement != ws.Agreement || !reflect.DeepEqual(gs.DiffQuantiles, ws.DiffQuantiles) ||
		gs.ShadowP99us != ws.ShadowP99us || math.Abs(gs.MeanDiff-ws.MeanDiff) > 1e-12 {
		t.Fatalf("merged comparison %+v, want %+v", c.Summary(), allCmp.Summary())
	}

	served, failed, _, _ := st.VersionCounts("m", 2)
	if served != 150 || failed != 1 {
		t.Fatalf("counts %d served, %d failed; want 150, 1", served, failed)
	}
	// b restarts (a new boot): its counters start again, the old run's
	// stay counted.
	push("b", 2, []gateway.VersionCount{{Model: "m", Version: 2, Served: 5}})
	if served, _, _, _ = st.VersionCounts("m", 2); served != 155 {
		t.Fatalf("after b restarted: %d served, want 155", served)
	}
	// A counter that went down within a run (a version reloaded) does not
	// make the sum go down.
	push("a", 1, []gateway.VersionCount{{Model: "m", Version: 2, Served: 10}})
	if served, _, _, _ = st.VersionCounts("m", 2); served != 155 {
		t.Fatalf("after a's counter restarted: %d served, want 155 held", served)
	}
	// A corrupt window is refused and counted, the rest kept.
	bad := cmpW(cmps["a"])
	bad.Data = bad.Data[:len(bad.Data)-1]
	if ack := push("a", 1, nil, bad); len(ack.Refused) != 1 || ack.Refused[0].Reason != gateway.RefusedCorrupt || st.Status().Refused[gateway.RefusedCorrupt] != 1 {
		t.Fatalf("a corrupt comparison: %+v", ack)
	}
	if c := st.ShadowComparison("m", 1, 2, time.Hour); c.Runs != 1000 {
		t.Fatalf("comparison after a refused window: %d runs", c.Runs)
	}
}
