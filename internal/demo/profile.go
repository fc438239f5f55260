package demo

import (
	"fmt"

	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/internal/fraud"
	"github.com/modelgate/modelgate/internal/onnxexport"
	"github.com/modelgate/modelgate/internal/train"
)

// ProfileRows is how many transactions of a demo model's training stream
// its drift reference profile is built from: plenty for bins and
// quantiles.
const ProfileRows = 20_000

// FraudProfile is the drift reference profile of a demo model trained with
// seed: its inputs and m's scores over the first ProfileRows transactions
// of the training stream. Registered with the model, it lets drift be
// judged from the first request instead of after a bootstrap period.
func FraudProfile(seed int64, m train.Predictor) (*drift.Profile, error) {
	b := drift.NewProfileBuilder(drift.ProfileOptions{
		Inputs:    []drift.Input{{Name: onnxexport.InputName, Width: fraud.NumFeatures}},
		Names:     fraud.FeatureNames[:],
		Output:    onnxexport.OutputName,
		Threshold: 0.5,
		Seed:      uint64(seed),
	})
	x, _ := fraud.NewGenerator(seed).Batch(ProfileRows)
	for i := range ProfileRows {
		row := x[i*fraud.NumFeatures : (i+1)*fraud.NumFeatures]
		if err := b.AddScored(row, m.Predict(row)); err != nil {
			return nil, fmt.Errorf("demo: cannot profile training row %d: %w", i, err)
		}
	}
	p, err := b.Build()
	if err != nil {
		return nil, fmt.Errorf("demo: cannot build the reference profile: %w", err)
	}
	return p, nil
}
