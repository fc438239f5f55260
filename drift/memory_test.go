package drift

import (
	"math/rand/v2"
	"testing"
)

// TestMemoryPerVersion records (and bounds) the memory of one version's
// drift state at the default window configuration: the fraud demo profile,
// and a worst case of 30 continuous features.
func TestMemoryPerVersion(t *testing.T) {
	p, _, _ := reference(t)
	f := func(name string, p *Profile, budget int) {
		t.Helper()
		w, err := NewWindows(p, WindowConfig{Shards: 2})
		if err != nil {
			t.Fatal(err)
		}
		l := compile(p)
		m := w.MemoryBytes()
		t.Logf("%s: %d counters, %.1f KB per window copy, windows %.2f MB (60 windows + 25 buckets + 2 shards)",
			name, l.nCounts, float64(4*l.nCounts)/1e3, float64(m)/1e6)
		if m > budget {
			t.Errorf("%s: %d bytes, budget %d", name, m, budget)
		}
	}
	f("fraud demo", p, 5<<20)
	// 30 continuous features (normal noise) and a score.
	r := rand.New(rand.NewPCG(1, 2))
	b := NewProfileBuilder(ProfileOptions{})
	row := make([]float32, 30)
	for range 10000 {
		for i := range row {
			row[i] = float32(r.NormFloat64())
		}
		_ = b.AddScored(row, float32(r.Float64()))
	}
	q, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	f("30 continuous", q, 12<<20)
}
