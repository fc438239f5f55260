package lifecycle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/modelgate/modelgate/registry"
)

// Defaults of Webhook's zero values, and the bounds of its delays.
const (
	DefaultMaxAttempts = 6
	DefaultBackoff     = 500 * time.Millisecond
	// MaxBackoff caps the doubling delay between attempts.
	MaxBackoff = 30 * time.Second
	// MaxRetryAfter caps the delay a receiver's Retry-After asks for.
	MaxRetryAfter = 5 * time.Minute
	// DefaultTimeout bounds one attempt with the default client.
	DefaultTimeout = 30 * time.Second
)

// Webhook sends retraining Events to one receiver, signed with Secret. The
// zero values of MaxAttempts, Backoff, Client and Now mean their defaults.
// A Webhook is safe for concurrent use once configured.
type Webhook struct {
	// URL is the receiver (the model's RetrainingPolicy.URL).
	URL string
	// Secret signs every request (the value RetrainingPolicy.SecretRef
	// names in the node's secret configuration).
	Secret []byte
	// Client sends the requests. Nil: a client with a 30 s timeout per
	// attempt that does not follow redirects (a redirect is answered as a
	// permanent error: configure the final URL).
	Client *http.Client
	// MaxAttempts is how many times an event is sent before giving up (6).
	MaxAttempts int
	// Backoff is the delay after the first failed attempt (500 ms); it
	// doubles after each further one, with jitter, up to MaxBackoff.
	Backoff time.Duration
	// Now is the clock of the signature timestamps (time.Now).
	Now func() time.Time

	// sleep waits d or until ctx ends; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
}

