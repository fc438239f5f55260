package predlog

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers compare with errors.Is; every error this package
// returns is prefixed "predlog:".
var (
	// ErrNotFound is returned by Get when no record with the request id is in
	// the log: never logged, dropped from a full ring, lost in a crash (async
	// mode), or removed by retention.
	ErrNotFound = errors.New("predlog: record not found")

	// ErrClosed is returned by every call made after Close started.
	ErrClosed = errors.New("predlog: log is closed")

	// ErrDropped is returned by Append when the ring is full and the record was
	// dropped (and counted in Stats.Dropped). The hot path ignores it except as
	// a metric: async logging never blocks scoring.
	ErrDropped = errors.New("predlog: ring full, record dropped")

	// ErrUnhealthy wraps the first failed commit. Once a commit failed, the log
	// accepts nothing more (Healthy keeps returning it) until it is reopened:
	// an acknowledgement after a failed write could be a lie, so the node should
	// report itself not ready instead, as etcd does after a failed WAL save.
	ErrUnhealthy = errors.New("predlog: a commit failed, the log accepts no more writes until reopened")

	// ErrBadCursor is returned by Export for a cursor it did not produce, or one
	// produced by the other export mode (labelled vs all rows).
	ErrBadCursor = errors.New("predlog: malformed export cursor")

	// ErrCorrupt is returned when a stored value cannot be decoded.
	ErrCorrupt = errors.New("predlog: corrupt record")
)

// ErrTooLarge matches every *TooLargeError under errors.Is.
var ErrTooLarge = errors.New("predlog: record larger than MaxRecordBytes")

// TooLargeError reports a prediction whose record is larger than
// Config.MaxRecordBytes. Nothing is wrong with the prediction: the log
// cannot hold it whole. Append and AppendDurable count it in Stats.Dropped
// and Stats.Oversize (never silently), and the gateway answers a durable
// model's request with 413 rather than a retryable 503: the same request
// would fail the same way forever.
type TooLargeError struct {
	Size  int // the record's size, about (tensor bytes and names)
	Limit int // Config.MaxRecordBytes
}

// Error says how large the record is and what the limit is.
func (e *TooLargeError) Error() string {
	return fmt.Sprintf("predlog: the record takes about %d bytes, more than the log's record limit of %d bytes (MaxRecordBytes)", e.Size, e.Limit)
}

// Is makes errors.Is(err, ErrTooLarge) true for a *TooLargeError.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// InvalidError reports a record or label the log refuses to store, naming the
// field and the bad value; errors.Is(err, ErrInvalid) holds for it, so the HTTP
// layer maps it to 400 without string matching.
type InvalidError struct {
	Field  string // "model", "request_id", "inputs[0].shape", ...
	Reason string // what is wrong with it
}

// ErrInvalid matches every *InvalidError under errors.Is.
var ErrInvalid = errors.New("predlog: invalid record")

// Error says which field is bad and why.
func (e *InvalidError) Error() string {
	return fmt.Sprintf("predlog: invalid %s: %s", e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrInvalid) true for an *InvalidError.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
