package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/modelgate/modelgate/registry"
)

// RolloutQuery asks a RolloutSource for the evidence of one decision.
type RolloutQuery struct {
	Model string
	// Candidate is the version judged: the shadow or canary on the ramp,
	// the new champion in its watch.
	Candidate int
	// Against is the version it is judged against: the champion on the
	// ramp, the warm standby (the previous champion) in the watch.
	Against int
	// Shadow: the candidate is a shadow (its numbers are the mirrored
	// runs, compared with the champion's on the same requests).
	Shadow bool
	// Watch: the candidate is a champion in its watch; Against's numbers
	// are its last period as champion, of the same length before Since.
	Watch bool
	// Since is when the rollout period began (the candidate's first step,
	// or its promotion for the watch); Now is the controller's clock.
	Since, Now time.Time
}

// RolloutSource gives the controller the statistics rollouts are decided
// on. internal/node implements it from the gateway's shadow state (the
// mirror's comparisons, the online evaluation) and its metrics.
type RolloutSource interface {
	// RolloutEvidence returns q's Evidence: per arm the requests and
	// errors, latencies and score histograms where measured (nil where
	// not: their triggers then say not_judged), and the label statistics
	// of the period. It must return quickly and must not block on the
	// scoring path.
	RolloutEvidence(q RolloutQuery) (Evidence, error)
	// Served is how many requests version answered (a shadow: ran) on this
	// node since it started; the controller counts a step's requests from
	// its increase, so it must never go down while the node runs.
	Served(model string, version int) uint64
}

// The audit kinds of the rollout (record_alert). The moves themselves are
// the registry's own records (set_stage, promote, rollback,
// approval_requested) carrying the same evidence.
const (
	// KindRollout is a rollout decision that changes no stage: a decision
	// held (recorded when it differs from the last one recorded), a move
	// between two shadow steps, or the end of a watch.
	KindRollout = "rollout"
	// KindAlertRequested records an alert before it is sent (its evidence
	// is the Alert); KindAlertDelivered and KindAlertFailed record how the
	// delivery ended, keyed by the alert's id.
	KindAlertRequested = "alert_requested"
	KindAlertDelivered = "alert_delivered"
	KindAlertFailed    = "alert_failed"
)

// actorRollout is the audit actor of the controller's rollout decisions.
const actorRollout = "rollout"

// rolloutCandidate is one rollout the controller judges this step.
type rolloutCandidate struct {
	model   registry.Model
	version registry.Version
	against int
	phase   string
	state   RolloutState
	since   time.Time // the rollout period's start (RolloutQuery.Since)
	// base is the step's requests as last recorded (by any leader), and
	// baseSeq the record it came from.
	base    uint64
	baseSeq uint64
}

// stepKey names one step of one candidate's rollout: the controller's own
// request count is kept per step, and a new step starts it from zero.
type stepKey struct {
	model   string
	version int
	step    int
	started int64
}

// stepCount is what this controller counted on a step beyond the recorded
// base.
type stepCount struct {
	baseSeq uint64
	counted uint64
}

// rollouts judges every model with a rollout in progress. It runs in Step,
// under stepMu, after the ledger is updated.
func (c *Controller) rollouts(now time.Time) {
	if c.cfg.Rollouts == nil {
		return
	}
	var cands []rolloutCandidate
	var starts []rolloutStart
	c.cfg.Registry.View(func(st *registry.State) {
		for _, m := range st.Models() {
			if rc, ok := c.led.rollout.candidate(&m); ok {
				cands = append(cands, rc)
			} else if s, ok := newCandidate(&m); ok {
				starts = append(starts, s)
			}
		}
	})
	for _, s := range starts {
		c.startRollout(now, s)
	}
	live := map[stepKey]bool{}
	for i := range cands {
		rc := &cands[i]
		k := stepKey{rc.model.Name, rc.version.Number, rc.state.Step, rc.state.StepStarted.UnixNano()}
		live[k] = true
		rc.state.StepRequests = rc.base + c.countStep(k, rc)
		c.judgeRollout(now, rc, k)
		c.cfg.Registry.View(c.led.update)
	}
	for k := range c.steps {
		if !live[k] {
			delete(c.steps, k)
		}
	}
}

