package demo_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/fraud"
	"github.com/modelgate/modelgate/internal/ortlib"
	ort "github.com/yalue/onnxruntime_go"
)

func TestMain(m *testing.M) {
	ort.SetSharedLibraryPath(ortlib.Path())
	if err := ort.InitializeEnvironment(); err != nil {
		fmt.Fprintf(os.Stderr, "demo tests: cannot load ONNX Runtime from %s (set %s or run `make ort`): %v\n",
			ortlib.Path(), ortlib.EnvVar, err)
		os.Exit(1)
	}
	code := m.Run()
	ort.DestroyEnvironment()
	os.Exit(code)
}

// score runs rows through model in one batch on ONNX Runtime.
func score(t *testing.T, model []byte, rows []float32) []float32 {
	t.Helper()
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(model, []string{"features"}, []string{"probability"}, nil)
	if err != nil {
		t.Fatalf("ONNX Runtime rejected the model: %v", err)
	}
	defer s.Destroy()
	n := int64(len(rows) / fraud.NumFeatures)
	in, err := ort.NewTensor(ort.NewShape(n, fraud.NumFeatures), rows)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Destroy()
	out, err := ort.NewEmptyTensor[float32](ort.NewShape(n, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Destroy()
	if err := s.Run([]ort.Value{in}, []ort.Value{out}); err != nil {
		t.Fatal(err)
	}
	return slices.Clone(out.GetData())
}

func metadata(t *testing.T, model []byte, key string) string {
	t.Helper()
	md, err := ort.GetModelMetadataWithONNXData(model)
	if err != nil {
		t.Fatal(err)
	}
	defer md.Destroy()
	v, ok, err := md.LookupCustomMetadataMap(key)
	if err != nil || !ok {
		t.Fatalf("metadata %q: found %v, %v", key, ok, err)
	}
	return v
}

func TestFraudModel(t *testing.T) {
	start := time.Now()
	r, err := demo.TrainFraudModel(demo.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("trained and exported in %v: %d bytes, held-out AUC %.4f, log-loss %.4f",
		time.Since(start), len(r.ONNX), r.HoldoutAUC, r.HoldoutLoss)
	if r.HoldoutAUC < 0.85 {
		t.Errorf("held-out AUC %.4f, want >= 0.85", r.HoldoutAUC)
	}
	again, err := demo.FraudModel(demo.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.ONNX, again) {
		t.Fatal("FraudModel: the same seed gave different bytes")
	}
	other, _ := demo.FraudModel(demo.DefaultSeed + 1)
	if bytes.Equal(r.ONNX, other) {
		t.Fatal("FraudModel: different seeds gave the same bytes")
	}

	rows, _ := demo.SampleRows(demo.DefaultSeed, 64)
	got := score(t, r.ONNX, rows)
	for i, p := range got {
		if want := r.Model.Predict(rows[i*fraud.NumFeatures : (i+1)*fraud.NumFeatures]); math.Abs(float64(p-want)) > 1e-5 {
			t.Fatalf("row %d: ONNX Runtime %v, Go %v", i, p, want)
		}
	}
	if auc, _ := strconv.ParseFloat(metadata(t, r.ONNX, "training_auc"), 64); math.Abs(auc-r.HoldoutAUC) > 1e-6 {
		t.Errorf("training_auc metadata %v, want %v", auc, r.HoldoutAUC)
	}
	if mt := metadata(t, r.ONNX, "model_type"); mt != "logistic_regression" {
		t.Errorf("model_type %q", mt)
	}
}

func TestFraudMLP(t *testing.T) {
	const hidden = 16
	start := time.Now()
	a, err := demo.TrainFraudMLP(7, hidden)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("hidden %d: trained and exported in %v, held-out AUC %.4f", hidden, time.Since(start), a.HoldoutAUC)
	b, err := demo.FraudMLP(7, hidden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.ONNX, b) {
		t.Fatal("FraudMLP: the same seed gave different bytes")
	}
	if a.HoldoutAUC < 0.8 {
		t.Errorf("held-out AUC %.4f, want >= 0.8", a.HoldoutAUC)
	}
	if len(a.Model.Hidden) != demo.MLPLayers || a.Model.Hidden[0].Out != hidden {
		t.Errorf("layers %d, first width %d", len(a.Model.Hidden), a.Model.Hidden[0].Out)
	}
	if hl := metadata(t, a.ONNX, "hidden_layers"); hl != "16,16" {
		t.Errorf("hidden_layers metadata %q, want 16,16", hl)
	}
	rows, _ := demo.SampleRows(1, 32)
	got := score(t, a.ONNX, rows)
	for i, p := range got {
		if want := a.Model.Predict(rows[i*fraud.NumFeatures : (i+1)*fraud.NumFeatures]); math.Abs(float64(p-want)) > 1e-5 {
			t.Fatalf("row %d: ONNX Runtime %v, Go %v", i, p, want)
		}
	}
	if _, err := demo.FraudMLP(1, 0); !errors.Is(err, demo.ErrInvalidWidth) {
		t.Errorf("FraudMLP(1, 0) = %v, want ErrInvalidWidth", err)
	}
}

func TestSampleRows(t *testing.T) {
	x, y := demo.SampleRows(3, 10)
	if len(x) != 10*fraud.NumFeatures || len(y) != 10 {
		t.Fatalf("%d values and %d labels for 10 rows", len(x), len(y))
	}
	row := demo.SampleRequestRow(3)
	if !slices.Equal(row[:], x[:fraud.NumFeatures]) {
		t.Fatal("SampleRequestRow is not the first of SampleRows")
	}
	train, _ := fraud.NewGenerator(3).Batch(1)
	if slices.Equal(train, x[:fraud.NumFeatures]) {
		t.Fatal("sample rows repeat the training stream")
	}
}
