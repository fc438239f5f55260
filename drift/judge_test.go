package drift

import (
	"fmt"
	"testing"

	"github.com/modelgate/modelgate/internal/fraud"
)

// onlyPSIAndChi2 enables PSI (0.2) and χ² (0.01), each judged from minCount
// rows and alerting after k windows in a row.
func onlyPSIAndChi2(minCount int64, k int) Thresholds {
	return Thresholds{
		PSI:   Threshold{Enabled: true, Threshold: 0.2, MinCount: minCount, ConsecutiveWindows: k},
		Chi2P: Threshold{Enabled: true, Threshold: 0.01, MinCount: minCount, ConsecutiveWindows: k},
	}
}

// TestJudgeMinCount: a statistic far over its threshold, with a tiny
// p-value, is not a breach
// while the window holds fewer rows than min_count, and is one from
// exactly min_count rows.
func TestJudgeMinCount(t *testing.T) {
	f := func(count int64, wantBreaches []string) {
		t.Helper()
		r := &Report{Rows: count, Features: []FeatureReport{{Input: "x", Count: count, PSI: ptr(5), PSIP: ptr(1e-9), Chi2P: ptr(1e-9)}}}
		judge(r, PolicyFromThresholds(onlyPSIAndChi2(100, 1)))
		got := r.Features[0].Breaches
		if fmt.Sprint(got) != fmt.Sprint(wantBreaches) || r.Breach != (len(wantBreaches) > 0) || r.Features[0].Breach != r.Breach {
			t.Errorf("%d rows, min_count 100: breaches %v (feature %v, report %v), want %v", count, got, r.Features[0].Breach, r.Breach, wantBreaches)
		}
	}
	f(0, nil)
	f(1, nil)
	f(99, nil)
	f(100, []string{StatPSI, StatChi2P})
	f(1000, []string{StatPSI, StatChi2P})
}

// TestCompareBelowMinCountNeverBreaches feeds strongly drifted rows (a new
// merchant category, a shifted amount): with one row fewer than min_count
// the report carries statistics far over the thresholds and no breach; with
// min_count rows the same statistics breach.
func TestCompareBelowMinCountNeverBreaches(t *testing.T) {
	p, _, _ := reference(t)
	for _, d := range []fraud.Drift{{Kind: fraud.NewCategory}, {Kind: fraud.CovariateShift, Field: fraud.FieldAmount}} {
		t.Run(d.String(), func(t *testing.T) {
			const minCount = 800
			rows, scores := gen(700, minCount, d)
			th := onlyPSIAndChi2(minCount, 1)
			below := mustCompare(t, p, feed(t, p, rows[:minCount-1], scores[:minCount-1]), th)
			over := 0
			for _, f := range below.Features {
				if f.Breach || len(f.Breaches) > 0 {
					t.Errorf("%s breached %v with %d rows, below min_count %d", f.Label(), f.Breaches, f.Count, minCount)
				}
				if f.PSI != nil && *f.PSI > th.PSI.Threshold {
					over++
				}
			}
			if below.Breach {
				t.Errorf("report breached with %d rows, below min_count %d", below.Rows, minCount)
			}
			if over == 0 {
				t.Fatal("no feature's PSI is over the threshold: this drift does not test min_count")
			}
			at := mustCompare(t, p, feed(t, p, rows, scores), th)
			if !at.Breach {
				t.Fatalf("no breach at min_count (%d rows) though %d features are over the PSI threshold below it", at.Rows, over)
			}
		})
	}
}

// breachingReport is a one-feature report whose PSI (2.0) breaches, or
// (ok) stays under the threshold.
func breachingReport(breach bool) *Report {
	v, p := 0.01, 0.5
	if breach {
		v, p = 2, 1e-12
	}
	r := &Report{Rows: 5000, Features: []FeatureReport{{Input: "x", Name: "amount", Count: 5000, PSI: ptr(v), PSIP: ptr(p)}}}
	judge(r, PolicyFromThresholds(onlyPSIAndChi2(1, 3)))
	return r
}

// TestSustainedConsecutiveWindows: with consecutive_windows N, N−1 breaching
// windows raise nothing, N do, and a calm window anywhere in the last N
// resets the run. 0 and 1 both mean a single window.
func TestSustainedConsecutiveWindows(t *testing.T) {
	f := func(k int, pattern string, wantAlert bool) {
		t.Helper()
		var reports []*Report
		for _, c := range pattern {
			reports = append(reports, breachingReport(c == 'B'))
		}
		alerts := Sustained(reports, onlyPSIAndChi2(1, k))
		if got := len(alerts) > 0; got != wantAlert {
			t.Errorf("consecutive_windows %d, windows %s (oldest first): alerts %+v, want alert %v", k, pattern, alerts, wantAlert)
			return
		}
		if wantAlert {
			a := alerts[0]
			if len(alerts) != 1 || a.Statistic != StatPSI || a.Name != "amount" || len(a.Values) != max(1, k) {
				t.Errorf("consecutive_windows %d, windows %s: alerts %+v, want one PSI alert on amount with %d values", k, pattern, alerts, max(1, k))
			}
		}
	}
	f(3, "", false)
	f(3, "B", false)
	f(3, "BB", false)
	f(3, "BBB", true)
	f(3, "_BBB", true)
	f(3, "BBBB", true)
	f(3, "_BB", false)
	f(3, "BB_", false)
	f(3, "B_BB", false)
	f(3, "BBB_", false)
	f(3, "BBB_BB", false)
	f(5, "BBBB", false)
	f(5, "_BBBB", false)
	f(5, "BBBBB", true)
	f(2, "_B", false)
	f(2, "BB", true)
	f(1, "B", true)
	f(1, "B_", false)
	f(1, "_B", true)
	f(0, "B", true)
	f(0, "_", false)
}
