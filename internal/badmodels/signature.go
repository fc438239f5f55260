package badmodels

import (
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/modelgate/modelgate/internal/onnxpb"
)

// The models below load and run in ONNX Runtime, but their interfaces are
// ones a registry cannot serve: clients could not name their tensors, or
// could not send anything. The gate must fail them, with the reason.

// graphModel wraps nodes into an opset-13 model.
func graphModel(name string, nodes []*onnxpb.NodeProto, inits []*onnxpb.TensorProto, in, out []*onnxpb.ValueInfoProto) []byte {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(&onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}},
		Graph:       &onnxpb.GraphProto{Name: proto.String(name), Node: nodes, Initializer: inits, Input: in, Output: out},
	})
	return b
}

// DuplicateOutput is x [N, 2] → Identity → y, with y listed twice as an
// output.
func DuplicateOutput() []byte {
	return graphModel("duplicate_output",
		[]*onnxpb.NodeProto{{OpType: proto.String("Identity"), Name: proto.String("id"), Input: []string{"x"}, Output: []string{"y"}}},
		nil,
		[]*onnxpb.ValueInfoProto{FP32Info("x", -1, 2)},
		[]*onnxpb.ValueInfoProto{FP32Info("y", -1, 2), FP32Info("y", -1, 2)})
}

// NoInputs is a graph with no inputs: a Constant node makes its only
// output.
func NoInputs() []byte {
	val := &onnxpb.TensorProto{Name: proto.String("c"), Dims: []int64{1, 2}, DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), FloatData: []float32{1, 2}}
	return graphModel("no_inputs",
		[]*onnxpb.NodeProto{{OpType: proto.String("Constant"), Name: proto.String("const"), Output: []string{"y"},
			Attribute: []*onnxpb.AttributeProto{{Name: proto.String("value"), Type: onnxpb.AttributeProto_TENSOR.Enum(), T: val}}}},
		nil, nil,
		[]*onnxpb.ValueInfoProto{FP32Info("y", 1, 2)})
}

// LongInputName is x → Identity → y where x's name is n bytes long.
func LongInputName(n int) []byte {
	name := strings.Repeat("x", n)
	return graphModel("long_input_name",
		[]*onnxpb.NodeProto{{OpType: proto.String("Identity"), Name: proto.String("id"), Input: []string{name}, Output: []string{"y"}}},
		nil,
		[]*onnxpb.ValueInfoProto{FP32Info(name, -1, 2)},
		[]*onnxpb.ValueInfoProto{FP32Info("y", -1, 2)})
}
