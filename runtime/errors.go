package runtime

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. The gateway maps them to status codes with errors.Is.
var (
	// ErrNotInitialized: Init has not run, so no ONNX Runtime is loaded.
	ErrNotInitialized = errors.New("runtime: ONNX Runtime is not initialised (call runtime.Init)")
	// ErrQueueFull: more calls are waiting for a session than the model's
	// queue allows; the caller should shed load (HTTP 503).
	ErrQueueFull = errors.New("runtime: queue full")
	// ErrTimeout: the call waited longer than its queue timeout for a session.
	ErrTimeout = errors.New("runtime: timed out waiting for a session")
	// ErrClosed: the model has been closed (it was swapped out and drained).
	ErrClosed = errors.New("runtime: model closed")
	// ErrNotBatchable: a call reached the batcher with tensors it cannot
	// join into a batch.
	ErrNotBatchable = errors.New("runtime: model cannot be batched")
)

// InputError says an input the caller sent does not fit the model's
// signature: unknown, missing, duplicated, the wrong data type, or data that
// does not fill its shape. It is the caller's fault (HTTP 400).
type InputError struct {
	Input  string
	Reason string
}

func (e *InputError) Error() string {
	return fmt.Sprintf("input %q: %s", e.Input, e.Reason)
}

// ShapeError says an input's shape does not match the signature's.
type ShapeError struct {
	Input string
	Want  []int64 // -1 marks a dynamic dimension
	Got   []int64
}

func (e *ShapeError) Error() string {
	return fmt.Sprintf("input %q: shape %s does not match the model's %s", e.Input, dimString(e.Got), dimString(e.Want))
}

// OutputError says the caller asked for an output the model does not have.
type OutputError struct {
	Output string
}

func (e *OutputError) Error() string {
	return fmt.Sprintf("output %q: the model has no such output", e.Output)
}

// RunError says ONNX Runtime refused to run the model on these inputs: the
// inputs fit the signature, but their values do not suit the model (an
// integer division by zero, a shape input that does not fit, an allocation
// refused). Err is ORT's error.
type RunError struct {
	Err error
}

func (e *RunError) Error() string { return "runtime: run failed: " + e.Err.Error() }

// Unwrap returns ORT's error.
func (e *RunError) Unwrap() error { return e.Err }

func dimString(d []int64) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, x := range d {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprint(&b, x)
	}
	b.WriteByte(']')
	return b.String()
}

// IsCallerError reports whether err is the caller's fault (a bad input),
// as opposed to the server's.
func IsCallerError(err error) bool {
	var ie *InputError
	var se *ShapeError
	var oe *OutputError
	return errors.As(err, &ie) || errors.As(err, &se) || errors.As(err, &oe)
}
