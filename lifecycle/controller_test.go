package lifecycle

import (
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/registry"
)

// memRegistry is the real registry state machine behind a mutex: what
// cluster.Node replicates, without Raft.
type memRegistry struct {
	mu sync.Mutex
	st *registry.State
}

func (r *memRegistry) Apply(ctx context.Context, cmd registry.Command) (registry.Result, error) {
	if err := ctx.Err(); err != nil {
		return registry.Result{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st.Apply(cmd)
}

func (r *memRegistry) View(fn func(*registry.State)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn(r.st)
}

// alerts returns the model's audit records of kind, oldest first.
func (r *memRegistry) alerts(model, kind string) []registry.AuditRecord {
	var out []registry.AuditRecord
	r.View(func(st *registry.State) {
		for _, rec := range st.Audit(registry.AuditFilter{Model: model}) {
			if rec.Action == registry.ActionAlert && rec.Kind == kind {
				out = append(out, rec)
			}
		}
	})
	return out
}

// fakeClock is the controller's and the windows' clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// t0 is on a window boundary, as drift windows are aligned on the epoch.
var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

const testModel = "fraud"

// newTestRegistry creates testModel with version 1 and a policy that
// judges PSI and KS over single windows of at least 500 rows and sends
// retraining requests to url with a one-hour cooldown.
func newTestRegistry(t *testing.T, url string) *memRegistry {
	t.Helper()
	reg := &memRegistry{st: registry.New()}
	pol := registry.DefaultPolicy()
	on := func(th float64) registry.DriftThreshold {
		return registry.DriftThreshold{Enabled: true, Threshold: th, MinCount: 500, ConsecutiveWindows: 1}
	}
	pol.Drift.PSI, pol.Drift.KS = on(0.2), on(0.1)
	pol.Drift.JS.Enabled, pol.Drift.Chi2P.Enabled, pol.Drift.Wasserstein.Enabled = false, false, false
	pol.Retraining = registry.RetrainingPolicy{Enabled: true, URL: url, SecretRef: "hook", Cooldown: registry.Duration(time.Hour)}
	digest := strings.Repeat("ab", 32)
	for i, args := range []registry.Args{
		&registry.CreateModelArgs{Model: testModel, Policy: &pol},
		&registry.RegisterArgs{Model: testModel, Digest: digest, Size: 1},
	} {
		if _, err := reg.st.Apply(registry.Command{Time: t0.Add(-time.Hour), Actor: "test", IdempotencyKey: "setup-" + string(rune('a'+i)), Args: args}); err != nil {
			t.Fatalf("%s: %v", args.Op(), err)
		}
	}
	return reg
}

// windows returns drift windows on clock over a reference of three
// standard normal features.
func windows(t *testing.T, clock *fakeClock) *drift.Windows {
	t.Helper()
	b, err := drift.NewBootstrap(5000, drift.ProfileOptions{Inputs: []drift.Input{{Name: "x", Width: 3}}, Output: "score", MaxCategories: -1})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 5000; i++ {
		if _, err := b.Observe([]float32{float32(rng.NormFloat64()), float32(rng.NormFloat64()), float32(rng.NormFloat64())}, 0.5); err != nil {
			t.Fatal(err)
		}
	}
	p, err := b.Profile()
	if err != nil {
		t.Fatal(err)
	}
	w, err := drift.NewWindows(p, drift.WindowConfig{Window: time.Minute, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// traffic observes n rows at the clock's time, feature i shifted by
// shift[i] standard deviations.
func traffic(t *testing.T, w *drift.Windows, clock *fakeClock, seed uint64, n int, shift [3]float64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	at := clock.Now()
	row := make([]float32, 3)
	for i := 0; i < n; i++ {
		for j := range row {
			row[j] = float32(rng.NormFloat64() + shift[j])
		}
		if err := w.ObserveAt(at, row, 0.5); err != nil {
			t.Fatal(err)
		}
	}
}

type staticDrift []ChampionDrift

func (s staticDrift) ChampionDrift() []ChampionDrift { return s }

// hookReceiver is a retraining endpoint that verifies signatures and counts
// deliveries by event id; hold, when set, is waited on before answering.
type hookReceiver struct {
	*httptest.Server
	mu   sync.Mutex
	byID map[string]int
	seen chan string
	hold chan struct{}
	held atomic.Int32 // requests waiting on hold now
}

// pending is the number of requests waiting on hold.
func (r *hookReceiver) pending() int { return int(r.held.Load()) }

// waitHungUp waits until no request waits on hold: the receiver has seen
// every stopped sender hang up. A request it answered after its sender
// gave up would count as delivered (the receiver's duplicate to drop by
// event id), which is not what the tests are about.
func (r *hookReceiver) waitHungUp(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for r.pending() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("a stopped sender's request still open at the receiver after 30 s: Close did not cancel it")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const hookSecret = "webhook-signing-secret-0123456789"

func newHookReceiver(t *testing.T, hold chan struct{}) *hookReceiver {
	r := &hookReceiver{byID: map[string]int{}, seen: make(chan string, 16), hold: hold}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(w, "read", http.StatusBadRequest)
			return
		}
		if err := Verify([]byte(hookSecret), req.Header.Get(HeaderSignature), body, time.Now(), 24*365*time.Hour); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var ev Event
		if err := json.Unmarshal(body, &ev); err != nil || ev.ID != req.Header.Get(HeaderIdempotencyKey) {
			http.Error(w, "bad event", http.StatusBadRequest)
			return
		}
		if r.hold != nil {
			r.held.Add(1)
			select {
			case <-r.hold:
				r.held.Add(-1)
			case <-req.Context().Done():
				r.held.Add(-1)
				return // the sender gave up: not delivered
			}
		}
		r.mu.Lock()
		r.byID[ev.ID]++
		r.mu.Unlock()
		r.seen <- ev.ID
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(func() {
		r.CloseClientConnections()
		r.Close()
	})
	return r
}

func (r *hookReceiver) counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for k, v := range r.byID {
		out[k] = v
	}
	return out
}

// waitDelivered waits until kind has n records; only a hang exceeds the
// deadline.
func waitRecords(t *testing.T, reg *memRegistry, kind string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(reg.alerts(testModel, kind)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d %s records after 30 s, want %d", len(reg.alerts(testModel, kind)), kind, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newTestController(t *testing.T, reg Registry, clock *fakeClock, src DriftSource, alerts *[]string) *Controller {
	t.Helper()
	c, err := NewController(ControllerConfig{Registry: reg, Drift: src, Now: clock.Now,
		Secrets: map[string][]byte{"hook": []byte(hookSecret)},
		OnDriftAlert: func(model string, version int) {
			if alerts != nil {
				*alerts = append(*alerts, model)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestCooldownSuppressesOnlyTheWebhook: within the retraining cooldown a
// new, larger drift is recorded in the audit log and counted, while the
// webhook stays quiet; the same drift again is not recorded twice; after
// the cooldown, counted from the retraining request, the webhook fires
// again. Before, the cooldown was read from the last drift record and
// gated the record itself, so the larger drift vanished.
func TestCooldownSuppressesOnlyTheWebhook(t *testing.T) {
	recv := newHookReceiver(t, nil)
	reg := newTestRegistry(t, recv.URL)
	clock := &fakeClock{now: t0}
	w := windows(t, clock)
	var counted []string
	c := newTestController(t, reg, clock, staticDrift{{Model: testModel, Version: 1, Windows: w}}, &counted)

	// Window 1: feature 0 shifted by 1σ. Judged once it closes.
	traffic(t, w, clock, 1, 2000, [3]float64{1, 0, 0})
	clock.Add(time.Minute)
	c.Step()
	waitRecords(t, reg, KindRetrainingDelivered, 1)
	if n := len(reg.alerts(testModel, KindDrift)); n != 1 {
		t.Fatalf("%d drift records after the first drifted window, want 1", n)
	}
	first := <-recv.seen

	// Window 2: the same drift. Inside the cooldown and no larger: not
	// recorded again, no request.
	traffic(t, w, clock, 2, 2000, [3]float64{1, 0, 0})
	clock.Add(time.Minute)
	c.Step()
	if n := len(reg.alerts(testModel, KindDrift)); n != 1 {
		t.Fatalf("the same drift within the cooldown was recorded again: %d drift records, want 1", n)
	}

	// Window 3: larger (feature 1 drifts too). Recorded and counted; the
	// webhook stays quiet.
	traffic(t, w, clock, 3, 2000, [3]float64{1, 2, 0})
	clock.Add(time.Minute)
	c.Step()
	drifts := reg.alerts(testModel, KindDrift)
	if len(drifts) != 2 {
		t.Fatalf("a larger drift within the cooldown: %d drift records, want 2 (the cooldown hid it)", len(drifts))
	}
	if !strings.Contains(string(drifts[1].Evidence), `"index":1`) {
		t.Errorf("the second drift record's evidence does not name feature 1: %.400s", drifts[1].Evidence)
	}
	if len(counted) != 2 {
		t.Errorf("drift alerts counted: %d, want 2 (one per record)", len(counted))
	}
	if n := len(reg.alerts(testModel, KindRetrainingRequested)); n != 1 {
		t.Fatalf("%d retraining requests within the cooldown, want 1", n)
	}

	// An hour after the request (the cooldown), the drift still lasting:
	// a new request, delivered.
	clock.Add(time.Hour - 3*time.Minute)
	traffic(t, w, clock, 4, 2000, [3]float64{1, 2, 0})
	clock.Add(time.Minute)
	c.Step()
	waitRecords(t, reg, KindRetrainingDelivered, 2)
	second := <-recv.seen
	if first == second {
		t.Fatalf("the request after the cooldown reused the first event id %s", first)
	}
	if got := recv.counts(); len(got) != 2 || got[first] != 1 || got[second] != 1 {
		t.Fatalf("deliveries by event id: %v, want each of two once", got)
	}
}

// TestResumesAnUndeliveredRequest: a retraining request recorded by an
// earlier leader with no delivered or failed record is delivered by the
// next controller, once however often it steps; a controller closed while
// sending leaves it undelivered (no failed record) for the next one.
func TestResumesAnUndeliveredRequest(t *testing.T) {
	hold := make(chan struct{})
	recv := newHookReceiver(t, hold)
	reg := newTestRegistry(t, recv.URL)
	clock := &fakeClock{now: t0}
	w := windows(t, clock)
	traffic(t, w, clock, 1, 2000, [3]float64{2, 0, 0})
	clock.Add(time.Minute)

	// The first leader requests, and stops while the receiver holds the
	// request.
	old := newTestController(t, reg, clock, staticDrift{{Model: testModel, Version: 1, Windows: w}}, nil)
	old.Step()
	waitRecords(t, reg, KindRetrainingRequested, 1)
	// Close only once the receiver holds the request: one still in flight
	// could reach the handler after waitHungUp and be answered.
	for deadline := time.Now().Add(30 * time.Second); recv.pending() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the request did not reach the receiver within 30 s")
		}
	}
	old.Close()
	if n := len(reg.alerts(testModel, KindRetrainingFailed)); n != 0 {
		t.Fatalf("a delivery cancelled by Close was recorded failed (%d records): the next leader would not send it", n)
	}
	recv.waitHungUp(t)
	if got := recv.counts(); len(got) != 0 {
		t.Fatalf("the receiver accepted %v before it was released", got)
	}
	close(hold)

	// The next leader, without drift of its own, finds the request.
	next := newTestController(t, reg, clock, nil, nil)
	for i := 0; i < 3; i++ {
		next.Step()
	}
	waitRecords(t, reg, KindRetrainingDelivered, 1)
	next.Step()
	next.Close()
	req := reg.alerts(testModel, KindRetrainingRequested)
	var ev Event
	if err := json.Unmarshal(req[0].Evidence, &ev); err != nil {
		t.Fatal(err)
	}
	if got := recv.counts(); len(got) != 1 || got[ev.ID] != 1 {
		t.Fatalf("deliveries by event id: %v, want %s once", got, ev.ID)
	}
	if n := len(reg.alerts(testModel, KindRetrainingDelivered)); n != 1 {
		t.Fatalf("%d delivered records, want 1", n)
	}
}

// TestStaleRequestIsNotResumed: a request older than the cooldown is
// recorded failed, not sent: the drift has been judged again since.
func TestStaleRequestIsNotResumed(t *testing.T) {
	recv := newHookReceiver(t, nil)
	reg := newTestRegistry(t, recv.URL)
	clock := &fakeClock{now: t0}
	ev := Event{Event: EventDrift, ID: EventID(testModel, 1, t0), Time: t0, Model: testModel, Version: 1, Alerts: []drift.Alert{}}
	evJSON, _ := json.Marshal(ev)
	if _, err := reg.Apply(context.Background(), registry.Command{Time: t0, Actor: actorDrift, IdempotencyKey: ev.ID + keyRequested,
		Args: &registry.RecordAlertArgs{Model: testModel, Version: 1, Kind: KindRetrainingRequested, Evidence: evJSON}}); err != nil {
		t.Fatal(err)
	}
	clock.Add(2 * time.Hour)
	c := newTestController(t, reg, clock, nil, nil)
	c.Step()
	c.Close()
	failed := reg.alerts(testModel, KindRetrainingFailed)
	if len(failed) != 1 || !strings.Contains(failed[0].Reason, "cooldown") {
		t.Fatalf("failed records: %+v, want one naming the cooldown", failed)
	}
	if got := recv.counts(); len(got) != 0 {
		t.Fatalf("a stale request was sent: %v", got)
	}
}
