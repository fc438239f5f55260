package drift

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/fraud"
)

func TestMergeEqualsOneStream(t *testing.T) {
	p, _, _ := reference(t)
	a, as := gen(11, 3000, fraud.Drift{})
	b, bs := gen(12, 2000, fraud.Drift{Kind: fraud.CovariateShift, Field: fraud.FieldDistance, Factor: 40})
	sa, sb := feed(t, p, a, as), feed(t, p, b, bs)
	both := feed(t, p, append(a, b...), append(as, bs...))
	if err := sa.Merge(sb); err != nil {
		t.Fatal(err)
	}
	equalCounts(t, "merged", sa, both)
	ra, rb := mustCompare(t, p, sa, DefaultThresholds()), mustCompare(t, p, both, DefaultThresholds())
	ja, _ := json.Marshal(ra)
	jb, _ := json.Marshal(rb)
	if !bytes.Equal(ja, jb) {
		t.Error("reports of the merged sketch and of one sketch fed both streams differ")
	}
	// Merging into itself doubles.
	one := feed(t, p, a[:10], as[:10])
	if err := one.Merge(one); err != nil || one.Rows() != 20 {
		t.Errorf("self-merge: %d rows, %v", one.Rows(), err)
	}
}

func TestExportImportRoundTrip(t *testing.T) {
	p, _, _ := reference(t)
	rows, scores := gen(13, 4000, fraud.Drift{Kind: fraud.NewCategory})
	rows[0][0] = float32(math.NaN()) // missing
	rows[1][1] = 1e30                // far upper tail
	rows[2][2] = -1e30               // far lower tail
	s := feed(t, p, rows, scores)
	data := s.Export()
	got, err := Import(p, data)
	if err != nil {
		t.Fatal(err)
	}
	if st, want := stateOf(got), stateOf(s); !equalState(&st, &want) {
		t.Error("imported state differs from the exported one")
	}
	if again := got.Export(); !bytes.Equal(again, data) {
		t.Error("export of the import differs from the original export")
	}
	empty, _ := NewSketch(p)
	t.Logf("export: %d bytes for 4000 rows, %d bytes empty (%d counters)", len(data), len(empty.Export()), compile(p).nCounts)
	// MergeExport adds, as Merge does.
	sum, _ := NewSketch(p)
	if err := sum.MergeExport(data); err != nil {
		t.Fatal(err)
	}
	if err := sum.MergeExport(data); err != nil {
		t.Fatal(err)
	}
	if sum.Rows() != 8000 {
		t.Errorf("two merged exports: %d rows", sum.Rows())
	}
	// Another profile's sketch is refused by fingerprint.
	other := *p
	other.Features = p.Features[:5]
	if _, err := Import(&other, data); !errors.Is(err, ErrLayoutMismatch) {
		t.Errorf("import into another profile: %v, want ErrLayoutMismatch", err)
	}
	so, _ := NewSketch(&other)
	if err := so.Merge(s); !errors.Is(err, ErrLayoutMismatch) {
		t.Errorf("merge across profiles: %v", err)
	}
	if _, err := Compare(&other, s, DefaultThresholds()); !errors.Is(err, ErrLayoutMismatch) {
		t.Errorf("compare across profiles: %v", err)
	}
	// Truncations and flips are errors, never panics.
	l := compile(p)
	for i := range data {
		if _, err := decode(l, data[:i]); err == nil {
			t.Fatalf("a %d-byte prefix imported", i)
		}
	}
}

func equalState(a, b *state) bool {
	if len(a.counts) != len(b.counts) || len(a.sums) != len(b.sums) {
		return false
	}
	for i := range a.counts {
		if a.counts[i] != b.counts[i] {
			return false
		}
	}
	for i := range a.sums {
		if math.Float64bits(a.sums[i]) != math.Float64bits(b.sums[i]) {
			return false
		}
	}
	return true
}