// countStep adds the candidate's requests since the last step to what
// this controller counted on the step. The first sight of a version counts
// nothing: what it served before is not known to be on this step, and
// undercounting only makes a step last longer.
func (c *Controller) countStep(k stepKey, rc *rolloutCandidate) uint64 {
	mv := modelVersion{k.model, k.version}
	cur := c.cfg.Rollouts.Served(k.model, k.version)
	last, seen := c.served[mv]
	c.served[mv] = cur
	var delta uint64
	switch {
	case !seen:
	case cur >= last:
		delta = cur - last
	default:
		delta = cur // the version was loaded afresh
	}
	sc := c.steps[k]
	if sc == nil || sc.baseSeq != rc.baseSeq {
		// A record (ours or an earlier leader's) carries the count so far.
		sc = &stepCount{baseSeq: rc.baseSeq}
		c.steps[k] = sc
	}
	sc.counted += delta
	return sc.counted
}

// rolloutStart is a validated version a rollout may start on.
type rolloutStart struct {
	model    string
	version  int
	champion int
	first    registry.RolloutStep
}

// newCandidate returns the newest validated version of a model whose
// policy has a rollout and that has none in progress, when it is newer
// than the champion: a candidate a retraining job (or a person) registered.
// Versions that were on the ramp and left it are retired or rolled back,
// never validated, so a rollout is never started twice on one version.
func newCandidate(m *registry.Model) (rolloutStart, bool) {
	if m.Policy.Rollout == nil || m.Champion == 0 {
		return rolloutStart{}, false
	}
	rp := m.Policy.EffectiveRollout()
	if len(rp.Steps) == 0 {
		return rolloutStart{}, false
	}
	best := 0
	for i := range m.Versions {
		if v := &m.Versions[i]; v.Stage == registry.StageValidated && v.Number > m.Champion && v.Pending == nil && v.Number > best {
			best = v.Number
		}
	}
	if best == 0 {
		return rolloutStart{}, false
	}
	return rolloutStart{model: m.Name, version: best, champion: m.Champion, first: rp.Steps[0]}, true
}

// startRollout puts a new candidate on the ramp's first step: the
// controller's own move, in the audit log like every other (a person may
// still stage it first, or retire it to keep it out).
func (c *Controller) startRollout(now time.Time, s rolloutStart) {
	after := RolloutState{Step: 0, StepStarted: now}
	d := Decision{Action: ActionAdvance, Phase: PhaseRamp, Step: 0, Stage: s.first.Stage, Weight: s.first.Weight,
		Reason: "a new validated candidate: the rollout starts on its first step (" + string(s.first.Stage) + ")"}
	d.Candidate.Version, d.Champion.Version = s.version, s.champion
	res, ok := c.apply(now, "rollout/"+s.model+"/v"+strconv.Itoa(s.version)+"/start", &registry.SetStageArgs{Model: s.model, Version: s.version,
		Stage: s.first.Stage, Weight: s.first.Weight, Auto: true, Reason: d.Reason, Evidence: rolloutEvidence(d, after)})
	if ok && res.PendingApproval && !res.Replayed {
		d.Action = ActionAwaitApproval
		c.alert(now, AlertApproval, s.model, s.version, d)
	}
}

