package onnxexport

import (
	"encoding/binary"
	"math"
	"strconv"

	"github.com/modelgate/modelgate/internal/onnxpb"
	"google.golang.org/protobuf/proto"
)

// Operator models: one small graph per class of operator the serving path
// must handle, with inputs to feed it. They are test models (the gateway's
// and the validation gate's tests serve them and compare with a direct
// ONNX Runtime run), built here so every package builds the same bytes.

// Feed is one input tensor of an OpModel call: Float for FP32 inputs, Int
// for INT64, row-major.
type Feed struct {
	Name  string
	Shape []int64
	Float []float32
	Int   []int64
}

// OpModel is a small model exercising one operator class, and calls to
// make of it. Its calls share input shapes but differ in values, which for
// these models changes the output shapes (a last call may change the input
// shapes too).
type OpModel struct {
	Name  string
	ONNX  []byte
	Calls [][]Feed
}

// value describes a graph input or output; a negative dim is dynamic.
type value struct {
	name string
	typ  onnxpb.TensorProto_DataType
	dims []int64
}

func (v value) info() *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for i, d := range v.dims {
		dim := &onnxpb.TensorShapeProto_Dimension{}
		if d < 0 {
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: v.name + "_d" + string(rune('0'+i))}
		} else {
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}
		}
		shape.Dim = append(shape.Dim, dim)
	}
	return &onnxpb.ValueInfoProto{Name: proto.String(v.name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(v.typ)), Shape: shape}}}}
}

// outInfo describes an output of unknown shape (rank only), as exporters
// write for data-dependent outputs.
func outInfo(name string, typ onnxpb.TensorProto_DataType, rank int) value {
	dims := make([]int64, rank)
	for i := range dims {
		dims[i] = -1
	}
	return value{name, typ, dims}
}

func fp32(name string, dims ...int64) value { return value{name, onnxpb.TensorProto_FLOAT, dims} }
func i64(name string, dims ...int64) value  { return value{name, onnxpb.TensorProto_INT64, dims} }

type opNode struct {
	op    string
	in    []string
	out   []string
	attrs []*onnxpb.AttributeProto
}

func intAttr(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

func strAttr(name, v string) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_STRING.Enum(), S: []byte(v)}
}

func i64Init(name string, dims []int64, v ...int64) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{Name: proto.String(name), Dims: dims, DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Int64Data: v}
}

func fp32Init(name string, dims []int64, v ...float32) *onnxpb.TensorProto {
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
	}
	return &onnxpb.TensorProto{Name: proto.String(name), Dims: dims, DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), RawData: raw}
}

// opGraph marshals a single-purpose graph at opset 13.
func opGraph(name string, ins, outs []value, nodes []opNode, inits ...*onnxpb.TensorProto) []byte {
	g := &onnxpb.GraphProto{Name: proto.String(name), Initializer: inits}
	for i, n := range nodes {
		g.Node = append(g.Node, &onnxpb.NodeProto{Name: proto.String(name + "_" + n.op + string(rune('0'+i))),
			OpType: proto.String(n.op), Input: n.in, Output: n.out, Attribute: n.attrs})
	}
	for _, v := range ins {
		g.Input = append(g.Input, v.info())
	}
	for _, v := range outs {
		g.Output = append(g.Output, v.info())
	}
	b, err := Marshal(&onnxpb.ModelProto{
		IrVersion:    proto.Int64(IRVersion),
		OpsetImport:  []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(OpsetVersion)}},
		ProducerName: proto.String(ProducerName),
		Graph:        g,
	})
	if err != nil {
		panic(err) // a fixed, valid message: cannot fail
	}
	return b
}

func ff(name string, shape []int64, v ...float32) Feed {
	return Feed{Name: name, Shape: shape, Float: v}
}
func fi(name string, shape []int64, v ...int64) Feed { return Feed{Name: name, Shape: shape, Int: v} }

