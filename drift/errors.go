package drift

import (
	"errors"
	"fmt"
	"strconv"
)

// Sentinel errors. Callers test for them with errors.Is; the typed errors
// below unwrap to one of them, so an HTTP layer maps every drift error to a
// status code without reading its text:
//
//	400  ErrInvalidProfile (*FieldError), ErrInvalidThresholds (*FieldError),
//	     ErrInvalidConfig (*FieldError), ErrBadInput, ErrCorruptSketch
//	409  ErrLayoutMismatch
//	422  ErrRowWidth, ErrNotEnoughRows
var (
	// ErrInvalidProfile: a profile (decoded, or about to be built) has a bad
	// field. The error is a *FieldError naming it.
	ErrInvalidProfile = errors.New("drift: invalid profile")
	// ErrInvalidThresholds: a Thresholds value has a bad field (*FieldError).
	ErrInvalidThresholds = errors.New("drift: invalid thresholds")
	// ErrInvalidConfig: a WindowConfig or ProfileOptions has a bad field
	// (*FieldError).
	ErrInvalidConfig = errors.New("drift: invalid config")
	// ErrUnsupportedVersion: a profile's "v" is not a version this package
	// reads (it reads 1).
	ErrUnsupportedVersion = errors.New("drift: unsupported profile version")
	// ErrRowWidth: a row passed to Observe or Add does not have the width
	// the profile was built for. Observe returns it without allocating.
	ErrRowWidth = errors.New("drift: row has the wrong number of columns")
	// ErrLayoutMismatch: two sketches (or a sketch and a profile) were built
	// from profiles with different bins or columns, so their counts cannot be
	// added or compared. Build both from the same profile.
	ErrLayoutMismatch = errors.New("drift: sketch was built from a different profile")
	// ErrCorruptSketch: Import was given bytes that are not an exported
	// sketch, or one whose counts contradict each other.
	ErrCorruptSketch = errors.New("drift: corrupt sketch")
	// ErrNotEnoughRows: a profile was requested from fewer rows than it
	// needs (at least MinProfileRows non-missing values per numeric column).
	ErrNotEnoughRows = errors.New("drift: not enough rows for a profile")
	// ErrBadInput: ProfileFromReader could not parse its input; the error
	// wrapping it names the line and the column.
	ErrBadInput = errors.New("drift: cannot parse rows")
)

// FieldError says which field of a profile, thresholds or config is wrong,
// what it held and what it must be. Field is a path as spelled in JSON
// ("features[3].grid.cells", "psi.threshold"). It unwraps to the sentinel in
// Kind (ErrInvalidProfile, ErrInvalidThresholds or ErrInvalidConfig).
type FieldError struct {
	Kind   error
	Field  string
	Value  string // the offending value formatted for a human; may be empty
	Reason string // "must be >= 1", "must be increasing", …
}

// Error names the field, its value and what it must be:
// "drift: invalid profile: features[3].grid.cells (0) must be >= 1".
func (e *FieldError) Error() string {
	kind := "drift: invalid"
	if e.Kind != nil {
		kind = e.Kind.Error()
	}
	if e.Value == "" {
		return kind + ": " + e.Field + " " + e.Reason
	}
	return kind + ": " + e.Field + " (" + e.Value + ") " + e.Reason
}

// Unwrap returns the sentinel in Kind.
func (e *FieldError) Unwrap() error { return e.Kind }

// fieldErr builds a *FieldError, quoting strings and printing the rest
// with %v.
func fieldErr(kind error, field string, value any, reason string) *FieldError {
	var v string
	switch x := value.(type) {
	case nil:
	case string:
		if len(x) > 80 {
			x = x[:80] + "…"
		}
		v = strconv.Quote(x)
	default:
		v = fmt.Sprint(x)
	}
	return &FieldError{Kind: kind, Field: field, Value: v, Reason: reason}
}

func profileErr(field string, value any, reason string) error {
	return fieldErr(ErrInvalidProfile, field, value, reason)
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorruptSketch}, args...)...)
}
