package drift

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestEvaluatePoolsLowTraffic: at 300 rows a window and min_count 1,000,
// each judgement pools the 4 newest windows (1,200 rows), runs are disjoint
// and end with the last closed window, and a shifted feature is judged —
// where per-window judging never judged anything.
func TestEvaluatePoolsLowTraffic(t *testing.T) {
	p := synthReference(t)
	s := newStream(t, p, DefaultPolicy())
	g := newSynth(11)
	g.shift[0] = 1
	var ev *Evaluation
	for range 12 {
		ev = s.window(300, g.next)
	}
	if ev.Status != StatusDrift || len(ev.Runs) != 3 {
		t.Fatalf("after 12 windows of 300 shifted rows: status %s with %d runs, want drift with 3", ev.Status, len(ev.Runs))
	}
	_, now := s.w.Current()
	for i, r := range ev.Runs {
		end := now.Add(-time.Duration(4*(2-i)) * time.Minute)
		if r.Windows != 4 || r.Report.Rows != 1200 || !r.To.Equal(end) || !r.From.Equal(end.Add(-4*time.Minute)) {
			t.Errorf("run %d: %d windows, %d rows, [%s, %s); want 4 windows, 1200 rows, ending %s", i, r.Windows, r.Report.Rows, r.From.Format("15:04"), r.To.Format("15:04"), end.Format("15:04"))
		}
	}
	if len(ev.Alerts) == 0 || !slices.ContainsFunc(ev.Alerts, func(a Alert) bool { return a.Name == "n0" && a.Statistic == StatKS }) {
		t.Errorf("alerts %+v, want a KS alert on n0 (shifted 1σ over 3 pooled runs)", ev.Alerts)
	}
	for _, a := range ev.Alerts {
		if a.Name != "n0" && !a.Output {
			t.Errorf("alert on %s %s: only n0 (and the score, computed from it) moved", a.Name, a.Statistic)
		}
	}
}

// TestEvaluateNotEnoughData: when every window within reach holds fewer
// rows than min_count together, the status says so with the rows there
// were, and even a gross shift raises nothing; with no rows at all the
// status is no_data, never no_drift.
func TestEvaluateNotEnoughData(t *testing.T) {
	p := synthReference(t)
	pol := DefaultPolicy()
	pol.MaxWindows = 5
	s := newStream(t, p, pol)
	ev := s.window(0, nil)
	if ev.Status != StatusNoData || ev.Rows != 0 || len(ev.Alerts) != 0 {
		t.Errorf("no traffic: status %s, rows %d, alerts %v; want no_data, 0, none", ev.Status, ev.Rows, ev.Alerts)
	}
	if r := ev.Latest(); r == nil || r.Status != StatusNoData || r.Breach {
		t.Errorf("no traffic: latest report %+v, want status no_data without breach", r)
	}
	g := newSynth(12)
	g.shift[0] = 5
	for range 10 {
		ev = s.window(150, g.next)
	}
	if ev.Status != StatusNotEnoughData || ev.Rows != 750 || ev.MinCount != 1000 || len(ev.Alerts) != 0 || len(ev.Runs) != 1 {
		t.Fatalf("5 windows within reach of 150 rows: status %s, rows %d of %d, %d runs, alerts %v; want not_enough_data, 750 of 1000, 1 run, none",
			ev.Status, ev.Rows, ev.MinCount, len(ev.Runs), ev.Alerts)
	}
	if r := ev.Latest(); r.Breach || r.Status != StatusNotEnoughData || r.Features[0].KS == nil || *r.Features[0].KS < 0.5 {
		t.Errorf("partial run: breach %v, status %s, KS of n0 %v; want statistics shown (KS > 0.5), nothing judged", r.Breach, r.Status, deref(r.Features[0].KS))
	}
}

// TestEvaluateHighTrafficIsPerWindow: with min_count rows in every window,
// each run is exactly one window, as before pooling existed.
func TestEvaluateHighTrafficIsPerWindow(t *testing.T) {
	p := synthReference(t)
	s := newStream(t, p, DefaultPolicy())
	g := newSynth(13)
	var ev *Evaluation
	for _, n := range []int{1000, 1500, 1000, 2000} {
		ev = s.window(n, g.next)
	}
	var rows []int64
	for _, r := range ev.Runs {
		if r.Windows != 1 {
			t.Errorf("run of %d windows, want 1", r.Windows)
		}
		rows = append(rows, r.Report.Rows)
	}
	if !slices.Equal(rows, []int64{1500, 1000, 2000}) || ev.Status != StatusNoDrift {
		t.Errorf("runs hold %v rows with status %s, want [1500 1000 2000] (the last 3 windows), no_drift", rows, ev.Status)
	}
}

