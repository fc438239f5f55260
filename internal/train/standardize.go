package train

import "math"

// minStd is the smallest standard deviation a feature is divided by. A
// feature that is constant in the training data (a one-hot slot that never
// fires) gets Std 1 instead, so it is centred but not blown up if it ever
// moves in production.
const minStd = 1e-6

// Standardizer centres and scales features: (x - Mean) / Std, computed in
// float32 exactly as the exported ONNX graph's Sub and Div nodes do.
type Standardizer struct {
	Mean []float32
	Std  []float32
}

// FitStandardizer returns the mean and (population) standard deviation of
// each feature of d.
func FitStandardizer(d Data) Standardizer {
	f := d.Features
	sum := make([]float64, f)
	sq := make([]float64, f)
	for i := range d.Rows() {
		for j, v := range d.Row(i) {
			sum[j] += float64(v)
		}
	}
	n := float64(d.Rows())
	s := Standardizer{Mean: make([]float32, f), Std: make([]float32, f)}
	for j := range f {
		s.Mean[j] = float32(sum[j] / n)
	}
	// Second pass around the float32 mean the model will use, which is
	// numerically better than E[x²]-E[x]².
	for i := range d.Rows() {
		for j, v := range d.Row(i) {
			dv := float64(v - s.Mean[j])
			sq[j] += dv * dv
		}
	}
	for j := range f {
		sd := math.Sqrt(sq[j] / n)
		if sd < minStd {
			sd = 1
		}
		s.Std[j] = float32(sd)
	}
	return s
}

// Apply writes the standardised row into dst (len(dst) >= len(row)).
func (s Standardizer) Apply(dst, row []float32) {
	mean, std := s.Mean[:len(row)], s.Std[:len(row)]
	dst = dst[:len(row)]
	for i, v := range row {
		dst[i] = (v - mean[i]) / std[i]
	}
}

// applyAll returns a standardised copy of d's matrix.
func (s Standardizer) applyAll(d Data) []float32 {
	out := make([]float32, len(d.X))
	for i := range d.Rows() {
		s.Apply(out[i*d.Features:(i+1)*d.Features], d.Row(i))
	}
	return out
}
