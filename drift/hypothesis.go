package drift

import (
	"math"
	"slices"
)

// KSPValue is the p-value of a two-sample Kolmogorov–Smirnov statistic d
// between samples of n and m values, by the asymptotic distribution
// scipy.stats.ks_2samp uses in its "asymp" mode: the one-sample Kolmogorov
// distribution of D_en with the effective size en = round(n·m/(n+m)),
// evaluated by the Pelz–Good series (Simard & L'Ecuyer's choice for
// en > 140). The tests hold it to ks_2samp(method="asymp") within 1e-3
// for en from 140 to 9,091 (testdata/golden.json; the largest difference
// is 3e-6). Below en = 140 scipy switches to exact recursions this does not
// implement, one more reason MinCount stays in the hundreds.
func KSPValue(d float64, n, m int64) float64 {
	if n <= 0 || m <= 0 || math.IsNaN(d) {
		return math.NaN()
	}
	if d <= 0 {
		return 1
	}
	if d >= 1 {
		return 0
	}
	en := math.Round(float64(n) * float64(m) / float64(n+m))
	if en < 1 {
		en = 1
	}
	if en*d*d >= 370 {
		return 0 // below 1e-300: the series would only add rounding noise
	}
	return min(1, max(0, 1-pelzGood(en, d)))
}

// pelzGood is the Pelz–Good (1976) approximation of P(D_n ≤ x), ported from
// scipy.stats._ksstats._kolmogn_PelzGood: the Li-Chien–Korolyuk expansion
// K0(z) + K1(z)/√n + K2(z)/n + K3(z)/n^1.5 with z = x√n, its terms
// rewritten by Jacobi theta identities so they converge for small z.
func pelzGood(n, x float64) float64 {
	const (
		pi2     = math.Pi * math.Pi
		pi4     = pi2 * pi2
		pi6     = pi4 * pi2
		sqrt2pi = 2.5066282746310002 // √(2π)
		minLog  = -708.3964185322641 // log of the smallest normal float64
	)
	z := math.Sqrt(n) * x
	z2 := z * z
	z3, z4, z6 := z2*z, z2*z2, z2*z2*z2
	qlog := -pi2 / 8 / z2
	if qlog < minLog {
		return 0
	}
	q := math.Exp(qlog)
	k1a, k1b := -z2, pi2/4
	k2a := 6*z6 + 2*z4
	k2b := (2*z4 - 5*z2) * pi2 / 4
	k2c := pi4 * (1 - 2*z2) / 16
	k3d := pi6 * (5 - 30*z2) / 64
	k3c := pi4 * (-60*z2 + 212*z4) / 16
	k3b := pi2 * (135*z4 - 96*z6) / 4
	k3a := -30*z6 - 90*z4*z4
	var k [4]float64
	maxk := int(math.Ceil(16 * z / math.Pi))
	for kk := maxk; kk > 0; kk-- {
		m := float64(2*kk - 1)
		m2 := m * m
		qp := math.Pow(q, float64(8*kk))
		c := [4]float64{1, k1a + k1b*m2, k2a + k2b*m2 + k2c*m2*m2, k3a + k3b*m2 + k3c*m2*m2 + k3d*m2*m2*m2}
		for i := range k {
			k[i] = k[i]*qp + c[i]
		}
	}
	div := [4]float64{z, 6 * z4, 72 * z4 * z3, 6480 * z6 * z4}
	for i := range k {
		k[i] *= q * sqrt2pi / div[i]
	}
	q = math.Exp(-pi2 / 2 / z2)
	var k2extra, k3extra float64
	s3z := math.Sqrt(3) * z
	for kk := maxk; kk > 0; kk-- {
		kf := float64(kk)
		qk := math.Pow(q, kf*kf)
		k2extra += kf * kf * qk
		kpi := math.Pi * kf
		k3extra += (s3z + kpi) * (s3z - kpi) * kf * kf * qk
	}
	k[2] += k2extra * pi2 * sqrt2pi / (-36 * z3)
	k[3] += k3extra * pi2 * sqrt2pi / (216 * z6)
	sum := 0.0
	for i := range k {
		sum += k[i] / math.Pow(n, float64(i)/2)
	}
	return sum
}

// FisherExact is the two-sided p-value of Fisher's exact test on the 2×2
// table [[a, b], [c, d]]: the probability, under fixed margins, of every
// table no more likely than the observed one (the convention of
// scipy.stats.fisher_exact, with its 1e-7 relative tolerance on ties).
func FisherExact(a, b, c, d int64) float64 {
	if a < 0 || b < 0 || c < 0 || d < 0 {
		return math.NaN()
	}
	r1, c1, n := a+b, a+c, a+b+c+d
	if r1 == 0 || c1 == 0 || r1 == n || c1 == n {
		return 1
	}
	lo, hi := max(0, r1+c1-n), min(r1, c1)
	// log P(X = x) for the hypergeometric count in cell a.
	lf := func(k int64) float64 { v, _ := math.Lgamma(float64(k) + 1); return v }
	base := lf(r1) + lf(n-r1) + lf(c1) + lf(n-c1) - lf(n)
	logp := func(x int64) float64 {
		return base - lf(x) - lf(r1-x) - lf(c1-x) - lf(n-r1-c1+x)
	}
	obs := logp(a) + math.Log1p(1e-7)
	var p float64
	for x := lo; x <= hi; x++ {
		if l := logp(x); l <= obs {
			p += math.Exp(l)
		}
	}
	return min(1, p)
}

