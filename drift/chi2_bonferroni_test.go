package drift

import "testing"

// TestJudgeChi2Bonferroni: χ² p-values are judged against the threshold
// divided by the number of χ² tests in the report (features with a p-value
// and at least min_count rows), and a breach is a p-value below it, not
// above.
func TestJudgeChi2Bonferroni(t *testing.T) {
	th := Thresholds{Chi2P: Threshold{Enabled: true, Threshold: 0.01, MinCount: 100, ConsecutiveWindows: 1}}
	f := func(name string, counts []int64, ps []float64, want []bool) {
		t.Helper()
		r := &Report{}
		for i := range ps {
			r.Features = append(r.Features, FeatureReport{Input: "x", Index: i, Count: counts[i], Chi2P: ptr(ps[i])})
		}
		judge(r, th)
		for i, w := range want {
			if r.Features[i].Breach != w {
				t.Errorf("%s: feature %d (p=%g, %d rows): breach %v, want %v", name, i, ps[i], counts[i], r.Features[i].Breach, w)
			}
		}
	}
	// One test: the plain threshold.
	f("one test", []int64{500}, []float64{0.009}, []bool{true})
	f("one test, above", []int64{500}, []float64{0.011}, []bool{false})
	f("one test, p near 1", []int64{500}, []float64{0.99}, []bool{false})
	// Three tests: 0.01/3 = 0.00333.
	f("three tests", []int64{500, 500, 500}, []float64{0.004, 0.003, 0.5}, []bool{false, true, false})
	// A feature under min_count is not a test: two tests, 0.005.
	f("one under min_count", []int64{500, 500, 50}, []float64{0.004, 0.006, 1e-9}, []bool{true, false, false})
}
