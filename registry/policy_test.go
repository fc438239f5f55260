package registry

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"
)

func TestDefaultPolicyIsValid(t *testing.T) {
	p := DefaultPolicy()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if p.Drift.ReferenceSampleSize != 10000 {
		t.Fatal(p.Drift.ReferenceSampleSize)
	}
	// DefaultPolicy is part of wire version 1 (doc.go): this pins it.
	b, _ := json.Marshal(p)
	const want = `{"promotion":{"mode":"auto","shadow":{"min_samples":0,"metric":"auc","confidence":0.95,"require_approval":false},"canary":{"min_samples":1000,"metric":"auc","confidence":0.95,"require_approval":false},"champion":{"min_samples":5000,"metric":"auc","confidence":0.95,"require_approval":true}},"rollback":{"min_samples":500,"max_error_rate":0.01,"max_p99_latency_ms":250,"max_score_drift":0.25,"min_label_metric_delta":-0.02},"drift":{"reference_sample_size":10000,"psi":{"enabled":true,"threshold":0.2,"min_count":1000,"consecutive_windows":3},"js":{"enabled":true,"threshold":0.1,"min_count":1000,"consecutive_windows":3},"ks":{"enabled":true,"threshold":0.1,"min_count":1000,"consecutive_windows":3},"wasserstein":{"enabled":false,"threshold":0.5,"min_count":1000,"consecutive_windows":3},"chi2_p":{"enabled":true,"threshold":0.01,"min_count":1000,"consecutive_windows":3}},"retraining":{"enabled":false,"cooldown":"6h0m0s"}}`
	if string(b) != want {
		t.Fatalf("DefaultPolicy changed; that changes wire version 1.\ngot  %s\nwant %s", b, want)
	}
	var back Policy
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(back)
	if string(b2) != want {
		t.Fatalf("round trip: %s", b2)
	}
}

func TestPolicyValidate(t *testing.T) {
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
	f(func(p *Policy) { p.Drift.PSI.Threshold = -1 }, "registry: policy.drift.psi.threshold (-1) must be > 0")
	f(func(p *Policy) { p.Drift.PSI.Threshold = 0 }, "registry: policy.drift.psi.threshold (0) must be > 0")
	f(func(p *Policy) { p.Drift.PSI.Threshold, p.Drift.PSI.Enabled = 0, false }, "")
	f(func(p *Policy) { p.Drift.PSI.Threshold = math.NaN() }, "registry: policy.drift.psi.threshold (NaN) must be a finite number")
	f(func(p *Policy) { p.Drift.JS.Threshold = 1.5 }, "registry: policy.drift.js.threshold (1.5) must be <= 1")
	f(func(p *Policy) { p.Drift.KS.Threshold = 1 }, "")
	f(func(p *Policy) { p.Drift.Chi2P.Threshold = 1 }, "registry: policy.drift.chi2_p.threshold (1) must be < 1 (it is a p-value)")
	f(func(p *Policy) { p.Drift.Wasserstein.Enabled = true; p.Drift.Wasserstein.Threshold = 3 }, "")
	f(func(p *Policy) { p.Drift.KS.ConsecutiveWindows = 0 }, "registry: policy.drift.ks.consecutive_windows (0) must be >= 1")
	f(func(p *Policy) { p.Drift.KS.MinCount = -5 }, "registry: policy.drift.ks.min_count (-5) must be >= 0")
	f(func(p *Policy) { p.Drift.ReferenceSampleSize = 0 }, "registry: policy.drift.reference_sample_size (0) must be >= 1 (the default is 10000)")
	f(func(p *Policy) { p.Promotion.Mode = "yolo" }, `registry: policy.promotion.mode ("yolo") must be "auto" or "manual"`)
	f(func(p *Policy) { p.Promotion.Mode = PromotionManual }, "")
	f(func(p *Policy) { p.Promotion.Canary.Metric = "f1" }, `registry: policy.promotion.canary.metric ("f1") must be one of auc, logloss, precision, recall`)
	f(func(p *Policy) { p.Promotion.Champion.Metric = MetricLogLoss }, "")
	f(func(p *Policy) { p.Promotion.Champion.Confidence = 1 }, "registry: policy.promotion.champion.confidence (1) must be in [0.5, 1), e.g. 0.95")
	f(func(p *Policy) { p.Promotion.Shadow.MinSamples = -1 }, "registry: policy.promotion.shadow.min_samples (-1) must be >= 0")
	f(func(p *Policy) { p.Rollback.MaxErrorRate = 2 }, "registry: policy.rollback.max_error_rate (2) must be in [0, 1] (0 disables it)")
	f(func(p *Policy) { p.Rollback.MaxP99LatencyMs = -3 }, "registry: policy.rollback.max_p99_latency_ms (-3) must be >= 0 (0 disables it)")
	f(func(p *Policy) { p.Rollback.MaxScoreDrift = math.Inf(1) }, "registry: policy.rollback.max_score_drift (+Inf) must be >= 0 (0 disables it)")
	f(func(p *Policy) { d := -7.0; p.Rollback.MinLabelMetricDelta = &d }, "registry: policy.rollback.min_label_metric_delta (-7) must be in [-1, 1] (omit it to disable)")
	f(func(p *Policy) { p.Rollback.MinLabelMetricDelta = nil }, "")
	f(func(p *Policy) { p.Retraining.Enabled = true }, "registry: policy.retraining.url must be set when retraining is enabled")
	f(func(p *Policy) { p.Retraining.Enabled = true; p.Retraining.URL = "https://ci.example/retrain" },
		"registry: policy.retraining.secret_ref must name the webhook's signing secret when retraining is enabled")
	f(func(p *Policy) {
		p.Retraining = RetrainingPolicy{Enabled: true, URL: "https://ci.example/retrain", SecretRef: "retrain-hmac", Cooldown: Duration(time.Hour)}
	}, "")
	f(func(p *Policy) { p.Retraining.URL = "ftp://x/y" }, `registry: policy.retraining.url ("ftp://x/y") must be an absolute http or https URL`)
	f(func(p *Policy) { p.Retraining.URL = "https://bob:hunter2@ci.example/" },
		`registry: policy.retraining.url ("https://bob:xxxxx@ci.example/") must not contain credentials; put the signing secret's name in secret_ref`)
	f(func(p *Policy) { p.Retraining.SecretRef = "has space" }, `registry: policy.retraining.secret_ref ("has space") must be a secret's name: 1-128 of A-Z a-z 0-9 . _ - /`)
	f(func(p *Policy) { p.Retraining.Cooldown = Duration(-time.Second) }, `registry: policy.retraining.cooldown ("-1s") must be >= 0`)
}

