// Package demo builds modelgate's demo fraud models: trained by package
// train on data from package fraud and exported to ONNX by package
// onnxexport, deterministically, so a seed always yields the same bytes (and
// so the same sha256 digest in the registry).
//
// FraudModel is the logistic regression `make run` serves as champion;
// FraudMLP is a wider model whose per-row ONNX Runtime cost is large enough
// to make dynamic batching measurable in benchmarks.
package demo

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/modelgate/modelgate/internal/fraud"
	"github.com/modelgate/modelgate/internal/onnxexport"
	"github.com/modelgate/modelgate/internal/train"
)

// DefaultSeed is the seed of the demo model `modelgate demo model` writes.
const DefaultSeed = 42

// Data sizes. Small enough that FraudModel takes well under a second and
// FraudMLP(seed, 128) about one; large enough for a stable held-out AUC.
const (
	TrainRows    = 50_000 // logistic regression training rows
	MLPTrainRows = 20_000 // MLP training rows
	HoldoutRows  = 20_000 // rows the reported AUC is measured on
	MLPLayers    = 2      // hidden layers of FraudMLP
	MLPEpochs    = 2      // passes of FraudMLP's training
)

// sampleSalt separates SampleRows' stream from the training stream of the
// same seed, so sample requests are not training rows.
const sampleSalt = 0x73616d706c65 // "sample"

// ErrInvalidWidth: FraudMLP was asked for a hidden width below 1.
var ErrInvalidWidth = errors.New("demo: hidden width must be positive")

// Result is a trained demo model with what it was measured at.
type Result[M train.Predictor] struct {
	Model       M       // the Go model, whose Predict the ONNX graph reproduces
	ONNX        []byte  // the exported ModelProto
	HoldoutAUC  float64 // AUC on HoldoutRows rows drawn after the training rows
	HoldoutLoss float64 // mean log-loss on the same rows
}

// FraudModel trains the demo logistic regression on TrainRows transactions
// drawn with seed and returns its ONNX bytes.
func FraudModel(seed int64) ([]byte, error) {
	r, err := TrainFraudModel(seed)
	if err != nil {
		return nil, err
	}
	return r.ONNX, nil
}

// FraudMLP trains a demo MLP with MLPLayers hidden layers of width hidden
// on MLPTrainRows transactions drawn with seed and returns its ONNX bytes.
// Training time grows with hidden²: about a second at 128.
func FraudMLP(seed int64, hidden int) ([]byte, error) {
	r, err := TrainFraudMLP(seed, hidden)
	if err != nil {
		return nil, err
	}
	return r.ONNX, nil
}

// TrainFraudModel is FraudModel, also returning the Go model and its
// held-out scores.
func TrainFraudModel(seed int64) (*Result[*train.LogisticRegression], error) {
	tr, held := data(seed, TrainRows)
	m, err := train.FitLogistic(tr, train.LogisticConfig{Seed: seed})
	if err != nil {
		return nil, fmt.Errorf("demo: cannot train the fraud model: %w", err)
	}
	r := &Result[*train.LogisticRegression]{Model: m}
	meta := r.measure(m, held, seed, tr.Rows())
	if r.ONNX, err = onnxexport.Logistic(m, meta); err != nil {
		return nil, fmt.Errorf("demo: cannot export the fraud model: %w", err)
	}
	return r, nil
}

// TrainFraudMLP is FraudMLP, also returning the Go model and its held-out
// scores.
func TrainFraudMLP(seed int64, hidden int) (*Result[*train.MLP], error) {
	if hidden < 1 {
		return nil, fmt.Errorf("%w (got %d)", ErrInvalidWidth, hidden)
	}
	tr, held := data(seed, MLPTrainRows)
	widths := make([]int, MLPLayers)
	for i := range widths {
		widths[i] = hidden
	}
	m, err := train.FitMLP(tr, train.MLPConfig{Hidden: widths, Epochs: MLPEpochs, Seed: seed})
	if err != nil {
		return nil, fmt.Errorf("demo: cannot train the fraud MLP: %w", err)
	}
	r := &Result[*train.MLP]{Model: m}
	meta := r.measure(m, held, seed, tr.Rows())
	meta.GraphName = "modelgate_fraud_mlp_" + strconv.Itoa(hidden)
	if r.ONNX, err = onnxexport.MLP(m, meta); err != nil {
		return nil, fmt.Errorf("demo: cannot export the fraud MLP: %w", err)
	}
	return r, nil
}

// SampleRows draws n transactions for sample requests and smoke runs: the
// same population as the training data (unless opts add drift) but a
// different stream, so they are not rows the model was trained on.
func SampleRows(seed int64, n int, opts ...fraud.Option) (x []float32, y []bool) {
	return fraud.NewGenerator(seed^sampleSalt, opts...).Batch(n)
}

// SampleRequestRow returns one sample transaction's features, the first row
// SampleRows(seed, 1) draws.
func SampleRequestRow(seed int64) [fraud.NumFeatures]float32 {
	var row [fraud.NumFeatures]float32
	fraud.NewGenerator(seed ^ sampleSalt).Next(row[:])
	return row
}

// data draws n training rows and then HoldoutRows held-out rows from one
// undrifted stream.
func data(seed int64, n int) (tr, held train.Data) {
	g := fraud.NewGenerator(seed)
	x, y := g.Batch(n)
	hx, hy := g.Batch(HoldoutRows)
	return train.Data{X: x, Y: y, Features: fraud.NumFeatures}, train.Data{X: hx, Y: hy, Features: fraud.NumFeatures}
}

// measure scores m on the held-out rows, records the scores in r and
// returns the export metadata.
func (r *Result[M]) measure(m M, held train.Data, seed int64, rows int) onnxexport.Metadata {
	s := train.Scores(m, held)
	r.HoldoutAUC, r.HoldoutLoss = train.AUC(s, held.Y), train.LogLoss(s, held.Y)
	pos := 0
	for _, y := range held.Y {
		if y {
			pos++
		}
	}
	return onnxexport.Metadata{
		FeatureNames: fraud.FeatureNames[:],
		TrainingSeed: seed,
		TrainingAUC:  r.HoldoutAUC,
		TrainingRows: rows,
		GraphName:    "modelgate_fraud",
		DocString: "modelgate demo fraud model: P(fraud) of a card transaction from " +
			strconv.Itoa(fraud.NumFeatures) + " features (see feature_names). Trained on synthetic data; not for real decisions.",
		Extra: map[string]string{
			"dataset":            "modelgate internal/fraud synthetic card transactions, undrifted",
			"holdout_rows":       strconv.Itoa(held.Rows()),
			"holdout_log_loss":   strconv.FormatFloat(r.HoldoutLoss, 'f', 6, 64),
			"holdout_fraud_rate": strconv.FormatFloat(float64(pos)/float64(held.Rows()), 'f', 6, 64),
		},
	}
}
