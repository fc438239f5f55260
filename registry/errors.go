package registry

import (
	"errors"
	"fmt"
	"strconv"
)

// Sentinel errors. Callers test for them with errors.Is; the typed errors
// below unwrap to one of them, so the admin API maps every registry error to
// a status code without looking at its text:
//
//	404  ErrModelNotFound, ErrVersionNotFound, ErrNoChampion, ErrNoCanary
//	400  ErrInvalid (*FieldError), ErrMalformedCommand, ErrUnknownOp, ErrUnsupportedVersion
//	409  ErrIllegalTransition (*TransitionError), ErrIncompatibleSignature
//	     (*SignatureError), ErrModelExists,
//	     ErrDuplicateArtifact (*DuplicateError), ErrIdempotencyConflict (*IdempotencyError),
//	     ErrNotReady
//
// ErrCorruptSnapshot is no client's fault: a node must not serve from a
// snapshot that fails to restore.
var (
	// ErrModelNotFound: no model has that name.
	ErrModelNotFound = errors.New("registry: model not found")
	// ErrVersionNotFound: the model has no version with that number (it may
	// have been deleted: numbers are never reused).
	ErrVersionNotFound = errors.New("registry: version not found")
	// ErrNoChampion: the model has no champion yet (none of its versions
	// has passed validation).
	ErrNoChampion = errors.New("registry: model has no champion")
	// ErrNoCanary: the model has no canary.
	ErrNoCanary = errors.New("registry: model has no canary")
	// ErrModelExists: create_model named a model that already exists.
	ErrModelExists = errors.New("registry: model already exists")

	// ErrInvalid: a command or a policy has a bad field. The error is a
	// *FieldError naming the field.
	ErrInvalid = errors.New("registry: invalid argument")
	// ErrIllegalTransition: the command is well formed but the version's
	// stage (or the model's aliases) do not allow it now. The error is a
	// *TransitionError saying why.
	ErrIllegalTransition = errors.New("registry: illegal transition")
	// ErrDuplicateArtifact: the model already has a version with the same
	// sha256 digest. The error is a *DuplicateError naming that version.
	ErrDuplicateArtifact = errors.New("registry: artifact already registered")
	// ErrIncompatibleSignature: a promotion or canary move (wire v2, not
	// forced) names a version the champion's clients cannot call. The error
	// is a *SignatureError, which also unwraps to ErrIllegalTransition.
	ErrIncompatibleSignature = errors.New("registry: signature incompatible with the champion's")
	// ErrIdempotencyConflict: the idempotency key was already used by a
	// different command. The error is an *IdempotencyError.
	ErrIdempotencyConflict = errors.New("registry: idempotency key reused for a different command")
	// ErrNotReady: a move would make a version the canary or the champion
	// before the nodes its distribution policy requires report it ready.
	// The registry does not raise it (which nodes are live is not part of
	// its state): the node that proposes the move does (internal/node).
	// It is transient: the same move succeeds once the nodes are ready.
	ErrNotReady = errors.New("registry: version not ready on the nodes the distribution policy requires")

	// ErrMalformedCommand: the command bytes are not a valid envelope.
	ErrMalformedCommand = errors.New("registry: malformed command")
	// ErrUnknownOp: the envelope names an operation this registry does not know.
	ErrUnknownOp = errors.New("registry: unknown command op")
	// ErrUnsupportedVersion: the envelope's "v" is not a wire version this
	// registry reads (it reads version 1).
	ErrUnsupportedVersion = errors.New("registry: unsupported command version")
	// ErrCorruptSnapshot: a snapshot could not be decoded or breaks an
	// invariant; it must not be served from.
	ErrCorruptSnapshot = errors.New("registry: corrupt snapshot")
)

// TransitionError says why a command may not move a version (or a model's
// aliases) the way it asked. It unwraps to ErrIllegalTransition (HTTP 409).
// Reason is written for an operator: it says what is in the way and, where
// there is one, what to do first.
type TransitionError struct {
	Model   string
	Version int // 0 when the command acts on the model (rollback)
	// Action is what was attempted: "validate", "shadow", "canary",
	// "canary weight", "retire", "promote", "roll back", "approve",
	// "reject" or "delete".
	Action string
	From   Stage // the version's stage when the command arrived ("" for a model)
	To     Stage // the stage it asked for ("" for delete, approve and reject)
	Reason string
}

// Error says what was refused on which version, and why.
func (e *TransitionError) Error() string {
	subject := e.Model
	if e.Version > 0 {
		subject += " v" + strconv.Itoa(e.Version)
	}
	var what string
	switch e.Action {
	case "shadow":
		what = "move " + subject + " to shadow"
	case "canary":
		what = "make " + subject + " the canary"
	case "canary weight":
		what = "change the canary weight of " + subject
	case "validate":
		what = "record a validation result for " + subject
	default:
		what = e.Action + " " + subject
	}
	return "registry: cannot " + what + ": " + e.Reason
}

// Unwrap returns ErrIllegalTransition.
func (e *TransitionError) Unwrap() error { return ErrIllegalTransition }

// FieldError says which field of a command or policy is wrong, what it
// held, and what it must be. It unwraps to ErrInvalid (HTTP 400).
// Field is a dotted path as it is spelled on the wire
// ("policy.drift.psi.threshold", "weight", "signature.inputs[0].shape").
type FieldError struct {
	Field  string
	Value  string // the offending value, formatted for a human; may be empty
	Reason string // "must be > 0", "must be between 0 and 100", …
}

// Error names the field, its value and what it must be.
func (e *FieldError) Error() string {
	if e.Value == "" {
		return "registry: " + e.Field + " " + e.Reason
	}
	return "registry: " + e.Field + " (" + e.Value + ") " + e.Reason
}

// Unwrap returns ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// fieldErr builds a *FieldError, formatting value with %q for strings and %v
// for everything else.
func fieldErr(field string, value any, reason string) *FieldError {
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
	return &FieldError{Field: field, Value: v, Reason: reason}
}

// DuplicateError says a register command carried an artifact the model
// already has. Version is the existing version, so a caller that only wants
// "this file, registered once" (modelgate serve --model) can use it. It
// unwraps to ErrDuplicateArtifact (HTTP 409).
type DuplicateError struct {
	Model   string
	Version int
	Digest  string
}

// Error names the existing version.
func (e *DuplicateError) Error() string {
	return fmt.Sprintf("registry: cannot register %s: its artifact (sha256 %s) is already v%d; versions are immutable, so use v%d", e.Model, e.Digest, e.Version, e.Version)
}

// Unwrap returns ErrDuplicateArtifact.
func (e *DuplicateError) Unwrap() error { return ErrDuplicateArtifact }

// IdempotencyError says an idempotency key came back with a different
// command than the one it was first applied with. It unwraps to
// ErrIdempotencyConflict (HTTP 409).
type IdempotencyError struct {
	Key string
	Op  Op // the op the key was first used for
}

// Error names the key and the op it was first used for.
func (e *IdempotencyError) Error() string {
	return fmt.Sprintf("registry: idempotency key %q was already used for a different %s command; use a new key for a new command", e.Key, e.Op)
}

// Unwrap returns ErrIdempotencyConflict.
func (e *IdempotencyError) Unwrap() error { return ErrIdempotencyConflict }

// modelNotFound and versionNotFound wrap the not-found sentinels with the
// names that were looked up.
func modelNotFound(model string) error {
	return fmt.Errorf("%w: %q", ErrModelNotFound, model)
}

func versionNotFound(model string, version int) error {
	return fmt.Errorf("%w: %s v%d", ErrVersionNotFound, model, version)
}
