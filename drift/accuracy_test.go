package drift

import (
	"math"
	"testing"

	"github.com/modelgate/modelgate/internal/fraud"
)

// TestAccuracy checks that the streaming statistics agree with exact batch
// computations over the same raw rows: PSI, JS and KS within 0.01,
// Wasserstein within 1% (absolute 0.002 reference standard deviations when
// the distance itself is below 0.1, where 1% would be below the noise of
// the raw samples' step functions).
func TestAccuracy(t *testing.T) {
	p, ref, refS := reference(t)
	drifts := []fraud.Drift{
		{},
		{Kind: fraud.CovariateShift, Field: fraud.FieldAmount},
		{Kind: fraud.CovariateShift, Field: fraud.FieldDistance, Factor: 1.5},
		{Kind: fraud.CovariateShift, Field: fraud.FieldDeviceAge, Factor: 0.2},
		{Kind: fraud.NewCategory},
	}
	for i, d := range drifts {
		t.Run(d.String(), func(t *testing.T) {
			rows, scores := gen(int64(100+i), 5000, d)
			rep := mustCompare(t, p, feed(t, p, rows, scores), DefaultThresholds())
			worst := map[string]float64{}
			for k, fr := range rep.Features {
				var refVals, curVals []float64
				var f *Feature
				if fr.Output {
					f = &p.Output.Feature
					refVals, curVals = toF64(refS), toF64(scores)
				} else {
					f = &p.Features[k]
					refVals, curVals = column(ref, k), column(rows, k)
				}
				check := func(stat string, got *float64, want, tol float64) {
					t.Helper()
					if got == nil {
						t.Errorf("%s: no %s", fr.Label(), stat)
						return
					}
					worst[stat] = max(worst[stat], math.Abs(*got-want))
					if math.Abs(*got-want) > tol {
						t.Errorf("%s: streaming %s %.5f, exact %.5f (tolerance %v)", fr.Label(), stat, *got, want, tol)
					}
				}
				if c := f.Categorical; c != nil {
					rb, cb := exactCats(c, refVals), exactCats(c, curVals)
					check(StatPSI, fr.PSI, psi(rb, cb), 0.01)
					check(StatJS, fr.JS, jsDistance(rb, cb), 0.01)
					_, _, chi2P, _ := binPValues(rb, cb, false)
					check(StatChi2P, fr.Chi2P, chi2P, 1e-9)
					continue
				}
				rb, cb := exactBins(f.Numeric, refVals), exactBins(f.Numeric, curVals)
				check(StatPSI, fr.PSI, psi(rb, cb), 0.01)
				check(StatJS, fr.JS, jsDistance(rb, cb), 0.01)
				ks, w := exactKSW(refVals, curVals)
				check(StatKS, fr.KS, ks, 0.01)
				w /= f.Numeric.Std
				tol := 0.01 * w
				if w < 0.1 {
					tol = 0.002
				}
				check(StatWasserstein, fr.Wasserstein, w, tol)
				if w >= 0.1 {
					worst["wasserstein_rel"] = max(worst["wasserstein_rel"], math.Abs(*fr.Wasserstein-w)/w)
				}
			}
			t.Logf("largest differences from exact: %v", worst)
		})
	}
}

// TestCellArithmetic holds the hot path's inlined cell computation equal
// to numCol.cell, which the builder uses for the reference counts.
func TestCellArithmetic(t *testing.T) {
	p, _, _ := reference(t)
	l := compile(p)
	c := &l.num[0]
	cnt := make([]uint32, l.nCounts)
	sums := make([]float64, l.nSums)
	row := make([]float32, l.width)
	vals := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), -math.MaxFloat32, math.MaxFloat32, c.lo, math.Nextafter32(c.lo, -10)}
	for i := range 20000 {
		vals = append(vals, c.lo+float32(i)/c.scale/16-1)
	}
	for _, v := range vals {
		clear(cnt)
		row[l.num[0].col] = v
		l.observe(cnt, sums, row, 0)
		want := c.off + c.cell(v)
		if cnt[want] != 1 {
			t.Fatalf("value %v: hot path and cell disagree (want counter %d)", v, want)
		}
	}
}

// TestAccuracyAcrossSeeds repeats the KS and Wasserstein comparison over
// many smaller samples and drifts, where a sketch's discretisation error is
// largest relative to the data.
func TestAccuracyAcrossSeeds(t *testing.T) {
	p, ref, refS := reference(t)
	var worstKS, worstW float64
	for seed := int64(1000); seed < 1020; seed++ {
		for _, d := range []fraud.Drift{
			{},
			{Kind: fraud.CovariateShift, Field: fraud.Field(seed % 4), Factor: 1 + float64(seed%7)/3},
			{Kind: fraud.NewCategory, Share: 0.05},
		} {
			rows, scores := gen(seed, 2000, d)
			rep := mustCompare(t, p, feed(t, p, rows, scores), DefaultThresholds())
			for k, fr := range rep.Features {
				if fr.KS == nil {
					continue
				}
				var a, b []float64
				var std float64
				if fr.Output {
					a, b, std = toF64(refS), toF64(scores), p.Output.Numeric.Std
				} else {
					a, b, std = column(ref, k), column(rows, k), p.Features[k].Numeric.Std
				}
				ks, w := exactKSW(a, b)
				w /= std
				worstKS = max(worstKS, math.Abs(ks-*fr.KS))
				if math.Abs(ks-*fr.KS) > 0.01 {
					t.Errorf("seed %d %v %s: KS %.4f, exact %.4f", seed, d, fr.Label(), *fr.KS, ks)
				}
				if w >= 0.1 {
					worstW = max(worstW, math.Abs(*fr.Wasserstein-w)/w)
					if math.Abs(*fr.Wasserstein-w) > 0.01*w {
						t.Errorf("seed %d %v %s: Wasserstein %.4f, exact %.4f", seed, d, fr.Label(), *fr.Wasserstein, w)
					}
				}
			}
		}
	}
	t.Logf("worst KS error %.4f, worst Wasserstein relative error %.4f", worstKS, worstW)
}
