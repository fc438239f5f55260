package shadow

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/onnxexport"
	"github.com/modelgate/modelgate/internal/ortlib"
	"github.com/modelgate/modelgate/internal/train"
	"github.com/modelgate/modelgate/runtime"
)

func TestMain(m *testing.M) {
	if err := runtime.Init(ortlib.Path()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// features is the width of the test models' input.
const features = 4

// logisticSlot exports a logistic regression with the given weights to
// ONNX, loads it in ONNX Runtime and wraps it in a slot, retired at the
// test's end.
func logisticSlot(t testing.TB, version int, weights []float32, bias float32) *runtime.Slot {
	t.Helper()
	lr := &train.LogisticRegression{
		Scaler:  train.Standardizer{Mean: make([]float32, len(weights)), Std: ones(len(weights))},
		Weights: weights, Bias: bias,
	}
	onnx, err := onnxexport.Logistic(lr, onnxexport.Metadata{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := runtime.Load(onnx, runtime.Config{Sessions: 1})
	if err != nil {
		t.Fatal(err)
	}
	s := runtime.NewSlot("fraud", fmt.Sprint(version), m)
	t.Cleanup(s.Retire)
	return s
}

func ones(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = 1
	}
	return v
}

// scored runs rows through slot the way the gateway would and returns the
// call, whose Inputs and Outputs make a Request.
func scored(t testing.TB, s *runtime.Slot, rows [][]float32) *runtime.Call {
	t.Helper()
	c := runtime.NewCall()
	var flat []float32
	for _, r := range rows {
		flat = append(flat, r...)
	}
	c.AddInput().SetFloat32s(onnxexport.InputName, []int64{int64(len(rows)), features}, flat)
	if !s.Acquire() {
		t.Fatal("slot retired")
	}
	defer s.Release()
	if err := s.Model.Infer(c); err != nil {
		t.Fatal(err)
	}
	return c
}

// collector is an Observer that keeps deep copies of outcomes and can hold
// the worker: while gate is non-nil, each ObserveShadow signals entered
// and waits for gate to close.
type collector struct {
	out     chan Outcome
	entered chan struct{}
	gate    chan struct{}
}

func newCollector(n int) *collector {
	return &collector{out: make(chan Outcome, n), entered: make(chan struct{}, n)}
}

func (c *collector) ObserveShadow(o *Outcome) {
	if c.gate != nil {
		c.entered <- struct{}{}
		<-c.gate
	}
	k := *o
	k.RequestID = append([]byte(nil), o.RequestID...)
	k.Inputs = copyTensors(nil, o.Inputs)
	k.ChampionOutputs = copyTensors(nil, o.ChampionOutputs)
	k.Outputs = copyTensors(nil, o.Outputs)
	c.out <- k
}

// next waits for an outcome; only a hang takes a minute.
func (c *collector) next(t testing.TB) Outcome {
	t.Helper()
	select {
	case o := <-c.out:
		return o
	case <-time.After(time.Minute):
		t.Fatal("no shadow outcome within a minute")
		return Outcome{}
	}
}

func waitEntered(t testing.TB, c *collector) {
	t.Helper()
	select {
	case <-c.entered:
	case <-time.After(time.Minute):
		t.Fatal("the worker never reached the observer")
	}
}

func newMirror(t testing.TB, cfg MirrorConfig) *Mirror {
	t.Helper()
	m, err := NewMirror(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}