func TestDurationJSON(t *testing.T) {
	var d Duration
	if err := json.Unmarshal([]byte(`"90s"`), &d); err != nil || time.Duration(d) != 90*time.Second {
		t.Fatal(d, err)
	}
	for _, bad := range []string{`90`, `"soon"`, `null"`} {
		if err := json.Unmarshal([]byte(bad), &d); err == nil {
			t.Fatalf("%s accepted", bad)
		}
	}
}

func TestSetPolicyAudited(t *testing.T) {
	h := newHarness(t)
	p := DefaultPolicy()
	p.Retraining = RetrainingPolicy{Enabled: true, URL: "https://ci.example/retrain", SecretRef: "retrain-hmac", Cooldown: Duration(time.Hour)}
	h.refused(&SetPolicyArgs{Model: "fraud", Policy: p}, ErrModelNotFound, "fraud")
	h.must(&CreateModelArgs{Model: "fraud", Policy: &p, Reason: "new model"})
	h.refused(&CreateModelArgs{Model: "fraud"}, ErrModelExists, "set its policy with set_policy instead")
	got, err := h.s.Policy("fraud")
	if err != nil || !got.Retraining.Enabled || *got.Rollback.MinLabelMetricDelta != -0.02 {
		t.Fatal(got, err)
	}
	p.Drift.PSI.Threshold = 0.3
	h.must(&SetPolicyArgs{Model: "fraud", Policy: p, Reason: "too noisy"})
	recs := h.s.Audit(AuditFilter{Model: "fraud"})
	last := recs[len(recs)-1]
	if last.Action != ActionSetPolicy || last.Reason != "too noisy" {
		t.Fatalf("%+v", last)
	}
	var ev Policy
	if err := json.Unmarshal(last.Evidence, &ev); err != nil || ev.Drift.PSI.Threshold != 0.3 || ev.Retraining.SecretRef != "retrain-hmac" {
		t.Fatalf("%s %v", last.Evidence, err)
	}
	bad := p
	bad.Drift.PSI.Threshold = -1
	h.refused(&SetPolicyArgs{Model: "fraud", Policy: bad}, ErrInvalid, "registry: policy.drift.psi.threshold (-1) must be > 0")
	// Mutating the caller's policy afterwards does not reach the state.
	*p.Rollback.MinLabelMetricDelta = 0.5
	if got, _ := h.s.Policy("fraud"); *got.Rollback.MinLabelMetricDelta != -0.02 {
		t.Fatal("state shares the caller's pointer")
	}
}
