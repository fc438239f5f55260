package shadow

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers test for them with errors.Is, so an HTTP layer
// maps each to a status code without reading its text:
//
//	400  ErrInvalidConfig, ErrOutOfRange, ErrCorrupt
//	409  ErrMismatch
//	422  ErrScore
var (
	// ErrInvalidConfig: a MirrorConfig, WindowConfig or EvalConfig has a
	// bad field; the wrapping error names it and its value.
	ErrInvalidConfig = errors.New("shadow: invalid config")
	// ErrOutOfRange: a value given to Record or Add cannot be counted (NaN,
	// infinite, a probability outside [0, 1], a binary label other than 0
	// or 1, a negative latency). Nothing was recorded.
	ErrOutOfRange = errors.New("shadow: value out of range")
	// ErrMismatch: two statistics cannot be merged or compared because they
	// were built with different settings (threshold, bins, task, window).
	ErrMismatch = errors.New("shadow: statistics built with different settings")
	// ErrCorrupt: Import was given bytes that are not an export of this
	// package, or one whose counts contradict each other.
	ErrCorrupt = errors.New("shadow: corrupt export")
	// ErrScore: a score could not be read from a model's outputs (no such
	// output, a type that is not numeric, or champion and shadow answered
	// with different row counts).
	ErrScore = errors.New("shadow: cannot read score")
	// ErrClosed: the Mirror was closed.
	ErrClosed = errors.New("shadow: mirror closed")
	// ErrPanic: a shadow run (or the observer) panicked; the error wrapping
	// it carries the panic value. The caller's request never sees it.
	ErrPanic = errors.New("shadow: shadow run panicked")
)

func configErr(field string, v any, reason string) error {
	return fmt.Errorf("%w: %s (%v) %s", ErrInvalidConfig, field, v, reason)
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}
