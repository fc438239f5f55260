package drift

import (
	"fmt"
	"testing"
)

// TestHolm: Holm's step-down procedure compares the i-th smallest of m
// p-values with α/(m−i) and stops at the first that is not below it.
func TestHolm(t *testing.T) {
	f := func(ps []float64, alpha float64, want []bool) {
		t.Helper()
		if got := holm(ps, alpha); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("holm(%v, %g) = %v, want %v", ps, alpha, got, want)
		}
	}
	f(nil, 0.05, []bool{})
	f([]float64{0.04}, 0.05, []bool{true})
	f([]float64{0.06}, 0.05, []bool{false})
	// 0.01 ≤ 0.05/3, then 0.02 ≤ 0.05/2, then 0.04 ≤ 0.05/1.
	f([]float64{0.04, 0.01, 0.02}, 0.05, []bool{true, true, true})
	// 0.03 > 0.05/2 stops the procedure: 0.04 is not rejected either.
	f([]float64{0.04, 0.01, 0.03}, 0.05, []bool{false, true, false})
	// Bonferroni would reject only 0.01 (< 0.0167); Holm also rejects 0.02.
	f([]float64{0.01, 0.02, 0.5}, 0.05, []bool{true, true, false})
	// NaN never rejects, and stops the procedure at its rank.
	f([]float64{0.001, nanF()}, 0.05, []bool{true, false})
}

func nanF() float64 { var z float64; return z / z }

// TestJudgeHolmAcrossFeaturesAndStatistics: every enabled statistic of
// every feature with min_count rows is one test of a single family, so a
// p-value that would breach alone does not breach among many; a statistic
// whose test rejects still needs its minimum effect; Wasserstein rests on
// the feature's KS test.
func TestJudgeHolmAcrossFeaturesAndStatistics(t *testing.T) {
	pol := DefaultPolicy()
	pol.Alpha = 0.01
	feature := func(name string, count int64, ksP, psiP float64) FeatureReport {
		return FeatureReport{Input: "x", Name: name, Kind: Numeric, Count: count,
			KS: ptr(0.05), KSP: ptr(ksP), PSI: ptr(0.05), PSIP: ptr(psiP), JS: ptr(0.05), JSP: ptr(0.5), Wasserstein: ptr(0.3)}
	}
	// One feature: three tests (ks, psi, js); 0.003 ≤ 0.01/3 breaches.
	r := &Report{Rows: 2000, Features: []FeatureReport{feature("a", 2000, 0.003, 0.5)}}
	judge(r, pol)
	if !r.Features[0].Breach || r.Tests != 3 || r.Status != StatusDrift {
		t.Errorf("one feature, ks_p 0.003 of 3 tests: breach %v (%v), tests %d, status %s; want a ks breach of 3 tests, status drift", r.Features[0].Breach, r.Features[0].Breaches, r.Tests, r.Status)
	}
	// Ten features: 30 tests; 0.003 > 0.01/30 does not breach.
	r = &Report{Rows: 2000}
	for i := range 10 {
		p := 0.9
		if i == 0 {
			p = 0.003
		}
		r.Features = append(r.Features, feature(fmt.Sprint(i), 2000, p, 0.9))
	}
	judge(r, pol)
	if r.Breach || r.Tests != 30 || r.Status != StatusNoDrift || r.JudgedFeatures != 10 {
		t.Errorf("ten features, one ks_p 0.003 of 30 tests: breach %v, tests %d, status %s, judged %d; want no breach of 30 tests over 10 features", r.Breach, r.Tests, r.Status, r.JudgedFeatures)
	}
	// A minimum effect: the test rejects but KS 0.05 < 0.1 is not a breach;
	// PSI (no minimum) on the same feature is.
	pol.Thresholds.KS.Threshold = 0.1
	r = &Report{Rows: 2000, Features: []FeatureReport{feature("a", 2000, 1e-9, 1e-9)}}
	judge(r, pol)
	if fmt.Sprint(r.Features[0].Breaches) != "[psi]" {
		t.Errorf("ks_p 1e-9 with ks 0.05 under a 0.1 minimum effect, psi_p 1e-9: breaches %v, want [psi]", r.Features[0].Breaches)
	}
	// Wasserstein, enabled with a 0.2σ minimum, breaches on the KS test.
	pol = DefaultPolicy()
	pol.Thresholds.Wasserstein = Threshold{Enabled: true, Threshold: 0.2, MinCount: 1000, ConsecutiveWindows: 3}
	r = &Report{Rows: 2000, Features: []FeatureReport{feature("a", 2000, 1e-9, 0.9)}}
	judge(r, pol)
	if fmt.Sprint(r.Features[0].Breaches) != "[ks wasserstein]" || r.Tests != 3 {
		t.Errorf("ks_p 1e-9, wasserstein 0.3 over 0.2: breaches %v with %d tests, want [ks wasserstein] with 3 (wasserstein adds no test)", r.Features[0].Breaches, r.Tests)
	}
}

// TestJudgeStatusAndShare: no rows is "no data", fewer than min_count "not
// enough data" (statistics shown, nothing judged), and the drift share is
// over the input features only.
func TestJudgeStatusAndShare(t *testing.T) {
	pol := DefaultPolicy()
	f := func(rows int64, ps []float64, output bool, wantStatus string, wantShare float64, wantDataset bool) {
		t.Helper()
		r := &Report{Rows: rows}
		for i, p := range ps {
			r.Features = append(r.Features, FeatureReport{Input: "x", Index: i, Kind: Numeric, Count: rows, Output: output && i == len(ps)-1,
				KS: ptr(0.5), KSP: ptr(p), PSI: ptr(1), PSIP: ptr(p), JS: ptr(0.5), JSP: ptr(p)})
		}
		judge(r, pol)
		if r.Status != wantStatus || r.DriftShare != wantShare || r.DatasetDrift != wantDataset {
			t.Errorf("%d rows, p-values %v (output last %v): status %s, share %v, dataset drift %v; want %s, %v, %v",
				rows, ps, output, r.Status, r.DriftShare, r.DatasetDrift, wantStatus, wantShare, wantDataset)
		}
	}
	f(0, []float64{1, 1}, false, StatusNoData, 0, false)
	f(999, []float64{1e-20, 1e-20}, false, StatusNotEnoughData, 0, false)
	f(1000, []float64{0.5, 0.5}, false, StatusNoDrift, 0, false)
	f(1000, []float64{1e-20, 0.5}, false, StatusDrift, 0.5, true)
	f(1000, []float64{1e-20, 0.5, 0.5}, false, StatusDrift, 1.0/3, false)
	// The output breaching alone is drift, but no input feature drifted.
	f(1000, []float64{0.5, 0.5, 1e-20}, true, StatusDrift, 0, false)
}
