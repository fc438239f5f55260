package drift

import (
	"math"
	"testing"
)

// TestQualityCounts: per feature, NaN and ±Inf count as missing, numeric
// values off the profile's range as out of range, undeclared categories as
// unseen; a row with several problems is one affected row; the reference's
// own rate is beside them; and the counts add up across sketches, exports
// and windows like every other counter.
func TestQualityCounts(t *testing.T) {
	p := synthReference(t)
	g := newSynth(31)
	s, err := NewSketch(p)
	if err != nil {
		t.Fatal(err)
	}
	row := make([]float32, synthWidth)
	hi := float32(p.Features[2].Numeric.Grid.Hi)
	for i := range 1000 {
		sc := g.next(row)
		switch i {
		case 0:
			row[0] = float32(math.NaN())
		case 1:
			row[1] = float32(math.Inf(1))
		case 2:
			row[2] = hi + 1
		case 3:
			row[2] = -1e6
		case 4:
			row[5] = 7 // not a declared category
		case 5: // three problems, one row
			row[0], row[2], row[5] = float32(math.Inf(-1)), hi*10, 2.5
		}
		if err := s.Observe(row, sc); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, r *Report, scale int64) {
		t.Helper()
		want := map[string]Quality{
			"n0":  {Missing: 2 * scale},
			"n1":  {Missing: 1 * scale},
			"n2":  {OutOfRange: 3 * scale},
			"cat": {Unseen: 2 * scale},
		}
		for _, f := range r.Features {
			w := want[f.Name]
			q := f.Quality
			if q.Missing != w.Missing || q.OutOfRange != w.OutOfRange || q.Unseen != w.Unseen {
				t.Errorf("%s: %s quality %+v, want missing %d, out of range %d, unseen %d", what, f.Label(), q, w.Missing, w.OutOfRange, w.Unseen)
			}
			if got := float64(w.Missing+w.OutOfRange+w.Unseen) / float64(r.Rows); math.Abs(q.Share-got) > 1e-12 {
				t.Errorf("%s: %s share %v, want %v", what, f.Label(), q.Share, got)
			}
			if !(q.ReferenceShare >= 0 && q.ReferenceShare < 0.01) {
				t.Errorf("%s: %s reference share %v, want the reference's small rate in [0, 1%%)", what, f.Label(), q.ReferenceShare)
			}
		}
		if r.Quality.RowsAffected != 6*scale || math.Abs(r.Quality.Share-0.006) > 1e-12 {
			t.Errorf("%s: rows affected %d (share %v), want %d (0.006)", what, r.Quality.RowsAffected, r.Quality.Share, 6*scale)
		}
	}
	check("one sketch", mustCompare(t, p, s, DefaultThresholds()), 1)
	merged := s.Clone()
	if err := merged.Merge(s); err != nil {
		t.Fatal(err)
	}
	check("merged twice", mustCompare(t, p, merged, DefaultThresholds()), 2)
	imp, err := Import(p, merged.Export())
	if err != nil {
		t.Fatal(err)
	}
	check("exported and imported", mustCompare(t, p, imp, DefaultThresholds()), 2)
}

// TestQualityObserveDoesNotAllocate: rows with every kind of problem take
// the same allocation-free path as clean ones.
func TestQualityObserveDoesNotAllocate(t *testing.T) {
	p := synthReference(t)
	s, err := NewSketchShards(p, 1)
	if err != nil {
		t.Fatal(err)
	}
	bad := []float32{float32(math.NaN()), float32(math.Inf(1)), 1e9, -1e9, 0, 42}
	good := []float32{0, 0, 0, 0, 1, 1}
	if n := testing.AllocsPerRun(1000, func() { _ = s.Observe(bad, 0.5); _ = s.Observe(good, 0.5) }); n != 0 {
		t.Errorf("Observe allocates %v times per pair of rows", n)
	}
	r := mustCompare(t, p, s, DefaultThresholds())
	if r.Quality.RowsAffected*2 != r.Rows {
		t.Errorf("%d of %d rows affected, want half", r.Quality.RowsAffected, r.Rows)
	}
}