// judgeRollout decides one rollout's window and acts on it.
func (c *Controller) judgeRollout(now time.Time, rc *rolloutCandidate, k stepKey) {
	q := RolloutQuery{Model: rc.model.Name, Candidate: rc.version.Number, Against: rc.against,
		Shadow: rc.version.Stage == registry.StageShadow, Watch: rc.phase == PhaseWatch, Since: rc.since, Now: now}
	ev, err := c.cfg.Rollouts.RolloutEvidence(q)
	if err != nil {
		c.log.Warn("no rollout evidence this window; the rollout holds", "model", q.Model, "version", q.Candidate, "err", err)
		return
	}
	ev.Candidate.Version, ev.Champion.Version = rc.version.Number, rc.against
	pol := rc.model.Policy
	d := Decide(&pol, rc.state, ev, now)
	refine(&d, rc, &c.led.rollout, k)
	c.setLatest(rc.model.Name, RolloutView{Model: rc.model.Name, Version: rc.version.Number, Against: rc.against, State: rc.state, Decision: d, Time: now})

	rp := pol.EffectiveRollout()
	model, v := rc.model.Name, rc.version.Number
	key := "rollout/" + model + "/v" + strconv.Itoa(v) + "/" + strconv.Itoa(rc.state.Step) + "@" + strconv.FormatInt(k.started, 36)
	after := rc.state // the state the decision leaves
	switch d.Action {
	case ActionHold:
		last := c.led.rollout.last[modelVersion{model, v}]
		if last.key == decisionKey(d, rc.state) {
			return // the same decision as the last recorded: not news
		}
		// Keyed by the record it follows: two leaders recording the same
		// change write it once, and a decision that changes back is news
		// again.
		c.apply(now, key+"/hold/"+strconv.FormatUint(last.seq, 10)+"/"+decisionKey(d, rc.state), &registry.RecordAlertArgs{Model: model, Version: v, Kind: KindRollout,
			Reason: d.Reason, Evidence: rolloutEvidence(d, after)})
	case ActionAdvance, ActionAwaitApproval, ActionPromote:
		after = RolloutState{Step: d.Step, StepStarted: now}
		if d.Action == ActionAwaitApproval {
			// The candidate stays on its step until a person decides.
			after = rc.state
			after.Pending = true
		}
		if d.Step >= len(rp.Steps) {
			res, ok := c.apply(now, key+"/promote", &registry.PromoteArgs{Model: model, Version: v, Auto: true,
				Reason: d.Reason, Evidence: rolloutEvidence(d, after)})
			if ok && res.PendingApproval && !res.Replayed {
				c.alert(now, AlertApproval, model, v, d)
			}
			return
		}
		next := rp.Steps[d.Step]
		if d.Stage == registry.StageShadow && rc.version.Stage == registry.StageShadow {
			// Between two shadow steps the stage does not change and no
			// traffic moves: the record is the move, and there is no
			// registry move for a person to approve.
			after = RolloutState{Step: d.Step, StepStarted: now}
			c.apply(now, key+"/advance", &registry.RecordAlertArgs{Model: model, Version: v, Kind: KindRollout,
				Reason: d.Reason, Evidence: rolloutEvidence(d, after)})
			return
		}
		after.Pending = d.Action == ActionAwaitApproval
		res, ok := c.apply(now, key+"/advance", &registry.SetStageArgs{Model: model, Version: v, Stage: next.Stage, Weight: next.Weight,
			Auto: true, Reason: d.Reason, Evidence: rolloutEvidence(d, after)})
		if ok && res.PendingApproval && !res.Replayed {
			c.alert(now, AlertApproval, model, v, d)
		}
	case ActionRollBack:
		var res registry.Result
		var ok bool
		if rc.phase == PhaseWatch {
			res, ok = c.apply(now, key+"/rollback", &registry.RollbackArgs{Model: model, Auto: true, Reason: d.Reason, Evidence: rolloutEvidence(d, after)})
		} else {
			res, ok = c.apply(now, key+"/retire", &registry.SetStageArgs{Model: model, Version: v, Stage: registry.StageRetired, Auto: true,
				Reason: d.Reason, Evidence: rolloutEvidence(d, after)})
		}
		if ok && !res.Replayed {
			c.log.Warn("rollout rolled back", "model", model, "version", v, "reason", d.Reason)
			c.alert(now, AlertRollback, model, v, d)
		}
	case ActionComplete:
		c.apply(now, key+"/complete", &registry.RecordAlertArgs{Model: model, Version: v, Kind: KindRollout,
			Reason: d.Reason, Evidence: rolloutEvidence(d, after)})
	}
}

// refine adjusts Decide's decision to what the registry can do and what
// people said: a move between two shadow steps changes no stage, so it
// cannot wait for approval and is an advance; a move a person rejected on
// this step is not proposed again (the rollout holds; triggers still
// pull the candidate back).
func refine(d *Decision, rc *rolloutCandidate, rl *rolloutLedger, k stepKey) {
	switch d.Action {
	case ActionAdvance, ActionAwaitApproval, ActionPromote:
	default:
		return
	}
	if rej, ok := rl.rejected[k]; ok {
		d.Action, d.Step, d.Stage, d.Weight = ActionHold, rc.state.Step, rc.version.Stage, 0
		if rc.version.Stage == registry.StageCanary {
			d.Weight = rc.model.CanaryWeight
		}
		d.Reason = "a person rejected the move to " + rej + ": the rollout stays on this step until a person moves the version"
		return
	}
	if d.Action == ActionAwaitApproval && d.Stage == registry.StageShadow && rc.version.Stage == registry.StageShadow {
		d.Action = ActionAdvance
		d.Reason = "step shadow done, no trigger fired: to the next shadow step (no traffic moves, so no approval is asked)"
	}
}

