package lifecycle

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinel errors. Callers test for them with errors.Is; the typed errors
// unwrap to one of them.
var (
	// ErrInvalidWebhook: a Webhook or an Event cannot be sent as configured
	// (no URL, a URL that is not http or https, no secret, no event id). The
	// error names the bad field; fix the model's retraining policy or the
	// node's secret configuration.
	ErrInvalidWebhook = errors.New("lifecycle: invalid webhook")
	// ErrRejected: the receiver answered a status that retrying cannot fix
	// (a 4xx other than 408 and 429, or a redirect). The error is a
	// *StatusError with the status and the start of the receiver's body.
	ErrRejected = errors.New("lifecycle: webhook rejected the event")
	// ErrUndelivered: every attempt failed with a retryable error, or the
	// context ended (its deadline, a cancel) before one succeeded. The error
	// also wraps the last attempt's error and, when it ended the retries,
	// the context's error.
	ErrUndelivered = errors.New("lifecycle: webhook not delivered")
	// ErrBadSignature: Verify found no valid signature in the header: it is
	// malformed, or signed with another secret, or the body changed.
	ErrBadSignature = errors.New("lifecycle: bad webhook signature")
	// ErrStaleSignature: Verify found a timestamp outside the tolerance: a
	// replayed (or badly clock-skewed) request.
	ErrStaleSignature = errors.New("lifecycle: webhook signature timestamp outside the tolerance")
)

// maxErrorBody is how much of a receiver's answer an error quotes.
const maxErrorBody = 512

// StatusError is a receiver's answer that was not a success: its status
// and the first 512 bytes of its body. When the status is not retryable it
// unwraps to ErrRejected.
type StatusError struct {
	URL    string
	Status int
	Body   string
}

// Error names the receiver, its status and what it said.
func (e *StatusError) Error() string {
	msg := fmt.Sprintf("lifecycle: webhook %s answered %d %s", e.URL, e.Status, http.StatusText(e.Status))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	if !Retryable(e.Status) {
		msg += " (not retried: fix the receiver or the model's retraining policy)"
	}
	return msg
}

// Unwrap returns ErrRejected for a status that is not retried, else nil.
func (e *StatusError) Unwrap() error {
	if Retryable(e.Status) {
		return nil
	}
	return ErrRejected
}

// Retryable reports whether a webhook answer with this status is worth
// retrying: 408, 429 and every 5xx. Any other non-2xx status is permanent.
func Retryable(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
}
