package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelgate/modelgate/drift"
)

var testSecret = []byte("s3cret-for-tests")

// receiver is a real HTTP receiver on 127.0.0.1 that answers each request
// with the next status of a script (the last repeats) and keeps what it got.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	script []int
	header http.Header // extra headers on non-2xx answers
	reqs   []gotReq
}

type gotReq struct {
	header   http.Header
	body     []byte
	verified error
	status   int
	at       time.Time
}

func newReceiver(t *testing.T, script ...int) *receiver {
	r := &receiver{t: t, script: script, header: http.Header{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	status := r.script[min(len(r.reqs), len(r.script)-1)]
	r.reqs = append(r.reqs, gotReq{
		header: req.Header.Clone(), body: body, status: status, at: time.Now(),
		verified: Verify(testSecret, req.Header.Get(HeaderSignature), body, time.Now(), time.Minute),
	})
	if status >= 300 {
		for k, v := range r.header {
			w.Header()[k] = v
		}
		http.Error(w, "receiver says "+http.StatusText(status), status)
		return
	}
	w.WriteHeader(status)
}

func (r *receiver) got() []gotReq {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]gotReq(nil), r.reqs...)
}

func testEvent(t *testing.T) Event {
	t.Helper()
	rep := &drift.Report{Rows: 5000, ReferenceRows: 10000, Breach: true, Features: []drift.FeatureReport{{Input: "features", Index: 2, Name: "amount_log", Kind: drift.Numeric, Count: 5000, Breach: true, Breaches: []string{"psi"}}}}
	alerts := []drift.Alert{{Input: "features", Index: 2, Name: "amount_log", Statistic: drift.StatPSI, Threshold: 0.2, Values: []float64{0.5, 0.6, 0.7}}}
	start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ev, err := NewDriftEvent("fraud", 3, start, start.Add(3*time.Minute), rep, "http://127.0.0.1:8081/api/v1/models/fraud/export?labelled=true", alerts)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func fastHook(url string) *Webhook {
	return &Webhook{URL: url, Secret: testSecret, Backoff: time.Millisecond}
}

// TestSendRetriesThenDelivers: the receiver fails twice with 503 and then
// accepts: three attempts, one accepted, signed and verifiable POST, the
// same idempotency key on all.
func TestSendRetriesThenDelivers(t *testing.T) {
	r := newReceiver(t, 503, 503, 202)
	ev := testEvent(t)
	n, err := fastHook(r.srv.URL).Send(context.Background(), ev)
	if err != nil || n != 3 {
		t.Fatalf("Send = %d, %v; want 3, nil", n, err)
	}
	got := r.got()
	if len(got) != 3 {
		t.Fatalf("receiver got %d requests, want 3", len(got))
	}
	accepted := 0
	for i, g := range got {
		if k := g.header.Get(HeaderIdempotencyKey); k != ev.ID {
			t.Errorf("attempt %d: key %q, want %q", i+1, k, ev.ID)
		}
		if ct := g.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("attempt %d: content type %q", i+1, ct)
		}
		if g.verified != nil {
			t.Errorf("attempt %d: signature does not verify: %v", i+1, g.verified)
		}
		if g.status < 300 {
			accepted++
		}
	}
	if accepted != 1 {
		t.Fatalf("%d accepted requests, want 1", accepted)
	}
	var back Event
	if err := json.Unmarshal(got[2].body, &back); err != nil {
		t.Fatal(err)
	}
	if back.Event != "drift" || back.ID != ev.ID || back.Model != "fraud" || back.Version != 3 || back.ExportURL != ev.ExportURL || len(back.Alerts) != 1 {
		t.Fatalf("decoded event: %+v", back)
	}
	var rep drift.Report
	if err := json.Unmarshal(back.Report, &rep); err != nil || !rep.Breach || rep.Features[0].Name != "amount_log" {
		t.Fatalf("report: %v %+v", err, rep)
	}
}

// TestSendPermanent: a 4xx other than 408/429 is not retried, and the
// error names the status and the receiver's words.
func TestSendPermanent(t *testing.T) {
	f := func(status int) {
		t.Helper()
		r := newReceiver(t, status)
		n, err := fastHook(r.srv.URL).Send(context.Background(), testEvent(t))
		var se *StatusError
		if n != 1 || !errors.Is(err, ErrRejected) || !errors.As(err, &se) || se.Status != status {
			t.Fatalf("%d: Send = %d, %v; want 1 attempt, ErrRejected", status, n, err)
		}
		if !strings.Contains(err.Error(), "receiver says") || !strings.Contains(err.Error(), http.StatusText(status)) {
			t.Fatalf("%d: error does not quote the receiver: %v", status, err)
		}
		if len(r.got()) != 1 {
			t.Fatalf("%d: receiver got %d requests", status, len(r.got()))
		}
	}
	f(400)
	f(401)
	f(404)
	f(422)
}

// TestSendRetryAfter: a 429 with Retry-After: 1 makes the next attempt wait
// about a second, not the tiny backoff.
func TestSendRetryAfter(t *testing.T) {
	r := newReceiver(t, 429, 200)
	r.header.Set("Retry-After", "1")
	n, err := fastHook(r.srv.URL).Send(context.Background(), testEvent(t))
	if err != nil || n != 2 {
		t.Fatalf("Send = %d, %v", n, err)
	}
	got := r.got()
	if gap := got[1].at.Sub(got[0].at); gap < 900*time.Millisecond || gap > 5*time.Second {
		t.Fatalf("second attempt %s after the first, want about 1s", gap)
	}
}