// apply proposes one rollout command. A key the registry already applied
// (another leader took the same decision on the same step) is not an
// error: the decision stands, once.
//
// A move the registry refuses (an illegal transition, a signature the
// champion's clients cannot call) is recorded once, with the decision's
// evidence, and not proposed again on the same step: it needs a person
// (who moves the version, which starts a new step, or forces it).
func (c *Controller) apply(now time.Time, key string, args registry.Args) (registry.Result, bool) {
	if c.refused[key] {
		return registry.Result{}, false
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.ApplyTimeout)
	defer cancel()
	res, err := c.cfg.Registry.Apply(ctx, registry.Command{Time: now.UTC(), Actor: actorRollout, IdempotencyKey: truncate(key, 900), Args: args})
	switch {
	case errors.Is(err, registry.ErrIdempotencyConflict):
		return registry.Result{Replayed: true}, true
	case errors.Is(err, registry.ErrIllegalTransition), errors.Is(err, registry.ErrIncompatibleSignature):
		c.refused[key] = true
		c.log.Warn("the registry refused a rollout move; the rollout holds until a person moves the version", "op", args.Op(), "err", err)
		if m, v, ev := moveOf(args); m != "" {
			c.apply(now, key+"/refused", &registry.RecordAlertArgs{Model: m, Version: v, Kind: KindRollout,
				Reason: truncate("the registry refused the rollout's "+string(args.Op())+": "+err.Error()+"; the rollout holds on this step until a person moves the version", 4000), Evidence: ev})
		}
		return res, false
	case err != nil:
		c.log.Error("cannot apply a rollout decision; it is taken again next window", "op", args.Op(), "key", key, "err", err)
		return res, false
	}
	return res, true
}

// moveOf returns the model, version and evidence of a rollout move.
func moveOf(args registry.Args) (string, int, json.RawMessage) {
	switch a := args.(type) {
	case *registry.SetStageArgs:
		return a.Model, a.Version, a.Evidence
	case *registry.PromoteArgs:
		return a.Model, a.Version, a.Evidence
	}
	return "", 0, nil
}

// RolloutView is the controller's latest judgement of a model's rollout:
// what GET /api/v1/models/{m}/rollout shows.
type RolloutView struct {
	Model    string       `json:"model"`
	Version  int          `json:"version"`
	Against  int          `json:"against"`
	State    RolloutState `json:"state"`
	Decision Decision     `json:"decision"`
	// Time is when the controller decided it.
	Time time.Time `json:"time"`
}

func (c *Controller) setLatest(model string, v RolloutView) {
	c.viewMu.Lock()
	defer c.viewMu.Unlock()
	c.latest[model] = v
}

// LatestRollout returns the last decision this controller took on model's
// rollout and whether it has one. Only a leader decides: a follower, or a
// leader that has not stepped since the rollout began, has none (the audit
// log has every decision recorded).
func (c *Controller) LatestRollout(model string) (RolloutView, bool) {
	c.viewMu.Lock()
	defer c.viewMu.Unlock()
	v, ok := c.latest[model]
	return v, ok
}

// Judge decides model's rollout now, as the next window would, without
// acting or recording anything: what the API shows when this controller
// has no decision of its own yet (a follower, or a fresh leader). ok is
// false when the model has no rollout in progress.
func (c *Controller) Judge(model string) (RolloutView, bool, error) {
	if c.cfg.Rollouts == nil {
		return RolloutView{}, false, nil
	}
	now := c.cfg.Now()
	var rc rolloutCandidate
	var ok bool
	var err error
	// A ledger of its own: a report must not wait for a step that waits
	// on a lost quorum.
	c.repMu.Lock()
	c.cfg.Registry.View(func(st *registry.State) {
		c.repLed.update(st)
		var m registry.Model
		if m, err = st.Model(model); err == nil {
			rc, ok = c.repLed.rollout.candidate(&m)
		}
	})
	c.repMu.Unlock()
	if err != nil || !ok {
		return RolloutView{}, false, err
	}
	rc.state.StepRequests = rc.base
	q := RolloutQuery{Model: model, Candidate: rc.version.Number, Against: rc.against,
		Shadow: rc.version.Stage == registry.StageShadow, Watch: rc.phase == PhaseWatch, Since: rc.since, Now: now}
	ev, err := c.cfg.Rollouts.RolloutEvidence(q)
	if err != nil {
		return RolloutView{}, true, fmt.Errorf("lifecycle: cannot read the evidence of %s v%d: %w", model, rc.version.Number, err)
	}
	ev.Candidate.Version, ev.Champion.Version = rc.version.Number, rc.against
	pol := rc.model.Policy
	d := Decide(&pol, rc.state, ev, now)
	c.repMu.Lock()
	refine(&d, &rc, &c.repLed.rollout, stepKey{model, rc.version.Number, rc.state.Step, rc.state.StepStarted.UnixNano()})
	c.repMu.Unlock()
	return RolloutView{Model: model, Version: rc.version.Number, Against: rc.against, State: rc.state, Decision: d, Time: now}, true, nil
}
