package onnxexport_test

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/modelgate/modelgate/internal/fraud"
	"github.com/modelgate/modelgate/internal/onnxexport"
	"github.com/modelgate/modelgate/internal/onnxpb"
	"github.com/modelgate/modelgate/internal/train"
	ort "github.com/yalue/onnxruntime_go"
	"google.golang.org/protobuf/proto"
)

const nf = fraud.NumFeatures

func fraudData(seed int64, n int) train.Data {
	x, y := fraud.NewGenerator(seed).Batch(n)
	return train.Data{X: x, Y: y, Features: nf}
}

func meta(seed int64) onnxexport.Metadata {
	return onnxexport.Metadata{FeatureNames: fraud.FeatureNames[:], TrainingSeed: seed, TrainingAUC: 0.9, TrainingRows: 5000}
}

// checkParity runs the rows through ONNX Runtime at each batch size and
// compares every probability with the Go model's.
func checkParity(t *testing.T, model []byte, m train.Predictor, rows train.Data) {
	t.Helper()
	for _, batch := range []int{1, 7} {
		got := runORT(t, model, rows.X, nf, batch)
		if len(got) != rows.Rows() {
			t.Fatalf("batch %d: %d outputs for %d rows", batch, len(got), rows.Rows())
		}
		var worst float64
		for i, p := range got {
			want := m.Predict(rows.Row(i))
			d := math.Abs(float64(p - want))
			worst = max(worst, d)
			if d > 1e-5 {
				t.Fatalf("batch %d, row %d: ONNX Runtime says %v, Go Predict %v", batch, i, p, want)
			}
		}
		t.Logf("batch %d: %d rows, max |ORT - Go| = %.2g", batch, len(got), worst)
	}
}

