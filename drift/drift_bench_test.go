package drift

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/fraud"
)

// sink keeps results alive so the compiler cannot drop the work.
var sink any

// benchRows are 1,024 undrifted 30-feature rows and their scores.
func benchRows(b *testing.B) (*Profile, [][]float32, []float32) {
	p, _, _ := reference(b)
	rows, scores := gen(31, 1024, fraud.Drift{})
	return p, rows, scores
}

// BenchmarkObserve is one 30-feature row (and its score) into a sketch,
// from one goroutine: the fraud demo's rows (13 numeric, 17 categorical
// features), and a worst case of 30 numeric right-skewed features whose
// grids all take a square root.
func BenchmarkObserve(b *testing.B) {
	run := func(b *testing.B, p *Profile, rows [][]float32, scores []float32) {
		s, _ := NewSketch(p)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			_ = s.Observe(rows[i&1023], scores[i&1023])
			i++
		}
		sink = s
	}
	b.Run("fraud", func(b *testing.B) {
		p, rows, scores := benchRows(b)
		run(b, p, rows, scores)
	})
	b.Run("numeric30-sqrt", func(b *testing.B) {
		r := rand.New(rand.NewPCG(3, 4))
		lognormal := func() [][]float32 {
			rows := make([][]float32, 1024)
			for i := range rows {
				rows[i] = make([]float32, 30)
				for k := range rows[i] {
					rows[i][k] = float32(math.Exp(r.NormFloat64()))
				}
			}
			return rows
		}
		pb := NewProfileBuilder(ProfileOptions{})
		for range 10 {
			for _, row := range lognormal() {
				_ = pb.AddScored(row, float32(r.Float64()))
			}
		}
		p, err := pb.Build()
		if err != nil {
			b.Fatal(err)
		}
		for _, f := range p.Features {
			if f.Numeric == nil || f.Numeric.Grid.Scale != ScaleSqrt {
				b.Fatalf("%s is not on a sqrt grid", f.Label())
			}
		}
		scores := make([]float32, 1024)
		run(b, p, lognormal(), scores)
	})
}

// BenchmarkObserveParallel is the same from every P at once: shards keep
// the cores off each other's counters.
func BenchmarkObserveParallel(b *testing.B) {
	for _, c := range []struct {
		name   string
		shards int
	}{{"shards=GOMAXPROCS", 0}, {"shards=1", 1}} {
		b.Run(c.name, func(b *testing.B) {
			p, rows, scores := benchRows(b)
			s, _ := NewSketchShards(p, c.shards)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					_ = s.Observe(rows[i&1023], scores[i&1023])
					i++
				}
			})
			sink = s
		})
	}
}

// BenchmarkWindowsObserve is the hot path as the gateway will run it: the
// clock read, the window check and the row; serial (the latency one request
// adds) and from every P (throughput).
func BenchmarkWindowsObserve(b *testing.B) {
	p, rows, scores := benchRows(b)
	b.Run("serial", func(b *testing.B) {
		w, _ := NewWindows(p, WindowConfig{})
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			_ = w.Observe(rows[i&1023], scores[i&1023])
			i++
		}
		sink = w
	})
	b.Run("parallel", func(b *testing.B) {
		w, _ := NewWindows(p, WindowConfig{})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				_ = w.Observe(rows[i&1023], scores[i&1023])
				i++
			}
		})
		sink = w
	})
}

// BenchmarkCompare is one report (31 features) of a 5,000-row sketch.
func BenchmarkCompare(b *testing.B) {
	p, _, _ := reference(b)
	rows, scores := gen(32, 5000, fraud.Drift{Kind: fraud.CovariateShift, Field: fraud.FieldAmount})
	s := feed(b, p, rows, scores)
	th := DefaultThresholds()
	b.ReportAllocs()
	for b.Loop() {
		r, _ := Compare(p, s, th)
		sink = r
	}
}

// BenchmarkSnapshotHour merges a full hour of minute windows.
func BenchmarkSnapshotHour(b *testing.B) {
	p, rows, scores := benchRows(b)
	clock := newFakeClock()
	w, _ := NewWindows(p, WindowConfig{Now: clock.Now})
	for range 60 {
		for i := range 100 {
			_ = w.Observe(rows[i], scores[i])
		}
		clock.Add(time.Minute)
	}
	b.ReportAllocs()
	for b.Loop() {
		sink = w.Snapshot(time.Hour)
	}
}

// BenchmarkExport encodes a 5,000-row sketch.
func BenchmarkExport(b *testing.B) {
	p, _, _ := reference(b)
	rows, scores := gen(33, 5000, fraud.Drift{})
	s := feed(b, p, rows, scores)
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		buf = s.AppendExport(buf[:0])
	}
	b.ReportMetric(float64(len(buf)), "bytes/export")
}
