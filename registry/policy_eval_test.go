package registry

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestEvaluationPolicyValidate(t *testing.T) {
	f := func(change func(p *Policy), want string) {
		t.Helper()
		p := DefaultPolicy()
		change(&p)
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
			t.Fatalf("%v is not a *FieldError / ErrInvalid", err)
		}
	}
	rate := func(r float64) *ServingPolicy { return &ServingPolicy{ShadowSampleRate: &r} }
	f(func(p *Policy) { p.Serving = rate(0.25) }, "")
	f(func(p *Policy) { p.Serving = rate(0) }, "")
	f(func(p *Policy) { p.Serving = rate(1.5) }, "registry: policy.serving.shadow_sample_rate (1.5) must be in [0, 1] (1 mirrors every champion answer)")
	f(func(p *Policy) { p.Serving = rate(math.NaN()) }, "registry: policy.serving.shadow_sample_rate (NaN) must be in [0, 1] (1 mirrors every champion answer)")
	f(func(p *Policy) { p.Evaluation = &EvaluationPolicy{} }, "")
	f(func(p *Policy) {
		p.Evaluation = &EvaluationPolicy{Task: TaskRegression, Output: "price", LabelDelay: Duration(72 * time.Hour)}
	}, "")
	f(func(p *Policy) { p.Evaluation = &EvaluationPolicy{Task: "multiclass"} }, `registry: policy.evaluation.task ("multiclass") must be "binary" or "regression"`)
	f(func(p *Policy) { p.Evaluation = &EvaluationPolicy{Column: -1} }, "registry: policy.evaluation.column (-1) must be between 0 and 1048576 (the score's index within a row)")
	f(func(p *Policy) { p.Evaluation = &EvaluationPolicy{Threshold: 1.2} }, "registry: policy.evaluation.threshold (1.2) must be in [0, 1] (a probability; 0 means the default 0.5)")
	f(func(p *Policy) { p.Evaluation = &EvaluationPolicy{LabelDelay: Duration(-time.Hour)} }, `registry: policy.evaluation.label_delay ("-1h0m0s") must be between 0 and 2160h (90 days)`)
	f(func(p *Policy) { p.Evaluation = &EvaluationPolicy{LabelDelay: Duration(91 * 24 * time.Hour)} }, `registry: policy.evaluation.label_delay ("2184h0m0s") must be between 0 and 2160h (90 days)`)
}

// Policies written before the evaluation section and the sample rate
// existed read unchanged and encode byte for byte as before (wire v1).
func TestEvaluationPolicyKeepsOldPolicies(t *testing.T) {
	old := `{"promotion":{"mode":"auto","shadow":{"min_samples":0,"metric":"auc","confidence":0.95,"require_approval":false},"canary":{"min_samples":1000,"metric":"auc","confidence":0.95,"require_approval":false},"champion":{"min_samples":5000,"metric":"auc","confidence":0.95,"require_approval":true}},"rollback":{"min_samples":500,"max_error_rate":0.01,"max_p99_latency_ms":250,"max_score_drift":0.25,"min_label_metric_delta":-0.02},"drift":{"reference_sample_size":10000,"psi":{"enabled":true,"threshold":0.2,"min_count":1000,"consecutive_windows":3},"js":{"enabled":true,"threshold":0.1,"min_count":1000,"consecutive_windows":3},"ks":{"enabled":true,"threshold":0.1,"min_count":1000,"consecutive_windows":3},"wasserstein":{"enabled":false,"threshold":0.5,"min_count":1000,"consecutive_windows":3},"chi2_p":{"enabled":true,"threshold":0.01,"min_count":1000,"consecutive_windows":3}},"retraining":{"enabled":false,"cooldown":"6h0m0s"},"serving":{"standby_ttl":"10m0s"}}`
	var p Policy
	if err := json.Unmarshal([]byte(old), &p); err != nil {
		t.Fatal(err)
	}
	if p.Evaluation != nil || p.Serving.ShadowSampleRate != nil {
		t.Fatalf("old policy grew fields: %+v %+v", p.Evaluation, p.Serving)
	}
	if b, _ := json.Marshal(p); string(b) != old {
		t.Fatalf("old policy re-encodes differently:\n%s", b)
	}
	// Defaults make a binary classifier on its first output work.
	e := p.Evaluation.Effective()
	if e.Task != TaskBinary || e.Threshold != 0.5 || e.Output != "" || e.Column != 0 || time.Duration(e.LabelDelay) != DefaultLabelDelay {
		t.Fatalf("defaults: %+v", e)
	}
	if p.Serving.SampleRate() != 1 || (*ServingPolicy)(nil).SampleRate() != 1 {
		t.Fatal("the default sample rate is not 1")
	}
	// The new fields round-trip and clone deeply.
	r := 0.3
	p.Serving.ShadowSampleRate = &r
	p.Evaluation = &EvaluationPolicy{Threshold: 0.7, Output: "probability", LabelDelay: Duration(48 * time.Hour)}
	b, _ := json.Marshal(p)
	if !strings.Contains(string(b), `"shadow_sample_rate":0.3`) || !strings.Contains(string(b), `"evaluation":{"output":"probability","threshold":0.7,"label_delay":"48h0m0s"}`) {
		t.Fatalf("%s", b)
	}
	c := p.clone()
	*c.Serving.ShadowSampleRate, c.Evaluation.Threshold = 0.9, 0.1
	if *p.Serving.ShadowSampleRate != 0.3 || p.Evaluation.Threshold != 0.7 {
		t.Fatal("clone shares the new sections")
	}
}
