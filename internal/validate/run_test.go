package validate

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/modelgate/modelgate/internal/onnxexport"
	"strings"
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/fraud"
	"github.com/modelgate/modelgate/internal/onnxpb"
	"github.com/modelgate/modelgate/internal/ortlib"
	"github.com/modelgate/modelgate/runtime"
	"google.golang.org/protobuf/proto"
)

// run runs the gate in a real child process.
func run(t *testing.T, onnx []byte, opts Options) *Report {
	t.Helper()
	opts.Binary = modelgateBinary(t)
	r, err := Run(context.Background(), onnx, opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Fatal(err)
	}
	return r
}

// rejected checks that r failed at check and that its reason says want.
func rejected(t *testing.T, name string, r *Report, check string, want ...string) {
	t.Helper()
	if r.Passed {
		t.Fatalf("%s: passed: %+v", name, r)
	}
	if c, ok := r.Check(check); !ok || c.OK {
		t.Fatalf("%s: check %s = %+v, %v; reason %q", name, check, c, ok, r.Reason)
	}
	for _, w := range want {
		if !strings.Contains(r.Reason, w) {
			t.Fatalf("%s: reason %q does not say %q", name, r.Reason, w)
		}
	}
}

func TestRunDemoPasses(t *testing.T) {
	onnx := demoModel(t)
	r := run(t, onnx, Options{})
	if !r.Passed || r.Reason != "" {
		t.Fatalf("demo model did not pass: %+v", r)
	}
	for _, name := range []string{CheckSize, CheckParse, CheckHeader, CheckExternalData, CheckTensors, CheckLoad, CheckSmoke, CheckLatency} {
		if c, ok := r.Check(name); !ok || !c.OK {
			t.Fatalf("check %s = %+v, %v", name, c, ok)
		}
	}
	s := r.Signature
	if s == nil || s.Source != "onnxruntime" || len(s.Inputs) != 1 || len(s.Outputs) != 1 ||
		s.Inputs[0].Name != "features" || s.Inputs[0].Datatype != "FP32" || s.Outputs[0].Name != "probability" {
		t.Fatalf("signature = %+v", s)
	}
	if r.ONNXRuntime == "" || r.Latency == nil || r.Latency.Runs != DefaultLatencyRuns || r.Latency.P99 <= 0 ||
		r.Digest == "" || r.Size != int64(len(onnx)) || r.Timings.Load <= 0 || r.Timings.Total < r.Timings.Load {
		t.Fatalf("report incomplete: %+v", r)
	}
}

// TestRunRejects: every bad model comes back as a failed report with a
// reason, never as a Run error.
func TestRunRejects(t *testing.T) {
	good := demoModel(t)
	f := func(name string, onnx []byte, check string, want ...string) {
		t.Helper()
		rejected(t, name, run(t, onnx, Options{}), check, want...)
	}
	f("malformed", []byte("<html>not a model</html>"), CheckParse, "not an ONNX model")
	f("truncated", good[:len(good)/2], CheckParse, "not an ONNX model", "truncated")
	f("random bytes", randomBytes(1<<16), CheckParse, "not an ONNX model")
	f("100 GB initializer", hugeInitModel(t), CheckTensors, `initializer "huge"`, "93.1 GiB", "over the limit")
	f("external data", externalModel(t), CheckExternalData, "models that reference external data files are refused")
	r0 := run(t, smokeFailModel(t), Options{Golden: smokeFailGolden()})
	rejected(t, "golden inputs fail the smoke run", r0, CheckSmoke, "smoke run on golden pair 0's inputs failed", "MatMul")
	f("ORT refuses", marshal(t, graphModel(&onnxpb.GraphProto{
		Node:   []*onnxpb.NodeProto{node("NoSuchOp", []string{"x"}, "y")},
		Input:  []*onnxpb.ValueInfoProto{fp32Info("x", 1)},
		Output: []*onnxpb.ValueInfoProto{fp32Info("y", 1)},
	})), CheckLoad, "ONNX Runtime cannot load the model", "NoSuchOp")
	r := run(t, good, Options{Limits: Limits{MaxModelBytes: 100}})
	rejected(t, "over the size limit", r, CheckSize, "over the limit of 100 bytes")
}

