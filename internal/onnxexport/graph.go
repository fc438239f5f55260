package onnxexport

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/modelgate/modelgate/internal/onnxpb"
	"github.com/modelgate/modelgate/internal/train"
	"google.golang.org/protobuf/proto"
)

// graphBuilder accumulates nodes and initializers in the order they are
// added, which is a topological order because every node is added after
// the values it reads.
type graphBuilder struct {
	nodes []*onnxpb.NodeProto
	inits []*onnxpb.TensorProto
}

// floatTensor adds an FP32 initializer stored as little-endian raw_data
// and returns its name.
func (g *graphBuilder) floatTensor(name string, dims []int64, data []float32) string {
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	g.inits = append(g.inits, &onnxpb.TensorProto{
		Name:     proto.String(name),
		Dims:     dims,
		DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)),
		RawData:  raw,
	})
	return name
}

// node adds a default-domain node whose single output is named out, and
// returns out.
func (g *graphBuilder) node(op, out string, in ...string) string {
	g.nodes = append(g.nodes, &onnxpb.NodeProto{
		Name:   proto.String(out),
		OpType: proto.String(op),
		Input:  in,
		Output: []string{out},
	})
	return out
}

// standardize adds Sub mean, Div std on the graph input and returns the
// name of the standardised value.
func (g *graphBuilder) standardize(s train.Standardizer) string {
	f := int64(len(s.Mean))
	mean := g.floatTensor("feature_mean", []int64{f}, s.Mean)
	std := g.floatTensor("feature_std", []int64{f}, s.Std)
	centred := g.node("Sub", "centred", InputName, mean)
	return g.node("Div", "standardized", centred, std)
}

// dense adds MatMul and Add for a layer of prefix with weights w [in, out]
// and bias b [out], and returns the name of the result.
func (g *graphBuilder) dense(prefix, in string, w []float32, b []float32, nIn, nOut int) string {
	wt := g.floatTensor(prefix+"_weight", []int64{int64(nIn), int64(nOut)}, w)
	bt := g.floatTensor(prefix+"_bias", []int64{int64(nOut)}, b)
	mm := g.node("MatMul", prefix+"_matmul", in, wt)
	return g.node("Add", prefix+"_add", mm, bt)
}

// tensorInfo describes an FP32 value of shape [batch, cols].
func tensorInfo(name string, cols int64) *onnxpb.ValueInfoProto {
	return &onnxpb.ValueInfoProto{
		Name: proto.String(name),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)),
			Shape: &onnxpb.TensorShapeProto{Dim: []*onnxpb.TensorShapeProto_Dimension{
				{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: BatchDim}},
				{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: cols}},
			}},
		}}},
	}
}

// model wraps the graph into a ModelProto with its metadata.
func (g *graphBuilder) model(meta *Metadata, modelType string, features int, doc string, more [][2]string) *onnxpb.ModelProto {
	name := meta.GraphName
	if name == "" {
		name = "modelgate_" + modelType
	}
	if meta.DocString != "" {
		doc = meta.DocString
	}
	m := &onnxpb.ModelProto{
		IrVersion:    proto.Int64(IRVersion),
		OpsetImport:  []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(OpsetVersion)}},
		ProducerName: proto.String(ProducerName),
		DocString:    proto.String(doc),
		Graph: &onnxpb.GraphProto{
			Name:        proto.String(name),
			DocString:   proto.String(doc),
			Node:        g.nodes,
			Initializer: g.inits,
			Input:       []*onnxpb.ValueInfoProto{tensorInfo(InputName, int64(features))},
			Output:      []*onnxpb.ValueInfoProto{tensorInfo(OutputName, 1)},
		},
		MetadataProps: meta.props(modelType, features, more),
	}
	if meta.ProducerVersion != "" {
		m.ProducerVersion = proto.String(meta.ProducerVersion)
	}
	if meta.ModelVersion != 0 {
		m.ModelVersion = proto.Int64(meta.ModelVersion)
	}
	return m
}

// Marshal returns m's deterministic wire bytes: the same message always
// gives the same bytes.
func Marshal(m *onnxpb.ModelProto) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("onnxexport: cannot marshal model: %w", err)
	}
	return b, nil
}

// checkScaler reports a standardizer the graph cannot use.
func checkScaler(s train.Standardizer) error {
	f := len(s.Mean)
	if f == 0 || len(s.Std) != f {
		return fmt.Errorf("%w: %d means and %d standard deviations", ErrInvalidModel, f, len(s.Std))
	}
	for i := range f {
		if !finite(s.Mean[i]) || !finite(s.Std[i]) || s.Std[i] == 0 {
			return fmt.Errorf("%w: feature %d has mean %v and std %v", ErrInvalidModel, i, s.Mean[i], s.Std[i])
		}
	}
	return nil
}

// checkFinite reports the first non-finite value of a parameter.
func checkFinite(what string, v []float32) error {
	for i, x := range v {
		if !finite(x) {
			return fmt.Errorf("%w: %s[%d] is %v", ErrInvalidModel, what, i, x)
		}
	}
	return nil
}

func finite(x float32) bool {
	return !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0)
}
