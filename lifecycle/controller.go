package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/registry"
)

// Registry is the replicated registry as the controller uses it: the one
// way it acts (Apply a command) and the one way it reads decisions already
// taken (View). cluster.Node implements it.
type Registry interface {
	// Apply commits cmd through Raft and returns its result once applied.
	// It must honour ctx's deadline: a lost quorum must not hang the
	// controller.
	Apply(ctx context.Context, cmd registry.Command) (registry.Result, error)
	// View calls fn with a consistent, read-only state; fn must not keep it.
	View(fn func(*registry.State))
}

// barrier is what a Registry may also do (cluster.Node does): wait until
// it has applied every command committed before.
type barrier interface {
	Barrier(ctx context.Context) error
}

// ChampionDrift is one served champion's drift windows.
type ChampionDrift struct {
	Model   string
	Version int
	// Windows are the version's drift windows on this node; safe to read
	// while the scoring path writes them.
	Windows *drift.Windows
}

// DriftSource gives the controller the statistics drift decisions are
// made on. Later sources (shadow comparisons, online evaluation) come as
// interfaces of their own beside it, so a node wires only what it has.
type DriftSource interface {
	// ChampionDrift lists the champions monitored for drift now: those
	// with a reference profile (registered or bootstrapped). It must
	// return quickly; the controller calls it once a window.
	ChampionDrift() []ChampionDrift
}

// ControllerConfig configures a Controller. Zero values mean defaults.
type ControllerConfig struct {
	// Registry is where decisions are read and proposed. Required.
	Registry Registry
	// IsLeader reports whether this node leads the Raft cluster; the
	// controller decides only while it does, so one episode is acted on
	// once in a cluster. Nil: always (a single node).
	IsLeader func() bool
	// Drift gives each champion's drift windows; nil judges no drift (a
	// node run with --drift=false).
	Drift DriftSource
	// Rollouts gives each rollout's evidence; nil runs no rollouts.
	Rollouts RolloutSource
	// Interval is how often the controller looks at the statistics: one
	// drift window. Default 1 minute.
	Interval time.Duration
	// Secrets holds the values retraining policies name by reference
	// (SecretRef); never replicated or logged.
	Secrets map[string][]byte
	// ExportURL returns the link a retraining request carries to the
	// labelled rows of model logged since a time (the admin API's export,
	// as receivers reach it). Nil: requests carry no link.
	ExportURL func(model string, since time.Time) string
	// ApplyTimeout bounds one registry write. Default 10s.
	ApplyTimeout time.Duration
	// DeliveryTimeout bounds one retraining request's delivery, retries
	// included; past it the request is recorded failed. Default 5 minutes.
	DeliveryTimeout time.Duration
	// Now is the clock (time.Now when nil). Tests inject one; it stamps
	// every command, so cooldowns are judged in the clock's time.
	Now func() time.Time
	// OnDriftAlert, when set, is told every drift alert recorded (the
	// node's metrics count them).
	OnDriftAlert func(model string, version int)
	// Logger receives decisions and failures. Default: discard.
	Logger *slog.Logger
}

