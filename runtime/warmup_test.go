package runtime_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/modelgate/modelgate/internal/onnxexport"
	"github.com/modelgate/modelgate/runtime"
)

// TestLoadSurvivesAWarmupZerosCannotRun: a model whose inputs cannot be
// zeros (an integer divisor here) loads, reports its warm-up error, and
// answers real inputs; a model that cannot be loaded still fails Load.
func TestLoadSurvivesAWarmupZerosCannotRun(t *testing.T) {
	var div onnxexport.OpModel
	for _, m := range onnxexport.ZeroHostileModels() {
		if m.Name == "intdiv" {
			div = m
		}
	}
	m, err := runtime.Load(div.ONNX, runtime.Config{Sessions: 2})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	defer m.Close()
	var re *runtime.RunError
	if werr := m.WarmupError(); !errors.As(werr, &re) || !strings.Contains(werr.Error(), "Integer division by zero") {
		t.Fatalf("WarmupError = %v, want a RunError of ORT's division by zero", werr)
	}
	for range 3 { // more calls than sessions: every session serves
		c := runtime.NewCall()
		for _, f := range div.Calls[0] {
			in := c.AddInput()
			in.Name, in.DataType, in.Shape = f.Name, runtime.Int64, f.Shape
			for _, v := range f.Int {
				in.Data = append(in.Data, byte(v), byte(v>>8), byte(v>>16), byte(v>>24), byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56))
			}
		}
		if err := m.Infer(c); err != nil {
			t.Fatalf("Infer on real inputs: %v", err)
		}
		got := c.Outputs[0].Data
		want := []int64{3, -3, 14, -3, 2, 2} // ONNX integer Div truncates toward zero
		for i, w := range want {
			v := int64(0)
			for k := 7; k >= 0; k-- {
				v = v<<8 | int64(got[8*i+k])
			}
			if v != w {
				t.Fatalf("q[%d] = %d, want %d", i, v, w)
			}
		}
	}
	if _, err := runtime.Load([]byte("not a model"), runtime.Config{}); err == nil {
		t.Fatal("bytes that are no model loaded")
	}
}
