package shadow

import (
	"fmt"
	"testing"
)

// TestEnqueueDoesNotAllocate pins the hot path at zero allocations, as
// fasthttp's allocation tests do. The pooled copies are warmed first (each
// grows its buffers once), then the only worker is held inside the
// observer so that only Enqueue runs while allocations are counted
// (AllocsPerRun counts every goroutine's).
func TestEnqueueDoesNotAllocate(t *testing.T) {
	champ := logisticSlot(t, 1, []float32{0.5, -0.2, 0.1, 0.3}, 0)
	sh := logisticSlot(t, 2, []float32{0.6, -0.1, 0.1, 0.2}, 0.1)
	const size = 256
	col := newCollector(size)
	m := newMirror(t, MirrorConfig{QueueSize: size, Workers: 1, Observer: col})
	c := scored(t, champ, [][]float32{row(1), row(2), row(3)})
	r := &Request{ID: "req-000001", Champion: 1, Inputs: c.Inputs, ChampionOutputs: c.Outputs, Shadows: []Target{{2, sh}}}
	for i := range size {
		if !m.Enqueue(r) {
			t.Fatalf("warm-up copy %d not queued", i)
		}
	}
	for range size {
		col.next(t)
	}
	col.gate = make(chan struct{})
	defer close(col.gate)
	m.Enqueue(r)
	waitEntered(t, col)
	ids := make([]string, 101)
	for i := range ids {
		ids[i] = fmt.Sprintf("req-%06d", i) // same length: no buffer grows
	}
	i := 0
	allocs := testing.AllocsPerRun(100, func() {
		r.ID = ids[i]
		i++
		if !m.Enqueue(r) {
			t.Fatal("copy not queued: the warm-up left too few")
		}
	})
	if allocs != 0 {
		t.Fatalf("Enqueue allocates %.1f times per call, want 0", allocs)
	}
	if s := m.Stats(); s.Dropped != 0 || s.Enqueued != size+1+101 {
		t.Fatalf("stats %+v", s)
	}
}
