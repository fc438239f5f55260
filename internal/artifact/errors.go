package artifact

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers test them with errors.Is; the HTTP layer maps
// ErrNotFound to 404, ErrInvalidDigest to 400 and ErrCorrupt to 500.
var (
	// ErrNotFound: no artifact is stored under the digest.
	ErrNotFound = errors.New("artifact: not found")
	// ErrCorrupt: the stored bytes do not hash to their digest (or a chunk
	// or the manifest is missing or malformed). The artifact must be fetched
	// again from another holder, deleted and put again.
	ErrCorrupt = errors.New("artifact: stored bytes do not match their digest")
	// ErrInvalidDigest: the digest is not 64 lowercase hex digits of sha256.
	ErrInvalidDigest = errors.New("artifact: invalid digest: want 64 lowercase hex digits of sha256")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("artifact: store closed")
	// ErrFailed wraps the first write Pebble could not make (its Fatalf: a
	// WAL write or sync that failed). The store then refuses every write
	// until the node is restarted: an upload acknowledged after a lost write
	// could be a lie. Reads of what was stored keep working.
	// ErrDigestMismatch: bytes given to PutExpect hash to another digest
	// than the one expected (a corrupt or cut transfer); they were not kept.
	ErrDigestMismatch = errors.New("artifact: bytes do not hash to the expected digest")
	ErrFailed         = errors.New("artifact: a write failed, the store accepts no more writes until the node restarts")
)

// TooLargeError is returned by Put when the reader holds more than the
// store's per-artifact limit. Nothing of the upload is kept (HTTP 413).
type TooLargeError struct {
	Limit int64 // Config.MaxBytes
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("artifact: upload larger than the limit of %d bytes (Config.MaxBytes)", e.Limit)
}

// DigestError is PutExpect's refusal of bytes that hash to another digest
// than the one expected. It unwraps to ErrDigestMismatch.
type DigestError struct {
	Want, Got string
	Size      int64 // bytes read
}

func (e *DigestError) Error() string {
	return fmt.Sprintf("artifact: %d bytes received hash to %s, not the expected %s: refused, nothing kept", e.Size, e.Got, e.Want)
}

// Unwrap returns ErrDigestMismatch.
func (e *DigestError) Unwrap() error { return ErrDigestMismatch }