// TestRunHugeAllocation: a model that asks ONNX Runtime for 8 GB at its
// first run fails under the child's memory limit instead of taking memory
// from the machine. Shape inference cannot see the size: it comes from an
// input-dependent Expand.
func TestRunHugeAllocation(t *testing.T) {
	shape := &onnxpb.TensorProto{Name: proto.String("shape"), Dims: []int64{1},
		DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Int64Data: []int64{2 << 30}}
	onnx := marshal(t, graphModel(&onnxpb.GraphProto{
		Node:        []*onnxpb.NodeProto{node("Expand", []string{"x", "shape"}, "y")},
		Initializer: []*onnxpb.TensorProto{shape},
		Input:       []*onnxpb.ValueInfoProto{fp32Info("x", -1)},
		Output:      []*onnxpb.ValueInfoProto{fp32Info("y", -1)},
	}))
	r := run(t, onnx, Options{MaxMemory: 2 << 30})
	// Refused for the allocation, not for a timeout: a child without its
	// limit also fails this model, by running out of time. The allocation
	// is refused on zero inputs, where an ordinary ORT error is only a
	// warning: running out of memory must still refuse.
	refusedForMemory(t, r, 8<<30)
	if len(r.Warnings) != 0 {
		t.Fatalf("the refusal was also recorded as a warning: %q", r.Warnings)
	}
}

func TestRunGolden(t *testing.T) {
	res, err := demo.TrainFraudModel(demo.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := demo.SampleRows(1, 3)
	want := res.Model.Predict(x[:fraud.NumFeatures]) // first row, from the Go model
	pair := func(p float64) GoldenPair {
		data := make([]any, len(x))
		for i, v := range x {
			data[i] = float64(v)
		}
		return GoldenPair{
			Inputs:  []GoldenTensor{{Name: "features", Shape: []int64{3, fraud.NumFeatures}, Datatype: "FP32", Data: data}},
			Outputs: []GoldenTensor{{Name: "probability", Datatype: "FP32", Data: []any{p, anyPred(res.Model, x, 1), anyPred(res.Model, x, 2)}}},
		}
	}
	r := run(t, res.ONNX, Options{Golden: []GoldenPair{pair(float64(want))}, Tolerance: 1e-4})
	if !r.Passed {
		t.Fatalf("golden pair from the Go model failed: %s", r.Reason)
	}
	if c, ok := r.Check(CheckGolden); !ok || !c.OK || !strings.Contains(c.Detail, "1 pairs, 1 outputs") {
		t.Fatalf("golden check = %+v", c)
	}
	r = run(t, res.ONNX, Options{Golden: []GoldenPair{pair(float64(want) + 0.01)}, Tolerance: 1e-4})
	rejected(t, "golden outside tolerance", r, CheckGolden, `golden pair 0 output "probability" [0]`, "tolerance 0.0001")

	bad := pair(float64(want))
	bad.Outputs[0].Name = "score"
	rejected(t, "golden names no output", run(t, res.ONNX, Options{Golden: []GoldenPair{bad}}), CheckGolden, `no output "score"`)
	bad = pair(float64(want))
	bad.Inputs[0].Shape = []int64{1, 3 * fraud.NumFeatures}
	// The first pair's inputs are the smoke run; a later pair's fail at
	// the golden check.
	rejected(t, "golden input wrong shape", run(t, res.ONNX, Options{Golden: []GoldenPair{bad}}), CheckSmoke,
		"smoke run on golden pair 0's inputs failed", "does not match")
	rejected(t, "second golden input wrong shape", run(t, res.ONNX, Options{Golden: []GoldenPair{pair(float64(want)), bad}}), CheckGolden,
		"golden pair 1: the model cannot run its inputs", "does not match")

	// Malformed pairs are the caller's error, found before any child runs.
	bad = pair(float64(want))
	bad.Inputs[0].Data = bad.Inputs[0].Data[:5]
	_, err = Run(context.Background(), res.ONNX, Options{Binary: "/nonexistent", Golden: []GoldenPair{bad}})
	var ge *GoldenError
	if !errors.As(err, &ge) || ge.Pair != 0 || !strings.Contains(err.Error(), "has 5 values") {
		t.Fatalf("malformed golden pair: %v", err)
	}
}

func anyPred(m interface{ Predict([]float32) float32 }, x []float32, row int) any {
	return float64(m.Predict(x[row*fraud.NumFeatures : (row+1)*fraud.NumFeatures]))
}

func TestRunLatencyBudget(t *testing.T) {
	r := run(t, demoModel(t), Options{LatencyBudget: time.Nanosecond, LatencyRuns: 20})
	rejected(t, "1ns budget", r, CheckLatency, "p99 latency", "over 20 runs is over the budget of 1ns")
	if r.Latency == nil || r.Latency.Runs != 20 || r.Latency.Budget != time.Nanosecond {
		t.Fatalf("latency = %+v", r.Latency)
	}
	r = run(t, demoModel(t), Options{LatencyBudget: 10 * time.Second, LatencyRuns: 20})
	if !r.Passed {
		t.Fatalf("10s budget: %s", r.Reason)
	}
}

func TestRunTimeoutKillsChild(t *testing.T) {
	t.Setenv(EnvTestSleep, "30s")
	start := time.Now()
	r := run(t, demoModel(t), Options{Timeout: 300 * time.Millisecond})
	rejected(t, "hanging child", r, CheckProcess, "validation timed out after 300ms")
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Run took %s: the child was not killed on time", took)
	}
}