func (c *ControllerConfig) fill() {
	if c.Interval <= 0 {
		c.Interval = time.Minute
	}
	if c.ApplyTimeout <= 0 {
		c.ApplyTimeout = 10 * time.Second
	}
	if c.DeliveryTimeout <= 0 {
		c.DeliveryTimeout = 5 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.IsLeader == nil {
		c.IsLeader = func() bool { return true }
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// ErrInvalidConfig: a ControllerConfig lacks what the controller needs;
// the error names it.
var ErrInvalidConfig = errors.New("lifecycle: invalid controller configuration")

// actorDrift is the audit actor of the controller's drift decisions.
const actorDrift = "drift"

// Controller is the lifecycle controller: on the Raft leader, once an
// interval, it judges every champion's drift against its model's policy,
// records drift alerts, requests retraining through the model's webhook,
// and delivers requests that a previous leader recorded but did not finish.
// Everything it decides is a registry command; its only state of its own
// is what it is sending right now and a cache of the audit log, so any
// node that becomes leader continues where the last one stopped.
type Controller struct {
	cfg ControllerConfig
	log *slog.Logger

	// ctx is what deliveries run under; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	stepMu   sync.Mutex // one Step at a time
	led      ledger     // guarded by stepMu
	caughtUp bool       // the registry applied all the term's predecessors committed (stepMu)

	mu       sync.Mutex          // guards sending and sent
	sending  map[string]struct{} // event ids this controller is delivering
	sent     map[string]struct{} // event ids it finished (delivered or failed)
	closed   bool
	sendDone chan struct{} // closed and replaced when a delivery ends (tests wait on it)

	// Rollouts (stepMu): each candidate's requests when last seen, and
	// what this controller counted on each step beyond its recorded base.
	served  map[modelVersion]uint64
	steps   map[stepKey]*stepCount
	refused map[string]bool // rollout moves the registry refused, by key

	viewMu sync.Mutex
	latest map[string]RolloutView // by model, the last rollout decision

	repMu  sync.Mutex
	repLed ledger // the reports' reading of the audit log (repMu)
}

// NewController returns a controller; Run starts it.
func NewController(cfg ControllerConfig) (*Controller, error) {
	if cfg.Registry == nil {
		return nil, fmt.Errorf("%w: the controller needs a registry", ErrInvalidConfig)
	}
	cfg.fill()
	c := &Controller{cfg: cfg, log: cfg.Logger, sending: map[string]struct{}{}, sent: map[string]struct{}{},
		sendDone: make(chan struct{}), led: newLedger(), repLed: newLedger(),
		served: map[modelVersion]uint64{}, steps: map[stepKey]*stepCount{}, refused: map[string]bool{}, latest: map[string]RolloutView{}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// Run steps the controller once an interval, while this node leads, until
// stop is closed. Deliveries it started go on after it returns, until
// Close.
func (c *Controller) Run(stop <-chan struct{}) {
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.Step()
		case <-stop:
			return
		}
	}
}

// Close cancels the deliveries still running (a cancelled delivery is not
// recorded failed: the next leader sends it again) and waits for them.
func (c *Controller) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}

// Step takes the decisions due now (by the configured clock), if this node
// leads: it judges every champion's drift and resumes retraining requests
// recorded but not delivered. Run calls it once an interval; tests call it
// directly.
func (c *Controller) Step() {
	c.stepMu.Lock()
	defer c.stepMu.Unlock()
	if !c.cfg.IsLeader() {
		c.caughtUp = false
		return
	}
	if !c.caughtUp {
		// A new leader's registry may not have applied everything its
		// predecessor committed: a delivery recorded there but not yet
		// here would be sent twice.
		if b, ok := c.cfg.Registry.(barrier); ok {
			ctx, cancel := context.WithTimeout(c.ctx, c.cfg.ApplyTimeout)
			err := b.Barrier(ctx)
			cancel()
			if err != nil {
				c.log.Warn("the registry cannot catch up; no decision this step", "err", err)
				return
			}
		}
		c.caughtUp = true
	}
	now := c.cfg.Now()
	c.cfg.Registry.View(c.led.update)
	if c.cfg.Drift != nil {
		for _, cd := range c.cfg.Drift.ChampionDrift() {
			if cd.Windows != nil {
				c.judgeDrift(now, cd)
				// Its records are what the next champion's judgement
				// and resume must see.
				c.cfg.Registry.View(c.led.update)
			}
		}
	}
	c.rollouts(now)
	c.resume(now)
	c.resumeAlerts(now)
}

// judgeDrift judges one champion's recent windows. A sustained breach is
// recorded as a drift alert unless it repeats the model's last recorded
// alert within the cooldown (same statistics, not materially larger): the
// cooldown never hides a new or larger drift from the audit log. The
// retraining request is what the cooldown holds back, counted from the
// last request.
func (c *Controller) judgeDrift(now time.Time, cd ChampionDrift) {
	var (
		model   registry.Model
		version registry.Version
		err     error
	)
	c.cfg.Registry.View(func(st *registry.State) {
		if model, err = st.Model(cd.Model); err == nil {
			version, err = st.Version(cd.Model, cd.Version)
		}
	})
	if err != nil {
		return // the registry no longer has it: the routing table will follow
	}
	pol := model.Policy
	dp := DriftPolicy(pol.Drift)
	judged, err := drift.Evaluate(cd.Windows, dp)
	if err != nil {
		c.log.Error("cannot judge drift; check the model's drift policy", "model", cd.Model, "version", cd.Version, "err", err)
		return
	}
	alerts := judged.Alerts
	if len(alerts) == 0 {
		return
	}
	cooldown := time.Duration(pol.Retraining.Cooldown)
	retrain := pol.Retraining.Enabled && pol.Retraining.URL != "" &&
		ShouldFire(model.LastAlerts[KindRetrainingRequested], now, cooldown, alerts)
	last, seen := c.led.lastDrift[cd.Model]
	if !retrain && seen && !last.superseded(cd.Version, now, cooldown, alerts) {
		return
	}
	k := min(maxConsecutive(dp.Thresholds), len(judged.Runs))
	episode := episodeStart(judged, k)
	var exportURL string
	if c.cfg.ExportURL != nil {
		exportURL = c.cfg.ExportURL(cd.Model, version.Created)
	}
	ev, err := NewDriftEvent(cd.Model, cd.Version, episode, now, judged.Latest(), exportURL, alerts)
	if err != nil {
		c.log.Error("cannot build the drift event", "model", cd.Model, "err", err)
		return
	}
	alertsJSON, err := json.Marshal(alerts)
	if err != nil {
		c.log.Error("cannot encode the drift alerts", "model", cd.Model, "err", err)
		return
	}
	fresh, ok := c.record(now, cd.Model, cd.Version, KindDrift, ev.ID,
		driftReason(alerts, judged, k), alertsJSON)
	if !ok {
		return
	}
	if fresh {
		c.log.Warn("drift alert", "model", cd.Model, "version", cd.Version, "alerts", len(alerts), "id", ev.ID)
		if c.cfg.OnDriftAlert != nil {
			c.cfg.OnDriftAlert(cd.Model, cd.Version)
		}
		c.alertDrift(now, cd.Model, cd.Version, ev.ID, fmt.Sprintf("%d drift statistics over the policy", len(alerts)), alertsJSON)
	}
	if !retrain {
		return
	}
	evJSON, err := json.Marshal(ev)
	if err != nil {
		c.log.Error("cannot encode the retraining request", "model", cd.Model, "err", err)
		return
	}
	// Recorded before it is sent: a leader that dies while sending leaves
	// a request without a delivery, which the next leader sends (resume).
	if _, ok := c.record(now, cd.Model, cd.Version, KindRetrainingRequested, ev.ID+keyRequested,
		"retraining requested from "+pol.Retraining.URL, evJSON); ok {
		c.startDelivery(pending{model: cd.Model, version: cd.Version, event: ev})
	}
}

// resume starts the delivery of every retraining request the registry has
// recorded without a delivered or failed record, unless this controller is
// sending it or finished it already. A request older than its model's
// cooldown is recorded failed instead: the drift it was about has been
// judged again since, and a lasting one raises a request of its own.
func (c *Controller) resume(now time.Time) {
	for _, p := range c.led.undelivered() {
		var cooldown time.Duration
		c.cfg.Registry.View(func(st *registry.State) {
			if pol, err := st.Policy(p.model); err == nil {
				cooldown = time.Duration(pol.Retraining.Cooldown)
			}
		})
		if cooldown > 0 && now.Sub(p.event.Time) >= cooldown {
			if c.claim(p.event.ID) {
				c.recordFailed(p, fmt.Sprintf("not delivered within the retraining cooldown (%s) of its request: the leader that requested it stopped; a lasting drift requests again", cooldown))
				c.release(p.event.ID, true)
			}
			continue
		}
		c.startDelivery(p)
	}
}

// claim marks an event as being sent by this controller; false when it
// is already, or was, or the controller is closed.
func (c *Controller) claim(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	if _, ok := c.sending[id]; ok {
		return false
	}
	if _, ok := c.sent[id]; ok {
		return false
	}
	c.sending[id] = struct{}{}
	c.wg.Add(1) // under mu, so Close cannot be waiting already
	return true
}

// release ends a claim (and its count in wg); a finished event is never sent again by this
// controller.
func (c *Controller) release(id string, finished bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.sending, id)
	if finished {
		c.sent[id] = struct{}{}
	}
	close(c.sendDone)
	c.sendDone = make(chan struct{})
	c.wg.Done()
}

// startDelivery sends p's event in the background, once per event id on
// this controller.
func (c *Controller) startDelivery(p pending) {
	if !c.claim(p.event.ID) {
		return
	}
	go func() { c.release(p.event.ID, c.deliver(p)) }()
}

// deliverySettled returns a channel closed when the next delivery ends
// (tests).
func (c *Controller) deliverySettled() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sendDone
}

