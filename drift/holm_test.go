package drift

import (
	"fmt"
	"math"
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

// TestMergeRare: columns whose smaller expected count is below 5 merge,
// rarest first — categories into the next rarest, ordered bins into their
// smaller neighbour — until every cell expects 5 or two columns are left,
// where a rare cell means Fisher's exact test.
func TestMergeRare(t *testing.T) {
	f := func(ref, cur []float64, ordered bool, wantRef, wantCur []float64, wantExact bool) {
		t.Helper()
		b := mergeRare(ref, cur, ordered)
		if fmt.Sprint(b.ref, b.cur) != fmt.Sprint(wantRef, wantCur) || !math.IsNaN(b.exact) != wantExact {
			t.Errorf("mergeRare(%v, %v, ordered %v) = %v %v (exact p %v), want %v %v (exact %v)", ref, cur, ordered, b.ref, b.cur, b.exact, wantRef, wantCur, wantExact)
		}
	}
	// Categories: "10+1" (expects 1.0 current rows) joins "90+9", the next
	// rarest; the empty category is dropped.
	f([]float64{9000, 900, 90, 10, 0}, []float64{900, 90, 9, 1, 0}, false,
		[]float64{9000, 900, 100}, []float64{900, 90, 10}, false)
	// Ordered bins: the near-empty tails fold into their neighbours.
	f([]float64{5, 1000, 1000, 3}, []float64{1, 100, 100, 0}, true,
		[]float64{1005, 1003}, []float64{101, 100}, false)
	// Nothing rare: unchanged.
	f([]float64{500, 500}, []float64{60, 40}, true, []float64{500, 500}, []float64{60, 40}, false)
	// Two columns, one rare cell: Fisher's exact test.
	f([]float64{10000, 0}, []float64{1198, 2}, false, []float64{10000, 0}, []float64{1198, 2}, true)
	if b := mergeRare([]float64{10000, 0}, []float64{1198, 2}, false); math.Abs(b.exact-0.0115) > 5e-5 {
		t.Errorf("exact p of 2 new of 1,200 = %v, want 0.0115", b.exact)
	}
	// One column: nothing to test.
	psiP, jsP, chi2P, _ := binPValues([]float64{100, 0}, []float64{50, 0}, false)
	if psiP != 1 || jsP != 1 || chi2P != 1 {
		t.Errorf("one bin: p-values %v %v %v, want 1", psiP, jsP, chi2P)
	}
}

// TestBinPValuesAgreeUnderTheNull: for a moderate shift with every cell
// well filled, the p-values of N·PSI and 8·ln2·N·js² against χ²(k−1)
// are close to Pearson's (they are the same test to second order).
func TestBinPValuesAgreeUnderTheNull(t *testing.T) {
	ref := []float64{1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000}
	cur := []float64{95, 105, 110, 90, 100, 100, 108, 92, 97, 103}
	psiP, jsP, chi2P, exact := binPValues(ref, cur, true)
	if exact || math.Abs(psiP-chi2P) > 0.02 || math.Abs(jsP-chi2P) > 0.02 || chi2P < 0.5 {
		t.Errorf("p-values psi %.4f js %.4f chi2 %.4f (exact %v), want three close values, chi2 > 0.5", psiP, jsP, chi2P, exact)
	}
}
