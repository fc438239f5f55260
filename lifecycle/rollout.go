package lifecycle

import (
	"encoding/json"
	"math"
	"strconv"
	"time"

	"github.com/modelgate/modelgate/registry"
)

// RolloutState is where a candidate's rollout stands: what the controller
// keeps in the registry between windows, so that a new leader resumes it.
type RolloutState struct {
	// Step indexes the policy's ramp (rollout.steps); len(steps) means
	// the candidate was promoted and is in its watch.
	Step int `json:"step"`
	// StepStarted is when the candidate entered the step (for the watch:
	// when it was promoted).
	StepStarted time.Time `json:"step_started"`
	// StepRequests is how many requests the candidate answered (in
	// shadow: ran) since it entered the step.
	StepRequests uint64 `json:"step_requests"`
	// Pending is set while a move the controller proposed waits for a
	// person's approval.
	Pending bool `json:"pending,omitempty"`
}

// Action is what a Decision asks the controller to do.
type Action string

// The actions.
const (
	// ActionHold: nothing to do this window.
	ActionHold Action = "hold"
	// ActionAdvance: move the candidate to Decision.Step (set_stage with
	// its stage and weight, Auto).
	ActionAdvance Action = "advance"
	// ActionPromote: promote the candidate (Auto).
	ActionPromote Action = "promote"
	// ActionAwaitApproval: propose the move (Auto); the policy makes it
	// wait for a person, so the registry records it as pending.
	ActionAwaitApproval Action = "await_approval"
	// ActionRollBack: in the ramp, take the candidate out of traffic
	// (retire it); in the watch, roll the champion back to the standby.
	ActionRollBack Action = "roll_back"
	// ActionComplete: the watch ended quietly; the rollout is over.
	ActionComplete Action = "complete"
)

// The phases of a rollout.
const (
	PhaseRamp  = "ramp"
	PhaseWatch = "watch"
)

// Decision is what Decide concluded and why, with every gate's numbers:
// it marshals as the evidence of the audit record the controller writes,
// for the decisions it takes and those it holds.
type Decision struct {
	Action Action `json:"action"`
	Phase  string `json:"phase"`
	// Step is the step moved to (advance, or the move awaiting approval),
	// else the current one; len(steps) is champion.
	Step   int            `json:"step"`
	Stage  registry.Stage `json:"stage,omitempty"`
	Weight float64        `json:"weight,omitempty"`
	// Reason is one sentence for the audit log and the alert.
	Reason string `json:"reason"`
	// Metric and Confidence are the policy's, for reading the checks.
	Metric     registry.Metric `json:"metric"`
	Confidence float64         `json:"confidence"`
	Checks     []Check         `json:"checks"`
	Candidate  Arm             `json:"candidate"`
	Champion   Arm             `json:"champion"`
}

// Evidence returns d as JSON for an audit record. Numbers that JSON cannot
// carry (an infinite ratio, a NaN from a version with no data) are written
// as 0, so the record is always written.
func (d Decision) Evidence() json.RawMessage {
	d.Checks = append([]Check(nil), d.Checks...) // d is a copy; its checks are not
	for i := range d.Checks {
		c := &d.Checks[i]
		c.Value, c.Limit = finite(c.Value), finite(c.Limit)
		if t := c.Test; t != nil {
			x := *t
			x.Estimate, x.StdErr, x.LogLR, x.PValue, x.Null = finite(x.Estimate), finite(x.StdErr), finite(x.LogLR), finite(x.PValue), finite(x.Null)
			c.Test = &x
		}
	}
	for _, l := range []*LabelStats{&d.Candidate.Labels, &d.Champion.Labels} {
		l.AUC, l.AUCStdErr, l.LogLoss, l.LogLossStdErr, l.Brier, l.BrierStdErr = finite(l.AUC), finite(l.AUCStdErr), finite(l.LogLoss), finite(l.LogLossStdErr), finite(l.Brier), finite(l.BrierStdErr)
	}
	b, err := json.Marshal(d)
	if err != nil {
		// Unreachable with finite numbers; an audit record still says so.
		return json.RawMessage(`{"action":` + strconv.Quote(string(d.Action)) + `,"error":` + strconv.Quote(err.Error()) + `}`)
	}
	return b
}

