package drift

import (
	"math"
	"slices"
	"sync"
	"testing"

	"github.com/modelgate/modelgate/internal/fraud"
)

// score is a fixed logistic score over a few features, standing in for the
// demo model's output: it moves when amount, distance or channel move.
func score(row []float32) float32 {
	z := -3.5 + 0.9*row[fraud.FeatureAmountRatio] + 0.4*row[fraud.FeatureDistance] +
		0.6*row[fraud.FeatureVelocity] + 0.8*(1-row[fraud.FeatureCardPresent]) + 1.2*row[fraud.FeatureCategoryOther]
	return float32(1 / (1 + math.Exp(-float64(z))))
}

// gen returns n rows (and their scores) from the fraud generator.
func gen(seed int64, n int, d fraud.Drift) (rows [][]float32, scores []float32) {
	g := fraud.NewGenerator(seed, fraud.WithDrift(d))
	flat := make([]float32, n*fraud.NumFeatures)
	rows = make([][]float32, n)
	scores = make([]float32, n)
	for i := range n {
		r := flat[i*fraud.NumFeatures : (i+1)*fraud.NumFeatures]
		g.Next(r)
		rows[i] = r
		scores[i] = score(r)
	}
	return rows, scores
}

func fraudOptions() ProfileOptions {
	return ProfileOptions{
		Inputs: []Input{{Name: "input", Width: fraud.NumFeatures}},
		Names:  fraud.FeatureNames[:],
		Output: "probability",
	}
}

var (
	refOnce    sync.Once
	refProfile *Profile
	refRows    [][]float32
	refScores  []float32
)

// reference is the profile of 10,000 undrifted rows (seed 1), built once.
func reference(t testing.TB) (*Profile, [][]float32, []float32) {
	t.Helper()
	refOnce.Do(func() {
		refRows, refScores = gen(1, 10000, fraud.Drift{})
		b := NewProfileBuilder(fraudOptions())
		for i, r := range refRows {
			if err := b.AddScored(r, refScores[i]); err != nil {
				panic(err)
			}
		}
		p, err := b.Build()
		if err != nil {
			panic(err)
		}
		refProfile = p
	})
	return refProfile, refRows, refScores
}

// feed observes rows into a new sketch of p.
func feed(t testing.TB, p *Profile, rows [][]float32, scores []float32) *Sketch {
	t.Helper()
	s, err := NewSketch(p)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rows {
		if err := s.Observe(r, scores[i]); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func column(rows [][]float32, c int) []float64 {
	out := make([]float64, 0, len(rows))
	for _, r := range rows {
		if v := float64(r[c]); finite(v) {
			out = append(out, v)
		}
	}
	return out
}

func toF64(xs []float32) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = float64(x)
	}
	return out
}

// exactKSW is the two-sample KS statistic and Wasserstein-1 distance of two
// raw samples, from their empirical CDFs: the batch computation the
// sketches must agree with.
func exactKSW(a, b []float64) (ks, w float64) {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	na, nb := float64(len(a)), float64(len(b))
	i, j := 0, 0
	prev := math.Inf(-1)
	var fa, fb float64
	for i < len(a) || j < len(b) {
		var x float64
		if j >= len(b) || (i < len(a) && a[i] <= b[j]) {
			x = a[i]
		} else {
			x = b[j]
		}
		if !math.IsInf(prev, -1) {
			w += math.Abs(fa-fb) * (x - prev)
		}
		for i < len(a) && a[i] == x {
			i++
		}
		for j < len(b) && b[j] == x {
			j++
		}
		fa, fb = float64(i)/na, float64(j)/nb
		ks = max(ks, math.Abs(fa-fb))
		prev = x
	}
	return ks, w
}

// exactBins counts raw values into a numeric feature's coarse bins, by
// comparing with the bin edges as values (not through the grid arithmetic).
func exactBins(n *NumericRef, vals []float64) []float64 {
	edges := make([]float64, len(n.Bins))
	for i, b := range n.Bins {
		edges[i] = n.Grid.Edge(b)
	}
	out := make([]float64, len(edges)+1)
	for _, v := range vals {
		j, found := slices.BinarySearch(edges, v)
		if found {
			j++
		}
		out[j]++
	}
	return out
}

func exactCats(c *CategoricalRef, vals []float64) []float64 {
	out := make([]float64, len(c.Values)+1)
	for _, v := range vals {
		j, found := slices.BinarySearch(c.Values, v)
		if !found {
			j = len(c.Values)
		}
		out[j]++
	}
	return out
}

func i64f(xs []int64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = float64(x)
	}
	return out
}

func mustCompare(t testing.TB, p *Profile, s *Sketch, th Thresholds) *Report {
	t.Helper()
	r, err := Compare(p, s, th)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
