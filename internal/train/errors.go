package train

import "errors"

// Sentinel errors. The errors that wrap them name the bad value.
var (
	// ErrNoData: the data set has no rows or no features.
	ErrNoData = errors.New("train: no data")
	// ErrDataShape: the matrix does not have Rows()×Features values.
	ErrDataShape = errors.New("train: data shape mismatch")
	// ErrOneClass: every label is the same, so there is nothing to learn.
	ErrOneClass = errors.New("train: labels have a single class")
	// ErrInvalidConfig: a Config field is out of range.
	ErrInvalidConfig = errors.New("train: invalid config")
)