// deliver sends a retraining request under the model's current policy and
// records how it went. It reports whether the request is settled; one
// cancelled by Close is not, and is left for the next leader.
func (c *Controller) deliver(p pending) bool {
	var pol registry.RetrainingPolicy
	var err error
	c.cfg.Registry.View(func(st *registry.State) {
		var rp registry.Policy
		if rp, err = st.Policy(p.model); err == nil {
			pol = rp.Retraining
		}
	})
	if err != nil {
		c.recordFailed(p, "the model's policy cannot be read: "+err.Error())
		return true
	}
	secret := c.cfg.Secrets[pol.SecretRef]
	if pol.SecretRef != "" && secret == nil {
		c.recordFailed(p, "no secret named "+strconv.Quote(pol.SecretRef)+" on this node (serve --secret NAME=VALUE)")
		return true
	}
	hook, err := WebhookFromPolicy(pol, secret)
	if err == nil {
		// Under the controller's context: Close cancels a delivery still
		// retrying (or waiting on a receiver that never answers), so it
		// cannot hold the process past its drain deadline.
		ctx, cancel := context.WithTimeout(c.ctx, c.cfg.DeliveryTimeout)
		var attempts int
		attempts, err = hook.Send(ctx, p.event)
		cancel()
		if err == nil {
			c.record(c.cfg.Now(), p.model, p.version, KindRetrainingDelivered, p.event.ID+keyDelivered,
				fmt.Sprintf("delivered to %s after %d attempt(s)", pol.URL, attempts), nil)
			return true
		}
		if c.ctx.Err() != nil {
			c.log.Warn("retraining request not delivered before shutdown; the next leader sends it", "model", p.model, "id", p.event.ID)
			return false
		}
	}
	c.log.Error("retraining request not delivered", "model", p.model, "url", pol.URL, "err", err)
	c.recordFailed(p, truncate(err.Error(), 2000))
	return true
}

