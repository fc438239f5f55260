package registry

import (
	"math"
	"strconv"
	"time"
)

// The metrics a rollout may be judged on, beyond the gates' four.
const (
	MetricF1    Metric = "f1"
	MetricBrier Metric = "brier"
)

// rolloutMetric reports whether m is one a rollout can test: the gates'
// four (auc, logloss, precision, recall) plus f1 and brier. Gate.validate
// keeps its own, older list so that a set_policy refused before this
// section existed is refused the same way on replay.
func rolloutMetric(m Metric) bool {
	return m.valid() || m == MetricF1 || m == MetricBrier
}

// RolloutPolicy is how the lifecycle controller takes a candidate to
// champion: the ramp of steps it climbs, the test it must pass on a label
// metric to be promoted, the triggers that pull it back, and how long a
// new champion is watched against its predecessor. Whether a move waits
// for a person is policy.promotion's mode and require_approval, which the
// registry enforces; the controller tests superiority when a move will
// happen on its own and non-inferiority when a person approves it.
//
// A policy without this section (every policy written before it existed)
// rolls out by DefaultRollout with what its older sections said: see
// Policy.EffectiveRollout.
type RolloutPolicy struct {
	// Steps is the ramp, in order: shadow steps (no weight) then canary
	// steps with rising weights. After the last step comes promotion.
	Steps []RolloutStep `json:"steps"`
	// Metric is the label metric the promotion test compares the
	// candidate and the champion on.
	Metric Metric `json:"metric"`
	// MinEffect is the difference on Metric that matters, in the metric's
	// units (0.02 = two points of recall): the margin a candidate may be
	// worse by and still be approved (non-inferiority), and the effect the
	// superiority test is tuned to find.
	MinEffect float64 `json:"min_effect"`
	// Confidence is the one-sided confidence of every test, in [0.5, 1):
	// the promotion test and the label and error triggers each err at most
	// 1 - Confidence of the time, however often they are looked at.
	Confidence float64 `json:"confidence"`
	// MaxSamples is the budget: the labelled predictions of the candidate
	// after which, the test still undecided, the rollout ends and the
	// candidate is pulled back (0: no budget).
	MaxSamples int64 `json:"max_samples"`
	// Watch is how long after its promotion a new champion is still judged
	// by Triggers against its predecessor's numbers, and rolled back to
	// the warm standby when one fires (0: not watched).
	Watch Duration `json:"watch"`
	// Triggers pull a candidate back (or roll a watched champion back).
	Triggers RolloutTriggers `json:"triggers"`
}

// RolloutStep is one rung of the ramp.
type RolloutStep struct {
	// Stage is "shadow" or "canary".
	Stage Stage `json:"stage"`
	// Weight is the canary's share of the model's traffic, in percent
	// with steps of 0.01 as the registry stores canary weights (0 for
	// shadow).
	Weight float64 `json:"weight,omitempty"`
	// MinDuration is how long the candidate stays on the step at least.
	MinDuration Duration `json:"min_duration"`
	// MinSamples is how many requests the candidate must answer (in
	// shadow: run) on the step before it moves on.
	MinSamples int64 `json:"min_samples"`
}

// RolloutTriggers are the rollback triggers. A zero threshold disables its
// trigger, except MaxLabelRegression, which is disabled by leaving it out.
type RolloutTriggers struct {
	// MinRequests is how many requests the candidate must have answered
	// before the latency and score-shift triggers judge it (the error and
	// label triggers are sequential tests and need no floor).
	MinRequests int64 `json:"min_requests"`
	// MaxErrorRate is the share of failed requests, in [0, 1], the
	// candidate is rolled back for exceeding (tested at Confidence).
	MaxErrorRate float64 `json:"max_error_rate"`
	// MaxP99Ratio is how many times the champion's p99 latency the
	// candidate's p99 may reach (e.g. 1.5); 0 disables it, else >= 1.
	// Not judged in shadow, whose copies run on background threads.
	MaxP99Ratio float64 `json:"max_p99_ratio"`
	// MaxScoreShift is the population stability index of the candidate's
	// scores against the champion's over the same period.
	MaxScoreShift float64 `json:"max_score_shift"`
	// MaxLabelRegression is how far below the champion on Metric (in the
	// metric's units, the sign flipped for logloss and brier) the
	// candidate may be before it is rolled back, tested at Confidence.
	MaxLabelRegression *float64 `json:"max_label_regression,omitempty"`
}

