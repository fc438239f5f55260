package onnxexport

import "errors"

// Sentinel errors. The errors wrapping them name the bad value.
var (
	// ErrInvalidModel: the model's parameters are inconsistent (a weight
	// matrix whose shape does not chain, a zero or non-finite standard
	// deviation, no features).
	ErrInvalidModel = errors.New("onnxexport: invalid model")
	// ErrFeatureNames: Metadata.FeatureNames does not have one name per
	// model input, or a name is empty or holds a comma.
	ErrFeatureNames = errors.New("onnxexport: feature names do not match the model")
)