// TestSendDelays: the delays double from Backoff with jitter in the upper
// half, Retry-After (seconds or a date) replaces them, bounded.
func TestSendDelays(t *testing.T) {
	r := newReceiver(t, 500, 503, 408, 429, 429, 502)
	w := &Webhook{URL: r.srv.URL, Secret: testSecret, Backoff: 100 * time.Millisecond, MaxAttempts: 6}
	var delays []time.Duration
	w.sleep = func(_ context.Context, d time.Duration) error { delays = append(delays, d); return nil }
	n, err := w.Send(context.Background(), testEvent(t))
	if n != 6 || !errors.Is(err, ErrUndelivered) {
		t.Fatalf("Send = %d, %v; want 6 attempts, ErrUndelivered", n, err)
	}
	if !strings.Contains(err.Error(), "502") {
		t.Fatalf("error does not name the last status: %v", err)
	}
	if len(delays) != 5 {
		t.Fatalf("delays %v, want 5", delays)
	}
	for i, d := range delays {
		full := min(100*time.Millisecond<<i, MaxBackoff)
		if d < full/2 || d > full {
			t.Errorf("delay %d = %s, want in [%s, %s]", i+1, d, full/2, full)
		}
	}

	// Retry-After is honoured on 429 and 5xx alike, up to MaxRetryAfter.
	r2 := newReceiver(t, 429, 503, 200)
	r2.header.Set("Retry-After", "3600")
	delays = nil
	w.URL = r2.srv.URL
	if n, err := w.Send(context.Background(), testEvent(t)); n != 3 || err != nil {
		t.Fatalf("Send = %d, %v", n, err)
	}
	if len(delays) != 2 || delays[0] != MaxRetryAfter || delays[1] != MaxRetryAfter {
		t.Fatalf("delays %v, want Retry-After capped at %s", delays, MaxRetryAfter)
	}

	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	f := func(h string, want time.Duration) {
		t.Helper()
		if got := retryAfter(h, now); got != want {
			t.Errorf("retryAfter(%q) = %s, want %s", h, got, want)
		}
	}
	f("", 0)
	f("7", 7*time.Second)
	f("-1", 0)
	f("soon", 0)
	f(now.Add(20*time.Second).Format(http.TimeFormat), 20*time.Second)
	f(now.Add(-time.Hour).Format(http.TimeFormat), 0)
	f("99999999999999999999", MaxRetryAfter)
}

// TestSendStopsAtDeadline: a receiver that always fails is tried until the
// context's deadline, not MaxAttempts times, and the error says so.
func TestSendStopsAtDeadline(t *testing.T) {
	r := newReceiver(t, 503)
	w := &Webhook{URL: r.srv.URL, Secret: testSecret, Backoff: 40 * time.Millisecond, MaxAttempts: 100}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	n, err := w.Send(ctx, testEvent(t))
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("Send took %s past a 300ms deadline", el)
	}
	if !errors.Is(err, ErrUndelivered) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrUndelivered and DeadlineExceeded", err)
	}
	if n < 2 || n >= 100 || n != len(r.got()) {
		t.Fatalf("%d attempts (receiver saw %d)", n, len(r.got()))
	}

	// A Retry-After beyond the deadline ends the retries at once.
	r2 := newReceiver(t, 503)
	r2.header.Set("Retry-After", "60")
	w.URL = r2.srv.URL
	ctx2, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	start = time.Now()
	n, err = w.Send(ctx2, testEvent(t))
	if n != 1 || !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("Send = %d, %v after %s", n, err, time.Since(start))
	}
}

// TestSendNetworkError: a receiver that is not there is retried (network
// errors are transient) until MaxAttempts.
func TestSendNetworkError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	w := &Webhook{URL: url, Secret: testSecret, Backoff: time.Millisecond, MaxAttempts: 3}
	n, err := w.Send(context.Background(), testEvent(t))
	if n != 3 || !errors.Is(err, ErrUndelivered) {
		t.Fatalf("Send = %d, %v", n, err)
	}
}

func TestWebhookValidate(t *testing.T) {
	f := func(w Webhook, want string) {
		t.Helper()
		_, err := w.Send(context.Background(), Event{ID: "x"})
		if !errors.Is(err, ErrInvalidWebhook) || !strings.Contains(err.Error(), want) {
			t.Fatalf("%+v: err = %v, want ErrInvalidWebhook naming %q", w, err, want)
		}
	}
	f(Webhook{Secret: testSecret}, "url")
	f(Webhook{URL: "ftp://x/y", Secret: testSecret}, "url")
	f(Webhook{URL: "http://u:p@x/y", Secret: testSecret}, "credentials")
	f(Webhook{URL: "http://x/y"}, "secret")
	f(Webhook{URL: "http://x/y", Secret: testSecret, MaxAttempts: -1}, "max_attempts")
	f(Webhook{URL: "http://x/y", Secret: testSecret, Backoff: -1}, "backoff")
	if _, err := (&Webhook{URL: "http://x/y", Secret: testSecret}).Send(context.Background(), Event{}); !errors.Is(err, ErrInvalidWebhook) {
		t.Fatalf("empty id: %v", err)
	}
}

// TestSendRedirectIsPermanent: the default client does not follow a
// redirect (the signed body would go elsewhere); it is a permanent error.
func TestSendRedirectIsPermanent(t *testing.T) {
	srv := httptest.NewServer(http.RedirectHandler("http://127.0.0.1:1/elsewhere", http.StatusTemporaryRedirect))
	defer srv.Close()
	n, err := fastHook(srv.URL).Send(context.Background(), testEvent(t))
	if n != 1 || !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "elsewhere") {
		t.Fatalf("Send = %d, %v", n, err)
	}
}
