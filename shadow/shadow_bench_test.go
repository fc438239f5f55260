package shadow

import (
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

var sink atomic.Bool

// BenchmarkEnqueue measures the hot path: copying one scored request (3
// rows of 4 features) into the mirror. "copied": the worker is held and the
// benchmark hands each copy back itself (two channel operations included),
// so every offer takes the copy path. "full": every P offers copies for a
// real shadow, which ONNX Runtime runs far slower than Enqueue offers, so
// most offers find the pool empty and are skipped (dropped/op says how
// many). Neither may allocate.
func BenchmarkEnqueue(b *testing.B) {
	champ := logisticSlot(b, 1, []float32{0.5, -0.2, 0.1, 0.3}, 0)
	sh := logisticSlot(b, 2, []float32{0.6, -0.1, 0.1, 0.2}, 0.1)
	c := scored(b, champ, [][]float32{row(1), row(2), row(3)})
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = "req-" + strconv.Itoa(100000+i)
	}
	b.Run("copied", func(b *testing.B) {
		col := newCollector(1)
		col.gate = make(chan struct{})
		defer close(col.gate)
		m := newMirror(b, MirrorConfig{QueueSize: 16, Nice: -1, Observer: col})
		r := Request{Champion: 1, Time: time.Now(), Inputs: c.Inputs, ChampionOutputs: c.Outputs, Shadows: []Target{{2, sh}}}
		m.Enqueue(&r)
		waitEntered(b, col)
		for range 32 { // warm every pooled copy
			m.Enqueue(&r)
			m.free <- <-m.queue
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			r.ID = ids[i%len(ids)]
			sink.Store(m.Enqueue(&r))
			m.free <- <-m.queue
		}
		b.StopTimer()
		if s := m.Stats(); s.Dropped != 0 {
			b.Fatalf("%d copies dropped", s.Dropped)
		}
	})
	b.Run("full", func(b *testing.B) {
		m := newMirror(b, MirrorConfig{QueueSize: 1024, Nice: -1})
		for range 4096 {
			m.Enqueue(&Request{ID: "req-000000", Inputs: c.Inputs, ChampionOutputs: c.Outputs, Shadows: []Target{{2, sh}}})
		}
		before := m.Stats()
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			r := Request{Champion: 1, Time: time.Now(), Inputs: c.Inputs, ChampionOutputs: c.Outputs, Shadows: []Target{{2, sh}}}
			i := 0
			for pb.Next() {
				r.ID = ids[i%len(ids)]
				i++
				sink.Store(m.Enqueue(&r))
			}
		})
		b.StopTimer()
		s := m.Stats()
		b.ReportMetric(float64(s.Dropped-before.Dropped)/float64(s.Served-before.Served), "dropped/op")
	})
}

// BenchmarkRecordComparison measures counting one compared row into a
// pair's window, the per-row cost of a mirrored request's statistics.
func BenchmarkRecordComparison(b *testing.B) {
	cs, err := NewComparisons(CompareConfig{})
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	champ, shadow := make([]float64, 1024), make([]float64, 1024)
	for i := range champ {
		champ[i] = r.Float64()
		shadow[i] = min(1, max(0, champ[i]+r.NormFloat64()*0.05))
	}
	now := time.Now()
	p := Pair{1, 2}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = cs.RecordRow(now, p, champ[i&1023], shadow[i&1023])
	}
}

// BenchmarkComparisonRecordRow is the same without the window lookup and
// lock: the sketch, table and moments alone.
func BenchmarkComparisonRecordRow(b *testing.B) {
	c := NewComparison(0.5)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		v := float64(i&1023) / 1024
		_ = c.RecordRow(v, v+0.01)
	}
}

// BenchmarkEvaluationAdd measures counting one labelled prediction.
func BenchmarkEvaluationAdd(b *testing.B) {
	e, _ := NewEvaluation(EvalConfig{})
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = e.Add(float64(i&1023)/1024, float64(i&1))
	}
}
