package train_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/modelgate/modelgate/internal/fraud"
	"github.com/modelgate/modelgate/internal/train"
)

// fraudData draws n rows from the undrifted fraud generator.
func fraudData(g *fraud.Generator, n int) train.Data {
	x, y := g.Batch(n)
	return train.Data{X: x, Y: y, Features: fraud.NumFeatures}
}

func TestFitLogisticFraudAUC(t *testing.T) {
	g := fraud.NewGenerator(11)
	tr, held := fraudData(g, 50_000), fraudData(g, 20_000)
	m, err := train.FitLogistic(tr, train.LogisticConfig{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	auc := train.AUC(train.Scores(m, held), held.Y)
	t.Logf("held-out AUC %.4f, log-loss %.4f", auc, train.LogLoss(train.Scores(m, held), held.Y))
	if auc < 0.85 {
		t.Fatalf("held-out AUC %.4f, want >= 0.85", auc)
	}
}

func TestFitMLPFraudAUC(t *testing.T) {
	g := fraud.NewGenerator(12)
	tr, held := fraudData(g, 30_000), fraudData(g, 20_000)
	m, err := train.FitMLP(tr, train.MLPConfig{Hidden: []int{16, 8}, Epochs: 4, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Hidden) != 2 || m.Hidden[0].Out != 16 || m.Hidden[1].In != 16 || m.Output.In != 8 || m.Output.Out != 1 {
		t.Fatalf("layer shapes %+v / %d→%d", m.Hidden, m.Output.In, m.Output.Out)
	}
	auc := train.AUC(train.Scores(m, held), held.Y)
	t.Logf("held-out AUC %.4f", auc)
	if auc < 0.85 {
		t.Fatalf("held-out AUC %.4f, want >= 0.85", auc)
	}
}

func TestFitDeterministic(t *testing.T) {
	d := fraudData(fraud.NewGenerator(13), 5_000)
	lr1, _ := train.FitLogistic(d, train.LogisticConfig{Seed: 7})
	lr2, _ := train.FitLogistic(d, train.LogisticConfig{Seed: 7})
	if !slices.Equal(lr1.Weights, lr2.Weights) || lr1.Bias != lr2.Bias {
		t.Fatal("logistic regression: same data and seed gave different weights")
	}
	lr3, _ := train.FitLogistic(d, train.LogisticConfig{Seed: 8})
	if slices.Equal(lr1.Weights, lr3.Weights) {
		t.Fatal("logistic regression: a different seed gave the same weights")
	}
	cfg := train.MLPConfig{Hidden: []int{8, 4}, Epochs: 1, Seed: 7}
	m1, _ := train.FitMLP(d, cfg)
	m2, _ := train.FitMLP(d, cfg)
	for l := range m1.Hidden {
		if !slices.Equal(m1.Hidden[l].W, m2.Hidden[l].W) || !slices.Equal(m1.Hidden[l].B, m2.Hidden[l].B) {
			t.Fatalf("MLP: layer %d differs between two fits with the same seed", l)
		}
	}
	if !slices.Equal(m1.Output.W, m2.Output.W) || !slices.Equal(m1.Output.B, m2.Output.B) {
		t.Fatal("MLP: output layer differs between two fits with the same seed")
	}
}

// TestFitLogisticRecoversWeights fits data drawn from a known logistic model
// and checks the coefficients come back (in raw units).
func TestFitLogisticRecoversWeights(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n = 40_000
	wantW := []float64{1.5, -2.0}
	const wantB = -0.5
	d := train.Data{X: make([]float32, 2*n), Y: make([]bool, n), Features: 2}
	for i := range n {
		a, b := r.NormFloat64()*2+1, r.NormFloat64()*0.5
		d.X[2*i], d.X[2*i+1] = float32(a), float32(b)
		z := wantB + wantW[0]*a + wantW[1]*b
		d.Y[i] = r.Float64() < 1/(1+math.Exp(-z))
	}
	m, err := train.FitLogistic(d, train.LogisticConfig{L2: 1e-9, Epochs: 10})
	if err != nil {
		t.Fatal(err)
	}
	// Undo the standardisation: w_raw = w / std, b_raw = b - Σ w·mean/std.
	b := float64(m.Bias)
	for j := range 2 {
		w := float64(m.Weights[j]) / float64(m.Scaler.Std[j])
		b -= w * float64(m.Scaler.Mean[j])
		if math.Abs(w-wantW[j]) > 0.1 {
			t.Errorf("weight %d = %.3f, want %.3f ± 0.1", j, w, wantW[j])
		}
	}
	if math.Abs(b-wantB) > 0.1 {
		t.Errorf("bias = %.3f, want %.3f ± 0.1", b, wantB)
	}
}

func TestStandardizer(t *testing.T) {
	d := train.Data{X: []float32{1, 5, 3, 5}, Y: []bool{true, false}, Features: 2}
	s := train.FitStandardizer(d)
	if !slices.Equal(s.Mean, []float32{2, 5}) || !slices.Equal(s.Std, []float32{1, 1}) {
		t.Fatalf("mean %v std %v, want [2 5] [1 1] (a constant feature gets std 1)", s.Mean, s.Std)
	}
	dst := make([]float32, 2)
	s.Apply(dst, []float32{4, 6})
	if !slices.Equal(dst, []float32{2, 1}) {
		t.Fatalf("Apply = %v, want [2 1]", dst)
	}
}

func TestDataValidate(t *testing.T) {
	f := func(name string, d train.Data, want error) {
		t.Helper()
		if err := d.Validate(); !errors.Is(err, want) {
			t.Errorf("%s: Validate() = %v, want %v", name, err, want)
		}
	}
	f("ok", train.Data{X: []float32{1, 2}, Y: []bool{true, false}, Features: 1}, nil)
	f("empty", train.Data{Features: 3}, train.ErrNoData)
	f("no features", train.Data{Y: []bool{true}}, train.ErrNoData)
	f("short matrix", train.Data{X: []float32{1}, Y: []bool{true, false}, Features: 1}, train.ErrDataShape)
	f("one class", train.Data{X: []float32{1, 2}, Y: []bool{true, true}, Features: 1}, train.ErrOneClass)
}

func TestConfigValidate(t *testing.T) {
	f := func(name string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Errorf("%s: Validate() = %v, want %v", name, err, want)
		}
	}
	f("logistic zero", train.LogisticConfig{}.Validate(), nil)
	f("logistic negative L2", train.LogisticConfig{L2: -1}.Validate(), train.ErrInvalidConfig)
	f("logistic negative epochs", train.LogisticConfig{Epochs: -1}.Validate(), train.ErrInvalidConfig)
	f("mlp zero", train.MLPConfig{}.Validate(), nil)
	f("mlp zero width", train.MLPConfig{Hidden: []int{4, 0}}.Validate(), train.ErrInvalidConfig)
	f("mlp negative batch", train.MLPConfig{BatchSize: -2}.Validate(), train.ErrInvalidConfig)
	d := train.Data{X: []float32{1, 2}, Y: []bool{true, false}, Features: 1}
	_, err := train.FitMLP(d, train.MLPConfig{LearningRate: -1})
	f("FitMLP bad config", err, train.ErrInvalidConfig)
	_, err = train.FitLogistic(train.Data{}, train.LogisticConfig{})
	f("FitLogistic no data", err, train.ErrNoData)
}

func TestAUC(t *testing.T) {
	f := func(scores []float32, labels []bool, want float64) {
		t.Helper()
		got := train.AUC(scores, labels)
		if math.IsNaN(want) && math.IsNaN(got) {
			return
		}
		if math.Abs(got-want) > 1e-12 {
			t.Errorf("AUC(%v, %v) = %v, want %v", scores, labels, got, want)
		}
	}
	f([]float32{0.1, 0.2, 0.8, 0.9}, []bool{false, false, true, true}, 1)
	f([]float32{0.9, 0.8, 0.2, 0.1}, []bool{false, false, true, true}, 0)
	f([]float32{0.5, 0.5, 0.5, 0.5}, []bool{false, true, false, true}, 0.5)
	// Pairs (pos, neg): (0.4,0.1) win, (0.4,0.5) lose, (0.8,0.1) win, (0.8,0.5) win → 3/4.
	f([]float32{0.1, 0.4, 0.5, 0.8}, []bool{false, true, false, true}, 0.75)
	// A tie between a positive and a negative counts half: (0.3=0.3) ½ + (0.3>0.1) 1 → 3/4.
	f([]float32{0.1, 0.3, 0.3}, []bool{false, false, true}, 0.75)
	f([]float32{0.1, 0.2}, []bool{true, true}, math.NaN())
}

func TestLogLoss(t *testing.T) {
	got := train.LogLoss([]float32{0.5, 0.5}, []bool{true, false})
	if math.Abs(got-math.Ln2) > 1e-9 {
		t.Fatalf("LogLoss = %v, want ln 2", got)
	}
	if got := train.LogLoss([]float32{0, 1}, []bool{true, false}); math.IsInf(got, 0) {
		t.Fatal("LogLoss of a certain mistake is infinite; want it clamped")
	}
}

func TestPredictDoesNotAllocate(t *testing.T) {
	d := fraudData(fraud.NewGenerator(14), 2_000)
	lr, _ := train.FitLogistic(d, train.LogisticConfig{Epochs: 1})
	mlp, _ := train.FitMLP(d, train.MLPConfig{Hidden: []int{16, 16}, Epochs: 1})
	row := d.Row(0)
	for name, m := range map[string]train.Predictor{"logistic": lr, "mlp": mlp} {
		if n := testing.AllocsPerRun(100, func() { m.Predict(row) }); n != 0 {
			t.Errorf("%s: Predict allocates %v times per call, want 0", name, n)
		}
	}
}
