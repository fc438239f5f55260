package registry

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"time"
)

// Policy is what a model's owner decided about its life: how versions are
// promoted, when they are rolled back, when drift raises an alert and where
// retraining is requested. The registry stores and validates it and enforces
// the approval part (see PromotionPolicy); the lifecycle controller and the
// drift monitor act on the rest.
//
// Every field is explicit: a policy in a command is stored as given, never
// merged with defaults, so replaying the log gives the same state whatever
// DefaultPolicy returns in a later release. To accept a partial policy from
// a user, decode it onto a copy of the current policy (or DefaultPolicy()).
type Policy struct {
	Promotion  PromotionPolicy  `json:"promotion"`
	Rollback   RollbackPolicy   `json:"rollback"`
	Drift      DriftPolicy      `json:"drift"`
	Retraining RetrainingPolicy `json:"retraining"`
	// Validation is what the validation gate demands beyond loading and a
	// smoke run; nil demands nothing more. A pointer so that policies
	// without it keep the wire form version 1 pinned.
	Validation *ValidationPolicy `json:"validation,omitempty"`
	// PredictionLog says how the model's predictions are logged; nil is
	// async (the default).
	PredictionLog *PredictionLogPolicy `json:"prediction_log,omitempty"`
	// Serving says how long a former champion stays loaded as the warm
	// standby; nil keeps it until the next promotion.
	Serving *ServingPolicy `json:"serving,omitempty"`
	// Evaluation says how the model's outputs are judged against labels
	// and compared between champion and shadows; nil is DefaultEvaluation.
	Evaluation *EvaluationPolicy `json:"evaluation,omitempty"`
	// Rollout is the ramp, promotion test and rollback triggers the
	// lifecycle controller applies; nil is EffectiveRollout's default.
	Rollout *RolloutPolicy `json:"rollout,omitempty"`
	// Alerts is the alert webhook; nil sends no alerts (they are still
	// audit records).
	Alerts *AlertPolicy `json:"alerts,omitempty"`
	// Distribution says which nodes must report a version ready before it
	// may become canary or champion; nil requires every node (see
	// policy_distribution.go). Wire version 4.
	Distribution *DistributionPolicy `json:"distribution,omitempty"`
	// Edge is what edge sites send back of the rows they score; nil:
	// nothing.
	Edge *EdgePolicy `json:"edge,omitempty"`
}

// The evaluation tasks.
const (
	// TaskBinary: the score is P(positive) in [0, 1], labels are 0 or 1,
	// and a score at or above the threshold is a positive decision.
	TaskBinary = "binary"
	// TaskRegression: the score predicts the label (MAE, RMSE).
	TaskRegression = "regression"
)

// Evaluation defaults, used for fields left zero (and for models with no
// evaluation section): they fit a binary classifier whose first output is
// the positive class's probability, like the demo fraud model's
// "probability" [n, 1].
const (
	DefaultThreshold  = 0.5
	DefaultLabelDelay = 24 * time.Hour
	// MaxLabelDelay bounds how long a node keeps evaluation windows open
	// for late labels.
	MaxLabelDelay = 90 * 24 * time.Hour
)

// EvaluationPolicy says where a model's score is and how it is judged.
// Zero fields mean the defaults, so {} and nil evaluate alike.
type EvaluationPolicy struct {
	// Task is "binary" (the default) or "regression".
	Task string `json:"task,omitempty"`
	// Output names the output holding the score (empty: the first one),
	// and Column the element of each row that is the score (0): a
	// classifier answering [n, 2] probabilities is scored with column 1.
	Output string `json:"output,omitempty"`
	Column int    `json:"column,omitempty"`
	// Threshold decides a binary row: positive when its score is at or
	// above it (0: DefaultThreshold). Shadow agreement tables use it too.
	Threshold float64 `json:"threshold,omitempty"`
	// LabelDelay is how long after a prediction its label may still
	// arrive and count (0: DefaultLabelDelay): nodes keep evaluation
	// windows that long, and a later label is stored but not evaluated.
	LabelDelay Duration `json:"label_delay,omitempty"`
}

