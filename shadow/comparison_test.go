package shadow

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

// TestDiffSketchQuantilesWithinOnePercent compares every percentile of
// 20,000 differences (small and large, both signs, exact zeros) with the
// exact value of the same rank.
func TestDiffSketchQuantilesWithinOnePercent(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	s := NewDiffSketch()
	var vals []float64
	var sum float64
	for i := range 20000 {
		v := r.NormFloat64() * 0.05
		switch i % 10 {
		case 0:
			v = 0
		case 1:
			v *= 1000
		}
		if err := s.Record(v); err != nil {
			t.Fatal(err)
		}
		vals = append(vals, v)
		sum += v
	}
	sort.Float64s(vals)
	for q := 0.0; q <= 1; q += 0.01 {
		want := vals[int(q*float64(len(vals)-1))]
		got := s.Quantile(q)
		if math.Abs(want) < diffMin {
			if got != 0 {
				t.Fatalf("q=%.2f: %v, want 0 (true %v is below the sketch's resolution)", q, got, want)
			}
			continue
		}
		if math.Abs(got-want) > diffAlpha*math.Abs(want)*(1+1e-9) {
			t.Fatalf("q=%.2f: %v, exact %v: off by more than 1%%", q, got, want)
		}
	}
	if s.Count() != 20000 || s.Min() != vals[0] || s.Max() != vals[len(vals)-1] {
		t.Fatalf("count %d min %v max %v", s.Count(), s.Min(), s.Max())
	}
	near(t, "mean", s.Mean(), sum/20000, 1e-12)
	if err := s.Record(math.NaN()); !errors.Is(err, ErrOutOfRange) || s.Count() != 20000 {
		t.Fatalf("Record(NaN) = %v, count %d; want ErrOutOfRange and nothing counted", err, s.Count())
	}
}

func TestComparisonAgreementTable(t *testing.T) {
	c := NewComparison(0.5)
	f := func(champion, shadow float64) {
		t.Helper()
		if err := c.RecordRow(champion, shadow); err != nil {
			t.Fatal(err)
		}
	}
	f(0.9, 0.8)  // both positive
	f(0.5, 0.5)  // both positive: at the threshold is positive
	f(0.6, 0.4)  // champion only
	f(0.1, 0.7)  // shadow only
	f(0.1, 0.2)  // both negative
	f(0.49, 0.3) // both negative
	want := Agreement{BothPositive: 2, ChampionOnly: 1, ShadowOnly: 1, BothNegative: 2}
	if c.Agreement != want {
		t.Fatalf("agreement %+v, want %+v", c.Agreement, want)
	}
	near(t, "agreement rate", c.Agreement.Rate(), 4.0/6, 1e-15)
	near(t, "mean diff", c.Diff.Mean(), (-0.1+0+-0.2+0.6+0.1-0.19)/6, 1e-12)
	if err := c.RecordRow(math.Inf(1), 0.3); !errors.Is(err, ErrOutOfRange) || c.Agreement.Total() != 6 {
		t.Fatalf("an infinite score: %v, table total %d; want ErrOutOfRange and no row", err, c.Agreement.Total())
	}
}

// randomComparison records n rows and n/4 runs drawn from seed.
func fillComparison(c *Comparison, r *rand.Rand, n int) {
	for i := range n {
		ch := r.Float64()
		_ = c.RecordRow(ch, min(1, max(0, ch+r.NormFloat64()*0.1)))
		if i%4 == 0 {
			_ = c.RecordRun(time.Duration(200+r.IntN(800))*time.Microsecond, time.Duration(300+r.IntN(5000))*time.Microsecond, i%40 == 0)
		}
	}
}

