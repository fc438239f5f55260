package onnxexport

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/modelgate/modelgate/internal/onnxpb"
	"google.golang.org/protobuf/proto"
)

// Graph and format constants shared by every exported model.
const (
	// InputName is the graph's only input: FP32 [batch, features].
	InputName = "features"
	// OutputName is the graph's only output: FP32 [batch, 1] probabilities.
	OutputName = "probability"
	// BatchDim is the dim_param of the dynamic batch dimension.
	BatchDim = "batch"
	// IRVersion is the ONNX IR version written (ONNX 1.10+; every ONNX
	// Runtime since 1.10 loads it).
	IRVersion = 8
	// OpsetVersion is the default-domain opset imported.
	OpsetVersion = 13
	// ProducerName is ModelProto.producer_name.
	ProducerName = "modelgate"
)

// Model types written to the "model_type" metadata property.
const (
	ModelTypeLogistic = "logistic_regression"
	ModelTypeMLP      = "mlp"
)

// Metadata describes how a model was made. It goes into the ModelProto
// (graph name, doc strings, model_version) and its metadata_props, which
// ONNX Runtime exposes as custom metadata.
type Metadata struct {
	// FeatureNames names the model's inputs in order; written
	// comma-separated as "feature_names". Empty omits the property;
	// otherwise it needs exactly one name per input, none with a comma.
	FeatureNames []string
	// TrainingSeed is written as "training_seed".
	TrainingSeed int64
	// TrainingAUC, the held-out AUC, is written as "training_auc" with six
	// decimals; 0 or NaN omits it.
	TrainingAUC float64
	// TrainingRows, when positive, is written as "training_rows".
	TrainingRows int
	// GraphName is GraphProto.name; empty means "modelgate_<model type>".
	GraphName string
	// DocString is ModelProto.doc_string; empty means a generated summary.
	DocString string
	// ProducerVersion is ModelProto.producer_version; may be empty.
	ProducerVersion string
	// ModelVersion is ModelProto.model_version; 0 leaves it unset.
	ModelVersion int64
	// Extra holds more metadata properties, written in key order after the
	// standard ones; a key that clashes with a standard one replaces it.
	Extra map[string]string
}

// validate checks the feature names against a model of f inputs.
func (m *Metadata) validate(f int) error {
	if len(m.FeatureNames) == 0 {
		return nil
	}
	if len(m.FeatureNames) != f {
		return fmt.Errorf("%w: %d names for %d inputs", ErrFeatureNames, len(m.FeatureNames), f)
	}
	for i, n := range m.FeatureNames {
		if n == "" || strings.Contains(n, ",") {
			return fmt.Errorf("%w: name %d (%q) is empty or holds a comma", ErrFeatureNames, i, n)
		}
	}
	return nil
}

// props returns the metadata_props: the standard keys in a fixed order,
// then Extra in key order, so the bytes are deterministic.
func (m *Metadata) props(modelType string, f int, more [][2]string) []*onnxpb.StringStringEntryProto {
	kv := [][2]string{
		{"model_type", modelType},
		{"feature_count", strconv.Itoa(f)},
	}
	if len(m.FeatureNames) > 0 {
		kv = append(kv, [2]string{"feature_names", strings.Join(m.FeatureNames, ",")})
	}
	kv = append(kv, [2]string{"training_seed", strconv.FormatInt(m.TrainingSeed, 10)})
	if m.TrainingAUC != 0 && !math.IsNaN(m.TrainingAUC) {
		kv = append(kv, [2]string{"training_auc", strconv.FormatFloat(m.TrainingAUC, 'f', 6, 64)})
	}
	if m.TrainingRows > 0 {
		kv = append(kv, [2]string{"training_rows", strconv.Itoa(m.TrainingRows)})
	}
	kv = append(kv,
		[2]string{"standardization", "in_graph"},
		[2]string{"input_name", InputName},
		[2]string{"output_name", OutputName},
	)
	kv = append(kv, more...)
	for _, k := range slices.Sorted(maps.Keys(m.Extra)) {
		if i := slices.IndexFunc(kv, func(p [2]string) bool { return p[0] == k }); i >= 0 {
			kv[i][1] = m.Extra[k]
			continue
		}
		kv = append(kv, [2]string{k, m.Extra[k]})
	}
	out := make([]*onnxpb.StringStringEntryProto, len(kv))
	for i, p := range kv {
		out[i] = &onnxpb.StringStringEntryProto{Key: proto.String(p[0]), Value: proto.String(p[1])}
	}
	return out
}
