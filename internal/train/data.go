package train

import "fmt"

// Data is a labelled training set: a row-major matrix of Rows()×Features
// float32 values and one boolean label per row (true is the positive class,
// fraud).
type Data struct {
	X        []float32
	Y        []bool
	Features int
}

// Rows returns the number of rows.
func (d Data) Rows() int { return len(d.Y) }

// Row returns row i, sharing memory with X.
func (d Data) Row(i int) []float32 {
	return d.X[i*d.Features : (i+1)*d.Features : (i+1)*d.Features]
}

// Validate reports data a trainer cannot use: empty, mis-shaped, or with
// a single class.
func (d Data) Validate() error {
	if d.Rows() == 0 || d.Features <= 0 {
		return fmt.Errorf("%w: %d rows of %d features", ErrNoData, d.Rows(), d.Features)
	}
	if len(d.X) != d.Rows()*d.Features {
		return fmt.Errorf("%w: %d values for %d rows of %d features (want %d)",
			ErrDataShape, len(d.X), d.Rows(), d.Features, d.Rows()*d.Features)
	}
	pos := 0
	for _, y := range d.Y {
		if y {
			pos++
		}
	}
	if pos == 0 || pos == d.Rows() {
		return fmt.Errorf("%w: %d positives in %d rows", ErrOneClass, pos, d.Rows())
	}
	return nil
}

// positiveRate returns the share of positive labels.
func (d Data) positiveRate() float64 {
	pos := 0
	for _, y := range d.Y {
		if y {
			pos++
		}
	}
	return float64(pos) / float64(d.Rows())
}