// Effective returns p with defaults in the zero fields (p may be nil).
func (p *EvaluationPolicy) Effective() EvaluationPolicy {
	var e EvaluationPolicy
	if p != nil {
		e = *p
	}
	if e.Task == "" {
		e.Task = TaskBinary
	}
	if e.Threshold == 0 {
		e.Threshold = DefaultThreshold
	}
	if e.LabelDelay == 0 {
		e.LabelDelay = Duration(DefaultLabelDelay)
	}
	return e
}

func (p *EvaluationPolicy) validate(path string) error {
	switch p.Task {
	case "", TaskBinary, TaskRegression:
	default:
		return fieldErr(path+".task", p.Task, `must be "binary" or "regression"`)
	}
	if p.Output != "" {
		if err := checkText(path+".output", p.Output, 256, false); err != nil {
			return err
		}
	}
	if p.Column < 0 || p.Column > 1<<20 {
		return fieldErr(path+".column", p.Column, "must be between 0 and 1048576 (the score's index within a row)")
	}
	if !(p.Threshold >= 0 && p.Threshold <= 1) {
		return fieldErr(path+".threshold", p.Threshold, "must be in [0, 1] (a probability; 0 means the default 0.5)")
	}
	if p.LabelDelay < 0 || time.Duration(p.LabelDelay) > MaxLabelDelay {
		return fieldErr(path+".label_delay", time.Duration(p.LabelDelay).String(), "must be between 0 and 2160h (90 days)")
	}
	return nil
}

// ServingPolicy holds what a node does with the versions around the
// champion.
type ServingPolicy struct {
	// StandbyTTL is how long the previous champion stays loaded after a
	// promotion, so that clients pinned to it keep working and a rollback
	// flips the routing pointer without loading anything; 0 keeps it until
	// the next promotion.
	StandbyTTL Duration `json:"standby_ttl"`
	// ShadowSampleRate is the share of champion answers copied to the
	// shadow versions, in [0, 1]; nil mirrors every answer (1.0). The
	// choice hashes the request id, so every node picks the same requests.
	ShadowSampleRate *float64 `json:"shadow_sample_rate,omitempty"`
}

// SampleRate returns the shadow sample rate in force (1 when unset; p
// may be nil).
func (p *ServingPolicy) SampleRate() float64 {
	if p == nil || p.ShadowSampleRate == nil {
		return 1
	}
	return *p.ShadowSampleRate
}

// The prediction log modes.
const (
	// LogAsync: the response never waits; a record may be dropped (and is
	// counted) when the log falls behind, and an OS crash may lose the
	// last sync interval.
	LogAsync = "async"
	// LogDurable: the response waits until its record is fsynced; a
	// prediction that cannot be logged is not answered.
	LogDurable = "durable"
	// LogOff: the model's predictions are not logged.
	LogOff = "off"
)

// PredictionLogPolicy sets how a model's predictions are logged.
type PredictionLogPolicy struct {
	Mode string `json:"mode"` // async, durable or off
}

// ValidationPolicy sets the validation gate's extra demands.
type ValidationPolicy struct {
	// LatencyBudgetMs is the p99 of the gate's timed smoke runs a version
	// must stay under, in milliseconds (0: no budget).
	LatencyBudgetMs float64 `json:"latency_budget_ms,omitempty"`
}

// PromotionMode says whether the lifecycle controller may move versions on
// its own.
type PromotionMode string

// The promotion modes.
const (
	// PromotionAuto: automatic moves happen at once, except at a step whose
	// gate has RequireApproval.
	PromotionAuto PromotionMode = "auto"
	// PromotionManual: every automatic move waits for a person's approval.
	PromotionManual PromotionMode = "manual"
)

// Metric is the online label metric a gate compares versions on.
type Metric string

// The metrics a gate can use.
const (
	MetricAUC       Metric = "auc"
	MetricLogLoss   Metric = "logloss"
	MetricPrecision Metric = "precision"
	MetricRecall    Metric = "recall"
)

// HigherIsBetter reports whether a larger value of m is an improvement
// (false for logloss and brier).
func (m Metric) HigherIsBetter() bool { return m != MetricLogLoss && m != MetricBrier }

func (m Metric) valid() bool {
	switch m {
	case MetricAUC, MetricLogLoss, MetricPrecision, MetricRecall:
		return true
	}
	return false
}