func TestComparisonMergeAndExport(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	a, b := NewComparison(0.5), NewComparison(0.5)
	fillComparison(a, r, 3000)
	fillComparison(b, r, 2000)
	a.Unscored = 3
	whole := a.Clone()
	if err := whole.Merge(b); err != nil {
		t.Fatal(err)
	}
	ia, err := ImportComparison(a.Export())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ia.Export(), a.Export()) {
		t.Fatal("export → import → export changed the bytes")
	}
	ib, err := ImportComparison(b.Export())
	if err != nil {
		t.Fatal(err)
	}
	if err := ia.Merge(ib); err != nil {
		t.Fatal(err)
	}
	got, want := ia.Summary(), whole.Summary()
	if got.Runs != 1250 || got.Runs != want.Runs || got.Errors != want.Errors || got.Unscored != 3 || got.Agreement != want.Agreement ||
		got.ChampionP99us != want.ChampionP99us || got.ShadowP50us != want.ShadowP50us || got.Rows != 5000 {
		t.Fatalf("merged imports %+v\nwhole %+v", got, want)
	}
	for i := range got.DiffQuantiles {
		if got.DiffQuantiles[i] != want.DiffQuantiles[i] {
			t.Fatalf("quantile %v: %v vs %v", SummaryQuantiles[i], got.DiffQuantiles[i], want.DiffQuantiles[i])
		}
	}
	near(t, "mean diff", got.MeanDiff, want.MeanDiff, 1e-12)
	if err := a.Merge(NewComparison(0.7)); !errors.Is(err, ErrMismatch) {
		t.Fatalf("merging a comparison at another threshold: %v, want ErrMismatch", err)
	}
}

func TestImportComparisonRefusesContradictions(t *testing.T) {
	c := NewComparison(0.5)
	fillComparison(c, rand.New(rand.NewPCG(6, 6)), 100)
	good := c.Export()
	f := func(name string, data []byte) {
		t.Helper()
		if _, err := ImportComparison(data); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: %v, want ErrCorrupt", name, err)
		}
	}
	f("empty", nil)
	f("bad magic", append([]byte("XXXX"), good[4:]...))
	f("version 2", append(append([]byte("MGSC"), 2), good[5:]...))
	f("truncated", good[:len(good)-1])
	f("trailing byte", append(append([]byte{}, good...), 0))
	// Runs is the first uvarint after the threshold: make it 0 so the
	// errors and the latency histograms disagree with it.
	bad := append([]byte{}, good...)
	bad[13] = 0
	f("runs below the errors and the latency counts", bad)
	nan := append([]byte{}, good...)
	copy(nan[5:], []byte{0, 0, 0, 0, 0, 0, 0xf8, 0x7f})
	f("NaN threshold", nan)
}

// TestComparisonsWindowsOnInjectedClock drives the windows with a fake
// clock: outcomes count in the window of the champion's answer, the live
// window alone is the shortest horizon, and a window that left the ring is
// gone and late outcomes are counted.
func TestComparisonsWindowsOnInjectedClock(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0).Truncate(time.Minute)}
	cs, err := NewComparisons(CompareConfig{Threshold: 0.5, Windows: WindowConfig{Window: time.Minute, Windows: 3, Now: clock.now}})
	if err != nil {
		t.Fatal(err)
	}
	p := Pair{Champion: 3, Shadow: 4}
	k0 := cs.WindowOf(clock.t)
	if err := cs.RecordRow(clock.t, p, 0.9, 0.1); err != nil {
		t.Fatal(err)
	}
	clock.advance(time.Minute)
	_ = cs.RecordRow(clock.t, p, 0.2, 0.3)
	_ = cs.RecordRow(clock.t.Add(-time.Second), p, 0.8, 0.9) // the answer came in the previous minute
	if w := cs.Window(p, k0); w == nil || w.Agreement != (Agreement{BothPositive: 1, ChampionOnly: 1}) {
		t.Fatalf("window 0: %+v", w)
	}
	if s := cs.Snapshot(p, time.Minute); s.Agreement != (Agreement{BothNegative: 1}) {
		t.Fatalf("the live window: %+v, want the one row of minute 1", s.Agreement)
	}
	if s := cs.Snapshot(p, time.Hour); s.Diff.Count() != 3 {
		t.Fatalf("the whole ring holds %d rows, want 3", s.Diff.Count())
	}
	clock.advance(2 * time.Minute) // minute 3: window 0 leaves a 3-window ring
	if cs.Window(p, k0) != nil {
		t.Fatal("window 0 is still readable after leaving the ring")
	}
	if err := cs.RecordRow(clock.t.Add(-3*time.Minute), p, 0.5, 0.5); !errors.Is(err, ErrOutOfRange) || cs.Late() != 1 {
		t.Fatalf("a row older than the ring: %v, late %d", err, cs.Late())
	}
	if got := cs.Pairs(); len(got) != 1 || got[0] != p {
		t.Fatalf("pairs %v", got)
	}
}
