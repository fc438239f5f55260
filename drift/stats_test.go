package drift

import (
	"math"
	"testing"
)

// TestChi2Survival checks the χ² survival function against closed forms:
// df=1 is erfc(√(x/2)); df=3 adds √(2x/π)·e^(−x/2); df=2 is e^(−x/2); even df is e^(−x/2)·Σ_{k<df/2}
// (x/2)^k/k!; and against textbook critical values.
func TestChi2Survival(t *testing.T) {
	f := func(x, df, want float64) {
		t.Helper()
		got := Chi2Survival(x, df)
		if math.Abs(got-want) > 1e-12+1e-9*want {
			t.Errorf("Chi2Survival(%v, %v) = %.17g, want %.17g", x, df, got, want)
		}
	}
	even := func(x float64, df int) float64 {
		var s, term float64 = 0, 1
		for k := 0; k < df/2; k++ {
			if k > 0 {
				term *= x / 2 / float64(k)
			}
			s += term
		}
		return math.Exp(-x/2) * s
	}
	for _, x := range []float64{0.001, 0.1, 0.5, 1, 2, 3.841458820694124, 5, 10, 30, 100, 700} {
		f(x, 1, math.Erfc(math.Sqrt(x/2)))
		f(x, 3, math.Erfc(math.Sqrt(x/2))+math.Sqrt(2*x/math.Pi)*math.Exp(-x/2))
		for _, df := range []int{2, 4, 6, 10, 20, 50} {
			f(x, float64(df), even(x, df))
		}
	}
	// Critical values (NIST/SEMATECH e-Handbook, table of the upper
	// critical values of the χ² distribution).
	crit := func(x, df, p float64) {
		t.Helper()
		if got := Chi2Survival(x, df); math.Abs(got-p) > 1e-3*p { // the table has 4-5 digits
			t.Errorf("Chi2Survival(%v, %v) = %v, want %v", x, df, got, p)
		}
	}
	crit(3.841, 1, 0.05)
	crit(6.635, 1, 0.01)
	crit(11.070, 5, 0.05)
	crit(15.086, 5, 0.01)
	crit(18.307, 10, 0.05)
	crit(23.209, 10, 0.01)
	crit(124.342, 100, 0.05)
	f(0, 3, 1)
	f(-1, 3, 1)
	f(math.Inf(1), 3, 0)
	if !math.IsNaN(Chi2Survival(1, 0)) || !math.IsNaN(Chi2Survival(math.NaN(), 1)) {
		t.Error("Chi2Survival of a bad df or NaN must be NaN")
	}
}

func TestPSIAndJS(t *testing.T) {
	f := func(ref, cur []float64, wantPSI, wantJS float64) {
		t.Helper()
		if got := psi(ref, cur); math.Abs(got-wantPSI) > 1e-9 {
			t.Errorf("psi(%v, %v) = %v, want %v", ref, cur, got, wantPSI)
		}
		if got := jsDistance(ref, cur); math.Abs(got-wantJS) > 1e-9 {
			t.Errorf("js(%v, %v) = %v, want %v", ref, cur, got, wantJS)
		}
	}
	f([]float64{50, 50}, []float64{50, 50}, 0, 0)
	f([]float64{0, 50, 50, 0}, []float64{0, 5, 5, 0}, 0, 0) // empty bins skipped; scale free
	// Disjoint support: JS distance is 1 (bits); PSI is large but finite.
	f([]float64{10, 0}, []float64{0, 10}, 2*(10.5/11-0.5/11)*math.Log(10.5/0.5), 1)
	// Hand computed: shares (.5,.5) vs (.25,.75), smoothing 0.5 on 1000 rows.
	r := []float64{500, 500}
	c := []float64{250, 750}
	rp := []float64{500.5 / 1001, 500.5 / 1001}
	cp := []float64{250.5 / 1001, 750.5 / 1001}
	want := (cp[0]-rp[0])*math.Log(cp[0]/rp[0]) + (cp[1]-rp[1])*math.Log(cp[1]/rp[1])
	m := []float64{0.375, 0.625}
	jsd := 0.5*(0.5*math.Log2(0.5/m[0])+0.5*math.Log2(0.5/m[1])) + 0.5*(0.25*math.Log2(0.25/m[0])+0.75*math.Log2(0.75/m[1]))
	f(r, c, want, math.Sqrt(jsd))
}

func TestChi2Homogeneity(t *testing.T) {
	// 2×2 table [[30, 70], [50, 50]]: χ² = 8.3333…, df 1.
	p := chi2Homogeneity([]float64{30, 70}, []float64{50, 50})
	if want := math.Erfc(math.Sqrt(25.0 / 3 / 2)); math.Abs(p-want) > 1e-12 {
		t.Errorf("p = %v, want %v", p, want)
	}
	if p := chi2Homogeneity([]float64{100, 0}, []float64{100, 0}); p != 1 {
		t.Errorf("one category: p = %v, want 1", p)
	}
	if p := chi2Homogeneity([]float64{1000, 0}, []float64{800, 200}); p > 1e-30 {
		t.Errorf("a new category must be significant, p = %v", p)
	}
}

func TestKSWasserstein(t *testing.T) {
	// Uniform on [0,1] against uniform on [0.5,1.5]: KS 0.5, W 0.5.
	u := func(a, b float64) *cdf {
		return &cdf{x: []float64{a, b}, left: []float64{0, 1}, right: []float64{0, 1}}
	}
	ks, w := ksWasserstein(u(0, 1), u(0.5, 1.5))
	if math.Abs(ks-0.5) > 1e-12 || math.Abs(w-0.5) > 1e-12 {
		t.Errorf("uniform shift: ks %v w %v, want 0.5 0.5", ks, w)
	}
	// Point masses at 0 and at 2: KS 1, W 2.
	pm := func(x float64) *cdf { return &cdf{x: []float64{x}, left: []float64{0}, right: []float64{1}} }
	ks, w = ksWasserstein(pm(0), pm(2))
	if ks != 1 || w != 2 {
		t.Errorf("point masses: ks %v w %v, want 1 2", ks, w)
	}
	// Crossing CDFs: uniform [0,2] against a point mass at 1: W = 0.5.
	ks, w = ksWasserstein(u(0, 2), pm(1))
	if math.Abs(ks-0.5) > 1e-12 || math.Abs(w-0.5) > 1e-12 {
		t.Errorf("crossing: ks %v w %v, want 0.5 0.5", ks, w)
	}
}

// chi2Homogeneity is the p-value of Pearson's χ² test, without merging
// rare bins (the classical test, which binPValues refines), that the reference
// and current counts come from the same distribution (a 2×k contingency
// table; categories empty on both sides are dropped). A two-sample test,
// rather than goodness of fit against fixed proportions, because the
// reference is itself a sample: a category unseen in the reference gives a
// small p-value, not a division by zero, and a small reference is not
// over-trusted.
func chi2Homogeneity(ref, cur []float64) float64 {
	var nr, nc float64
	k := 0
	for i := range ref {
		if ref[i] > 0 || cur[i] > 0 {
			nr += ref[i]
			nc += cur[i]
			k++
		}
	}
	if k < 2 || nr == 0 || nc == 0 {
		return 1
	}
	n := nr + nc
	var x2 float64
	for i := range ref {
		t := ref[i] + cur[i]
		if t == 0 {
			continue
		}
		er, ec := t*nr/n, t*nc/n
		x2 += (ref[i]-er)*(ref[i]-er)/er + (cur[i]-ec)*(cur[i]-ec)/ec
	}
	return Chi2Survival(x2, float64(k-1))
}