// minExpected is the least expected count a cell of a 2×k table may have
// for the χ² approximation to be trusted (Cochran's rule, applied to every
// cell): columns below it are merged, and a 2×2 table still below it gets
// Fisher's exact test.
const minExpected = 5

// binTest is the homogeneity test of a reference and a current histogram
// over the same bins, after merging bins too rare for the χ²
// approximation.
type binTest struct {
	ref, cur []float64 // the merged bins
	n        float64   // effective sample size (1/n_ref + 1/n_cur)⁻¹
	exact    float64   // Fisher's p-value when the merged table is 2×2 with a rare cell; else NaN
}

// mergeRare merges the columns of the 2×k table (ref, cur) whose smaller
// expected count is below minExpected, smallest first: on ordered bins
// (numeric features) into the smaller of its neighbours, so merged bins
// stay intervals; on unordered ones (categories) into the next smallest
// column, so rare categories pool together before joining a common one.
// Columns empty on both sides are dropped. Which columns merge depends only
// on the column totals (the margins), as the expected counts do.
func mergeRare(ref, cur []float64, ordered bool) binTest {
	var r, c []float64
	var nr, nc float64
	for i := range ref {
		if ref[i] > 0 || cur[i] > 0 {
			r = append(r, ref[i])
			c = append(c, cur[i])
			nr += ref[i]
			nc += cur[i]
		}
	}
	t := binTest{exact: math.NaN()}
	if nr == 0 || nc == 0 {
		return t
	}
	t.n = nr * nc / (nr + nc)
	expMin := func(i int) float64 { return (r[i] + c[i]) * min(nr, nc) / (nr + nc) }
	for len(r) > 2 {
		i := 0
		for j := range r {
			if r[j]+c[j] < r[i]+c[i] {
				i = j
			}
		}
		if expMin(i) >= minExpected {
			break
		}
		j := -1
		if ordered {
			switch {
			case i == 0:
				j = 1
			case i == len(r)-1:
				j = i - 1
			case r[i-1]+c[i-1] <= r[i+1]+c[i+1]:
				j = i - 1
			default:
				j = i + 1
			}
		} else {
			for k := range r {
				if k != i && (j < 0 || r[k]+c[k] < r[j]+c[j]) {
					j = k
				}
			}
		}
		r[j] += r[i]
		c[j] += c[i]
		r = slices.Delete(r, i, i+1)
		c = slices.Delete(c, i, i+1)
	}
	t.ref, t.cur = r, c
	if len(r) == 2 && min(expMin(0), expMin(1)) < minExpected {
		t.exact = FisherExact(int64(r[0]), int64(r[1]), int64(c[0]), int64(c[1]))
	}
	return t
}

// df is the degrees of freedom of the merged table's χ² tests.
func (t *binTest) df() int { return len(t.ref) - 1 }

// pValue returns the p-value of a statistic whose null distribution, times
// scale, is χ²(df): Fisher's when the table is exact-tested, 1 when there
// is nothing to test (one bin, or no rows).
func (t *binTest) pValue(x2 float64) float64 {
	switch {
	case !math.IsNaN(t.exact):
		return t.exact
	case t.df() < 1 || t.n == 0:
		return 1
	}
	return Chi2Survival(x2, float64(t.df()))
}

// pearson is Pearson's χ² statistic of the merged table.
func (t *binTest) pearson() float64 {
	var nr, nc float64
	for i := range t.ref {
		nr += t.ref[i]
		nc += t.cur[i]
	}
	n := nr + nc
	var x2 float64
	for i := range t.ref {
		tot := t.ref[i] + t.cur[i]
		er, ec := tot*nr/n, tot*nc/n
		x2 += (t.ref[i]-er)*(t.ref[i]-er)/er + (t.cur[i]-ec)*(t.cur[i]-ec)/ec
	}
	return x2
}

// binPValues returns the p-values of PSI, JS and χ² over the same bins.
// Under no drift, for large samples, each statistic times its scale is
// χ²(k−1)-distributed, k the number of (merged) bins and N the effective
// size (1/n_ref + 1/n_cur)⁻¹: N·PSI (PSI is Jeffreys' divergence, whose
// second-order term is Pearson's Σ(c−r)²/r), 8·ln2·N·js² (the JS divergence
// in nats is Σ(c−r)²/(8m) to second order, m the mid-point shares), and
// Pearson's statistic itself. So comparing each p-value with α is
// comparing PSI with χ²₁₋α(k−1)/N: a threshold that shrinks as the samples
// grow, which is what makes the judgement the same at every window size.
func binPValues(ref, cur []float64, ordered bool) (psiP, jsP, chi2P float64, exact bool) {
	t := mergeRare(ref, cur, ordered)
	if t.n == 0 {
		return 1, 1, 1, false
	}
	js := jsDistance(t.ref, t.cur)
	return t.pValue(t.n * psi(t.ref, t.cur)), t.pValue(8 * math.Ln2 * t.n * js * js), t.pValue(t.pearson()), !math.IsNaN(t.exact)
}

// holm runs Holm's step-down procedure at family-wise level alpha over ps
// and returns which hypotheses it rejects: sorted ascending, p_(i) is
// compared with alpha/(m−i), stopping at the first that is not below.
func holm(ps []float64, alpha float64) []bool {
	m := len(ps)
	idx := make([]int, m)
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case ps[a] < ps[b]:
			return -1
		case ps[a] > ps[b]:
			return 1
		}
		return 0
	})
	out := make([]bool, m)
	for i, j := range idx {
		if !(ps[j] <= alpha/float64(m-i)) { // NaN never rejects
			break
		}
		out[j] = true
	}
	return out
}