func TestLogisticMatchesORT(t *testing.T) {
	m, err := train.FitLogistic(fraudData(1, 5_000), train.LogisticConfig{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := onnxexport.Logistic(m, meta(1))
	if err != nil {
		t.Fatal(err)
	}
	// Held-out rows include drifted ones, so mcc_other (constant in training)
	// and shifted amounts go through the graph too.
	rows := fraudData(2, 250)
	dx, dy := fraud.NewGenerator(3, fraud.WithDrift(fraud.Drift{Kind: fraud.NewCategory})).Batch(50)
	rows.X, rows.Y = append(rows.X, dx...), append(rows.Y, dy...)
	checkParity(t, b, m, rows)
}

func TestMLPMatchesORT(t *testing.T) {
	d := fraudData(4, 5_000)
	rows := fraudData(5, 300)
	for _, hidden := range [][]int{{16, 8}, {24}} {
		m, err := train.FitMLP(d, train.MLPConfig{Hidden: hidden, Epochs: 1, Seed: 2})
		if err != nil {
			t.Fatal(err)
		}
		b, err := onnxexport.MLP(m, meta(2))
		if err != nil {
			t.Fatal(err)
		}
		checkParity(t, b, m, rows)
	}
}

func TestDeterministicBytes(t *testing.T) {
	d := fraudData(6, 3_000)
	export := func() ([]byte, []byte) {
		lr, _ := train.FitLogistic(d, train.LogisticConfig{Seed: 3, Epochs: 2})
		mlp, _ := train.FitMLP(d, train.MLPConfig{Hidden: []int{8}, Epochs: 1, Seed: 3})
		meta := meta(3)
		meta.Extra = map[string]string{"b": "2", "a": "1", "c": "3"}
		lb, err := onnxexport.Logistic(lr, meta)
		if err != nil {
			t.Fatal(err)
		}
		mb, err := onnxexport.MLP(mlp, meta)
		if err != nil {
			t.Fatal(err)
		}
		return lb, mb
	}
	l1, m1 := export()
	l2, m2 := export()
	if !bytes.Equal(l1, l2) || !bytes.Equal(m1, m2) {
		t.Fatal("the same training run exported different bytes")
	}
	lr, _ := train.FitLogistic(d, train.LogisticConfig{Seed: 3, Epochs: 2})
	lr.Weights[0] = math.Nextafter32(lr.Weights[0], 10)
	l3, _ := onnxexport.Logistic(lr, meta(3))
	if bytes.Equal(l1, l3) {
		t.Fatal("changing a weight did not change the bytes")
	}
}

// TestGraphContract checks what the rest of modelgate relies on: the
// names, types and shapes ONNX Runtime reports, and the metadata.
func TestGraphContract(t *testing.T) {
	d := fraudData(7, 2_000)
	lr, _ := train.FitLogistic(d, train.LogisticConfig{Epochs: 1})
	mlp, _ := train.FitMLP(d, train.MLPConfig{Hidden: []int{8, 4}, Epochs: 1})
	lb, err := onnxexport.Logistic(lr, meta(7))
	if err != nil {
		t.Fatal(err)
	}
	mb, err := onnxexport.MLP(mlp, meta(7))
	if err != nil {
		t.Fatal(err)
	}
	f := func(name string, b []byte, modelType string, ops []string) {
		t.Helper()
		var p onnxpb.ModelProto
		if err := proto.Unmarshal(b, &p); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if p.GetIrVersion() != 8 || len(p.GetOpsetImport()) != 1 || p.GetOpsetImport()[0].GetVersion() != 13 ||
			p.GetOpsetImport()[0].GetDomain() != "" || p.GetProducerName() != "modelgate" {
			t.Errorf("%s: ir %d opset %v producer %q", name, p.GetIrVersion(), p.GetOpsetImport(), p.GetProducerName())
		}
		var gotOps []string
		for _, n := range p.GetGraph().GetNode() {
			gotOps = append(gotOps, n.GetOpType())
		}
		if !slices.Equal(gotOps, ops) {
			t.Errorf("%s: ops %v, want %v", name, gotOps, ops)
		}

		in, out, err := ort.GetInputOutputInfoWithONNXData(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(in) != 1 || in[0].Name != "features" || !in[0].Dimensions.Equals(ort.NewShape(-1, nf)) ||
			in[0].DataType != ort.TensorElementDataTypeFloat {
			t.Errorf("%s: inputs %v, want features float [-1 %d]", name, in, nf)
		}
		if len(out) != 1 || out[0].Name != "probability" || !out[0].Dimensions.Equals(ort.NewShape(-1, 1)) ||
			out[0].DataType != ort.TensorElementDataTypeFloat {
			t.Errorf("%s: outputs %v, want probability float [-1 1]", name, out)
		}

		md, err := ort.GetModelMetadataWithONNXData(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		defer md.Destroy()
		want := map[string]string{
			"model_type":    modelType,
			"feature_names": strings.Join(fraud.FeatureNames[:], ","),
			"training_seed": "7",
			"training_auc":  "0.900000",
			"training_rows": "5000",
		}
		for k, v := range want {
			got, ok, err := md.LookupCustomMetadataMap(k)
			if err != nil || !ok || got != v {
				t.Errorf("%s: metadata %s = %q (found %v, %v), want %q", name, k, got, ok, err, v)
			}
		}
		if pn, _ := md.GetProducerName(); pn != "modelgate" {
			t.Errorf("%s: producer %q", name, pn)
		}
	}
	f("logistic", lb, "logistic_regression", []string{"Sub", "Div", "MatMul", "Add", "Sigmoid"})
	f("mlp", mb, "mlp", []string{"Sub", "Div", "MatMul", "Add", "Relu", "MatMul", "Add", "Relu", "MatMul", "Add", "Sigmoid"})
}

func TestMetadataProps(t *testing.T) {
	lr := &train.LogisticRegression{
		Scaler:  train.Standardizer{Mean: []float32{0, 0}, Std: []float32{1, 1}},
		Weights: []float32{1, 2},
	}
	p, err := onnxexport.LogisticProto(lr, onnxexport.Metadata{
		TrainingSeed: -4,
		GraphName:    "g",
		Extra:        map[string]string{"zeta": "z", "model_type": "custom", "alpha": "a"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	got := map[string]string{}
	for _, kv := range p.GetMetadataProps() {
		keys = append(keys, kv.GetKey())
		got[kv.GetKey()] = kv.GetValue()
	}
	want := []string{"model_type", "feature_count", "training_seed", "standardization", "input_name", "output_name", "alpha", "zeta"}
	if !slices.Equal(keys, want) {
		t.Errorf("keys %v, want %v (no feature_names or training_auc when not given)", keys, want)
	}
	if got["model_type"] != "custom" || got["training_seed"] != "-4" || got["feature_count"] != "2" {
		t.Errorf("props %v", got)
	}
	if p.GetGraph().GetName() != "g" {
		t.Errorf("graph name %q, want g", p.GetGraph().GetName())
	}
}

func TestRejectsInvalidModels(t *testing.T) {
	scaler := func(f int) train.Standardizer {
		s := train.Standardizer{Mean: make([]float32, f), Std: make([]float32, f)}
		for i := range s.Std {
			s.Std[i] = 1
		}
		return s
	}
	lr := func(mut func(*train.LogisticRegression)) *train.LogisticRegression {
		m := &train.LogisticRegression{Scaler: scaler(3), Weights: []float32{1, 2, 3}}
		mut(m)
		return m
	}
	mlp := func(mut func(*train.MLP)) *train.MLP {
		m := &train.MLP{
			Scaler: scaler(3),
			Hidden: []train.Dense{{In: 3, Out: 2, W: make([]float32, 6), B: make([]float32, 2)}},
			Output: train.Dense{In: 2, Out: 1, W: make([]float32, 2), B: make([]float32, 1)},
		}
		mut(m)
		return m
	}
	fl := func(name string, m *train.LogisticRegression, md onnxexport.Metadata, want error) {
		t.Helper()
		if _, err := onnxexport.Logistic(m, md); !errors.Is(err, want) {
			t.Errorf("%s: err %v, want %v", name, err, want)
		}
	}
	fm := func(name string, m *train.MLP, want error) {
		t.Helper()
		if _, err := onnxexport.MLP(m, onnxexport.Metadata{}); !errors.Is(err, want) {
			t.Errorf("%s: err %v, want %v", name, err, want)
		}
	}
	nan := float32(math.NaN())
	fl("ok", lr(func(*train.LogisticRegression) {}), onnxexport.Metadata{FeatureNames: []string{"a", "b", "c"}}, nil)
	fl("short weights", lr(func(m *train.LogisticRegression) { m.Weights = m.Weights[:2] }), onnxexport.Metadata{}, onnxexport.ErrInvalidModel)
	fl("zero std", lr(func(m *train.LogisticRegression) { m.Scaler.Std[1] = 0 }), onnxexport.Metadata{}, onnxexport.ErrInvalidModel)
	fl("NaN bias", lr(func(m *train.LogisticRegression) { m.Bias = nan }), onnxexport.Metadata{}, onnxexport.ErrInvalidModel)
	fl("no features", &train.LogisticRegression{}, onnxexport.Metadata{}, onnxexport.ErrInvalidModel)
	fl("two names", lr(func(*train.LogisticRegression) {}), onnxexport.Metadata{FeatureNames: []string{"a", "b"}}, onnxexport.ErrFeatureNames)
	fl("comma name", lr(func(*train.LogisticRegression) {}), onnxexport.Metadata{FeatureNames: []string{"a", "b,c", "d"}}, onnxexport.ErrFeatureNames)
	fm("ok", mlp(func(*train.MLP) {}), nil)
	fm("chain", mlp(func(m *train.MLP) { m.Output.In = 3; m.Output.W = make([]float32, 3) }), onnxexport.ErrInvalidModel)
	fm("short bias", mlp(func(m *train.MLP) { m.Hidden[0].B = m.Hidden[0].B[:1] }), onnxexport.ErrInvalidModel)
	fm("two outputs", mlp(func(m *train.MLP) { m.Output.Out = 2; m.Output.W = make([]float32, 4); m.Output.B = make([]float32, 2) }), onnxexport.ErrInvalidModel)
	fm("Inf weight", mlp(func(m *train.MLP) { m.Hidden[0].W[3] = float32(math.Inf(1)) }), onnxexport.ErrInvalidModel)
}