var defaultClient = &http.Client{
	Timeout:       DefaultTimeout,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// Validate checks the webhook's configuration and returns an error wrapping
// ErrInvalidWebhook that names the bad field.
func (w *Webhook) Validate() error {
	bad := func(field, reason string) error { return fmt.Errorf("%w: %s %s", ErrInvalidWebhook, field, reason) }
	u, err := url.Parse(w.URL)
	switch {
	case w.URL == "":
		return bad("url", "is empty: set the model's retraining policy url")
	case err != nil:
		return bad("url", fmt.Sprintf("(%q) does not parse: %v", w.URL, err))
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return bad("url", fmt.Sprintf("(%q) must be an http or https URL", w.URL))
	case u.User != nil:
		return bad("url", "must not carry credentials: the request is signed with the secret")
	case len(w.Secret) == 0:
		return bad("secret", "is empty: the policy's secret_ref must name a configured secret")
	case w.MaxAttempts < 0:
		return bad("max_attempts", fmt.Sprintf("(%d) must be >= 0 (0 means %d)", w.MaxAttempts, DefaultMaxAttempts))
	case w.Backoff < 0:
		return bad("backoff", fmt.Sprintf("(%s) must be >= 0 (0 means %s)", w.Backoff, DefaultBackoff))
	}
	return nil
}

// Send delivers ev: a POST of its JSON with Content-Type application/json,
// the Modelgate-Idempotency-Key header set to ev.ID on every attempt and a
// Modelgate-Signature computed afresh for each attempt (so a late retry is
// not refused as stale). A 2xx answer delivers it.
//
// Network errors, 408, 429 and 5xx are retried, up to MaxAttempts attempts
// in all, after a delay that starts at Backoff and doubles with jitter (up
// to MaxBackoff), or the answer's Retry-After (seconds or an HTTP date, up
// to MaxRetryAfter). Any other status is permanent: a *StatusError
// wrapping ErrRejected, not retried. Send stops when ctx ends, and does not
// start a wait that would outlast ctx's deadline; the error then wraps
// ErrUndelivered, the last attempt's error and ctx.Err() (or
// context.DeadlineExceeded).
//
// attempts is the number of requests sent. Because a receiver may have
// acted on a request whose answer was lost, a delivered event may have
// reached it more than once: receivers deduplicate by the key.
func (w *Webhook) Send(ctx context.Context, ev Event) (attempts int, err error) {
	if err := w.Validate(); err != nil {
		return 0, err
	}
	if ev.ID == "" {
		return 0, fmt.Errorf("%w: event id is empty: it is the idempotency key (see EventID)", ErrInvalidWebhook)
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return 0, fmt.Errorf("lifecycle: cannot encode event %s: %w", ev.ID, err)
	}
	return w.SendBody(ctx, ev.ID, body)
}

// SendBody delivers body as Send delivers an event, with id as the
// idempotency key: signed, retried and stopped the same way. Alerts use it
// for bodies that are not Events (a Slack message).
func (w *Webhook) SendBody(ctx context.Context, id string, body []byte) (attempts int, err error) {
	if err := w.Validate(); err != nil {
		return 0, err
	}
	if id == "" {
		return 0, fmt.Errorf("%w: the idempotency key is empty", ErrInvalidWebhook)
	}
	maxAttempts := w.MaxAttempts
	if maxAttempts == 0 {
		maxAttempts = DefaultMaxAttempts
	}
	backoff := w.Backoff
	if backoff == 0 {
		backoff = DefaultBackoff
	}
	sleep := w.sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	var last error
	for attempts < maxAttempts {
		if err := ctx.Err(); err != nil {
			return attempts, w.undelivered(attempts, last, err)
		}
		attempts++
		retryAfter, err := w.attempt(ctx, id, attempts, body)
		if err == nil {
			return attempts, nil
		}
		if errors.Is(err, ErrRejected) {
			return attempts, err
		}
		last = err
		if attempts == maxAttempts {
			break
		}
		d := retryAfter
		if d <= 0 {
			d = jitter(backoff, attempts)
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
			return attempts, w.undelivered(attempts, last, fmt.Errorf("the next attempt (in %s) would be after the deadline: %w", d.Round(time.Millisecond), context.DeadlineExceeded))
		}
		if err := sleep(ctx, d); err != nil {
			return attempts, w.undelivered(attempts, last, err)
		}
	}
	return attempts, w.undelivered(attempts, last, nil)
}

func (w *Webhook) undelivered(attempts int, last, stop error) error {
	if last == nil {
		last = errors.New("no attempt made")
	}
	if stop != nil {
		return fmt.Errorf("%w to %s after %d attempts: stopped: %w; last error: %w", ErrUndelivered, w.URL, attempts, stop, last)
	}
	return fmt.Errorf("%w to %s after %d attempts: last error: %w", ErrUndelivered, w.URL, attempts, last)
}

// attempt sends one request. It returns nil on 2xx, a *StatusError on any
// other answer (with the Retry-After delay when it gave one), or the
// network error.
func (w *Webhook) attempt(ctx context.Context, id string, n int, body []byte) (time.Duration, error) {
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("%w: url: %v", ErrInvalidWebhook, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "modelgate-webhook/1")
	req.Header.Set(HeaderIdempotencyKey, id)
	req.Header.Set(HeaderAttempt, strconv.Itoa(n))
	req.Header.Set(HeaderSignature, Sign(w.Secret, now(), body))
	client := w.Client
	if client == nil {
		client = defaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("lifecycle: POST %s: %w", w.URL, err)
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return 0, nil
	}
	se := &StatusError{URL: w.URL, Status: resp.StatusCode, Body: strings.TrimSpace(string(head))}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		se.Body = strings.TrimSpace("redirect to " + resp.Header.Get("Location") + " " + se.Body)
	}
	var ra time.Duration
	if Retryable(resp.StatusCode) {
		ra = retryAfter(resp.Header.Get("Retry-After"), now())
	}
	return ra, se
}

// retryAfter parses a Retry-After header (delay seconds or an HTTP date)
// into a delay in (0, MaxRetryAfter], or 0 when absent or unusable.
func retryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	var d time.Duration
	if s, err := strconv.ParseInt(h, 10, 64); errors.Is(err, strconv.ErrRange) && s > 0 {
		return MaxRetryAfter
	} else if err == nil {
		if s < 0 {
			return 0
		}
		if s > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		d = t.Sub(now)
	} else {
		return 0
	}
	if d <= 0 {
		return 0
	}
	return min(d, MaxRetryAfter)
}

// jitter is the delay after failed attempt n (from 1): base·2^(n−1) capped
// at MaxBackoff, then drawn uniformly from its upper half, so retries of
// many events spread out.
func jitter(base time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, MaxBackoff)
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(half+1)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// WebhookFromPolicy returns the webhook of a model's retraining policy,
// signed with secret (the value the policy's SecretRef names in the node's
// secret configuration; the registry never holds it), with the default
// attempts and backoff. It validates the result; it does not look at
// Enabled, which the caller checks before firing.
func WebhookFromPolicy(p registry.RetrainingPolicy, secret []byte) (*Webhook, error) {
	w := &Webhook{URL: p.URL, Secret: secret}
	if err := w.Validate(); err != nil {
		if p.SecretRef != "" && len(secret) == 0 {
			return nil, fmt.Errorf("%w (secret_ref %q)", err, p.SecretRef)
		}
		return nil, err
	}
	return w, nil
}
