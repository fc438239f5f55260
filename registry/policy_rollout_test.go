package registry

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestRolloutPolicyValidate(t *testing.T) {
	f := func(change func(r *RolloutPolicy), want string) {
		t.Helper()
		p := DefaultPolicy()
		r := DefaultRollout()
		change(&r)
		p.Rollout = &r
		err := p.Validate()
		if want == "" {
			if err != nil {
				t.Fatalf("want valid, got %v", err)
			}
			return
		}
		if err == nil || err.Error() != want {
			t.Fatalf("got %v\nwant %s", err, want)
		}
		var fe *FieldError
		if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
			t.Fatalf("%v is not a *FieldError / ErrInvalid (the admin API's 400)", err)
		}
	}
	canary := func(w float64) RolloutStep { return RolloutStep{Stage: StageCanary, Weight: w} }
	f(func(r *RolloutPolicy) {}, "")
	f(func(r *RolloutPolicy) { r.Steps = []RolloutStep{canary(0.1)} }, "")
	f(func(r *RolloutPolicy) { r.Steps = nil }, "registry: policy.rollout.steps (0) must hold 1 to 20 steps (shadow and canary steps; promotion follows the last); a model's first rollout section must list them")
	f(func(r *RolloutPolicy) { r.Steps = make([]RolloutStep, 21) }, "registry: policy.rollout.steps (21) must hold 1 to 20 steps (shadow and canary steps; promotion follows the last); a model's first rollout section must list them")
	f(func(r *RolloutPolicy) { r.Steps[0].Stage = StageChampion }, `registry: policy.rollout.steps[0].stage ("champion") must be "shadow" or "canary"`)
	f(func(r *RolloutPolicy) { r.Steps[0].Weight = 5 }, "registry: policy.rollout.steps[0].weight (5) must be 0 for a shadow step (a shadow answers no traffic)")
	f(func(r *RolloutPolicy) { r.Steps = append(r.Steps, RolloutStep{Stage: StageShadow}) }, `registry: policy.rollout.steps[5].stage ("shadow") must not follow a canary step: shadow steps come first`)
	f(func(r *RolloutPolicy) { r.Steps[2].Weight = 1 }, "registry: policy.rollout.steps[2].weight (1) must be above the previous step's 1: the ramp only rises")
	f(func(r *RolloutPolicy) { r.Steps[1].Weight = 0.001 }, "registry: policy.rollout.steps[1].weight (0.001) must be a percentage in steps of 0.01 (one basis point)")
	f(func(r *RolloutPolicy) { r.Steps[4].Weight = 100 }, "registry: policy.rollout.steps[4].weight (100) must be above 0 and below 100 (promotion follows the last step)")
	f(func(r *RolloutPolicy) { r.Steps[1].Weight = 0 }, "registry: policy.rollout.steps[1].weight (0) must be above 0 and below 100 (promotion follows the last step)")
	f(func(r *RolloutPolicy) { r.Steps[1].MinDuration = Duration(-time.Minute) }, `registry: policy.rollout.steps[1].min_duration ("-1m0s") must be >= 0`)
	f(func(r *RolloutPolicy) { r.Steps[3].MinSamples = -1 }, "registry: policy.rollout.steps[3].min_samples (-1) must be >= 0")
	for _, m := range []Metric{MetricRecall, MetricPrecision, MetricF1, MetricAUC, MetricLogLoss, MetricBrier} {
		f(func(r *RolloutPolicy) { r.Metric = m }, "")
	}
	f(func(r *RolloutPolicy) { r.Metric = "accuracy" }, `registry: policy.rollout.metric ("accuracy") must be one of recall, precision, f1, auc, logloss, brier`)
	f(func(r *RolloutPolicy) { r.MinEffect = 0 }, "registry: policy.rollout.min_effect (0) must be in (0, 1], in the metric's units (0.02 is two points of recall)")
	f(func(r *RolloutPolicy) { r.MinEffect = math.NaN() }, "registry: policy.rollout.min_effect (NaN) must be in (0, 1], in the metric's units (0.02 is two points of recall)")
	f(func(r *RolloutPolicy) { r.Confidence = 1 }, "registry: policy.rollout.confidence (1) must be in [0.5, 1), e.g. 0.95")
	f(func(r *RolloutPolicy) { r.MaxSamples = -1 }, "registry: policy.rollout.max_samples (-1) must be >= 0 (0: no budget)")
	f(func(r *RolloutPolicy) { r.Watch = Duration(-time.Second) }, `registry: policy.rollout.watch ("-1s") must be >= 0`)
	f(func(r *RolloutPolicy) { r.Triggers.MinRequests = -2 }, "registry: policy.rollout.triggers.min_requests (-2) must be >= 0")
	f(func(r *RolloutPolicy) { r.Triggers.MaxErrorRate = 1 }, "registry: policy.rollout.triggers.max_error_rate (1) must be in [0, 1) (0 disables it)")
	f(func(r *RolloutPolicy) { r.Triggers.MaxP99Ratio = 0.5 }, "registry: policy.rollout.triggers.max_p99_ratio (0.5) must be 0 (disabled) or a finite ratio >= 1, e.g. 1.5")
	f(func(r *RolloutPolicy) { r.Triggers.MaxP99Ratio = 0 }, "")
	f(func(r *RolloutPolicy) { r.Triggers.MaxScoreShift = -0.1 }, "registry: policy.rollout.triggers.max_score_shift (-0.1) must be >= 0 (a PSI; 0 disables it)")
	f(func(r *RolloutPolicy) { d := 2.0; r.Triggers.MaxLabelRegression = &d }, "registry: policy.rollout.triggers.max_label_regression (2) must be in [0, 1], in the metric's units (omit it to disable)")
	f(func(r *RolloutPolicy) { d := 0.0; r.Triggers.MaxLabelRegression = &d }, "")
	f(func(r *RolloutPolicy) { r.Triggers.MaxLabelRegression = nil }, "")

	// The gates keep their four metrics: a set_policy refused for
	// "f1" there before rollouts existed is refused alike on replay.
	p := DefaultPolicy()
	p.Promotion.Champion.Metric = MetricF1
	if err := p.Validate(); err == nil {
		t.Fatal("a gate accepted f1")
	}
	if MetricBrier.HigherIsBetter() || MetricLogLoss.HigherIsBetter() || !MetricF1.HigherIsBetter() {
		t.Fatal("metric directions")
	}
}

