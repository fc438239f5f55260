package lifecycle

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Header names of a webhook request.
const (
	// HeaderSignature carries "t=<unix seconds>,v1=<hex HMAC-SHA256>".
	HeaderSignature = "Modelgate-Signature"
	// HeaderIdempotencyKey carries the Event's ID, the same on every retry.
	HeaderIdempotencyKey = "Modelgate-Idempotency-Key"
	// HeaderAttempt carries the attempt number, from 1 (informational).
	HeaderAttempt = "Modelgate-Attempt"
)

// DefaultTolerance is how far a signature's timestamp may be from the
// receiver's clock when Verify is given a zero tolerance.
const DefaultTolerance = 5 * time.Minute

// Sign returns the Modelgate-Signature header value of body sent at t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>". The
// timestamp is inside the MAC, so a captured request cannot be replayed
// later with a fresh timestamp.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a Modelgate-Signature header against the raw request body,
// for receivers: the header must hold a timestamp within tolerance of now
// (either way; zero means DefaultTolerance) and a v1 signature equal to
// HMAC-SHA256(secret, "<t>.<body>"), compared in constant time. Several v1
// entries are allowed (any one may match), so a sender can sign with an old
// and a new secret while they rotate; unknown keys are ignored.
//
// It returns nil, or an error wrapping ErrBadSignature (malformed header,
// no matching signature: wrong secret or tampered body) or
// ErrStaleSignature (a replay, or clocks too far apart). Pass the body
// exactly as received: re-encoded JSON does not verify.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return fmt.Errorf("%w: %q is not key=value", ErrBadSignature, part)
		}
		switch k {
		case "t":
			if ts != "" {
				return fmt.Errorf("%w: more than one timestamp", ErrBadSignature)
			}
			ts = v
		case "v1":
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != sha256.Size {
				return fmt.Errorf("%w: v1 is not a hex HMAC-SHA256", ErrBadSignature)
			}
			sigs = append(sigs, b)
		}
	}
	if ts == "" || len(sigs) == 0 {
		return fmt.Errorf("%w: want t=<unix seconds>,v1=<hex>", ErrBadSignature)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q is not unix seconds", ErrBadSignature, ts)
	}
	want := mac(secret, ts, body)
	ok := false
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			ok = true
		}
	}
	if !ok {
		return fmt.Errorf("%w: no v1 signature matches (wrong secret, or the body was changed)", ErrBadSignature)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: signed at %s, %s from now (tolerance %s)", ErrStaleSignature,
			time.Unix(sec, 0).UTC().Format(time.RFC3339), d.Round(time.Second), tolerance)
	}
	return nil
}