func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// Decide is the rollout's brain: from the model's policy, where the
// rollout stands and the evidence of the period, it returns what to do
// now. It is pure (the time comes in now) and may be called every window.
//
// In order: a rollback trigger that fires wins (in the ramp and in the
// watch); in the watch, the end of the watch completes the rollout; a move
// waiting for approval holds; a step whose minimum duration and requests
// are met advances, or, the last step, promotes once the promotion test
// passes — superiority when the move will happen on its own,
// non-inferiority when a person approves it; a candidate that spent the
// sample budget without passing is pulled back.
func Decide(p *registry.Policy, st RolloutState, ev Evidence, now time.Time) Decision {
	rp := p.EffectiveRollout()
	st.Step = max(st.Step, 0)
	d := Decision{Step: st.Step, Metric: rp.Metric, Confidence: rp.Confidence, Candidate: ev.Candidate, Champion: ev.Champion}
	for _, a := range []*Arm{&d.Candidate, &d.Champion} {
		if a.Latency != nil && a.Latency.TotalCount() > 0 {
			a.P99Micros = a.Latency.ValueAtQuantile(99)
		}
	}
	if st.Step >= len(rp.Steps) {
		return decideWatch(&rp, st, &ev, now, d)
	}
	d.Phase = PhaseRamp
	step := rp.Steps[st.Step]
	d.Stage, d.Weight = step.Stage, step.Weight
	d.Checks = triggers(&rp, &ev, step.Stage == registry.StageShadow)
	if fired := firedChecks(d.Checks); fired != "" {
		d.Action = ActionRollBack
		d.Reason = "v" + strconv.Itoa(ev.Candidate.Version) + " pulled back on step " + stepName(step) + ": " + fired
		return d
	}

	elapsed := now.Sub(st.StepStarted)
	dur := Check{Name: CheckMinDuration, Value: elapsed.Seconds(), Limit: time.Duration(step.MinDuration).Seconds(), Status: StatusPass}
	if elapsed < time.Duration(step.MinDuration) {
		dur.Status = StatusWait
	}
	n := Check{Name: CheckMinSamples, Value: float64(st.StepRequests), Limit: float64(step.MinSamples), Status: StatusPass}
	if st.StepRequests < uint64(step.MinSamples) {
		n.Status = StatusWait
	}
	d.Checks = append(d.Checks, dur, n)
	stepDone := dur.Status == StatusPass && n.Status == StatusPass

	last := st.Step == len(rp.Steps)-1
	if !last {
		next := rp.Steps[st.Step+1]
		switch {
		case st.Pending:
			d.Action, d.Reason = ActionHold, "waiting for a person to approve the move to "+stepName(next)
		case !stepDone:
			d.Action, d.Reason = ActionHold, "on step "+stepName(step)+": "+waiting(dur, n)
		default:
			d.Step, d.Stage, d.Weight = st.Step+1, next.Stage, next.Weight
			d.Action, d.Reason = ActionAdvance, "step "+stepName(step)+" done, no trigger fired: to "+stepName(next)
			if p.Promotion.NeedsApproval(next.Stage) {
				d.Action, d.Reason = ActionAwaitApproval, "step "+stepName(step)+" done, no trigger fired: the move to "+stepName(next)+" waits for approval"
			}
		}
		return d
	}

	// The last step: promotion is earned by the test.
	approval := p.Promotion.NeedsApproval(registry.StageChampion)
	gain, v, ok := Gain(rp.Metric, ev.Candidate.Labels, ev.Champion.Labels)
	test := Check{Name: CheckPromotionTest, Value: gain, Status: StatusNotJudged}
	var r TestResult
	hyp := HypothesisSuperiority
	if approval {
		hyp = HypothesisNonInferiority
		test.Limit = -rp.MinEffect
		test.Detail = "non-inferiority: a person approves the promotion"
	} else {
		test.Detail = "superiority: the promotion is automatic"
	}
	if ok {
		if approval {
			r = NonInferiority(gain, v, rp.MinEffect, 1-rp.Confidence)
		} else {
			r = Superiority(gain, v, rp.MinEffect, 1-rp.Confidence)
		}
		test.Test, test.Status = &r, StatusWait
		if r.Rejected {
			test.Status = StatusPass
		}
	} else {
		test.Detail += "; fewer than " + strconv.Itoa(minMetricCount) + " rows behind " + string(rp.Metric) + " for a version"
	}
	budget := Check{Name: CheckBudget, Value: float64(ev.Candidate.Labels.N), Limit: float64(rp.MaxSamples), Status: StatusDisabled}
	if rp.MaxSamples > 0 {
		budget.Status = StatusPass
		if test.Status != StatusPass && ev.Candidate.Labels.N >= uint64(rp.MaxSamples) {
			budget.Status = StatusFired
		}
	}
	d.Checks = append(d.Checks, test, budget)
	switch {
	case st.Pending:
		d.Action, d.Reason = ActionHold, "waiting for a person to approve the promotion"
	case budget.Status == StatusFired:
		d.Action = ActionRollBack
		d.Reason = "v" + strconv.Itoa(ev.Candidate.Version) + " pulled back: the " + hyp + " test on " + string(rp.Metric) +
			" did not pass within the budget of " + strconv.FormatInt(rp.MaxSamples, 10) + " labelled predictions"
	case test.Status != StatusPass:
		d.Action, d.Reason = ActionHold, "on step "+stepName(step)+": the promotion test on "+string(rp.Metric)+" has not passed"
	case !stepDone:
		d.Action, d.Reason = ActionHold, "the promotion test passed; on step "+stepName(step)+": "+waiting(dur, n)
	default:
		d.Step, d.Stage, d.Weight = len(rp.Steps), registry.StageChampion, 0
		if approval {
			d.Action = ActionAwaitApproval
			d.Reason = "v" + strconv.Itoa(ev.Candidate.Version) + " is not worse than the champion on " + string(rp.Metric) +
				" by " + strconv.FormatFloat(rp.MinEffect, 'g', -1, 64) + " or more (always-valid p = " + strconv.FormatFloat(r.PValue, 'g', 3, 64) +
				"): the promotion to champion waits for approval"
		} else {
			d.Action = ActionPromote
			d.Reason = "v" + strconv.Itoa(ev.Candidate.Version) + " is better than the champion on " + string(rp.Metric) +
				" (gain " + strconv.FormatFloat(gain, 'f', 4, 64) + ", always-valid p = " + strconv.FormatFloat(r.PValue, 'g', 3, 64) + "): promoted"
		}
	}
	return d
}