// A policy without a rollout section (every policy written before it)
// decodes without one, re-encodes byte for byte, and rolls out by the
// defaults with its champion gate's metric and confidence.
func TestRolloutPolicyKeepsOldPolicies(t *testing.T) {
	p := DefaultPolicy()
	p.Promotion.Champion.Metric, p.Promotion.Champion.Confidence = MetricLogLoss, 0.99
	old, _ := json.Marshal(p)
	if strings.Contains(string(old), "rollout") {
		t.Fatalf("a policy without rollout encodes one: %s", old)
	}
	var back Policy
	if err := json.Unmarshal(old, &back); err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(back); string(b) != string(old) || back.Rollout != nil {
		t.Fatalf("re-encodes differently:\n%s\n%s", b, old)
	}
	eff := back.EffectiveRollout()
	// DefaultPolicy's rollback section: 1% errors, PSI 0.25, a 0.02 drop,
	// 500 requests.
	if eff.Metric != MetricLogLoss || eff.Confidence != 0.99 || len(eff.Steps) != 5 || *eff.Triggers.MaxLabelRegression != 0.02 ||
		eff.Triggers.MaxErrorRate != 0.01 || eff.Triggers.MaxScoreShift != 0.25 || eff.Triggers.MinRequests != 500 || eff.Triggers.MaxP99Ratio != 1.5 {
		t.Fatalf("effective rollout of an old policy: %+v %v", eff, *eff.Triggers.MaxLabelRegression)
	}
	old2 := back
	gain := 0.01
	old2.Rollback = RollbackPolicy{MaxErrorRate: 0.05, MinLabelMetricDelta: &gain}
	if e := old2.EffectiveRollout(); e.Triggers.MaxErrorRate != 0.05 || e.Triggers.MaxScoreShift != 0 || *e.Triggers.MaxLabelRegression != 0 {
		t.Fatalf("a positive delta, no PSI: %+v", e.Triggers)
	}
	old2.Rollback.MinLabelMetricDelta = nil
	if e := old2.EffectiveRollout(); e.Triggers.MaxLabelRegression != nil {
		t.Fatal("a disabled label trigger came back")
	}
	back.Rollout = &eff
	if err := back.Validate(); err != nil {
		t.Fatalf("the default rollout is invalid: %v", err)
	}
	// A policy's own section is used as given, and is a copy.
	own := DefaultRollout()
	own.Metric = MetricRecall
	back.Rollout = &own
	got := back.EffectiveRollout()
	got.Steps[0].MinSamples = 7
	*got.Triggers.MaxLabelRegression = 0.5
	if got.Metric != MetricRecall || own.Steps[0].MinSamples == 7 || *own.Triggers.MaxLabelRegression != 0.01 || got.Triggers.MinRequests != 1000 {
		t.Fatal("EffectiveRollout shares the policy's section")
	}
}

