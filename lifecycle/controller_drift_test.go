package lifecycle

import (
	"strings"
	"testing"
	"time"

	"github.com/modelgate/modelgate/registry"
)

// newDefaultDriftRegistry creates testModel v1 under the registry's
// default drift policy (min_count 1,000, 3 judgements in a row, α 0.01),
// with retraining off: the drift record is what these tests read.
func newDefaultDriftRegistry(t *testing.T, change func(*registry.DriftPolicy)) *memRegistry {
	t.Helper()
	reg := &memRegistry{st: registry.New()}
	pol := registry.DefaultPolicy()
	if change != nil {
		change(&pol.Drift)
	}
	digest := strings.Repeat("cd", 32)
	for i, args := range []registry.Args{
		&registry.CreateModelArgs{Model: testModel, Policy: &pol},
		&registry.RegisterArgs{Model: testModel, Digest: digest, Size: 1},
	} {
		if _, err := reg.st.Apply(registry.Command{Time: t0.Add(-time.Hour), Actor: "test", IdempotencyKey: "setup-" + string(rune('a'+i)), Args: args}); err != nil {
			t.Fatalf("%s: %v", args.Op(), err)
		}
	}
	return reg
}

// lowTraffic feeds 300 rows a window (5 rows/s with 1-minute windows),
// feature 0 shifted by shift standard deviations, stepping the controller
// after each window closes, until a drift record appears or maxRows rows
// were scored. It returns the rows scored until the record (or maxRows).
func lowTraffic(t *testing.T, reg *memRegistry, shift float64, maxRows int) (rows int, rec *registry.AuditRecord) {
	t.Helper()
	return driftTraffic(t, reg, 300, shift, maxRows)
}

// driftTraffic is lowTraffic at perWindow rows a window.
func driftTraffic(t *testing.T, reg *memRegistry, perWindow int, shift float64, maxRows int) (rows int, rec *registry.AuditRecord) {
	t.Helper()
	clock := &fakeClock{now: t0}
	w := windows(t, clock)
	c := newTestController(t, reg, clock, staticDrift{{Model: testModel, Version: 1, Windows: w}}, nil)
	for rows < maxRows {
		traffic(t, w, clock, uint64(rows+1), perWindow, [3]float64{shift, 0, 0})
		rows += perWindow
		clock.Add(time.Minute)
		c.Step()
		if recs := reg.alerts(testModel, KindDrift); len(recs) > 0 {
			return rows, &recs[0]
		}
	}
	return rows, nil
}

// TestLowTrafficDriftAlertsByPooling: at 5 rows/s with 1-minute windows no
// single window reaches the policy's 1,000 rows, so before pooling no
// drift of any size alerted. Judged through drift.Evaluate, windows pool
// into runs of 4 (1,200 rows), and a 0.5σ shift of one feature is recorded
// as a drift alert within 5,000 rows. Its episode starts at the first
// window of the first breaching run (t0, where the shift began), not 3
// windows before now.
func TestLowTrafficDriftAlertsByPooling(t *testing.T) {
	reg := newDefaultDriftRegistry(t, nil)
	rows, rec := lowTraffic(t, reg, 0.5, 5000)
	if rec == nil {
		t.Fatalf("no drift alert after %d rows at 300 a window", rows)
	}
	if want := EventID(testModel, 1, t0); rec.IdempotencyKey != want {
		t.Errorf("the alert's event id is %s, want %s (episode start %s, the first window of the breaching runs)", rec.IdempotencyKey, want, t0)
	}
	if !strings.Contains(rec.Reason, "3 judgement(s) in a row") || !strings.Contains(rec.Reason, "(12 windows)") {
		t.Errorf("reason %q: want 3 judgements over 12 pooled windows", rec.Reason)
	}
	if !strings.Contains(string(rec.Evidence), `"input":"x","index":0`) || strings.Contains(string(rec.Evidence), `"index":1,`) {
		t.Errorf("the alerts should name feature x[0] only: %s", rec.Evidence)
	}
	t.Logf("alerted after %d rows", rows)
}

// TestDriftAlertsAt1000RowsAMinute: at 1,000 rows a minute each window is
// a run of its own, and the same shift alerts after 3 windows (3,000
// rows), its episode starting 3 windows back.
func TestDriftAlertsAt1000RowsAMinute(t *testing.T) {
	reg := newDefaultDriftRegistry(t, nil)
	rows, rec := driftTraffic(t, reg, 1000, 0.5, 5000)
	if rec == nil {
		t.Fatalf("no drift alert after %d rows at 1,000 a window", rows)
	}
	if want := EventID(testModel, 1, t0); rows != 3000 || rec.IdempotencyKey != want {
		t.Fatalf("alerted after %d rows (want 3,000) with event id %s (want %s)", rows, rec.IdempotencyKey, want)
	}
}

// TestLowTrafficCleanDoesNotAlert: the same pooling over an hour of clean
// traffic (18,000 rows) raises nothing.
func TestLowTrafficCleanDoesNotAlert(t *testing.T) {
	reg := newDefaultDriftRegistry(t, nil)
	if rows, rec := lowTraffic(t, reg, 0, 18000); rec != nil {
		t.Fatalf("clean traffic alerted after %d rows: %s", rows, rec.Reason)
	}
}

// TestDriftPolicyFieldsReachTheJudge: the policy's alpha, drift_share,
// max_windows and minimum effects are what drift.Evaluate judges by; a
// policy written before them judges as drift.PolicyFromThresholds says
// (α from chi2_p, no minimum effect from psi, js, ks).
func TestDriftPolicyFieldsReachTheJudge(t *testing.T) {
	old := registry.DefaultPolicy().Drift
	dp := DriftPolicy(old)
	if dp.Alpha != 0.01 || dp.DriftShare != 0.5 || dp.MaxWindows != 0 || dp.Thresholds.PSI.Threshold != 0 || dp.Thresholds.KS.Threshold != 0 ||
		dp.Thresholds.Wasserstein.Threshold != 0.5 || dp.Thresholds.KS.MinCount != 1000 || dp.Thresholds.KS.ConsecutiveWindows != 3 {
		t.Fatalf("an old policy judges as %+v", dp)
	}
	p := old
	p.Alpha, p.DriftShare, p.MaxWindows = 0.001, 0.3, 20
	p.PSI.MinEffect, p.JS.MinEffect, p.KS.MinEffect = 0.1, 0.05, 0.04
	dp = DriftPolicy(p)
	if dp.Alpha != 0.001 || dp.DriftShare != 0.3 || dp.MaxWindows != 20 || dp.Thresholds.PSI.Threshold != 0.1 ||
		dp.Thresholds.JS.Threshold != 0.05 || dp.Thresholds.KS.Threshold != 0.04 {
		t.Fatalf("the new fields did not reach the judge: %+v", dp)
	}
	if err := dp.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestMinEffectSilencesASmallShift: a 0.5σ shift (KS ≈ 0.2) alerts under
// the default policy but not with a minimum effect of KS 0.5 and PSI and
// JS off: the test rejects, the effect is too small to page for.
func TestMinEffectSilencesASmallShift(t *testing.T) {
	reg := newDefaultDriftRegistry(t, func(d *registry.DriftPolicy) {
		d.KS.MinEffect = 0.5
		d.PSI.Enabled, d.JS.Enabled, d.Chi2P.Enabled = false, false, false
	})
	if rows, rec := lowTraffic(t, reg, 0.5, 6000); rec != nil {
		t.Fatalf("a shift below the minimum effect alerted after %d rows: %s", rows, rec.Evidence)
	}
}
