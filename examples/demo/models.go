package main

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/fraud"
	"github.com/modelgate/modelgate/internal/onnxexport"
)

// models are the two versions the demo registers itself; the third (the
// good candidate) comes from the retraining job.
type models struct {
	champion     []byte
	profile      json.RawMessage
	championAUC  float64
	championLoss float64
	bad          []byte
}

// buildModels trains the demo champion (the same bytes `make demo-model`
// writes), its reference profile from its training rows, and the bad
// candidate: the champion with every weight and the bias negated. The bad
// one has the champion's signature, loads and runs in ONNX Runtime and
// passes the validation gate; only its answers are wrong (it ranks fraud
// last), which only labels and the score distribution can tell.
func buildModels() (*models, error) {
	r, err := demo.TrainFraudModel(demo.DefaultSeed)
	if err != nil {
		return nil, err
	}
	m := &models{champion: r.ONNX, championAUC: r.HoldoutAUC, championLoss: r.HoldoutLoss}

	p, err := demo.FraudProfile(demo.DefaultSeed, r.Model)
	if err != nil {
		return nil, err
	}
	if m.profile, err = json.Marshal(p); err != nil {
		return nil, err
	}

	inv := *r.Model
	inv.Weights = make([]float32, len(r.Model.Weights))
	for i, w := range r.Model.Weights {
		inv.Weights[i] = -w
	}
	inv.Bias = -r.Model.Bias
	m.bad, err = onnxexport.Logistic(&inv, onnxexport.Metadata{
		FeatureNames: fraud.FeatureNames[:],
		TrainingSeed: demo.DefaultSeed,
		GraphName:    "modelgate_fraud_inverted",
		DocString:    "modelgate demo: the demo fraud model with its weights inverted, a deliberately bad candidate",
	})
	if err != nil {
		return nil, fmt.Errorf("cannot export the bad candidate: %w", err)
	}
	return m, nil
}

// championRegistration is the lineage the champion is registered with.
func (m *models) championRegistration(commit string) registration {
	return registration{
		Lineage: lineage{
			DatasetURI:     "modelgate internal/fraud synthetic card transactions, undrifted, seed " + strconv.Itoa(demo.DefaultSeed),
			DatasetVersion: strconv.Itoa(demo.TrainRows) + " rows",
			CodeCommit:     commit,
			TrainingMetrics: map[string]float64{"auc": m.championAUC, "log_loss": m.championLoss,
				"train_rows": demo.TrainRows, "holdout_rows": demo.HoldoutRows},
			Notes: "the demo champion (modelgate demo model); reference profile from its first " + strconv.Itoa(demo.ProfileRows) + " training rows",
		},
		Profile:        m.profile,
		IdempotencyKey: "demo/champion",
		Reason:         "the demo's champion, trained on calm traffic",
	}
}

// badRegistration is the bad candidate's: honest lineage, a bad model.
func (m *models) badRegistration(parent int, commit string) registration {
	return registration{
		Lineage: lineage{
			DatasetURI:    "modelgate internal/fraud synthetic card transactions, undrifted, seed " + strconv.Itoa(demo.DefaultSeed),
			CodeCommit:    commit,
			ParentVersion: parent,
			Notes:         "deliberately bad: the demo model with every weight and the bias negated (ranks fraud last)",
		},
		IdempotencyKey: "demo/bad-candidate",
		Reason:         "a deliberately bad candidate: the rollout must pull it back on its own",
	}
}