func TestRunCrash(t *testing.T) {
	f := func(hook string, want ...string) {
		t.Helper()
		t.Setenv(EnvTestCrash, hook)
		r := run(t, demoModel(t), Options{})
		rejected(t, "crash "+hook, r, CheckProcess, want...)
	}
	// SIGSEGV is caught by the Go runtime, as a segfault inside ONNX Runtime
	// would be: a dump and exit status 2.
	f("segv", "the validator crashed", "SIGSEGV: segmentation violation")
	// SIGKILL cannot be caught: the child dies by the signal.
	f("kill", "the validator crashed: signal: killed")
}

func TestRunErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, demoModel(t), Options{Binary: modelgateBinary(t)}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
	if _, err := Run(context.Background(), demoModel(t), Options{Binary: "/nonexistent/modelgate"}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("missing binary: %v", err)
	}
	// ONNX Runtime missing: the gate cannot run; that is not the model's fault.
	_, err := Run(context.Background(), demoModel(t), Options{Binary: modelgateBinary(t), ORTLib: "/nonexistent/libonnxruntime.so"})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("missing ORT: %v", err)
	}
	for _, o := range []Options{{Timeout: -1}, {MaxMemory: 1 << 20}, {Tolerance: -1}, {LatencyRuns: -1}, {IntraOpThreads: 1000}} {
		if _, err := Run(context.Background(), demoModel(t), o); err == nil {
			t.Fatalf("Run accepted %+v", o)
		}
	}
}

// TestLocal runs the in-process half directly (what the child runs).
func TestLocal(t *testing.T) {
	r, err := Local(demoModel(t), Options{ORTLib: ortlib.Path(), LatencyRuns: 5})
	if err != nil || !r.Passed {
		t.Fatalf("Local = %+v, %v", r, err)
	}
	if runtime.Version() == "" {
		t.Fatal("Local did not load ONNX Runtime")
	}
	r, err = Local(smokeFailModel(t), Options{ORTLib: ortlib.Path(), Golden: smokeFailGolden()})
	if err != nil {
		t.Fatal(err)
	}
	rejected(t, "local smoke", r, CheckSmoke, "smoke run on golden pair 0's inputs failed", "MatMul")
}