func (c *Controller) recordFailed(p pending, reason string) {
	c.record(c.cfg.Now(), p.model, p.version, KindRetrainingFailed, p.event.ID+keyFailed, reason, nil)
}

// record writes an alert into the registry's audit log. fresh is false
// when the registry had it already (the same decision taken twice, by this
// leader or another); ok is false when it could not be written.
func (c *Controller) record(now time.Time, model string, version int, kind, key, reason string, evidence json.RawMessage) (fresh, ok bool) {
	return c.recordAs(actorDrift, now, model, version, kind, key, reason, evidence)
}

// recordAs is record with another audit actor.
func (c *Controller) recordAs(actor string, now time.Time, model string, version int, kind, key, reason string, evidence json.RawMessage) (fresh, ok bool) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.ApplyTimeout)
	defer cancel()
	res, err := c.cfg.Registry.Apply(ctx, registry.Command{Time: now.UTC(), Actor: actor, IdempotencyKey: key,
		Args: &registry.RecordAlertArgs{Model: model, Version: version, Kind: kind, Reason: reason, Evidence: evidence}})
	switch {
	case errors.Is(err, registry.ErrIdempotencyConflict):
		// Another leader recorded this decision with its own node's
		// numbers: the decision stands, once.
		return false, true
	case err != nil:
		c.log.Error("cannot record an alert in the registry", "model", model, "kind", kind, "err", err)
		return false, false
	}
	return !res.Replayed, true
}

