package drift

import "math"

// psi is the population stability index of current counts cur against
// reference counts ref over the same bins: Σ (c−r)·ln(c/r) over the bins'
// shares. Bins empty in both are skipped; the others get half a count of
// smoothing (Jeffreys) so a bin empty on one side gives a finite, large
// term instead of infinity.
func psi(ref, cur []float64) float64 {
	var nr, nc float64
	bins := 0
	for i := range ref {
		if ref[i] > 0 || cur[i] > 0 {
			nr += ref[i]
			nc += cur[i]
			bins++
		}
	}
	if nr == 0 || nc == 0 {
		return 0
	}
	dr := nr + 0.5*float64(bins)
	dc := nc + 0.5*float64(bins)
	var s float64
	for i := range ref {
		if ref[i] == 0 && cur[i] == 0 {
			continue
		}
		r := (ref[i] + 0.5) / dr
		c := (cur[i] + 0.5) / dc
		s += (c - r) * math.Log(c/r)
	}
	return s
}

// jsDistance is the Jensen–Shannon distance between the two histograms'
// shares: the square root of the JS divergence in bits, in [0, 1]. Unlike
// PSI it needs no smoothing.
func jsDistance(ref, cur []float64) float64 {
	var nr, nc float64
	for i := range ref {
		nr += ref[i]
		nc += cur[i]
	}
	if nr == 0 || nc == 0 {
		return 0
	}
	var d float64
	for i := range ref {
		p, q := ref[i]/nr, cur[i]/nc
		m := (p + q) / 2
		if p > 0 {
			d += p * math.Log2(p/m)
		}
		if q > 0 {
			d += q * math.Log2(q/m)
		}
	}
	return math.Sqrt(min(1, max(0, d/2)))
}

// Chi2Survival returns P(X ≥ x) for X χ²-distributed with df degrees of
// freedom: the p-value of a χ² statistic x. It is the regularised upper
// incomplete gamma function Q(df/2, x/2).
func Chi2Survival(x, df float64) float64 {
	if math.IsNaN(x) || math.IsNaN(df) || df <= 0 {
		return math.NaN()
	}
	if x <= 0 {
		return 1
	}
	if math.IsInf(x, 1) {
		return 0
	}
	return gammaQ(df/2, x/2)
}

// gammaQ is the regularised upper incomplete gamma function Q(a, x) for
// a > 0, x ≥ 0: by its series for x < a+1 (where the series converges
// fast), by Lentz's continued fraction otherwise (Numerical Recipes §6.2).
func gammaQ(a, x float64) float64 {
	if x == 0 {
		return 1
	}
	lg, _ := math.Lgamma(a)
	lpre := a*math.Log(x) - x - lg // log of x^a e^-x / Γ(a)
	if x < a+1 {
		// P(a, x) = x^a e^-x / Γ(a+1) · Σ x^n / ((a+1)…(a+n))
		sum, term := 1/a, 1/a
		for n := 1; n < 1000; n++ {
			term *= x / (a + float64(n))
			sum += term
			if math.Abs(term) < math.Abs(sum)*1e-16 {
				break
			}
		}
		return max(0, 1-math.Exp(lpre)*sum)
	}
	const tiny = 1e-300
	b := x + 1 - a
	c := 1 / tiny
	d := 1 / b
	h := d
	for i := 1; i < 1000; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = b + an/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < 1e-16 {
			break
		}
	}
	return min(1, math.Exp(lpre)*h)
}

// cdf is a piecewise-linear cumulative distribution with jumps: at each
// knot x[i] it rises from left[i] to right[i]; between knots it is linear
// from right[i] to left[i+1]; it is 0 before the first knot and 1 after the
// last. x is strictly increasing.
type cdf struct {
	x, left, right []float64
}

// knot appends a knot, merging it into the last one when x repeats.
func (c *cdf) knot(x, left, right float64) {
	if n := len(c.x); n > 0 && x <= c.x[n-1] {
		c.right[n-1] = max(c.right[n-1], right)
		return
	}
	c.x = append(c.x, x)
	c.left = append(c.left, left)
	c.right = append(c.right, right)
}

// cursor evaluates a cdf at increasing points.
type cursor struct {
	c *cdf
	i int // first knot with x >= the last point asked
}

// at returns the left and right limits of the cdf at x; x must not
// decrease between calls.
func (u *cursor) at(x float64) (float64, float64) {
	c := u.c
	for u.i < len(c.x) && c.x[u.i] < x {
		u.i++
	}
	i := u.i
	switch {
	case i < len(c.x) && c.x[i] == x:
		return c.left[i], c.right[i]
	case i == 0:
		return 0, 0
	case i == len(c.x):
		return 1, 1
	}
	x0, x1 := c.x[i-1], c.x[i]
	f := c.right[i-1] + (c.left[i]-c.right[i-1])*(x-x0)/(x1-x0)
	return f, f
}

// ksWasserstein returns sup |F−G| and ∫|F−G|dx of two cdfs, exactly for
// these piecewise-linear functions: the difference is linear between the
// union of their knots, so its supremum is at a knot and its integral is a
// sum of trapezoids (split where the difference changes sign).
func ksWasserstein(f, g *cdf) (ks, w float64) {
	uf, ug := cursor{c: f}, cursor{c: g}
	i, j := 0, 0
	first := true
	var px, pd float64 // previous point and the difference just right of it
	for i < len(f.x) || j < len(g.x) {
		var x float64
		switch {
		case j >= len(g.x) || (i < len(f.x) && f.x[i] <= g.x[j]):
			x = f.x[i]
		default:
			x = g.x[j]
		}
		for i < len(f.x) && f.x[i] == x {
			i++
		}
		for j < len(g.x) && g.x[j] == x {
			j++
		}
		fl, fr := uf.at(x)
		gl, gr := ug.at(x)
		dl, dr := fl-gl, fr-gr
		ks = max(ks, math.Abs(dl), math.Abs(dr))
		if !first {
			w += trapezoid(pd, dl, x-px)
		}
		first = false
		px, pd = x, dr
	}
	return ks, w
}

// trapezoid is ∫|d(t)| over an interval of width h where d is linear from
// a to b.
func trapezoid(a, b, h float64) float64 {
	if (a >= 0) == (b >= 0) || a == 0 || b == 0 {
		return h * math.Abs(a+b) / 2
	}
	return h * (a*a + b*b) / (2 * (math.Abs(a) + math.Abs(b)))
}
