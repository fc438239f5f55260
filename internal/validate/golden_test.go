package validate

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/modelgate/modelgate/runtime"
)

func TestDecodeGolden(t *testing.T) {
	pairs, err := DecodeGolden(strings.NewReader(`[{
		"inputs": [
			{"name":"a","shape":[2,2],"datatype":"INT64","data":[[9007199254740993,-1],[0,2]]},
			{"name":"b","shape":[3],"datatype":"BOOL","data":[true,false,1]},
			{"name":"c","shape":[1],"datatype":"BYTES","data":["x"]},
			{"name":"d","shape":[2],"datatype":"UINT64","data":[18446744073709551615,0]},
			{"name":"e","shape":[1],"datatype":"FP64","data":["NaN"]}
		],
		"outputs": [{"name":"y","datatype":"FP32","data":[0.5,1e-3]}]
	}]`))
	if err != nil {
		t.Fatal(err)
	}
	a, err := pairs[0].Inputs[0].tensor(0, "inputs", 0, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := int64(binary.LittleEndian.Uint64(a.Data)); got != 9007199254740993 {
		t.Fatalf("INT64 lost precision: %d", got)
	}
	d, _ := pairs[0].Inputs[3].tensor(0, "inputs", 3, true)
	if binary.LittleEndian.Uint64(d.Data) != math.MaxUint64 {
		t.Fatal("UINT64 max lost")
	}
	y, _ := pairs[0].Outputs[0].tensor(0, "outputs", 0, false)
	if len(y.Shape) != 1 || y.Shape[0] != 2 {
		t.Fatalf("output without shape got shape %v", y.Shape)
	}

	bad := func(doc, want string) {
		t.Helper()
		_, err := DecodeGolden(strings.NewReader(doc))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("DecodeGolden(%s) = %v, want %q", doc, err, want)
		}
	}
	in := func(t string) string {
		return `[{"inputs":[` + t + `],"outputs":[{"name":"y","datatype":"FP32","data":[1]}]}]`
	}
	bad(`{}`, "cannot decode golden pairs")
	bad(`[{"inputs":[]}]`, "at least one input and one output")
	bad(in(`{"name":"x","datatype":"FP32","data":[1]}`), "has no shape")
	bad(in(`{"shape":[1],"datatype":"FP32","data":[1]}`), "has no name")
	bad(in(`{"name":"x","shape":[1],"datatype":"FLOAT","data":[1]}`), `unknown datatype "FLOAT"`)
	bad(in(`{"name":"x","shape":[1],"datatype":"FP16","data":[1]}`), "FP16 golden data is not supported")
	bad(in(`{"name":"x","shape":[2],"datatype":"FP32","data":[1]}`), "has 1 values, its shape [2] needs 2")
	bad(in(`{"name":"x","shape":[1],"datatype":"INT8","data":[200]}`), "out of range for INT8")
	bad(in(`{"name":"x","shape":[1],"datatype":"INT32","data":[1.5]}`), "not an integer")
	bad(in(`{"name":"x","shape":[1],"datatype":"BOOL","data":[2]}`), "not a boolean")
	bad(in(`{"name":"x","shape":[1],"datatype":"BYTES","data":[2]}`), "not a string")
	bad(in(`{"name":"x","shape":[1],"datatype":"FP32","data":["x"]}`), "not a number")
	bad(in(`{"name":"x","shape":[-1],"datatype":"FP32","data":[]}`), "invalid or too large")
	var ge *GoldenError
	_, err = DecodeGolden(strings.NewReader(in(`{"name":"x","shape":[1],"datatype":"FP32","data":[]}`)))
	if !errors.As(err, &ge) || ge.Pair != 0 || !strings.Contains(ge.Tensor, `inputs[0] "x"`) {
		t.Fatalf("GoldenError = %#v", err)
	}
}

func TestCompareOutput(t *testing.T) {
	fp := func(shape []int64, v ...float32) *runtime.Tensor {
		t := &runtime.Tensor{}
		t.SetFloat32s("y", shape, v)
		return t
	}
	nan := float32(math.NaN())
	f := func(got, want *runtime.Tensor, shapeGiven bool, tol float64, wantErr string) {
		t.Helper()
		_, err := compareOutput(got, want, shapeGiven, tol)
		if wantErr == "" && err != nil || wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)) {
			t.Fatalf("compare: %v, want %q", err, wantErr)
		}
	}
	f(fp([]int64{2}, 1, 2), fp([]int64{2}, 1, 2), true, 0, "")
	f(fp([]int64{1}, 1.00001), fp([]int64{1}, 1), true, 1e-4, "")
	f(fp([]int64{1}, 1000.01), fp([]int64{1}, 1000), true, 1e-4, "")       // relative above 1
	f(fp([]int64{1}, 0.0002), fp([]int64{1}, 0), true, 1e-4, "difference") // absolute below 1
	f(fp([]int64{1}, nan), fp([]int64{1}, nan), true, 1e-4, "")
	f(fp([]int64{1}, nan), fp([]int64{1}, 1), true, 1e-4, "is NaN, want 1")
	f(fp([]int64{1, 2}, 1, 2), fp([]int64{2}, 1, 2), true, 1e-4, "shape is [1 2]")
	f(fp([]int64{1, 2}, 1, 2), fp([]int64{2}, 1, 2), false, 1e-4, "")
	f(fp([]int64{3}, 1, 2, 3), fp([]int64{2}, 1, 2), false, 1e-4, "has 3 values")
	i64 := func(v int64) *runtime.Tensor {
		return &runtime.Tensor{DataType: runtime.Int64, Shape: []int64{1}, Data: binary.LittleEndian.AppendUint64(nil, uint64(v))}
	}
	f(i64(1<<60+1), i64(1<<60+1), true, 0, "")
	f(i64(1<<60+1), i64(1<<60), true, 1, "integers must match exactly")
	f(i64(1), fp([]int64{1}, 1), true, 1, "datatype is INT64")
}

// FuzzDecodeGolden: the golden decoder never panics.
func FuzzDecodeGolden(f *testing.F) {
	f.Add(`[{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"outputs":[{"name":"y","datatype":"FP32","data":[1]}]}]`)
	f.Add(`[{"inputs":[{"name":"x","shape":[2,1],"datatype":"INT8","data":[[1],[2]]}],"outputs":[{"name":"y","datatype":"BOOL","data":[true]}]}]`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, doc string) {
		DecodeGolden(strings.NewReader(doc))
	})
}