// DataDependentModels returns one model per class of operator whose output
// shape depends on its input values, not only on their shapes: NonZero,
// Compress, TopK with a k input, Unique, NonMaxSuppression, and Pad,
// Resize, Reshape, Expand and Slice driven by input tensors. Each has calls
// of equal input shapes giving different output shapes, some empty.
func DataDependentModels() []OpModel {
	f32, i64t := onnxpb.TensorProto_FLOAT, onnxpb.TensorProto_INT64
	return []OpModel{
		{Name: "nonzero", ONNX: opGraph("nonzero",
			[]value{fp32("x", -1, 3)}, []value{outInfo("idx", i64t, 2)},
			[]opNode{{op: "NonZero", in: []string{"x"}, out: []string{"idx"}}}),
			Calls: [][]Feed{
				{ff("x", []int64{2, 3}, 1, 0, 2, 0, 0, 3)},
				{ff("x", []int64{2, 3}, 1, 1, 1, 1, 1, 1)},
				{ff("x", []int64{2, 3}, 0, 0, 0, 0, 0, 0)},
				{ff("x", []int64{2, 3}, 0, 5, 0, 0, 0, 0)},
				{ff("x", []int64{3, 3}, 0, 5, 0, 0, 0, 0, 1, 1, 0)}, // a new input shape after the values changed them
			}},
		{Name: "compress", ONNX: opGraph("compress",
			[]value{fp32("x", -1, 3), fp32("keep", -1)}, []value{outInfo("y", f32, 2)},
			[]opNode{
				{op: "Greater", in: []string{"keep", "zero"}, out: []string{"mask"}},
				{op: "Compress", in: []string{"x", "mask"}, out: []string{"y"}, attrs: []*onnxpb.AttributeProto{intAttr("axis", 0)}},
			}, fp32Init("zero", nil, 0)),
			Calls: [][]Feed{
				{ff("x", []int64{3, 3}, 1, 2, 3, 4, 5, 6, 7, 8, 9), ff("keep", []int64{3}, 1, 0, 1)},
				{ff("x", []int64{3, 3}, 1, 2, 3, 4, 5, 6, 7, 8, 9), ff("keep", []int64{3}, 0, 1, 0)},
				{ff("x", []int64{3, 3}, 1, 2, 3, 4, 5, 6, 7, 8, 9), ff("keep", []int64{3}, 0, 0, 0)},
			}},
		{Name: "topk", ONNX: opGraph("topk",
			[]value{fp32("x", -1, 5), i64("k", 1)}, []value{outInfo("values", f32, 2), outInfo("indices", i64t, 2)},
			[]opNode{{op: "TopK", in: []string{"x", "k"}, out: []string{"values", "indices"}}}),
			Calls: [][]Feed{
				{ff("x", []int64{2, 5}, 5, 1, 4, 2, 3, 9, 8, 7, 6, 5), fi("k", []int64{1}, 2)},
				{ff("x", []int64{2, 5}, 5, 1, 4, 2, 3, 9, 8, 7, 6, 5), fi("k", []int64{1}, 4)},
				{ff("x", []int64{2, 5}, 5, 1, 4, 2, 3, 9, 8, 7, 6, 5), fi("k", []int64{1}, 0)},
			}},
		{Name: "unique", ONNX: opGraph("unique",
			[]value{fp32("x", -1)},
			[]value{outInfo("y", f32, 1), outInfo("indices", i64t, 1), outInfo("inverse", i64t, 1), outInfo("counts", i64t, 1)},
			[]opNode{{op: "Unique", in: []string{"x"}, out: []string{"y", "indices", "inverse", "counts"}, attrs: []*onnxpb.AttributeProto{intAttr("sorted", 1)}}}),
			Calls: [][]Feed{
				{ff("x", []int64{6}, 2, 1, 2, 3, 1, 2)},
				{ff("x", []int64{6}, 4, 4, 4, 4, 4, 4)},
				{ff("x", []int64{6}, 6, 5, 4, 3, 2, 1)},
			}},
		{Name: "nms", ONNX: opGraph("nms",
			[]value{fp32("boxes", 1, -1, 4), fp32("scores", 1, 1, -1)}, []value{outInfo("selected", i64t, 2)},
			[]opNode{{op: "NonMaxSuppression", in: []string{"boxes", "scores", "max_out", "iou", "min_score"}, out: []string{"selected"}}},
			i64Init("max_out", []int64{1}, 10), fp32Init("iou", []int64{1}, 0.5), fp32Init("min_score", []int64{1}, 0.3)),
			Calls: [][]Feed{
				{ff("boxes", []int64{1, 4, 4}, 0, 0, 1, 1, 0, 0.1, 1, 1.1, 0, 10, 1, 11, 0, 20, 1, 21), ff("scores", []int64{1, 1, 4}, 0.9, 0.8, 0.7, 0.2)},
				{ff("boxes", []int64{1, 4, 4}, 0, 0, 1, 1, 0, 5, 1, 6, 0, 10, 1, 11, 0, 20, 1, 21), ff("scores", []int64{1, 1, 4}, 0.9, 0.8, 0.7, 0.6)},
				{ff("boxes", []int64{1, 4, 4}, 0, 0, 1, 1, 0, 5, 1, 6, 0, 10, 1, 11, 0, 20, 1, 21), ff("scores", []int64{1, 1, 4}, 0.1, 0.1, 0.1, 0.1)},
			}},
		{Name: "pad", ONNX: opGraph("pad",
			[]value{fp32("x", -1, 3), i64("pads", 4)}, []value{outInfo("y", f32, 2)},
			[]opNode{{op: "Pad", in: []string{"x", "pads"}, out: []string{"y"}, attrs: []*onnxpb.AttributeProto{strAttr("mode", "constant")}}}),
			Calls: [][]Feed{
				{ff("x", []int64{2, 3}, 1, 2, 3, 4, 5, 6), fi("pads", []int64{4}, 0, 1, 0, 1)},
				{ff("x", []int64{2, 3}, 1, 2, 3, 4, 5, 6), fi("pads", []int64{4}, 1, 0, 2, 0)},
			}},
		ResizeModel(), ReshapeModel(), ExpandModel(), SliceModel(),
	}
}