// smokeFailGolden is a golden pair for smokeFailModel whose input has the
// wrong inner dimension (1 where its MatMul needs 3).
func smokeFailGolden() []GoldenPair {
	return []GoldenPair{{
		Inputs:  []GoldenTensor{{Name: "x", Shape: []int64{1, 1}, Datatype: "FP32", Data: []any{1.0}}},
		Outputs: []GoldenTensor{{Name: "y", Shape: []int64{1, 2}, Datatype: "FP32", Data: []any{1.0, 2.0}}},
	}}
}

// TestRunZeroHostileModelsPassWithAWarning: one model per kind of input
// zeros are no valid value for (a shape for Reshape and Expand, Resize's
// scales, Split's sizes, an integer divisor, Slice's step, Unsqueeze's
// axes). Without golden pairs the smoke run's ORT error on zeros is a
// warning in the report, and the model passes.
func TestRunZeroHostileModelsPassWithAWarning(t *testing.T) {
	want := map[string]string{
		"reshape":   "dimension with value zero exceeds",
		"expand":    "invalid expand shape",
		"resize":    "Scale value should be greater than 0",
		"split":     "Cannot split using values in 'split'",
		"intdiv":    "Integer division by zero",
		"slice":     "'step' value cannot be 0",
		"unsqueeze": "'axes' has a duplicate axis",
	}
	for _, m := range onnxexport.ZeroHostileModels() {
		t.Run(m.Name, func(t *testing.T) {
			r := run(t, m.ONNX, Options{LatencyRuns: 5})
			if !r.Passed {
				t.Fatalf("refused: %s", r.Reason)
			}
			c, _ := r.Check(CheckSmoke)
			if !c.OK || !c.Warning || !strings.Contains(c.Detail, "zero inputs") || !strings.Contains(c.Detail, want[m.Name]) {
				t.Fatalf("smoke check = %+v, want a passed check warning of ORT's %q on zero inputs", c, want[m.Name])
			}
			t.Logf("warning: %s", c.Detail)
			if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], want[m.Name]) {
				t.Fatalf("warnings = %q", r.Warnings)
			}
			if l, ok := r.Check(CheckLatency); !ok || !l.OK || !strings.Contains(l.Detail, "not measured") {
				t.Fatalf("latency check = %+v: there is no input to time", l)
			}
		})
	}
}

// TestRunGoldenInputsAreTheSmokeRun: with golden pairs registered, the
// smoke run uses their inputs (zeros would fail this model) and the model
// is timed on them.
func TestRunGoldenInputsAreTheSmokeRun(t *testing.T) {
	m := onnxexport.ReshapeModel()
	in := m.Calls[0]
	pair := GoldenPair{
		Inputs: []GoldenTensor{
			{Name: "x", Shape: in[0].Shape, Datatype: "FP32", Data: floats(in[0].Float)},
			{Name: "shape", Shape: in[1].Shape, Datatype: "INT64", Data: []any{2, 3, 2}},
		},
		Outputs: []GoldenTensor{{Name: "y", Shape: []int64{2, 3, 2}, Datatype: "FP32", Data: floats(in[0].Float)}},
	}
	r := run(t, m.ONNX, Options{Golden: []GoldenPair{pair}, LatencyRuns: 5})
	if !r.Passed || len(r.Warnings) != 0 {
		t.Fatalf("passed %v, reason %q, warnings %q", r.Passed, r.Reason, r.Warnings)
	}
	if c, _ := r.Check(CheckSmoke); !c.OK || c.Warning || !strings.Contains(c.Detail, "golden pair 0's inputs") {
		t.Fatalf("smoke check = %+v", c)
	}
	if r.Latency == nil || r.Latency.Runs != 5 {
		t.Fatalf("latency = %+v, want 5 runs on the golden inputs", r.Latency)
	}
	pair.Outputs[0].Data[0] = 100.0
	rejected(t, "a golden output that differs", run(t, m.ONNX, Options{Golden: []GoldenPair{pair}, LatencyRuns: 5}), CheckGolden, "golden pair 0")
}

func floats(v []float32) []any {
	out := make([]any, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}
