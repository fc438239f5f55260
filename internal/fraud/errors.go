package fraud

import "errors"

// Sentinel errors.
var (
	// ErrInvalidDrift: a Drift names an unknown kind or field, or a factor or
	// share out of range. The error wrapping it names the bad value.
	ErrInvalidDrift = errors.New("fraud: invalid drift")
)
