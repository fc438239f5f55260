package bench

import "errors"

// Errors returned by the package; wrapped with details, test with errors.Is.
var (
	// ErrInvalidConfig is a Config or Scenario that cannot run.
	ErrInvalidConfig = errors.New("bench: invalid configuration")
	// ErrNoBodies is a body file without a single request body in it.
	ErrNoBodies = errors.New("bench: no request bodies")
	// ErrAction is a scenario action that failed.
	ErrAction = errors.New("bench: scenario action failed")
)