// Idempotency key suffixes of a retraining request's records, after the
// event id: how the ledger pairs a request with its outcome.
const (
	keyRequested = "/requested"
	keyDelivered = "/delivered"
	keyFailed    = "/failed"
)

// episodeStart is the start of the first window of the breaching
// sequence: the oldest of the last k runs the alert rests on. Runs are cut
// from windows aligned on the epoch, by the same counts on every node, so
// two leaders judging the same windows compute the same instant and the
// event's idempotency key agrees. Not k windows back from now: a run of
// pooled windows can span many windows.
func episodeStart(ev *drift.Evaluation, k int) time.Time {
	if k < 1 || k > len(ev.Runs) {
		k = len(ev.Runs)
	}
	return ev.Runs[len(ev.Runs)-k].From
}

// driftReason is the audit record's one line: what breached, over how many
// judgements, on how many rows.
func driftReason(alerts []drift.Alert, ev *drift.Evaluation, k int) string {
	var rows int64
	windows := 0
	for _, r := range ev.Runs[len(ev.Runs)-k:] {
		rows += r.Report.Rows
		windows += r.Windows
	}
	return fmt.Sprintf("%d drift alert(s): breached in %d judgement(s) in a row over %d rows (%d windows); latest drift share %.2f",
		len(alerts), k, rows, windows, ev.Latest().DriftShare)
}

func maxConsecutive(th drift.Thresholds) int {
	k := 1
	for _, t := range []drift.Threshold{th.PSI, th.JS, th.KS, th.Wasserstein, th.Chi2P} {
		if t.Enabled {
			k = max(k, t.ConsecutiveWindows)
		}
	}
	return k
}

// DriftThresholds maps a model's drift policy's statistics to drift's
// thresholds (the same fields by the same names), as fixed thresholds.
// DriftPolicy is what the judging uses.
func DriftThresholds(p registry.DriftPolicy) drift.Thresholds {
	conv := func(t registry.DriftThreshold) drift.Threshold {
		return drift.Threshold{Enabled: t.Enabled, Threshold: t.Threshold, MinCount: t.MinCount, ConsecutiveWindows: t.ConsecutiveWindows}
	}
	return drift.Thresholds{PSI: conv(p.PSI), JS: conv(p.JS), KS: conv(p.KS), Wasserstein: conv(p.Wasserstein), Chi2P: conv(p.Chi2P)}
}

// DriftPolicy is how a model's drift policy is judged: drift's size-aware
// tests (drift.PolicyFromThresholds: the statistics, min_count and
// consecutive_windows as given, α from chi2_p's threshold) with the
// policy's alpha, drift_share, max_windows and minimum effects when set.
// The controller's alerts, the drift API and the /metrics gauges all judge
// through it, so they cannot disagree.
func DriftPolicy(p registry.DriftPolicy) drift.Policy {
	dp := drift.PolicyFromThresholds(DriftThresholds(p))
	if p.Alpha > 0 {
		dp.Alpha = p.Alpha
	}
	if p.DriftShare > 0 {
		dp.DriftShare = p.DriftShare
	}
	dp.MaxWindows = p.MaxWindows
	dp.Thresholds.PSI.Threshold, dp.Thresholds.JS.Threshold, dp.Thresholds.KS.Threshold = p.PSI.MinEffect, p.JS.MinEffect, p.KS.MinEffect
	return dp
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// severity is how far past its threshold an alert's latest value is, as a
// ratio (1: at the threshold). P-value statistics breach downwards. A
// statistic judged by its p-value alone has no threshold of its own (drift
// policies set none by default): its value itself is the severity, so a
// drift is news when the statistic doubles.
func severity(a drift.Alert) float64 {
	if len(a.Values) == 0 {
		return 0
	}
	v := a.Values[len(a.Values)-1]
	switch {
	case strings.HasSuffix(a.Statistic, "_p"):
		return max(a.Threshold, 1e-300) / max(v, 1e-300)
	case a.Threshold <= 0:
		return v
	}
	return v / a.Threshold
}