// ZeroHostileModels returns one model per kind of input for which zeros
// are no valid value, so a run on zeros fails in ONNX Runtime while real
// inputs run: a shape (Reshape, Expand), scales (Resize), split sizes
// (Split), an integer divisor (Div), a step (Slice) and axes (Unsqueeze).
func ZeroHostileModels() []OpModel {
	f32, i64t := onnxpb.TensorProto_FLOAT, onnxpb.TensorProto_INT64
	return []OpModel{
		ReshapeModel(), ExpandModel(), ResizeModel(),
		{Name: "split", ONNX: opGraph("split",
			[]value{fp32("x", 4, 2), i64("sizes", 2)}, []value{outInfo("a", f32, 2), outInfo("b", f32, 2)},
			[]opNode{{op: "Split", in: []string{"x", "sizes"}, out: []string{"a", "b"}, attrs: []*onnxpb.AttributeProto{intAttr("axis", 0)}}}),
			Calls: [][]Feed{
				{ff("x", []int64{4, 2}, 1, 2, 3, 4, 5, 6, 7, 8), fi("sizes", []int64{2}, 1, 3)},
				{ff("x", []int64{4, 2}, 1, 2, 3, 4, 5, 6, 7, 8), fi("sizes", []int64{2}, 2, 2)},
			}},
		{Name: "intdiv", ONNX: opGraph("intdiv",
			[]value{i64("n", -1, 3), i64("d", -1, 3)}, []value{outInfo("q", i64t, 2)},
			[]opNode{{op: "Div", in: []string{"n", "d"}, out: []string{"q"}}}),
			Calls: [][]Feed{
				{fi("n", []int64{2, 3}, 7, -7, 100, 9, 10, 11), fi("d", []int64{2, 3}, 2, 2, 7, -3, 5, 4)},
			}},
		SliceModel(),
		{Name: "unsqueeze", ONNX: opGraph("unsqueeze",
			[]value{fp32("x", 2, 3), i64("axes", 2)}, []value{outInfo("y", f32, 4)},
			[]opNode{{op: "Unsqueeze", in: []string{"x", "axes"}, out: []string{"y"}}}),
			Calls: [][]Feed{
				{ff("x", []int64{2, 3}, 1, 2, 3, 4, 5, 6), fi("axes", []int64{2}, 0, 3)},
				{ff("x", []int64{2, 3}, 1, 2, 3, 4, 5, 6), fi("axes", []int64{2}, 1, 2)},
			}},
	}
}

