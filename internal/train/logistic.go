package train

import (
	"fmt"
	"math"
)

// LogisticRegression is a fitted logistic regression over standardised
// features: p = sigmoid(Weights·standardise(x) + Bias).
type LogisticRegression struct {
	Scaler  Standardizer
	Weights []float32
	Bias    float32
}

// Features returns the number of inputs the model takes.
func (m *LogisticRegression) Features() int { return len(m.Weights) }

// Predict returns the positive-class probability of row, which must have
// Features() values. It standardises in float32 like the ONNX graph, sums
// in float64, and does not allocate.
func (m *LogisticRegression) Predict(row []float32) float32 {
	mean, std, w := m.Scaler.Mean, m.Scaler.Std, m.Weights
	row = row[:len(w)]
	z := float64(m.Bias)
	for i, v := range row {
		z += float64((v-mean[i])/std[i]) * float64(w[i])
	}
	return float32(sigmoid(z))
}

// FitLogistic fits a logistic regression to d by mini-batch Adam on the
// L2-penalised mean log-loss. The bias starts at the log-odds of the
// positive rate, so the first steps go into the weights rather than into
// learning the base rate.
func FitLogistic(d Data, cfg LogisticConfig) (*LogisticRegression, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("train: cannot fit logistic regression: %w", err)
	}
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("train: cannot fit logistic regression: %w", err)
	}
	cfg = cfg.withDefaults()
	scaler := FitStandardizer(d)
	x := scaler.applyAll(d)
	f := d.Features
	n := d.Rows()

	// params[:f] are the weights, params[f] the bias.
	params := make([]float64, f+1)
	rate := d.positiveRate()
	params[f] = math.Log(rate / (1 - rate))
	grad := make([]float64, f+1)
	opt := newAdam(f+1, cfg.LearningRate)
	rng := newSource(cfg.Seed)
	order := identity(n)

	batches := (n + cfg.BatchSize - 1) / cfg.BatchSize
	total := cfg.Epochs * batches
	step := 0
	for range cfg.Epochs {
		rng.shuffle(order)
		for lo := 0; lo < n; lo += cfg.BatchSize {
			batch := order[lo:min(lo+cfg.BatchSize, n)]
			clear(grad)
			for _, r := range batch {
				row := x[r*f : (r+1)*f]
				z := params[f]
				for j, v := range row {
					z += float64(v) * params[j]
				}
				e := sigmoid(z) // d(log-loss)/dz = p - y
				if d.Y[r] {
					e--
				}
				for j, v := range row {
					grad[j] += e * float64(v)
				}
				grad[f] += e
			}
			inv := 1 / float64(len(batch))
			for j := range f {
				grad[j] = grad[j]*inv + cfg.L2*params[j]
			}
			grad[f] *= inv
			opt.step(params, grad, lrSchedule(step, total))
			step++
		}
	}

	m := &LogisticRegression{Scaler: scaler, Weights: make([]float32, f), Bias: float32(params[f])}
	for j := range f {
		m.Weights[j] = float32(params[j])
	}
	return m, nil
}
