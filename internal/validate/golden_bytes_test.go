package validate

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/modelgate/modelgate/internal/onnxpb"
	"github.com/modelgate/modelgate/runtime"
	"google.golang.org/protobuf/proto"
)

// TestCompareOutputBytes: BYTES golden outputs match element by element and
// byte by byte. Same length with other bytes, the same strings in another
// order, or one string split differently all fail, naming the element.
func TestCompareOutputBytes(t *testing.T) {
	bs := func(v ...string) *runtime.Tensor {
		return &runtime.Tensor{Name: "y", DataType: runtime.Bytes, Shape: []int64{int64(len(v))}, Strings: v}
	}
	check := func(got, want *runtime.Tensor, wantErr string) {
		t.Helper()
		_, err := compareOutput(got, want, true, 1)
		if wantErr == "" && err != nil || wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)) {
			t.Fatalf("compare %q with golden %q: %v, want %q", got.Strings, want.Strings, err, wantErr)
		}
	}
	check(bs("fraud", "ok"), bs("fraud", "ok"), "")
	check(bs(""), bs(""), "")
	check(bs("fraud", "ok"), bs("fraud", "no"), `[1] is "ok", want "no"`)
	check(bs("fraud"), bs("Fraud"), `[0] is "fraud", want "Fraud"`)
	check(bs("a\x00b"), bs("a\x00c"), `[0] is "a\x00b", want "a\x00c"`)
	check(bs("ok", "fraud"), bs("fraud", "ok"), `[0] is "ok", want "fraud"`)
	check(bs("ab", "c"), bs("a", "bc"), `[0] is "ab", want "a"`)
	check(bs("a", "b"), bs("a"), "shape is [2], the golden output says [1]")
	// Booleans compare by truth, other integers by every byte.
	bl := func(v ...byte) *runtime.Tensor {
		return &runtime.Tensor{DataType: runtime.Bool, Shape: []int64{int64(len(v))}, Data: v}
	}
	check(bl(1, 0), bl(1, 0), "")
	check(bl(1, 0), bl(1, 1), "[1] is false, want true")
	i32 := func(v ...int32) *runtime.Tensor {
		t := &runtime.Tensor{DataType: runtime.Int32, Shape: []int64{int64(len(v))}}
		for _, x := range v {
			t.Data = binary.LittleEndian.AppendUint32(t.Data, uint32(x))
		}
		return t
	}
	check(i32(7, 1<<20), i32(7, 1<<20), "")
	check(i32(7, 1<<20), i32(7, 1<<20+1), "[1] differs from the golden output")
	check(i32(-1), i32(1<<31-1), "[0] differs from the golden output")
}

func stringInfo(name string) *onnxpb.ValueInfoProto {
	return &onnxpb.ValueInfoProto{
		Name: proto.String(name),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: proto.Int32(int32(onnxpb.TensorProto_STRING)),
			Shape: &onnxpb.TensorShapeProto{Dim: []*onnxpb.TensorShapeProto_Dimension{
				{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "n"}}}},
		}}},
	}
}

// TestRunGoldenBytes runs a string Identity model in the child with golden
// pairs: the exact strings pass; strings of the same lengths with other
// bytes are refused at the golden check, naming the element.
func TestRunGoldenBytes(t *testing.T) {
	onnx := marshal(t, graphModel(&onnxpb.GraphProto{
		Node:   []*onnxpb.NodeProto{node("Identity", []string{"x"}, "y")},
		Input:  []*onnxpb.ValueInfoProto{stringInfo("x")},
		Output: []*onnxpb.ValueInfoProto{stringInfo("y")},
	}))
	pair := func(out ...any) GoldenPair {
		return GoldenPair{
			Inputs:  []GoldenTensor{{Name: "x", Shape: []int64{2}, Datatype: "BYTES", Data: []any{"approve", "review"}}},
			Outputs: []GoldenTensor{{Name: "y", Datatype: "BYTES", Data: out}},
		}
	}
	if r := run(t, onnx, Options{Golden: []GoldenPair{pair("approve", "review")}}); !r.Passed {
		t.Fatalf("the exact strings were refused: %s", r.Reason)
	}
	r := run(t, onnx, Options{Golden: []GoldenPair{pair("approve", "refuse")}})
	rejected(t, "same lengths, other bytes", r, CheckGolden, `golden pair 0 output "y" [1] is "review", want "refuse"`)
}
