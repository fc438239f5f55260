package drift

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// The cases of TestKSWasserstein are symmetric (uniforms of equal width,
// point masses), where a CDF interpolated from the wrong end of its segment
// gives the same numbers. These are not.

// uniformCDF is the CDF of the uniform distribution on [a, b].
func uniformCDF(a, b float64) *cdf {
	return &cdf{x: []float64{a, b}, left: []float64{0, 1}, right: []float64{0, 1}}
}

func pointCDF(x float64) *cdf { return &cdf{x: []float64{x}, left: []float64{0}, right: []float64{1}} }

func TestKSWassersteinAnalytic(t *testing.T) {
	f := func(name string, a, b *cdf, wantKS, wantW float64) {
		t.Helper()
		for _, swap := range []bool{false, true} {
			x, y := a, b
			if swap {
				x, y = b, a
			}
			ks, w := ksWasserstein(x, y)
			if math.Abs(ks-wantKS) > 1e-12 || math.Abs(w-wantW) > 1e-12 {
				t.Errorf("%s (swapped %v): ks %.15g w %.15g, want %.15g %.15g", name, swap, ks, w, wantKS, wantW)
			}
		}
	}
	// U[0,1] vs U[0,4]: F−G = 3x/4 on [0,1], 1−x/4 on [1,4]: sup 3/4 at 1;
	// W is the difference of the means, 2 − 1/2 (the CDFs do not cross).
	f("U[0,1] vs U[0,4]", uniformCDF(0, 1), uniformCDF(0, 4), 0.75, 1.5)
	// U[0,1] vs a point mass at 1/4: the jump at 1/4 leaves a gap of 3/4;
	// W = E|U − 1/4| = (1/4² + 3/4²)/2.
	f("U[0,1] vs δ(1/4)", uniformCDF(0, 1), pointCDF(0.25), 0.75, 0.3125)
	// U[0,1] vs U[0.25,2]: G(1) = 0.75/1.75; sup at x=1 is 1 − 3/7 = 4/7;
	// W = |mean difference| = 1.125 − 0.5 (no crossing: F ≥ G everywhere).
	f("U[0,1] vs U[1/4,2]", uniformCDF(0, 1), uniformCDF(0.25, 2), 4.0/7, 0.625)
	// A CDF with a jump inside its support: mass 0.2 spread on [0,1], an
	// atom of 0.5 at 1, mass 0.3 on [1,4]; against U[0,4]. F−G at 1⁻ is
	// 0.2−0.25, at 1⁺ 0.7−0.25 = 0.45 (the sup), and on [1,4] F−G =
	// 0.6 − 0.15x falls linearly from 0.45 to 0.
	// W = ∫₀¹|0.2x − 0.25x| + ∫₁⁴ (0.45 − 0.15(x−1)) = 0.025 + 0.675.
	jump := &cdf{x: []float64{0, 1, 4}, left: []float64{0, 0.2, 1}, right: []float64{0, 0.7, 1}}
	f("jump vs U[0,4]", jump, uniformCDF(0, 4), 0.45, 0.7)
}

// evalCDF is an independent evaluation of a cdf's left and right limits at
// x, by binary search over the knots.
func evalCDF(c *cdf, x float64) (float64, float64) {
	n := len(c.x)
	k := sort.SearchFloat64s(c.x, x) // first knot >= x
	switch {
	case k < n && c.x[k] == x:
		return c.left[k], c.right[k]
	case k == 0:
		return 0, 0
	case k == n:
		return 1, 1
	}
	// Strictly between knots k-1 and k: the segment runs from the right
	// limit at the lower knot up to the left limit at the upper one.
	t := (x - c.x[k-1]) / (c.x[k] - c.x[k-1])
	v := (1-t)*c.right[k-1] + t*c.left[k]
	return v, v
}

// randomCDF is a piecewise-linear CDF with 1-6 knots on [0, 10], some of
// them jumps.
func randomCDF(r *rand.Rand) *cdf {
	n := 1 + r.IntN(6)
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = math.Round(r.Float64()*1000) / 100
	}
	sort.Float64s(xs)
	levels := make([]float64, 2*n)
	for i := range levels {
		levels[i] = r.Float64()
	}
	sort.Float64s(levels)
	levels[0], levels[2*n-1] = 0, 1 // 0 before the first knot, 1 after the last
	c := &cdf{}
	for i, x := range xs {
		c.knot(x, levels[2*i], levels[2*i+1])
	}
	return c
}

// TestKSWassersteinRandom compares ksWasserstein with the independent
// evaluation: KS as the largest gap over every knot's left and right limits
// (the difference is linear between knots), Wasserstein by the midpoint
// rule on 4,000 steps per segment (its error here is below 1e-7).
func TestKSWassersteinRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for iter := range 300 {
		f, g := randomCDF(r), randomCDF(r)
		xs := append(append([]float64{}, f.x...), g.x...)
		sort.Float64s(xs)
		var wantKS, wantW float64
		for i, x := range xs {
			fl, fr := evalCDF(f, x)
			gl, gr := evalCDF(g, x)
			wantKS = max(wantKS, math.Abs(fl-gl), math.Abs(fr-gr))
			if i == 0 || x == xs[i-1] {
				continue
			}
			const steps = 4000
			lo, h := xs[i-1], (x-xs[i-1])/steps
			for s := range steps {
				m := lo + (float64(s)+0.5)*h
				a, _ := evalCDF(f, m)
				b, _ := evalCDF(g, m)
				wantW += math.Abs(a-b) * h
			}
		}
		ks, w := ksWasserstein(f, g)
		if math.Abs(ks-wantKS) > 1e-12 || math.Abs(w-wantW) > 1e-6 {
			t.Fatalf("case %d: f=%+v g=%+v: ks %.12g w %.12g, want %.12g %.12g", iter, *f, *g, ks, w, wantKS, wantW)
		}
	}
}
