package lifecycle

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelgate/modelgate/registry"
	"github.com/modelgate/modelgate/shadow"
)

// rolloutPolicy: shadow, canary 1% and 10%, each 10 minutes and 1,000
// requests; recall; automatic unless manual.
func rolloutPolicy(manual bool) registry.Policy {
	p := registry.DefaultPolicy()
	p.Promotion.Champion.RequireApproval = false
	if manual {
		p.Promotion.Mode = registry.PromotionManual
	}
	r := registry.DefaultRollout()
	step := func(stage registry.Stage, w float64) registry.RolloutStep {
		return registry.RolloutStep{Stage: stage, Weight: w, MinDuration: registry.Duration(10 * time.Minute), MinSamples: 1000}
	}
	r.Steps = []registry.RolloutStep{step(registry.StageShadow, 0), step(registry.StageCanary, 1), step(registry.StageCanary, 10)}
	r.Metric, r.MinEffect, r.MaxSamples = registry.MetricRecall, 0.02, 50000
	r.Watch = registry.Duration(time.Hour)
	p.Rollout = &r
	if err := p.Validate(); err != nil {
		panic(err)
	}
	return p
}

// evidence: a candidate with recall rc and a champion with recall 0.8,
// over n labelled requests each (10% positives), errors as given.
func evidence(rc float64, n uint64, errors uint64) Evidence {
	labels := func(recall float64) LabelStats {
		pos := n / 10
		tp := uint64(math.Round(recall * float64(pos)))
		return LabelStats{N: n, TP: tp, FN: pos - tp, FP: n / 20, TN: n - pos - n/20}
	}
	return Evidence{
		Candidate: Arm{Version: 2, Requests: n, Errors: errors, Labels: labels(rc)},
		Champion:  Arm{Version: 1, Requests: 10 * n, Labels: labels(0.8)},
	}
}

func checkStatus(d Decision, name string) string {
	for _, c := range d.Checks {
		if c.Name == name {
			return c.Status
		}
	}
	return ""
}

// TestDecideRamp walks a rollout through Decide as the controller would,
// one decision at a time: each step holds until its minimum duration and
// requests are met, then advances; the last step promotes only when the
// superiority test passes.
func TestDecideRamp(t *testing.T) {
	p := rolloutPolicy(false)
	f := func(st RolloutState, ev Evidence, at time.Duration, action Action, step int, reason string) Decision {
		t.Helper()
		d := Decide(&p, st, ev, t0.Add(at))
		if d.Action != action || d.Step != step || !strings.Contains(d.Reason, reason) {
			t.Fatalf("got %s to step %d (%q), want %s to step %d (%q)", d.Action, d.Step, d.Reason, action, step, reason)
		}
		return d
	}
	quiet := evidence(0.8, 20000, 0)
	f(RolloutState{StepStarted: t0, StepRequests: 5000}, quiet, 5*time.Minute, ActionHold, 0, "on step shadow: 300s of 600s")
	f(RolloutState{StepStarted: t0, StepRequests: 500}, quiet, 15*time.Minute, ActionHold, 0, "500 of 1000 requests")
	d := f(RolloutState{StepStarted: t0, StepRequests: 1000}, quiet, 10*time.Minute, ActionAdvance, 1, "step shadow done, no trigger fired: to canary 1%")
	if d.Stage != registry.StageCanary || d.Weight != 1 || d.Phase != PhaseRamp {
		t.Fatalf("advance to %s %g in %s", d.Stage, d.Weight, d.Phase)
	}
	f(RolloutState{Step: 1, StepStarted: t0, StepRequests: 1000}, quiet, 10*time.Minute, ActionAdvance, 2, "to canary 10%")
	// The last step: step done, but an equal candidate is not better.
	d = f(RolloutState{Step: 2, StepStarted: t0, StepRequests: 1000}, quiet, 10*time.Minute, ActionHold, 2, "the promotion test on recall has not passed")
	if checkStatus(d, CheckPromotionTest) != StatusWait || checkStatus(d, CheckBudget) != StatusPass {
		t.Fatalf("checks: %+v", d.Checks)
	}
	better := evidence(0.86, 20000, 0)
	f(RolloutState{Step: 2, StepStarted: t0, StepRequests: 500}, better, 10*time.Minute, ActionHold, 2, "the promotion test passed; on step canary 10%: 500 of 1000 requests")
	d = f(RolloutState{Step: 2, StepStarted: t0, StepRequests: 1000}, better, 10*time.Minute, ActionPromote, 3, "v2 is better than the champion on recall (gain 0.0600")
	if d.Stage != registry.StageChampion {
		t.Fatal(d.Stage)
	}
	// The budget spent without a pass ends the rollout.
	d = f(RolloutState{Step: 2, StepStarted: t0, StepRequests: 9000}, evidence(0.8, 50000, 0), time.Hour, ActionRollBack, 2,
		"v2 pulled back: the superiority test on recall did not pass within the budget of 50000 labelled predictions")
	if checkStatus(d, CheckBudget) != StatusFired {
		t.Fatalf("checks: %+v", d.Checks)
	}
	// Also when too few positives were labelled for the test to judge.
	few := evidence(0.8, 50000, 0)
	few.Candidate.Labels = LabelStats{N: 50000, TP: 20, FN: 5, FP: 100, TN: 49875}
	f(RolloutState{Step: 2, StepStarted: t0, StepRequests: 9000}, few, time.Hour, ActionRollBack, 2,
		"v2 pulled back: the superiority test on recall did not pass within the budget of 50000 labelled predictions")
}

