package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/modelgate/modelgate/internal/badmodels"
	"github.com/modelgate/modelgate/internal/onnxexport"
	"github.com/modelgate/modelgate/internal/ortlib"
	"github.com/modelgate/modelgate/runtime"
)

// TestRegistersModelsWhoseInputsCannotBeZeros runs a real node and, for one
// model per kind of input zeros are no valid value for (a shape for
// Reshape and Expand, Resize's scales, Split's sizes, an integer divisor,
// Slice's step, Unsqueeze's axes), registers it through the admin API
// without golden pairs, checks that it passes validation with ORT's error
// on zeros recorded as a warning in the evidence, promotes it (a first
// version is champion already), and scores real
// inputs over OIP, equal to a direct ONNX Runtime run. Then a model whose
// registered golden pairs fail is still refused, for that reason.
func TestRegistersModelsWhoseInputsCannotBeZeros(t *testing.T) {
	if err := runtime.Init(ortlib.Path()); err != nil {
		t.Fatal(err)
	}
	bin := buildBinary(t)
	n := startNode(t, bin, filepath.Join(t.TempDir(), "data"))
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
			code, b := n.register(t, m.Name, m.ONNX, "")
			var reg struct {
				Stage string `json:"stage"`
			}
			json.Unmarshal(b, &reg)
			// A model's first version that passes becomes its champion;
			// a later one waits as validated for a promotion.
			if code != 201 || (reg.Stage != "validated" && reg.Stage != "champion") {
				t.Fatalf("register: %d %s", code, b)
			}
			code, b = n.api(t, "GET", "/api/v1/models/"+m.Name+"/versions/1", nil, "")
			if code != 200 {
				t.Fatalf("version: %d %s", code, b)
			}
			var v struct {
				Validation struct {
					Passed   bool            `json:"passed"`
					Evidence json.RawMessage `json:"evidence"`
				} `json:"validation"`
			}
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatalf("version: %v: %s", err, b)
			}
			var ev struct {
				Warnings []string `json:"warnings"`
			}
			json.Unmarshal(v.Validation.Evidence, &ev)
			if !v.Validation.Passed || len(ev.Warnings) != 1 || !strings.Contains(ev.Warnings[0], want[m.Name]) {
				t.Fatalf("validation passed %v, evidence warnings %q: want one naming %q; version: %.2000s", v.Validation.Passed, ev.Warnings, want[m.Name], b)
			}
			if reg.Stage == "validated" {
				code, b = n.api(t, "POST", "/api/v1/models/"+m.Name+"/promote", strings.NewReader(`{"version":1,"reason":"zeros are not its input"}`), "application/json")
				if code != 200 {
					t.Fatalf("promote: %d %s", code, b)
				}
			}
			waitServed(t, n, m.Name)
			for i, feeds := range m.Calls {
				scoreLikeORT(t, n, m, feeds, fmt.Sprintf("call %d", i))
			}
		})
	}
	t.Run("failing golden pairs", func(t *testing.T) {
		code, b := n.register(t, "smokefail", badmodels.SmokeFail(), badmodels.SmokeFailGolden)
		var out struct {
			Error string `json:"error"`
			Stage string `json:"stage"`
		}
		json.Unmarshal(b, &out)
		if code != 400 || out.Stage != "failed" || !strings.Contains(out.Error, "smoke run on golden pair 0's inputs failed") || !strings.Contains(out.Error, "MatMul") {
			t.Fatalf("%d %s: want 400, stage failed, the golden inputs' MatMul failure", code, b)
		}
	})
}

// waitServed waits until the node answers for model; the reconciler loads
// a promoted version asynchronously. The deadline only catches a hang.
func waitServed(t *testing.T, n *node, model string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + n.addr + "/v2/models/" + model + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not served 60s after its promotion:\n%s", model, n.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scoreLikeORT scores feeds over OIP and compares every output, shape and
// values, with onnxruntime_go's own run of the model.
func scoreLikeORT(t *testing.T, n *node, m onnxexport.OpModel, feeds []onnxexport.Feed, what string) {
	t.Helper()
	resp, err := http.Post("http://"+n.addr+"/v2/models/"+m.Name+"/infer", "application/json", strings.NewReader(string(onnxexport.RequestJSON(feeds))))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Outputs []struct {
			Name  string    `json:"name"`
			Shape []int64   `json:"shape"`
			Data  []float64 `json:"data"`
		} `json:"outputs"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%s: status %d, %v", what, resp.StatusCode, err)
	}
	names, want := ortRun(t, m.ONNX, feeds)
	defer func() {
		for _, v := range want {
			v.Destroy()
		}
	}()
	if len(got.Outputs) != len(names) {
		t.Fatalf("%s: %d outputs served, ORT gives %d", what, len(got.Outputs), len(names))
	}
	for _, o := range got.Outputs {
		k := -1
		for i, nm := range names {
			if nm == o.Name {
				k = i
			}
		}
		if k < 0 {
			t.Fatalf("%s: output %q is not the model's", what, o.Name)
		}
		var ref []float64
		switch w := want[k].(type) {
		case *ort.Tensor[float32]:
			for _, x := range w.GetData() {
				ref = append(ref, float64(x))
			}
		case *ort.Tensor[int64]:
			for _, x := range w.GetData() {
				ref = append(ref, float64(x))
			}
		default:
			t.Fatalf("%s: output %q is a %T", what, o.Name, w)
		}
		if fmt.Sprint(o.Shape) != fmt.Sprint([]int64(want[k].GetShape())) || fmt.Sprint(o.Data) != fmt.Sprint(ref) {
			t.Fatalf("%s: output %q: served %v %v, ORT gives %v %v", what, o.Name, o.Shape, o.Data, want[k].GetShape(), ref)
		}
	}
}

// ortRun runs onnx on feeds through onnxruntime_go alone, ORT allocating
// the outputs.
func ortRun(t *testing.T, onnx []byte, feeds []onnxexport.Feed) ([]string, []ort.Value) {
	t.Helper()
	names, outs, err := onnxexport.RunDirect(onnx, feeds)
	if err != nil {
		t.Fatalf("direct ORT run: %v", err)
	}
	return names, outs
}