// DefaultRollout returns the ramp and triggers a model gets when its
// policy has no rollout section: shadow for 10 minutes and 1,000 runs,
// then canary at 1%, 5%, 25% and 50%, each for at least 10 minutes and
// 1,000, 5,000, 30,000 and 20,000 requests; promotion on AUC at 95%
// confidence with a 0.01 minimum effect, within 200,000 labelled
// predictions; rollback on 1% errors, 1.5x the champion's p99, a score
// PSI of 0.25 or a regression of more than 0.01; an hour's watch.
func DefaultRollout() RolloutPolicy {
	regression := 0.01
	step := func(stage Stage, weight float64, minSamples int64) RolloutStep {
		return RolloutStep{Stage: stage, Weight: weight, MinDuration: Duration(10 * time.Minute), MinSamples: minSamples}
	}
	return RolloutPolicy{
		Steps: []RolloutStep{
			step(StageShadow, 0, 1000),
			step(StageCanary, 1, 1000),
			step(StageCanary, 5, 5000),
			step(StageCanary, 25, 30000),
			step(StageCanary, 50, 20000),
		},
		Metric:     MetricAUC,
		MinEffect:  0.01,
		Confidence: 0.95,
		MaxSamples: 200000,
		Watch:      Duration(time.Hour),
		Triggers: RolloutTriggers{
			MinRequests:        1000,
			MaxErrorRate:       0.01,
			MaxP99Ratio:        1.5,
			MaxScoreShift:      0.25,
			MaxLabelRegression: &regression,
		},
	}
}

// EffectiveRollout returns the rollout policy in force: the policy's own
// section, or DefaultRollout carrying over what the older sections said
// about the same things — the champion gate's metric and confidence, and
// the rollback section's error rate, score PSI, label-metric delta (as a
// tolerated regression: -0.02 tolerates 0.02; a positive delta, which
// demanded a gain, tolerates none) and minimum requests. Its absolute p99
// limit has no counterpart: rollouts compare p99s with the champion's.
// A policy with the section is judged by it alone; the gates' mode and
// require_approval still say who approves each move.
func (p *Policy) EffectiveRollout() RolloutPolicy {
	if p.Rollout != nil {
		return p.Rollout.clone()
	}
	r := DefaultRollout()
	if p.Promotion.Champion.Metric.valid() {
		r.Metric = p.Promotion.Champion.Metric
	}
	if c := p.Promotion.Champion.Confidence; c >= 0.5 && c < 1 {
		r.Confidence = c
	}
	rb := &p.Rollback
	if rb.MaxErrorRate >= 0 && rb.MaxErrorRate < 1 {
		r.Triggers.MaxErrorRate = rb.MaxErrorRate
	}
	if rb.MaxScoreDrift >= 0 && !math.IsInf(rb.MaxScoreDrift, 0) {
		r.Triggers.MaxScoreShift = rb.MaxScoreDrift
	}
	if rb.MinSamples >= 0 {
		r.Triggers.MinRequests = rb.MinSamples
	}
	if d := rb.MinLabelMetricDelta; d == nil {
		r.Triggers.MaxLabelRegression = nil
	} else if *d >= -1 && *d <= 1 {
		tol := max(0, -*d)
		r.Triggers.MaxLabelRegression = &tol
	}
	return r
}

// MaxRolloutSteps bounds the ramp.
const MaxRolloutSteps = 20