// A trigger that fires wins over everything else, on any step, and says
// which trigger and its numbers.
func TestDecideTriggerWins(t *testing.T) {
	p := rolloutPolicy(false)
	st := RolloutState{Step: 1, StepStarted: t0, StepRequests: 5000}
	d := Decide(&p, st, evidence(0.86, 5000, 150), t0.Add(time.Hour)) // 3% errors, better recall, step done
	if d.Action != ActionRollBack || checkStatus(d, CheckErrorRate) != StatusFired {
		t.Fatalf("%s: %s", d.Action, d.Reason)
	}
	for _, want := range []string{"v2 pulled back on step canary 1%: error_rate 0.03 over the limit 0.01", "150 of 5000 requests failed"} {
		if !strings.Contains(d.Reason, want) {
			t.Fatalf("reason %q lacks %q", d.Reason, want)
		}
	}
	// A recall regression pulls back even a pending move.
	st.Pending = true
	d = Decide(&p, st, evidence(0.7, 5000, 0), t0.Add(time.Hour))
	if d.Action != ActionRollBack || checkStatus(d, CheckLabelRegression) != StatusFired || !strings.Contains(d.Reason, "label_regression -0.1 beyond the tolerated -0.01") {
		t.Fatalf("%s: %s", d.Action, d.Reason)
	}
}

// In manual mode every move waits for a person, the last one after a
// non-inferiority test; while a move waits, Decide holds.
func TestDecideManual(t *testing.T) {
	p := rolloutPolicy(true)
	quiet := evidence(0.8, 20000, 0)
	d := Decide(&p, RolloutState{StepStarted: t0, StepRequests: 1000}, quiet, t0.Add(10*time.Minute))
	if d.Action != ActionAwaitApproval || d.Step != 1 || !strings.Contains(d.Reason, "the move to canary 1% waits for approval") {
		t.Fatalf("%s %d: %s", d.Action, d.Step, d.Reason)
	}
	d = Decide(&p, RolloutState{StepStarted: t0, StepRequests: 1000, Pending: true}, quiet, t0.Add(11*time.Minute))
	if d.Action != ActionHold || !strings.Contains(d.Reason, "waiting for a person to approve the move to canary 1%") {
		t.Fatalf("%s: %s", d.Action, d.Reason)
	}
	// A point better is not worse by 0.02: the promotion is asked for.
	d = Decide(&p, RolloutState{Step: 2, StepStarted: t0, StepRequests: 1000}, evidence(0.81, 40000, 0), t0.Add(10*time.Minute))
	if d.Action != ActionAwaitApproval || d.Step != 3 || !strings.Contains(d.Reason, "is not worse than the champion on recall by 0.02 or more") {
		t.Fatalf("%s: %s", d.Action, d.Reason)
	}
	for _, c := range d.Checks {
		if c.Name == CheckPromotionTest && (c.Test == nil || c.Test.Hypothesis != HypothesisNonInferiority || c.Limit != -0.02) {
			t.Fatalf("promotion test: %+v", c)
		}
	}
	// 1.5 points worse with few labels: not shown non-inferior yet.
	d = Decide(&p, RolloutState{Step: 2, StepStarted: t0, StepRequests: 1000}, evidence(0.785, 2000, 0), t0.Add(10*time.Minute))
	if d.Action != ActionHold || checkStatus(d, CheckPromotionTest) != StatusWait {
		t.Fatalf("%s: %s", d.Action, d.Reason)
	}
}

