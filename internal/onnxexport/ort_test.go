package onnxexport_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/modelgate/modelgate/internal/ortlib"
	ort "github.com/yalue/onnxruntime_go"
)

// TestMain loads ONNX Runtime once for the package: the parity tests run the
// exported bytes through the real runtime.
func TestMain(m *testing.M) {
	ort.SetSharedLibraryPath(ortlib.Path())
	if err := ort.InitializeEnvironment(); err != nil {
		fmt.Fprintf(os.Stderr, "onnxexport tests: cannot load ONNX Runtime from %s (set %s or run `make ort`): %v\n",
			ortlib.Path(), ortlib.EnvVar, err)
		os.Exit(1)
	}
	code := m.Run()
	ort.DestroyEnvironment()
	os.Exit(code)
}

// runORT scores rows (row-major, f features each) with model in batches of
// batch rows (the last one may be shorter) and returns one probability per row.
func runORT(t *testing.T, model []byte, rows []float32, f, batch int) []float32 {
	t.Helper()
	opts, err := ort.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer opts.Destroy()
	if err := opts.SetIntraOpNumThreads(1); err != nil {
		t.Fatal(err)
	}
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(model, []string{"features"}, []string{"probability"}, opts)
	if err != nil {
		t.Fatalf("ONNX Runtime rejected the model: %v", err)
	}
	defer s.Destroy()
	n := len(rows) / f
	out := make([]float32, 0, n)
	for lo := 0; lo < n; lo += batch {
		b := min(batch, n-lo)
		in, err := ort.NewTensor(ort.NewShape(int64(b), int64(f)), rows[lo*f:(lo+b)*f])
		if err != nil {
			t.Fatal(err)
		}
		res, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(b), 1))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Run([]ort.Value{in}, []ort.Value{res}); err != nil {
			t.Fatalf("run of batch %d at row %d: %v", b, lo, err)
		}
		out = append(out, res.GetData()...)
		in.Destroy()
		res.Destroy()
	}
	return out
}