func (r *RolloutPolicy) validate(path string) error {
	if len(r.Steps) == 0 || len(r.Steps) > MaxRolloutSteps {
		return fieldErr(path+".steps", len(r.Steps), "must hold 1 to "+strconv.Itoa(MaxRolloutSteps)+" steps (shadow and canary steps; promotion follows the last); a model's first rollout section must list them")
	}
	prev := -1.0 // the previous canary weight; -1 while in shadow steps
	for i := range r.Steps {
		s := &r.Steps[i]
		sp := path + ".steps[" + strconv.Itoa(i) + "]"
		switch s.Stage {
		case StageShadow:
			if prev >= 0 {
				return fieldErr(sp+".stage", string(s.Stage), "must not follow a canary step: shadow steps come first")
			}
			if s.Weight != 0 {
				return fieldErr(sp+".weight", s.Weight, "must be 0 for a shadow step (a shadow answers no traffic)")
			}
		case StageCanary:
			if err := CheckWeight(s.Weight); err != nil {
				return fieldErr(sp+".weight", s.Weight, err.Error())
			}
			if s.Weight == 0 || s.Weight == 100 {
				return fieldErr(sp+".weight", s.Weight, "must be above 0 and below 100 (promotion follows the last step)")
			}
			if s.Weight <= prev {
				return fieldErr(sp+".weight", s.Weight, "must be above the previous step's "+FormatWeight(prev)+": the ramp only rises")
			}
			prev = s.Weight
		default:
			return fieldErr(sp+".stage", string(s.Stage), `must be "shadow" or "canary"`)
		}
		if s.MinDuration < 0 {
			return fieldErr(sp+".min_duration", time.Duration(s.MinDuration).String(), "must be >= 0")
		}
		if s.MinSamples < 0 {
			return fieldErr(sp+".min_samples", s.MinSamples, "must be >= 0")
		}
	}
	if !rolloutMetric(r.Metric) {
		return fieldErr(path+".metric", string(r.Metric), "must be one of recall, precision, f1, auc, logloss, brier")
	}
	if !(r.MinEffect > 0 && r.MinEffect <= 1) {
		return fieldErr(path+".min_effect", r.MinEffect, "must be in (0, 1], in the metric's units (0.02 is two points of recall)")
	}
	if !(r.Confidence >= 0.5 && r.Confidence < 1) {
		return fieldErr(path+".confidence", r.Confidence, "must be in [0.5, 1), e.g. 0.95")
	}
	if r.MaxSamples < 0 {
		return fieldErr(path+".max_samples", r.MaxSamples, "must be >= 0 (0: no budget)")
	}
	if r.Watch < 0 {
		return fieldErr(path+".watch", time.Duration(r.Watch).String(), "must be >= 0")
	}
	t := &r.Triggers
	tp := path + ".triggers"
	if t.MinRequests < 0 {
		return fieldErr(tp+".min_requests", t.MinRequests, "must be >= 0")
	}
	if !(t.MaxErrorRate >= 0 && t.MaxErrorRate < 1) {
		return fieldErr(tp+".max_error_rate", t.MaxErrorRate, "must be in [0, 1) (0 disables it)")
	}
	if !(t.MaxP99Ratio == 0 || t.MaxP99Ratio >= 1) || math.IsInf(t.MaxP99Ratio, 0) {
		return fieldErr(tp+".max_p99_ratio", t.MaxP99Ratio, "must be 0 (disabled) or a finite ratio >= 1, e.g. 1.5")
	}
	if !(t.MaxScoreShift >= 0) || math.IsInf(t.MaxScoreShift, 0) {
		return fieldErr(tp+".max_score_shift", t.MaxScoreShift, "must be >= 0 (a PSI; 0 disables it)")
	}
	if d := t.MaxLabelRegression; d != nil && !(*d >= 0 && *d <= 1) {
		return fieldErr(tp+".max_label_regression", *d, "must be in [0, 1], in the metric's units (omit it to disable)")
	}
	return nil
}

func (r RolloutPolicy) clone() RolloutPolicy {
	r.Steps = append([]RolloutStep(nil), r.Steps...)
	if d := r.Triggers.MaxLabelRegression; d != nil {
		x := *d
		r.Triggers.MaxLabelRegression = &x
	}
	return r
}
