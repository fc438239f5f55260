package runtime_test

import (
	"sync"
	"testing"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/runtime"
)

var (
	benchOnce       sync.Once
	benchLR, benchM []byte
	benchErr        error
)

// benchModels trains the demo LR and a 2×128 MLP once per test binary.
func benchModels(b *testing.B) (lr, mlp []byte) {
	benchOnce.Do(func() {
		if benchLR, benchErr = demo.FraudModel(demo.DefaultSeed); benchErr != nil {
			return
		}
		benchM, benchErr = demo.FraudMLP(demo.DefaultSeed, 128)
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchLR, benchM
}

func demoRow() []float32 {
	r := demo.SampleRequestRow(1)
	return r[:]
}

// BenchmarkORTRun is the floor: one AdvancedSession.Run of the demo model on
// preallocated tensors, straight through onnxruntime_go.
func BenchmarkORTRun(b *testing.B) {
	lr, _ := benchModels(b)
	in, err := ort.NewTensor(ort.NewShape(1, 30), demoRow())
	if err != nil {
		b.Fatal(err)
	}
	defer in.Destroy()
	out, err := ort.NewEmptyTensor[float32](ort.NewShape(1, 1))
	if err != nil {
		b.Fatal(err)
	}
	defer out.Destroy()
	opts, _ := ort.NewSessionOptions()
	opts.SetIntraOpNumThreads(1)
	opts.SetInterOpNumThreads(1)
	s, err := ort.NewAdvancedSessionWithONNXData(lr, []string{"features"}, []string{"probability"}, []ort.Value{in}, []ort.Value{out}, opts)
	opts.Destroy()
	if err != nil {
		b.Fatal(err)
	}
	defer s.Destroy()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.Run(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkModelInfer is runtime's path for one demo row: signature check,
// session from the pool, copy in, bound run, copy out.
func BenchmarkModelInfer(b *testing.B) {
	lr, _ := benchModels(b)
	m, err := runtime.Load(lr, runtime.Config{Sessions: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	c := runtime.NewCall()
	c.AddInput().SetFloat32s("features", []int64{1, 30}, demoRow())
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := m.Infer(c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBatcher scores one-row calls of the 2×128 MLP from 64 concurrent
// callers with the batcher off and on. Compare rows/s.
func BenchmarkBatcher(b *testing.B) {
	_, mlp := benchModels(b)
	for _, bc := range []struct {
		name string
		cfg  runtime.Config
	}{
		{"off", runtime.Config{}},
		{"on", runtime.Config{MaxBatch: 64, MaxDelay: 200 * time.Microsecond}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			m, err := runtime.Load(mlp, bc.cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			b.ReportAllocs()
			b.SetParallelism(32) // 32 × GOMAXPROCS(2) = 64 callers
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				c := runtime.NewCall()
				c.AddInput().SetFloat32s("features", []int64{1, 30}, demoRow())
				for pb.Next() {
					if err := m.Infer(c); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rows/s")
		})
	}
}