// PromotionPolicy holds the gate for each step a candidate takes towards
// champion. Automatic proposals (commands with Auto set) wait for approval
// when Mode is manual or the step's gate has RequireApproval; a person's
// command never waits.
type PromotionPolicy struct {
	Mode     PromotionMode `json:"mode"`
	Shadow   Gate          `json:"shadow"`   // to enter shadow
	Canary   Gate          `json:"canary"`   // to enter canary or change its weight
	Champion Gate          `json:"champion"` // to be promoted
}

// Gate is what a candidate must show before a step.
type Gate struct {
	// MinSamples is the number of compared (for shadow) or labelled (for
	// canary and champion) requests needed before the step; 0: none.
	MinSamples int64 `json:"min_samples"`
	// Metric is the label metric the candidate is compared on.
	Metric Metric `json:"metric"`
	// Confidence is the one-sided confidence, in [0.5, 1), that the
	// candidate is not worse (and, for an automatic promotion, better).
	Confidence float64 `json:"confidence"`
	// RequireApproval makes an automatic move to this step wait for a person.
	RequireApproval bool `json:"require_approval"`
}

// RollbackPolicy holds the triggers that make the lifecycle controller roll a
// champion (or pull a canary) back. A zero Max* value disables its trigger.
type RollbackPolicy struct {
	// MinSamples is how many requests a version must answer before the
	// triggers judge it.
	MinSamples int64 `json:"min_samples"`
	// MaxErrorRate is the fraction of failed requests, in [0, 1].
	MaxErrorRate float64 `json:"max_error_rate"`
	// MaxP99LatencyMs is the 99th percentile latency in milliseconds.
	MaxP99LatencyMs float64 `json:"max_p99_latency_ms"`
	// MaxScoreDrift is the drift of the version's scores against the previous
	// champion's (PSI).
	MaxScoreDrift float64 `json:"max_score_drift"`
	// MinLabelMetricDelta triggers when the version's label metric minus the
	// previous champion's (sign flipped for logloss, so positive is always
	// better) falls below it, e.g. -0.02. Nil disables the trigger.
	MinLabelMetricDelta *float64 `json:"min_label_metric_delta,omitempty"`
}

// RetrainingPolicy is where and how often retraining is requested.
type RetrainingPolicy struct {
	Enabled bool `json:"enabled"`
	// URL is the webhook, http or https, without credentials in it.
	URL string `json:"url,omitempty"`
	// SecretRef names the secret the webhook is signed with (a key in the
	// node's secret configuration). The secret's value is never in the
	// registry, its commands or its audit log.
	SecretRef string `json:"secret_ref,omitempty"`
	// Cooldown is the least time between two retraining requests.
	Cooldown Duration `json:"cooldown"`
}

// Duration is a time.Duration written in JSON as a Go duration string
// ("6h0m0s"), which a person can read and write.
type Duration time.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string ("90s", "6h").
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"6h\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// DefaultReferenceSampleSize is DefaultPolicy's Drift.ReferenceSampleSize.
const DefaultReferenceSampleSize = 10000

// DefaultPolicy returns the policy a model gets when it is created without
// one: automatic shadow and canary steps, a person approves the promotion to
// champion; rollback on 1% errors, 250 ms p99, 0.25 score PSI or a 0.02 drop
// of AUC; PSI, JS, KS and chi² drift alerts after 3 windows; retraining off.
//
// It is part of wire version 1: a model created implicitly by a v1 command
// gets exactly this policy, on every replica and on every replay. Change it
// only together with a new command version.
func DefaultPolicy() Policy {
	delta := -0.02
	gate := func(min int64, approval bool) Gate {
		return Gate{MinSamples: min, Metric: MetricAUC, Confidence: 0.95, RequireApproval: approval}
	}
	drift := func(threshold float64, enabled bool) DriftThreshold {
		return DriftThreshold{Enabled: enabled, Threshold: threshold, MinCount: 1000, ConsecutiveWindows: 3}
	}
	return Policy{
		Promotion: PromotionPolicy{
			Mode:     PromotionAuto,
			Shadow:   gate(0, false),
			Canary:   gate(1000, false),
			Champion: gate(5000, true),
		},
		Rollback: RollbackPolicy{
			MinSamples:          500,
			MaxErrorRate:        0.01,
			MaxP99LatencyMs:     250,
			MaxScoreDrift:       0.25,
			MinLabelMetricDelta: &delta,
		},
		Drift: DriftPolicy{
			ReferenceSampleSize: DefaultReferenceSampleSize,
			PSI:                 drift(0.2, true),
			JS:                  drift(0.1, true),
			KS:                  drift(0.1, true),
			Wasserstein:         drift(0.5, false),
			Chi2P:               drift(0.01, true),
		},
		Retraining: RetrainingPolicy{Cooldown: Duration(6 * time.Hour)},
	}
}

