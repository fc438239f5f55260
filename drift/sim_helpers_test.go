package drift

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// synth draws rows of a small model for the simulations: four standard
// normal features, a log-normal one (right-skewed: a sqrt grid and real
// tails) and a categorical one with a rare value (0.3%), so the null
// behaviour of every test, rare bins included, is exercised; the score is a
// logistic of the first two. Shift moves a feature by that many of its
// standard deviations.
type synth struct {
	rng   *rand.Rand
	shift [synthWidth]float64
}

const synthWidth = 6

// synthStd are the features' standard deviations (the log-normal's is
// √((e^σ²−1)e^σ²) with σ = 0.8; the categorical's is not used).
var synthStd = [synthWidth]float64{1, 1, 1, 1, math.Sqrt((math.Exp(0.64) - 1) * math.Exp(0.64)), 1}

func newSynth(seed uint64) *synth { return &synth{rng: rand.New(rand.NewPCG(seed, 0x73796e7468))} }

func (g *synth) next(row []float32) float32 {
	for i := range 4 {
		row[i] = float32(g.rng.NormFloat64() + g.shift[i]*synthStd[i])
	}
	row[4] = float32(math.Exp(0.8*g.rng.NormFloat64()) + g.shift[4]*synthStd[4])
	u := g.rng.Float64()
	switch {
	case u < 0.6:
		row[5] = 0
	case u < 0.9:
		row[5] = 1
	case u < 0.997:
		row[5] = 2
	default:
		row[5] = 3
	}
	z := -1 + float64(row[0]) + 0.5*float64(row[1])
	return float32(1 / (1 + math.Exp(-z)))
}

var (
	synthOnce    sync.Once
	synthProfile *Profile
)

// synthReference is the profile of 10,000 unshifted rows (seed 1).
func synthReference(t testing.TB) *Profile {
	t.Helper()
	synthOnce.Do(func() {
		b := NewProfileBuilder(ProfileOptions{Inputs: []Input{{Name: "x", Width: synthWidth}}, Output: "p",
			Names: []string{"n0", "n1", "n2", "n3", "lognormal", "cat"}})
		g := newSynth(1)
		row := make([]float32, synthWidth)
		for range 10000 {
			s := g.next(row)
			if err := b.AddScored(row, s); err != nil {
				panic(err)
			}
		}
		p, err := b.Build()
		if err != nil {
			panic(err)
		}
		synthProfile = p
	})
	if synthProfile.Features[5].Kind() != Categorical || synthProfile.Features[4].Numeric.Grid.Scale != ScaleSqrt {
		t.Fatalf("the synthetic profile is not what the simulations assume: cat %s, lognormal grid %q", synthProfile.Features[5].Kind(), synthProfile.Features[4].Numeric.Grid.Scale)
	}
	return synthProfile
}

// stream drives a Windows on a fake clock: each step observes one window's
// rows from next and closes the window, then evaluates the policy as the
// alert loop does once a window.
type stream struct {
	t     testing.TB
	clock *fakeClock
	w     *Windows
	pol   Policy
	row   []float32
}

func newStream(t testing.TB, p *Profile, pol Policy) *stream {
	t.Helper()
	clock := newFakeClock()
	w, err := NewWindows(p, WindowConfig{Now: clock.Now, Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	return &stream{t: t, clock: clock, w: w, pol: pol, row: make([]float32, p.RowWidth())}
}

// window observes n rows, closes the window and evaluates.
func (s *stream) window(n int, next func(row []float32) float32) *Evaluation {
	s.t.Helper()
	for range n {
		sc := next(s.row)
		if err := s.w.Observe(s.row, sc); err != nil {
			s.t.Fatal(err)
		}
	}
	s.clock.Add(time.Minute)
	ev, err := Evaluate(s.w, s.pol)
	if err != nil {
		s.t.Fatal(err)
	}
	return ev
}