// decideWatch judges a new champion against its predecessor until the
// watch ends.
func decideWatch(rp *registry.RolloutPolicy, st RolloutState, ev *Evidence, now time.Time, d Decision) Decision {
	d.Phase, d.Step, d.Stage = PhaseWatch, len(rp.Steps), registry.StageChampion
	d.Checks = triggers(rp, ev, false)
	if fired := firedChecks(d.Checks); fired != "" {
		d.Action = ActionRollBack
		d.Reason = "champion v" + strconv.Itoa(ev.Candidate.Version) + " rolled back to v" + strconv.Itoa(ev.Champion.Version) + " in its watch: " + fired
		return d
	}
	elapsed := now.Sub(st.StepStarted)
	watch := Check{Name: CheckMinDuration, Value: elapsed.Seconds(), Limit: time.Duration(rp.Watch).Seconds(), Status: StatusWait}
	if elapsed >= time.Duration(rp.Watch) {
		watch.Status = StatusPass
	}
	d.Checks = append(d.Checks, watch)
	if watch.Status == StatusPass {
		d.Action, d.Reason = ActionComplete, "champion v"+strconv.Itoa(ev.Candidate.Version)+" passed its watch of "+time.Duration(rp.Watch).String()+" with no trigger fired"
		return d
	}
	d.Action, d.Reason = ActionHold, "champion v"+strconv.Itoa(ev.Candidate.Version)+" in its watch, "+(time.Duration(rp.Watch)-elapsed).Round(time.Second).String()+" to go"
	return d
}

// firedChecks describes the checks that fired ("" when none did).
func firedChecks(cs []Check) string {
	var s string
	for _, c := range cs {
		if c.Status != StatusFired {
			continue
		}
		if s != "" {
			s += "; "
		}
		s += c.Name + " " + strconv.FormatFloat(c.Value, 'g', 4, 64)
		if c.Name == CheckLabelRegression {
			s += " beyond the tolerated " + strconv.FormatFloat(c.Limit, 'g', 4, 64)
		} else {
			s += " over the limit " + strconv.FormatFloat(c.Limit, 'g', 4, 64)
		}
		if c.Test != nil {
			s += " (always-valid p = " + strconv.FormatFloat(c.Test.PValue, 'g', 3, 64) + ")"
		}
		if c.Detail != "" {
			s += ": " + c.Detail
		}
	}
	return s
}

func stepName(s registry.RolloutStep) string {
	if s.Stage == registry.StageShadow {
		return "shadow"
	}
	return "canary " + registry.FormatWeight(s.Weight) + "%"
}

func waiting(dur, n Check) string {
	var s string
	if dur.Status == StatusWait {
		s = strconv.FormatFloat(dur.Value, 'f', 0, 64) + "s of " + strconv.FormatFloat(dur.Limit, 'f', 0, 64) + "s"
	}
	if n.Status == StatusWait {
		if s != "" {
			s += ", "
		}
		s += strconv.FormatFloat(n.Value, 'f', 0, 64) + " of " + strconv.FormatFloat(n.Limit, 'f', 0, 64) + " requests"
	}
	return s
}