// TestRolloutPolicySurvivesTheLog: a set_policy with a rollout section
// goes through the wire encoding, Apply, a snapshot and a restore and
// reads back the same, in snake_case; the state's copy is deep.
func TestRolloutPolicySurvivesTheLog(t *testing.T) {
	want := DefaultPolicy()
	r := DefaultRollout()
	r.Steps = []RolloutStep{{Stage: StageShadow, MinDuration: Duration(5 * time.Minute)}, {Stage: StageCanary, Weight: 0.1, MinSamples: 300}, {Stage: StageCanary, Weight: 12.5, MinSamples: 4000}}
	r.Metric, r.MinEffect, r.MaxSamples = MetricRecall, 0.03, 90000
	r.Triggers.MaxLabelRegression = nil
	want.Rollout = &r
	h := newHarness(t)
	h.must(&CreateModelArgs{Model: "fraud", Reason: "new"})
	c := h.cmd(&SetPolicyArgs{Model: "fraud", Policy: want, Reason: "ramp"})
	b, err := EncodeCommand(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{`"rollout":{"steps":[{"stage":"shadow","min_duration":"5m0s","min_samples":0}`, `{"stage":"canary","weight":0.1,`, `"metric":"recall","min_effect":0.03,"confidence":0.95,"max_samples":90000,"watch":"1h0m0s"`, `"triggers":{"min_requests":1000,"max_error_rate":0.01,"max_p99_ratio":1.5,"max_score_shift":0.25}`} {
		if !strings.Contains(string(b), name) {
			t.Fatalf("the command lacks %s:\n%s", name, b)
		}
	}
	back, err := DecodeCommand(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.Apply(back); err != nil {
		t.Fatal(err)
	}
	restored, err := RestoreSnapshot(h.snapshot())
	if err != nil {
		t.Fatal(err)
	}
	wantJSON, _ := json.Marshal(want)
	for name, st := range map[string]*State{"applied": h.s, "restored": restored} {
		got, err := st.Policy("fraud")
		if err != nil {
			t.Fatal(err)
		}
		if gotJSON, _ := json.Marshal(got); string(gotJSON) != string(wantJSON) {
			t.Errorf("%s policy:\n got  %s\n want %s", name, gotJSON, wantJSON)
		}
		got.Rollout.Steps[1].Weight = 99
		if again, _ := st.Policy("fraud"); again.Rollout.Steps[1].Weight != 0.1 {
			t.Fatalf("%s: the state shares its rollout steps with a reader", name)
		}
	}
	r.Steps[1].Weight = 50 // the caller's copy after the command
	if got, _ := h.s.Policy("fraud"); got.Rollout.Steps[1].Weight != 0.1 {
		t.Fatal("the state shares the caller's steps")
	}
	// An invalid section is refused whole, naming the field.
	bad, _ := h.s.Policy("fraud")
	bad.Rollout.Steps[2].Weight = 0.05
	h.refused(&SetPolicyArgs{Model: "fraud", Policy: bad}, ErrInvalid, "registry: policy.rollout.steps[2].weight (0.05) must be above the previous step's 0.1: the ramp only rises")
}

// A v1 set_policy written before rollouts existed replays to the same
// stored policy, without a rollout section, and re-encodes as the same v1
// command.
func TestOldSetPolicyReplaysUnchanged(t *testing.T) {
	h := newHarness(t)
	h.must(&CreateModelArgs{Model: "fraud", Reason: "new"})
	old, _ := json.Marshal(DefaultPolicy())
	raw := `{"v":1,"op":"set_policy","time":"2025-06-01T12:00:00Z","actor":"ops","idempotency_key":"k-old-policy","args":{"model":"fraud","policy":` + string(old) + `,"reason":"before rollouts"}}`
	c, err := DecodeCommand([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.Apply(c); err != nil {
		t.Fatal(err)
	}
	got, _ := h.s.Policy("fraud")
	if b, _ := json.Marshal(got); string(b) != string(old) || got.Rollout != nil {
		t.Fatalf("stored policy changed:\n%s\n%s", b, old)
	}
	again, err := EncodeCommand(c)
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	_ = json.Unmarshal([]byte(raw), &a)
	_ = json.Unmarshal(again, &b)
	ja, _ := json.Marshal(a) // maps: keys in one order, so equal JSON is equal bytes
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Fatalf("re-encoded differently:\n%s\n%s", again, raw)
	}
}
