package registry

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// TestDriftPolicyValidateNewFields: the size-aware judging's fields are
// checked with errors that name the field and the allowed range.
func TestDriftPolicyValidateNewFields(t *testing.T) {
	f := func(change func(d *DriftPolicy), want string) {
		t.Helper()
		p := DefaultPolicy()
		change(&p.Drift)
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
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("%v is not ErrInvalid", err)
		}
	}
	period := func(d time.Duration) *Duration { x := Duration(d); return &x }
	f(func(d *DriftPolicy) { d.Alpha, d.DriftShare, d.MaxWindows = 0.05, 0.3, 120 }, "")
	f(func(d *DriftPolicy) { d.Alpha = 0.7 }, "registry: policy.drift.alpha (0.7) must be in (0, 0.5] (a family-wise false-alarm probability, e.g. 0.01; 0: the default)")
	f(func(d *DriftPolicy) { d.Alpha = math.NaN() }, "registry: policy.drift.alpha (NaN) must be in (0, 0.5] (a family-wise false-alarm probability, e.g. 0.01; 0: the default)")
	f(func(d *DriftPolicy) { d.DriftShare = 1.5 }, "registry: policy.drift.drift_share (1.5) must be in (0, 1] (0: the default 0.5)")
	f(func(d *DriftPolicy) { d.MaxWindows = -1 }, "registry: policy.drift.max_windows (-1) must be between 0 and 100000 (0: every window kept)")
	f(func(d *DriftPolicy) { d.KS.MinEffect = 0.05 }, "")
	f(func(d *DriftPolicy) { d.KS.MinEffect = 1.2 }, "registry: policy.drift.ks.min_effect (1.2) must be <= 1")
	f(func(d *DriftPolicy) { d.PSI.MinEffect = -0.1 }, "registry: policy.drift.psi.min_effect (-0.1) must be a finite number >= 0 (0: any significant change)")
	f(func(d *DriftPolicy) { d.Chi2P.MinEffect = 0.1 }, "registry: policy.drift.chi2_p.min_effect (0.1) is not used by chi2_p (wasserstein's threshold is its minimum effect; chi2_p has none): leave it out")
	f(func(d *DriftPolicy) { d.ReferencePeriod = period(0) }, "")
	f(func(d *DriftPolicy) { d.ReferencePeriod = period(-time.Second) }, `registry: policy.drift.reference_period ("-1s") must be between 0s (the first rows) and 720h (30 days)`)
	f(func(d *DriftPolicy) { d.ReferencePeriod = period(31 * 24 * time.Hour) }, `registry: policy.drift.reference_period ("744h0m0s") must be between 0s (the first rows) and 720h (30 days)`)
	num := func(v float64) *float64 { return &v }
	ranges := func(r ...FeatureRange) func(d *DriftPolicy) {
		return func(d *DriftPolicy) { d.Constraints = &DriftConstraints{RefuseNonFinite: true, Ranges: r} }
	}
	f(ranges(FeatureRange{Feature: "amount_log", Min: num(-1), Max: num(20)}, FeatureRange{Feature: "features[3]", Max: num(5)}), "")
	f(ranges(FeatureRange{Feature: "", Max: num(1)}), "registry: policy.drift.constraints.ranges[0].feature must be set")
	f(ranges(FeatureRange{Feature: "a"}), `registry: policy.drift.constraints.ranges[0] ("a") needs a min, a max or both`)
	f(ranges(FeatureRange{Feature: "a", Min: num(2), Max: num(1)}), "registry: policy.drift.constraints.ranges[0].max (1) must be >= min (2)")
	f(ranges(FeatureRange{Feature: "a", Min: num(math.Inf(-1))}), "registry: policy.drift.constraints.ranges[0].min (-Inf) must be a finite number")
	f(ranges(FeatureRange{Feature: "a", Max: num(1)}, FeatureRange{Feature: "a", Min: num(0)}), `registry: policy.drift.constraints.ranges[1].feature ("a") is listed twice`)
}

// TestDriftPolicyNewFieldsWire: a drift policy written before the new
// fields re-encodes byte for byte (wire v1 replays unchanged) with the
// default reference period; the new fields travel through the log, a
// snapshot and a restore, and clone deeply.
func TestDriftPolicyNewFieldsWire(t *testing.T) {
	old, _ := json.Marshal(DefaultPolicy().Drift)
	if strings.Contains(string(old), "alpha") || strings.Contains(string(old), "reference_period") || strings.Contains(string(old), "min_effect") {
		t.Fatalf("the default drift policy grew fields on the wire: %s", old)
	}
	var d DriftPolicy
	if err := json.Unmarshal(old, &d); err != nil {
		t.Fatal(err)
	}
	if d.Period() != DefaultReferencePeriod {
		t.Fatalf("an old policy's reference period is %s, want %s", d.Period(), DefaultReferencePeriod)
	}
	want := DefaultPolicy()
	zero := Duration(0)
	want.Drift.Alpha, want.Drift.DriftShare, want.Drift.MaxWindows, want.Drift.ReferencePeriod = 0.02, 0.25, 30, &zero
	want.Drift.KS.MinEffect = 0.05
	h := newHarness(t)
	h.must(&CreateModelArgs{Model: "fraud", Reason: "new"})
	b, err := EncodeCommand(h.cmd(&SetPolicyArgs{Model: "fraud", Policy: want, Reason: "size-aware drift"}))
	if err != nil {
		t.Fatal(err)
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
	got, err := restored.Policy("fraud")
	if err != nil {
		t.Fatal(err)
	}
	if gotJSON, _ := json.Marshal(got); string(gotJSON) != string(wantJSON) {
		t.Fatalf("restored policy:\n got  %s\n want %s", gotJSON, wantJSON)
	}
	if got.Drift.Period() != 0 {
		t.Fatalf("reference_period \"0s\" reads as %s", got.Drift.Period())
	}
	c := want.clone()
	*c.Drift.ReferencePeriod = Duration(time.Hour)
	if *want.Drift.ReferencePeriod != 0 {
		t.Fatal("clone shares the reference period")
	}
	hi := 20.0
	want.Drift.Constraints = &DriftConstraints{RefuseNonFinite: true, Ranges: []FeatureRange{{Feature: "amount_log", Max: &hi}}}
	if b, _ := json.Marshal(want.Drift.Constraints); string(b) != `{"refuse_non_finite":true,"ranges":[{"feature":"amount_log","max":20}]}` {
		t.Fatalf("constraints encode as %s", b)
	}
	c = want.clone()
	*c.Drift.Constraints.Ranges[0].Max, c.Drift.Constraints.RefuseNonFinite = 1, false
	if *want.Drift.Constraints.Ranges[0].Max != 20 || !want.Drift.Constraints.RefuseNonFinite {
		t.Fatal("clone shares the constraints")
	}
}
