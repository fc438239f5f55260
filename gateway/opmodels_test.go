package gateway_test

import (
	"fmt"
	"net/http"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/onnxexport"
	"github.com/modelgate/modelgate/runtime"
)

// TestServesDataDependentShapes serves one model per class of operator
// whose output shapes depend on the input values (NonZero, Compress, TopK
// with a k input, Unique, NonMaxSuppression, input-driven Pad, Resize,
// Reshape, Expand, Slice) over OIP and checks every call against a direct
// ONNX Runtime run. Each model's calls keep the input shapes and change the
// values, so the second call finds output tensors bound for the first
// call's shapes: ORT refuses those, and the runtime must answer anyway.
func TestServesDataDependentShapes(t *testing.T) {
	srv := startServer(t, gateway.Config{})
	for _, m := range onnxexport.DataDependentModels() {
		t.Run(m.Name, func(t *testing.T) {
			slot := serveModel(t, srv, m.Name, "1", m.ONNX, runtime.Config{Sessions: 1})
			for i, feeds := range m.Calls {
				scoreAndCompare(t, srv, "/v2/models/"+m.Name+"/infer", m.ONNX, feeds, fmt.Sprintf("call %d", i))
			}
			if !slot.Model.DynamicShapes() {
				t.Fatal("no call took the path for data-dependent output shapes: the calls do not test it")
			}
		})
	}
}

// scoreAndCompare scores feeds over OIP and compares each output, shape and
// values, with ONNX Runtime's own run of onnx on the same feeds.
func scoreAndCompare(t *testing.T, srv *gateway.Server, path string, onnx []byte, feeds []onnxexport.Feed, what string) {
	t.Helper()
	names, want := directRun(t, onnx, feeds)
	defer func() {
		for _, v := range want {
			v.Destroy()
		}
	}()
	code, body := post(t, srv, path, onnxexport.RequestJSON(feeds))
	if code != http.StatusOK {
		t.Fatalf("%s: status %d: %.500s", what, code, body)
	}
	got := parseOutputs(t, body)
	if len(got) != len(names) {
		t.Fatalf("%s: %d outputs served, ORT gives %d", what, len(got), len(names))
	}
	for i, name := range names {
		g, ok := got[name]
		if !ok {
			t.Fatalf("%s: output %q missing from the response", what, name)
		}
		if fmt.Sprint(g.shape) != fmt.Sprint([]int64(want[i].GetShape())) {
			t.Fatalf("%s: output %q: shape %v, ORT gives %v", what, name, g.shape, want[i].GetShape())
		}
		compareValue(t, name, g, want[i])
	}
}

// directRun runs onnx on feeds through onnxruntime_go alone, letting ORT
// allocate the outputs, and returns the output names and values.
func directRun(t *testing.T, onnx []byte, feeds []onnxexport.Feed) ([]string, []ort.Value) {
	t.Helper()
	names, outs, err := onnxexport.RunDirect(onnx, feeds)
	if err != nil {
		t.Fatalf("direct ORT run: %v", err)
	}
	return names, outs
}