// TestEvaluateRecentKeepsItsContract: EvaluateRecent, the existing entry
// point, is Evaluate under PolicyFromThresholds: the same alerts and the
// runs' reports, oldest first.
func TestEvaluateRecentKeepsItsContract(t *testing.T) {
	p := synthReference(t)
	th := DefaultThresholds()
	s := newStream(t, p, PolicyFromThresholds(th))
	g := newSynth(14)
	g.shift[1] = 1
	var ev *Evaluation
	for range 3 {
		ev = s.window(1000, g.next)
	}
	alerts, reports, err := EvaluateRecent(s.w, th)
	if err != nil {
		t.Fatal(err)
	}
	if len(reports) != 3 || reports[2].Rows != 1000 || len(alerts) != len(ev.Alerts) || len(alerts) == 0 {
		t.Errorf("EvaluateRecent: %d reports, %d alerts; Evaluate: %d runs, %d alerts; want the same 3 runs and their alerts", len(reports), len(alerts), len(ev.Runs), len(ev.Alerts))
	}
}

// TestEvaluateRemembersRunsPerPolicy: a complete run's report is computed
// once and reused while its windows stay the same; another policy judges
// afresh.
func TestEvaluateRemembersRunsPerPolicy(t *testing.T) {
	p := synthReference(t)
	s := newStream(t, p, DefaultPolicy())
	g := newSynth(15)
	g.shift[2] = 0.3
	var ev *Evaluation
	for range 4 {
		ev = s.window(1000, g.next)
	}
	again, err := Evaluate(s.w, DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	for i := range ev.Runs {
		if again.Runs[i].Report != ev.Runs[i].Report {
			t.Errorf("run %d judged again under the same policy", i)
		}
	}
	strict := DefaultPolicy()
	strict.Alpha = 1e-12
	other, err := Evaluate(s.w, strict)
	if err != nil {
		t.Fatal(err)
	}
	if other.Latest() == ev.Latest() || other.Latest().Alpha != 1e-12 {
		t.Errorf("another policy reused the report judged at α %g", ev.Latest().Alpha)
	}
}

// TestEvaluateDriftShareAlert: when most input features drift the model
// drifts as a whole: each judgement's drift share reaches the policy's
// DriftShare, and after 3 runs in a row a drift_share alert carries the
// shares; one drifted feature of six never raises it.
func TestEvaluateDriftShareAlert(t *testing.T) {
	p := synthReference(t)
	for _, c := range []struct {
		shifted   []int
		wantAlert bool
	}{{[]int{0, 1, 2, 3}, true}, {[]int{0}, false}} {
		s := newStream(t, p, DefaultPolicy())
		g := newSynth(16)
		for _, f := range c.shifted {
			g.shift[f] = 1
		}
		var ev *Evaluation
		for range 3 {
			ev = s.window(1000, g.next)
		}
		i := slices.IndexFunc(ev.Alerts, func(a Alert) bool { return a.Statistic == StatDriftShare })
		if (i >= 0) != c.wantAlert {
			t.Errorf("features %v shifted: drift share %.2f, drift_share alert %v, want %v", c.shifted, ev.Latest().DriftShare, i >= 0, c.wantAlert)
			continue
		}
		if c.wantAlert && (len(ev.Alerts[i].Values) != 3 || ev.Alerts[i].Values[2] < 0.5 || ev.Alerts[i].Threshold != DefaultDriftShare) {
			t.Errorf("drift_share alert %+v, want 3 shares of at least 0.5 over threshold 0.5", ev.Alerts[i])
		}
	}
}

// TestPolicyFromDefaultThresholdsIsDefaultPolicy: the registry's default
// drift policy, mapped as the gateway maps it, is the size-aware default.
func TestPolicyFromDefaultThresholdsIsDefaultPolicy(t *testing.T) {
	if got, want := PolicyFromThresholds(DefaultThresholds()), DefaultPolicy(); got != want {
		t.Errorf("PolicyFromThresholds(DefaultThresholds()) = %+v, want DefaultPolicy %+v", got, want)
	}
	bad := DefaultPolicy()
	bad.Alpha = 1.5
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "alpha (1.5) must be in (0, 1)") {
		t.Errorf("alpha 1.5: %v, want an error naming alpha", err)
	}
}
