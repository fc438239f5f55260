package runtime_test

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/ortlib"
	"github.com/modelgate/modelgate/internal/testmodels"
	"github.com/modelgate/modelgate/runtime"
)

func TestMain(m *testing.M) {
	if err := runtime.Init(ortlib.Path()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// dynamicAxes is onnxruntime_go's example: input_vectors FP32 [-1,10] ->
// output_scalars FP32 [-1], one scalar per row.
func loadDynamic(t testing.TB, cfg runtime.Config) *runtime.Model {
	t.Helper()
	m, err := runtime.Load(testmodels.Read(t, "example_dynamic_axes.onnx"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func rowsCall(rows int, seed float32) *runtime.Call {
	c := runtime.NewCall()
	in := c.AddInput()
	v := make([]float32, rows*10)
	for i := range v {
		v[i] = seed + float32(i)*0.01
	}
	in.SetFloat32s("input_vectors", []int64{int64(rows), 10}, v)
	return c
}

func TestSignature(t *testing.T) {
	m := loadDynamic(t, runtime.Config{Sessions: 1})
	sig := m.Signature()
	if len(sig.Inputs) != 1 || sig.Inputs[0].Name != "input_vectors" || sig.Inputs[0].DataType != runtime.FP32 ||
		fmt.Sprint(sig.Inputs[0].Shape) != "[-1 10]" {
		t.Fatalf("inputs = %+v", sig.Inputs)
	}
	if len(sig.Outputs) != 1 || fmt.Sprint(sig.Outputs[0].Shape) != "[-1]" {
		t.Fatalf("outputs = %+v", sig.Outputs)
	}
	if !sig.Batchable() {
		t.Fatal("dynamic-axes model should be batchable")
	}
}

// TestShapeCache runs more distinct batch sizes than the cache holds, twice,
// and checks every answer against the first computation of the same rows.
func TestShapeCache(t *testing.T) {
	m := loadDynamic(t, runtime.Config{Sessions: 1, ShapeCache: 2})
	want := map[int][]float32{}
	for round := 0; round < 2; round++ {
		for _, rows := range []int{1, 3, 7, 2, 1, 5, 3} {
			c := rowsCall(rows, 0.5)
			if err := m.Infer(c); err != nil {
				t.Fatal(err)
			}
			got := c.Outputs[0].Float32s()
			if len(got) != rows || fmt.Sprint(c.Outputs[0].Shape) != fmt.Sprint([]int64{int64(rows)}) {
				t.Fatalf("rows=%d: output shape %v len %d", rows, c.Outputs[0].Shape, len(got))
			}
			if w, ok := want[rows]; ok && fmt.Sprint(w) != fmt.Sprint(got) {
				t.Fatalf("rows=%d: %v then %v", rows, w, got)
			}
			want[rows] = got
		}
	}
	// Row i of a batch must equal the same row scored alone: the model is
	// row-wise, so a wrong copy in or out of the bound buffers shows here.
	c := rowsCall(5, 0.5)
	if err := m.Infer(c); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		one := runtime.NewCall()
		in := one.AddInput()
		in.SetFloat32s("input_vectors", []int64{1, 10}, c.Inputs[0].Float32s()[i*10:(i+1)*10])
		if err := m.Infer(one); err != nil {
			t.Fatal(err)
		}
		if a, b := one.Outputs[0].Float32(0), c.Outputs[0].Float32(i); a != b {
			t.Fatalf("row %d: alone %v, in batch %v", i, a, b)
		}
	}
}

func TestBadInputs(t *testing.T) {
	m := loadDynamic(t, runtime.Config{Sessions: 1})
	f := func(name string, mut func(c *runtime.Call), want any) {
		t.Helper()
		c := rowsCall(2, 0)
		mut(c)
		err := m.Infer(c)
		if err == nil || !runtime.IsCallerError(err) {
			t.Fatalf("%s: err = %v, want a caller error", name, err)
		}
		switch want.(type) {
		case *runtime.ShapeError:
			var se *runtime.ShapeError
			if !errors.As(err, &se) {
				t.Fatalf("%s: %v is not a ShapeError", name, err)
			}
		case *runtime.InputError:
			var ie *runtime.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("%s: %v is not an InputError", name, err)
			}
		}
	}
	f("unknown name", func(c *runtime.Call) { c.Inputs[0].Name = "nope" }, &runtime.InputError{})
	f("wrong dtype", func(c *runtime.Call) { c.Inputs[0].DataType = runtime.FP64 }, &runtime.InputError{})
	f("wrong rank", func(c *runtime.Call) { c.Inputs[0].Shape = []int64{20} }, &runtime.ShapeError{})
	f("wrong fixed dim", func(c *runtime.Call) { c.Inputs[0].Shape = []int64{4, 5} }, &runtime.ShapeError{})
	f("negative dim", func(c *runtime.Call) { c.Inputs[0].Shape = []int64{-2, 10} }, &runtime.ShapeError{})
	f("short data", func(c *runtime.Call) { c.Inputs[0].Data = c.Inputs[0].Data[:40] }, &runtime.InputError{})
	f("duplicate", func(c *runtime.Call) { c.Inputs = append(c.Inputs, c.Inputs[0]) }, &runtime.InputError{})
	f("missing", func(c *runtime.Call) { c.Inputs = c.Inputs[:0] }, &runtime.InputError{})
	// And the model still answers.
	if err := m.Infer(rowsCall(1, 0)); err != nil {
		t.Fatal(err)
	}
}

// close32 compares within a relative 1e-6: ORT's matrix kernels sum in a
// different order for different batch sizes, so the last bit may differ.
func close32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		d := a[i] - b[i]
		if d < 0 {
			d = -d
		}
		m := max(a[i], -a[i], b[i], -b[i], 1)
		if d > 1e-6*m {
			return false
		}
	}
	return true
}

// TestBatcherMatchesUnbatched scores the same calls with batching off and
// on, from 64 goroutines, and requires the same answers.
func TestBatcherMatchesUnbatched(t *testing.T) {
	plain := loadDynamic(t, runtime.Config{Sessions: 2})
	var batches, batchedRows sync.Map
	// MaxDelay is the longest allowed, so that batches form however slowly
	// the callers are scheduled (at 2 ms a busy machine could leave every
	// batch with a single call).
	batched := loadDynamic(t, runtime.Config{Sessions: 2, MaxBatch: 32, MaxDelay: time.Second, QueueTimeout: time.Minute,
		OnBatch: func(calls, rows int) { batches.Store(time.Now().UnixNano(), calls); batchedRows.Store(rows, true) }})
	const callers, per = 64, 20
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for g := 0; g < callers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				rows := 1 + (g+i)%3
				a, b := rowsCall(rows, float32(g)), rowsCall(rows, float32(g))
				if err := plain.Infer(a); err != nil {
					errs <- err
					return
				}
				if err := batched.Infer(b); err != nil {
					errs <- err
					return
				}
				if !close32(a.Outputs[0].Float32s(), b.Outputs[0].Float32s()) ||
					fmt.Sprint(a.Outputs[0].Shape) != fmt.Sprint(b.Outputs[0].Shape) {
					errs <- fmt.Errorf("rows=%d: unbatched %v %v, batched %v %v", rows,
						a.Outputs[0].Shape, a.Outputs[0].Float32s(), b.Outputs[0].Shape, b.Outputs[0].Float32s())
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	batchedRows.Range(func(k, _ any) bool {
		if k.(int) > 32 {
			t.Errorf("a batch of %d rows; MaxBatch is 32", k.(int))
		}
		return true
	})
	multi := false
	batches.Range(func(_, v any) bool { multi = multi || v.(int) > 1; return true })
	if !multi {
		t.Fatal("64 concurrent callers never formed a batch of more than one call")
	}
}

// TestBatcherNeverSplits sends one call larger than MaxBatch: it runs alone.
func TestBatcherNeverSplits(t *testing.T) {
	m := loadDynamic(t, runtime.Config{Sessions: 1, MaxBatch: 4})
	c := rowsCall(9, 1)
	if err := m.Infer(c); err != nil {
		t.Fatal(err)
	}
	if c.Outputs[0].Shape[0] != 9 {
		t.Fatalf("shape %v", c.Outputs[0].Shape)
	}
}

func TestSlotDrainsBeforeClosing(t *testing.T) {
	before := runtime.SessionsAlive()
	m, err := runtime.Load(testmodels.Read(t, "example_dynamic_axes.onnx"), runtime.Config{Sessions: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := runtime.SessionsAlive() - before; got != 2 {
		t.Fatalf("%d sessions created, want 2", got)
	}
	s := runtime.NewSlot("dyn", "1", m)
	if !s.Acquire() {
		t.Fatal("a fresh slot refused a call")
	}
	s.Retire()
	select {
	case <-s.Drained():
		t.Fatal("slot drained with a call in flight")
	default:
	}
	if s.Acquire() {
		// Still acquirable while a call is in flight is fine; give it back.
		s.Release()
	}
	if err := m.Infer(rowsCall(1, 0)); err != nil {
		t.Fatalf("in-flight call failed after retire: %v", err)
	}
	s.Release()
	<-s.Drained()
	if s.Acquire() {
		t.Fatal("a drained slot accepted a call")
	}
	if got := runtime.SessionsAlive(); got != before {
		t.Fatalf("%d sessions alive after drain, want %d", got, before)
	}
	if err := m.Infer(rowsCall(1, 0)); !errors.Is(err, runtime.ErrClosed) {
		t.Fatalf("closed model: err = %v", err)
	}
}

func TestInitErrors(t *testing.T) {
	if err := runtime.Init("/nonexistent/libonnxruntime.so.1"); err == nil {
		t.Fatal("loading a second library path succeeded")
	}
}