// Validate checks every field and returns a *FieldError naming the first bad
// one ("registry: policy.drift.psi.threshold (-1) must be > 0").
func (p *Policy) Validate() error {
	if err := p.Promotion.validate("policy.promotion"); err != nil {
		return err
	}
	if err := p.Rollback.validate("policy.rollback"); err != nil {
		return err
	}
	if err := p.Drift.validate("policy.drift"); err != nil {
		return err
	}
	if l := p.PredictionLog; l != nil && l.Mode != LogAsync && l.Mode != LogDurable && l.Mode != LogOff {
		return fieldErr("policy.prediction_log.mode", l.Mode, `must be "async", "durable" or "off"`)
	}
	if sv := p.Serving; sv != nil && sv.StandbyTTL < 0 {
		return fieldErr("policy.serving.standby_ttl", time.Duration(sv.StandbyTTL).String(), "must be >= 0")
	}
	if sv := p.Serving; sv != nil && sv.ShadowSampleRate != nil && !(*sv.ShadowSampleRate >= 0 && *sv.ShadowSampleRate <= 1) {
		return fieldErr("policy.serving.shadow_sample_rate", *sv.ShadowSampleRate, "must be in [0, 1] (1 mirrors every champion answer)")
	}
	if e := p.Evaluation; e != nil {
		if err := e.validate("policy.evaluation"); err != nil {
			return err
		}
	}
	if r := p.Rollout; r != nil {
		if err := r.validate("policy.rollout"); err != nil {
			return err
		}
	}
	if a := p.Alerts; a != nil {
		if err := a.validate("policy.alerts"); err != nil {
			return err
		}
	}
	if d := p.Distribution; d != nil {
		if err := d.validate("policy.distribution"); err != nil {
			return err
		}
	}
	if e := p.Edge; e != nil {
		if err := e.validate("policy.edge"); err != nil {
			return err
		}
	}
	if v := p.Validation; v != nil && !(v.LatencyBudgetMs >= 0 && v.LatencyBudgetMs <= 3.6e6) {
		return fieldErr("policy.validation.latency_budget_ms", v.LatencyBudgetMs, "must be between 0 and 3600000")
	}
	return p.Retraining.validate("policy.retraining")
}

func (p *PromotionPolicy) validate(path string) error {
	if p.Mode != PromotionAuto && p.Mode != PromotionManual {
		return fieldErr(path+".mode", string(p.Mode), `must be "auto" or "manual"`)
	}
	for _, g := range []struct {
		name string
		gate *Gate
	}{{"shadow", &p.Shadow}, {"canary", &p.Canary}, {"champion", &p.Champion}} {
		if err := g.gate.validate(path + "." + g.name); err != nil {
			return err
		}
	}
	return nil
}

func (g *Gate) validate(path string) error {
	if g.MinSamples < 0 {
		return fieldErr(path+".min_samples", g.MinSamples, "must be >= 0")
	}
	if !g.Metric.valid() {
		return fieldErr(path+".metric", string(g.Metric), "must be one of auc, logloss, precision, recall")
	}
	if !(g.Confidence >= 0.5 && g.Confidence < 1) {
		return fieldErr(path+".confidence", g.Confidence, "must be in [0.5, 1), e.g. 0.95")
	}
	return nil
}

func (r *RollbackPolicy) validate(path string) error {
	if r.MinSamples < 0 {
		return fieldErr(path+".min_samples", r.MinSamples, "must be >= 0")
	}
	if !(r.MaxErrorRate >= 0 && r.MaxErrorRate <= 1) {
		return fieldErr(path+".max_error_rate", r.MaxErrorRate, "must be in [0, 1] (0 disables it)")
	}
	if !(r.MaxP99LatencyMs >= 0) || math.IsInf(r.MaxP99LatencyMs, 0) {
		return fieldErr(path+".max_p99_latency_ms", r.MaxP99LatencyMs, "must be >= 0 (0 disables it)")
	}
	if !(r.MaxScoreDrift >= 0) || math.IsInf(r.MaxScoreDrift, 0) {
		return fieldErr(path+".max_score_drift", r.MaxScoreDrift, "must be >= 0 (0 disables it)")
	}
	if d := r.MinLabelMetricDelta; d != nil && !(*d >= -1 && *d <= 1) {
		return fieldErr(path+".min_label_metric_delta", *d, "must be in [-1, 1] (omit it to disable)")
	}
	return nil
}

