// Package badmodels builds the hostile and broken ONNX files the validation
// gate must refuse, for the tests of every package that exercises the gate.
// Each is small and deterministic.
package badmodels

import (
	"encoding/binary"
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/modelgate/modelgate/internal/onnxpb"
)

// Case is one model the gate must refuse, and a word its reason contains.
type Case struct {
	Name   string
	Bytes  []byte
	Reason string
	// Metadata is the registration's metadata part to send with it
	// (golden pairs), or "".
	Metadata string
}

// All returns every case, built from a valid model's bytes (the demo model).
func All(valid []byte) ([]Case, error) {
	huge, err := HugeInitializer(valid)
	if err != nil {
		return nil, err
	}
	ext, err := ExternalData(valid)
	if err != nil {
		return nil, err
	}
	return []Case{
		{"malformed", Malformed(), "not an ONNX model", ""},
		{"truncated", valid[:len(valid)/2], "not an ONNX model", ""},
		{"random bytes", Random(4096), "not an ONNX model", ""},
		{"declares a 100 GB tensor", huge, "100", ""},
		{"references external data", ext, "external", ""},
		{"fails its smoke run", SmokeFail(), "smoke", SmokeFailGolden},
	}, nil
}

// Malformed is a protobuf whose wire format breaks off inside a field.
func Malformed() []byte {
	return []byte{0x08, 0x08, 0x3a, 0xff, 0xff, 0x03, 0x0a, 0x01}
}

// Random is n bytes of deterministic noise.
func Random(n int) []byte {
	b := make([]byte, n)
	x := uint64(0x9e3779b97f4a7c15)
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

func edit(valid []byte, fn func(m *onnxpb.ModelProto)) ([]byte, error) {
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(valid, m); err != nil {
		return nil, fmt.Errorf("badmodels: the valid model does not parse: %w", err)
	}
	if m.Graph == nil || len(m.Graph.Initializer) == 0 {
		return nil, fmt.Errorf("badmodels: the valid model needs a graph with an initializer")
	}
	fn(m)
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}

// HugeInitializer is valid plus an initializer declaring [100000, 250000]
// FP32 (100 GB) with no data: loading it would try to allocate all of it.
func HugeInitializer(valid []byte) ([]byte, error) {
	return edit(valid, func(m *onnxpb.ModelProto) {
		m.Graph.Initializer = append(m.Graph.Initializer, &onnxpb.TensorProto{
			Name: proto.String("huge"), Dims: []int64{100000, 250000},
			DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)),
		})
	})
}

// ExternalData is valid with its first initializer moved to an external
// file outside the model's directory.
func ExternalData(valid []byte) ([]byte, error) {
	return edit(valid, func(m *onnxpb.ModelProto) {
		init := m.Graph.Initializer[0]
		init.RawData = nil
		init.FloatData = nil
		init.DataLocation = onnxpb.TensorProto_EXTERNAL.Enum()
		init.ExternalData = []*onnxpb.StringStringEntryProto{
			{Key: proto.String("location"), Value: proto.String("../../etc/weights.bin")},
			{Key: proto.String("length"), Value: proto.String("120")},
		}
	})
}

// SmokeFailGolden is registration metadata whose golden pair feeds
// SmokeFail an input it cannot run (K = 1).
const SmokeFailGolden = `{"golden":[{"inputs":[{"name":"x","shape":[1,1],"datatype":"FP32","data":[1]}],` +
	`"outputs":[{"name":"y","shape":[1,2],"datatype":"FP32","data":[1,2]}]}]}`

// SmokeFail parses, loads and has a valid signature but cannot run on the
// gate's zero inputs: x [N, K] (both dynamic) times W [3, 2] needs K = 3,
// and the smoke run feeds K = 1. Shape inference cannot see it. An ORT
// error on synthesized zeros is only a warning, so the gate refuses it only
// with golden pairs whose inputs fail the same way (SmokeFailGolden).
func SmokeFail() []byte {
	raw := make([]byte, 4*6)
	for i := range 6 {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(float32(i+1)))
	}
	g := &onnxpb.GraphProto{
		Name:        proto.String("smoke_fail"),
		Node:        []*onnxpb.NodeProto{{OpType: proto.String("MatMul"), Name: proto.String("mm"), Input: []string{"x", "W"}, Output: []string{"y"}}},
		Initializer: []*onnxpb.TensorProto{{Name: proto.String("W"), Dims: []int64{3, 2}, DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), RawData: raw}},
		Input:       []*onnxpb.ValueInfoProto{FP32Info("x", -1, -1)},
		Output:      []*onnxpb.ValueInfoProto{FP32Info("y", -1, 2)},
	}
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(&onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}},
		Graph:       g,
	})
	return b
}

// FP32Info describes an FP32 tensor; a negative dim is dynamic.
func FP32Info(name string, dims ...int64) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for i, d := range dims {
		dim := &onnxpb.TensorShapeProto_Dimension{}
		if d < 0 {
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: fmt.Sprintf("d%d", i)}
		} else {
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}
		}
		shape.Dim = append(shape.Dim, dim)
	}
	return &onnxpb.ValueInfoProto{
		Name: proto.String(name),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), Shape: shape,
		}}},
	}
}