func TestObserveDoesNotAllocate(t *testing.T) {
	p, rows, scores := reference(t)
	s, _ := NewSketch(p)
	clock := newFakeClock()
	w, _ := NewWindows(p, WindowConfig{Now: clock.Now})
	i := 0
	f := func() {
		r := rows[i%len(rows)]
		if err := s.Observe(r, scores[i%len(rows)]); err != nil {
			t.Fatal(err)
		}
		if err := w.Observe(r, scores[i%len(rows)]); err != nil {
			t.Fatal(err)
		}
		if i%500 == 0 {
			clock.Add(time.Minute) // rotations on the hot path too
		}
		i++
	}
	f() // first use creates the shards
	if n := testing.AllocsPerRun(2000, f); n != 0 {
		t.Errorf("Observe allocates %v times per row", n)
	}
	if err := s.Observe(rows[0][:3], 0); !errors.Is(err, ErrRowWidth) {
		t.Errorf("short row: %v", err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = s.Observe(rows[0][:3], 0) }); n != 0 {
		t.Errorf("a rejected row allocates %v times", n)
	}
}

// TestConcurrentObserve runs writers against readers and rotations (for
// the race detector) and checks no row is lost or counted twice.
func TestConcurrentObserve(t *testing.T) {
	p, rows, scores := reference(t)
	clock := newFakeClock()
	w, _ := NewWindows(p, WindowConfig{Now: clock.Now, Shards: 3})
	s, _ := NewSketchShards(p, 2)
	const writers, per = 4, 2000
	var wg sync.WaitGroup
	for k := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				j := (k*per + i) % len(rows)
				_ = w.Observe(rows[j], scores[j])
				_ = s.Observe(rows[j], scores[j])
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 50 {
			clock.Add(time.Minute)
			_ = w.Snapshot(time.Hour)
			_ = s.Rows()
			_ = s.Export()
			if i%10 == 0 {
				w.Rotate()
			}
		}
	}()
	wg.Wait()
	<-done
	if got := w.Snapshot(24 * time.Hour).Rows(); got != writers*per {
		t.Errorf("windows counted %d rows, want %d", got, writers*per)
	}
	if got := s.Rows(); got != writers*per {
		t.Errorf("sketch counted %d rows, want %d", got, writers*per)
	}
}

func TestSketchResetClone(t *testing.T) {
	p, rows, scores := reference(t)
	s := feed(t, p, rows[:100], scores[:100])
	c := s.Clone()
	s.Reset()
	if s.Rows() != 0 || c.Rows() != 100 {
		t.Errorf("after reset: %d rows, clone %d", s.Rows(), c.Rows())
	}
	if s.MemoryBytes() <= c.MemoryBytes() {
		t.Errorf("an observed sketch (%d B) must cost more than its unsharded clone (%d B)", s.MemoryBytes(), c.MemoryBytes())
	}
}

func TestReportJSON(t *testing.T) {
	p, _, _ := reference(t)
	rows, scores := gen(14, 1500, fraud.Drift{Kind: fraud.CovariateShift, Field: fraud.FieldAmount})
	rows[5][0] = float32(math.Inf(1))
	rep := mustCompare(t, p, feed(t, p, rows, scores), DefaultThresholds())
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Count    int64 `json:"count"`
		Breach   bool  `json:"breach"`
		Features []map[string]any
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Count != 1500 || !got.Breach || len(got.Features) != fraud.NumFeatures+1 {
		t.Fatalf("report: count %d breach %v features %d", got.Count, got.Breach, len(got.Features))
	}
	amount := got.Features[0]
	for _, k := range []string{"input", "index", "name", "count", "psi", "js", "ks", "wasserstein", "reference", "current", "breach"} {
		if _, ok := amount[k]; !ok {
			t.Errorf("numeric feature lacks %q: %v", k, amount)
		}
	}
	if amount["name"] != "amount_log" || amount["missing"] != 1.0 || amount["breach"] != true {
		t.Errorf("amount_log: %v", amount)
	}
	cat := got.Features[fraud.FeatureOnline]
	for _, k := range []string{"psi", "js", "chi2_p"} {
		if _, ok := cat[k]; !ok {
			t.Errorf("categorical feature lacks %q", k)
		}
	}
	if _, ok := cat["ks"]; ok {
		t.Error("categorical feature has ks")
	}
	out := got.Features[len(got.Features)-1]
	if out["input"] != "probability" || out["output"] != true || out["positive_rate"] == nil {
		t.Errorf("output entry: %v", out)
	}
}