func (r *RetrainingPolicy) validate(path string) error {
	if r.Cooldown < 0 {
		return fieldErr(path+".cooldown", time.Duration(r.Cooldown).String(), "must be >= 0")
	}
	if r.URL != "" {
		if err := checkText(path+".url", r.URL, 2048, false); err != nil {
			return err
		}
		u, err := url.Parse(r.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fieldErr(path+".url", r.URL, "must be an absolute http or https URL")
		}
		if u.User != nil {
			// The policy is copied into the audit log; a password there
			// would leak to everyone with read access.
			return fieldErr(path+".url", u.Redacted(), "must not contain credentials; put the signing secret's name in secret_ref")
		}
	}
	if r.SecretRef != "" && !validSecretRef(r.SecretRef) {
		return fieldErr(path+".secret_ref", r.SecretRef, "must be a secret's name: 1-128 of A-Z a-z 0-9 . _ - /")
	}
	if r.Enabled {
		if r.URL == "" {
			return fieldErr(path+".url", nil, "must be set when retraining is enabled")
		}
		if r.SecretRef == "" {
			return fieldErr(path+".secret_ref", nil, "must name the webhook's signing secret when retraining is enabled")
		}
	}
	return nil
}

func validSecretRef(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == '/') {
			return false
		}
	}
	return true
}

// gate returns the gate for a move to stage to, or nil when the stage has
// none (retired).
func (p *PromotionPolicy) gate(to Stage) *Gate {
	switch to {
	case StageShadow:
		return &p.Shadow
	case StageCanary:
		return &p.Canary
	case StageChampion:
		return &p.Champion
	}
	return nil
}

// NeedsApproval reports whether an automatic move to stage to waits for a
// person: the lifecycle controller tests non-inferiority for such a move
// and superiority for one that happens on its own.
func (p *PromotionPolicy) NeedsApproval(to Stage) bool { return p.needsApproval(to) }

// needsApproval reports whether an automatic move to stage to must wait
// for a person.
func (p *PromotionPolicy) needsApproval(to Stage) bool {
	g := p.gate(to)
	if g == nil {
		return false
	}
	return p.Mode == PromotionManual || g.RequireApproval
}

// clone is a deep copy.
func (p Policy) clone() Policy {
	if d := p.Rollback.MinLabelMetricDelta; d != nil {
		x := *d
		p.Rollback.MinLabelMetricDelta = &x
	}
	if sv := p.Serving; sv != nil {
		x := *sv
		if r := sv.ShadowSampleRate; r != nil {
			y := *r
			x.ShadowSampleRate = &y
		}
		p.Serving = &x
	}
	if e := p.Evaluation; e != nil {
		x := *e
		p.Evaluation = &x
	}
	if r := p.Rollout; r != nil {
		x := r.clone()
		p.Rollout = &x
	}
	if rp := p.Drift.ReferencePeriod; rp != nil {
		x := *rp
		p.Drift.ReferencePeriod = &x
	}
	if c := p.Drift.Constraints; c != nil {
		x := *c
		x.Ranges = make([]FeatureRange, len(c.Ranges))
		for i, r := range c.Ranges {
			if r.Min != nil {
				v := *r.Min
				r.Min = &v
			}
			if r.Max != nil {
				v := *r.Max
				r.Max = &v
			}
			x.Ranges[i] = r
		}
		p.Drift.Constraints = &x
	}
	if a := p.Alerts; a != nil {
		x := *a
		p.Alerts = &x
	}
	if d := p.Distribution; d != nil {
		x := *d
		p.Distribution = &x
	}
	if e := p.Edge; e != nil {
		x := *e
		if b := e.LowConfidence; b != nil {
			y := *b
			x.LowConfidence = &y
		}
		p.Edge = &x
	}
	return p
}