// ResizeModel resizes an image by scales given as an input (nearest).
func ResizeModel() OpModel {
	return OpModel{Name: "resize", ONNX: opGraph("resize",
		[]value{fp32("x", 1, 1, 2, 2), fp32("scales", 4)}, []value{outInfo("y", onnxpb.TensorProto_FLOAT, 4)},
		[]opNode{{op: "Resize", in: []string{"x", "", "scales"}, out: []string{"y"}, attrs: []*onnxpb.AttributeProto{strAttr("mode", "nearest")}}}),
		Calls: [][]Feed{
			{ff("x", []int64{1, 1, 2, 2}, 1, 2, 3, 4), ff("scales", []int64{4}, 1, 1, 2, 2)},
			{ff("x", []int64{1, 1, 2, 2}, 1, 2, 3, 4), ff("scales", []int64{4}, 1, 1, 1.5, 1)},
			{ff("x", []int64{1, 1, 2, 2}, 1, 2, 3, 4), ff("scales", []int64{4}, 1, 1, 3, 3)},
		}}
}

// ReshapeModel reshapes a [2, 6] tensor to a shape given as an input.
func ReshapeModel() OpModel {
	return OpModel{Name: "reshape", ONNX: opGraph("reshape",
		[]value{fp32("x", 2, 6), i64("shape", 3)}, []value{outInfo("y", onnxpb.TensorProto_FLOAT, 3)},
		[]opNode{{op: "Reshape", in: []string{"x", "shape"}, out: []string{"y"}}}),
		Calls: [][]Feed{
			{ff("x", []int64{2, 6}, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12), fi("shape", []int64{3}, 2, 3, 2)},
			{ff("x", []int64{2, 6}, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12), fi("shape", []int64{3}, 1, 1, 12)},
			{ff("x", []int64{2, 6}, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12), fi("shape", []int64{3}, 4, -1, 1)},
		}}
}

// ExpandModel broadcasts a [1, 3] tensor to a shape given as an input.
func ExpandModel() OpModel {
	return OpModel{Name: "expand", ONNX: opGraph("expand",
		[]value{fp32("x", 1, 3), i64("shape", 2)}, []value{outInfo("y", onnxpb.TensorProto_FLOAT, 2)},
		[]opNode{{op: "Expand", in: []string{"x", "shape"}, out: []string{"y"}}}),
		Calls: [][]Feed{
			{ff("x", []int64{1, 3}, 1, 2, 3), fi("shape", []int64{2}, 2, 3)},
			{ff("x", []int64{1, 3}, 1, 2, 3), fi("shape", []int64{2}, 4, 1)},
			{ff("x", []int64{1, 3}, 1, 2, 3), fi("shape", []int64{2}, 1, 3)},
		}}
}

// SliceModel slices a [2, 6] tensor's columns with start, end and step
// given as inputs.
func SliceModel() OpModel {
	return OpModel{Name: "slice", ONNX: opGraph("slice",
		[]value{fp32("x", 2, 6), i64("starts", 1), i64("ends", 1), i64("steps", 1)}, []value{outInfo("y", onnxpb.TensorProto_FLOAT, 2)},
		[]opNode{{op: "Slice", in: []string{"x", "starts", "ends", "axes", "steps"}, out: []string{"y"}}},
		i64Init("axes", []int64{1}, 1)),
		Calls: [][]Feed{
			{ff("x", []int64{2, 6}, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12), fi("starts", []int64{1}, 0), fi("ends", []int64{1}, 6), fi("steps", []int64{1}, 2)},
			{ff("x", []int64{2, 6}, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12), fi("starts", []int64{1}, 1), fi("ends", []int64{1}, 5), fi("steps", []int64{1}, 1)},
			{ff("x", []int64{2, 6}, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12), fi("starts", []int64{1}, 5), fi("ends", []int64{1}, 0), fi("steps", []int64{1}, -2)},
		}}
}

// RequestJSON is an Open Inference Protocol request body carrying feeds.
func RequestJSON(feeds []Feed) []byte {
	b := []byte(`{"inputs":[`)
	for i, f := range feeds {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":"`...)
		b = append(b, f.Name...)
		b = append(b, `","shape":[`...)
		for j, d := range f.Shape {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, d, 10)
		}
		if f.Int != nil {
			b = append(b, `],"datatype":"INT64","data":[`...)
			for j, v := range f.Int {
				if j > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendInt(b, v, 10)
			}
		} else {
			b = append(b, `],"datatype":"FP32","data":[`...)
			for j, v := range f.Float {
				if j > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendFloat(b, float64(v), 'g', -1, 32)
			}
		}
		b = append(b, "]}"...)
	}
	return append(b, "]}"...)
}