// After promotion the new champion is judged against its predecessor for
// the watch: a regression rolls it back to the standby, a quiet watch
// completes the rollout.
func TestDecideWatch(t *testing.T) {
	p := rolloutPolicy(false)
	st := RolloutState{Step: 3, StepStarted: t0}
	d := Decide(&p, st, evidence(0.8, 20000, 0), t0.Add(20*time.Minute))
	if d.Action != ActionHold || d.Phase != PhaseWatch || !strings.Contains(d.Reason, "champion v2 in its watch, 40m0s to go") {
		t.Fatalf("%s: %s", d.Action, d.Reason)
	}
	d = Decide(&p, st, evidence(0.72, 20000, 0), t0.Add(20*time.Minute))
	if d.Action != ActionRollBack || !strings.Contains(d.Reason, "champion v2 rolled back to v1 in its watch: label_regression") {
		t.Fatalf("%s: %s", d.Action, d.Reason)
	}
	d = Decide(&p, st, evidence(0.8, 20000, 0), t0.Add(time.Hour))
	if d.Action != ActionComplete || !strings.Contains(d.Reason, "passed its watch of 1h0m0s") {
		t.Fatalf("%s: %s", d.Action, d.Reason)
	}
	// No watch: complete at once.
	p.Rollout.Watch = 0
	if d := Decide(&p, st, evidence(0.8, 0, 0), t0); d.Action != ActionComplete {
		t.Fatalf("%s: %s", d.Action, d.Reason)
	}
}

// A policy without a rollout section rolls out by the defaults; the
// decision's evidence is valid JSON with every check's numbers, even when
// a version has no data.
func TestDecideEvidence(t *testing.T) {
	p := registry.DefaultPolicy()
	d := Decide(&p, RolloutState{StepStarted: t0}, Evidence{Candidate: Arm{Version: 2}, Champion: Arm{Version: 1}}, t0)
	if d.Action != ActionHold || d.Metric != registry.MetricAUC || d.Stage != registry.StageShadow {
		t.Fatalf("%s %s %s: %s", d.Action, d.Metric, d.Stage, d.Reason)
	}
	d.Candidate.Labels.AUC = math.NaN() // what a version with no data may report
	d.Checks[0].Value = math.Inf(1)
	var back map[string]any
	if err := json.Unmarshal(d.Evidence(), &back); err != nil {
		t.Fatalf("evidence is not JSON: %v\n%s", err, d.Evidence())
	}
	if d.Checks[0].Value != math.Inf(1) {
		t.Fatal("Evidence changed the decision it encodes")
	}
	full := Decide(&p, RolloutState{Step: 1, StepStarted: t0, StepRequests: 10}, evidence(0.8, 2000, 3), t0.Add(time.Minute))
	ev := string(full.Evidence())
	for _, want := range []string{`"action":"hold"`, `"phase":"ramp"`, `"stage":"canary","weight":1`, `"name":"error_rate","status":"pass","value":0.0015,"limit":0.01,"test":{"hypothesis":"exceedance"`,
		`"name":"min_samples","status":"wait","value":10,"limit":1000`, `"candidate":{"version":2,"requests":2000,"errors":3,"labels":{"labelled":2000,"tp":160`} {
		if !strings.Contains(ev, want) {
			t.Fatalf("evidence lacks %s:\n%s", want, ev)
		}
	}
}

// In shadow, the pair's real comparison is the request evidence: a shadow
// failing 3% of its runs is pulled back by the error trigger, while its
// latency, twice the champion's, is not judged (background threads).
func TestDecideShadowFromComparison(t *testing.T) {
	c := shadow.NewComparison(0.5)
	for i := range 2000 {
		if err := c.RecordRun(time.Duration(1000+i%100)*time.Microsecond, time.Duration(2000+2*(i%100))*time.Microsecond, i%100 < 3); err != nil {
			t.Fatal(err)
		}
	}
	p := rolloutPolicy(false)
	ev := evidence(0.8, 2000, 0)
	ev.SetShadowRuns(c)
	if ev.Candidate.Requests != 2000 || ev.Candidate.Errors != 60 || ev.Candidate.Latency != c.ShadowLatency {
		t.Fatalf("%+v", ev.Candidate)
	}
	d := Decide(&p, RolloutState{StepStarted: t0, StepRequests: 2000}, ev, t0.Add(time.Hour))
	if d.Action != ActionRollBack || checkStatus(d, CheckErrorRate) != StatusFired || checkStatus(d, CheckP99Ratio) != StatusDisabled {
		t.Fatalf("%s: %s %+v", d.Action, d.Reason, d.Checks)
	}
	if !strings.Contains(d.Reason, "v2 pulled back on step shadow: error_rate 0.03 over the limit 0.01") {
		t.Fatal(d.Reason)
	}
	// Runs take 1,000–1,099 µs and 2,000–2,198 µs: p99s near the tops,
	// within the histograms' two significant digits.
	if c, h := d.Candidate.P99Micros, d.Champion.P99Micros; c < 2150 || c > 2250 || h < 1050 || h > 1150 {
		t.Fatalf("p99s for the record: candidate %dµs, champion %dµs", c, h)
	}
	if ev := string(d.Evidence()); !strings.Contains(ev, `"p99_us":`+strconv.FormatInt(d.Candidate.P99Micros, 10)) {
		t.Fatalf("the record lacks the p99s: %s", ev)
	}
}
