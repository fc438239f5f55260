package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/internal/fraud"
	"github.com/modelgate/modelgate/lifecycle"
	"github.com/modelgate/modelgate/registry"
)

// The two binaries the demo runs, built once per test run from this tree.
var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func binaries(t *testing.T) (modelgate, retrainer string) {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "demo-test-"); buildErr != nil {
			return
		}
		for _, pkg := range []string{"cmd/modelgate", "examples/retrainer"} {
			out, err := exec.Command("go", "build", "-o", filepath.Join(buildDir, filepath.Base(pkg)),
				"github.com/modelgate/modelgate/"+pkg).CombinedOutput()
			if err != nil {
				buildErr = &buildError{pkg: pkg, err: err, out: string(out)}
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "modelgate"), filepath.Join(buildDir, "retrainer")
}

type buildError struct {
	pkg string
	err error
	out string
}

func (e *buildError) Error() string { return "go build " + e.pkg + ": " + e.err.Error() + "\n" + e.out }

// testConfig is the demo as `make demo` runs it, on this tree's binaries,
// its narration in the test log.
func testConfig(t *testing.T) Config {
	cfg := DefaultConfig()
	cfg.Modelgate, cfg.Retrainer = binaries(t)
	cfg.Commit = "demo-test"
	return cfg
}

// playStory runs the demo, its narration in the test's log, and fails the
// test with the narration's end when the story did not happen.
func playStory(t *testing.T, cfg Config) *Result {
	t.Helper()
	var out bytes.Buffer
	// The chapters have their own hang guards; this one is for the
	// teardown.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	res, err := Run(ctx, cfg, &out)
	t.Log("the demo's narration:\n" + out.String())
	if err != nil {
		if res != nil && res.LogDir != "" {
			b, _ := os.ReadFile(filepath.Join(res.LogDir, "node.log"))
			t.Logf("node log (last 4 KB):\n%s", tailBytes(b, 4096))
			b, _ = os.ReadFile(filepath.Join(res.LogDir, "retrainer.log"))
			t.Logf("retrainer log (last 4 KB):\n%s", tailBytes(b, 4096))
			os.RemoveAll(res.LogDir)
		}
		t.Fatalf("the story did not happen: %v", err)
	}
	return res
}

// TestDemoClosedLoop plays the story up to the retrained candidate: a
// real node and the real retraining job, drift injected into live traffic,
// and checks that no client request failed and that the audit log tells
// the story in order, each record with its evidence: the drift alert
// names the drifted feature over its threshold, the retraining request
// carries the event and its export link, the job's candidate names the
// event and passed the validation gate, and its lineage goes back to the
// champion and the labelled rows it was trained on.
func TestDemoClosedLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a modelgate node and the retraining job for about half a minute")
	}
	cfg := testConfig(t)
	cfg.Until = UntilCandidate
	res := playStory(t, cfg)

	c := res.Traffic
	if c.FailedTotal() != 0 || c.Sent == 0 || c.Answered != c.Sent {
		t.Fatalf("client requests: %d sent, %d answered, failed %v (%v)", c.Sent, c.Answered, c.Failed, c.Examples)
	}
	if c.Versions["1"] != c.Answered || c.Labelled == 0 {
		t.Fatalf("answers by version %v of %d; %d labels posted", c.Versions, c.Answered, c.Labelled)
	}
	if res.Champion != 1 || res.Candidate != 2 || res.Final.Champion != 1 {
		t.Fatalf("versions: champion v%d, candidate v%d, final champion v%d", res.Champion, res.Candidate, res.Final.Champion)
	}
	want := []string{"v1 validated and champion", "a drift alert (the controller, from the node's drift windows)",
		"the retraining request, recorded", "the retraining webhook delivered to the job",
		"a candidate registered by the retraining job", "v2 validated"}
	if !slices.Equal(res.Chapters, want) {
		t.Fatalf("chapters:\n%q\nwant\n%q", res.Chapters, want)
	}

	recs := res.Records
	alert := find(t, recs, "the drift alert", func(r registry.AuditRecord) bool {
		return r.Action == registry.ActionAlert && r.Kind == lifecycle.KindDrift
	})
	if alert.Seq <= res.DriftSeq || alert.Version != 1 {
		t.Fatalf("drift alert %+v: want one about v1 after the drift was injected (after #%d)", alert, res.DriftSeq)
	}
	var alerts []drift.Alert
	if err := json.Unmarshal(alert.Evidence, &alerts); err != nil || len(alerts) == 0 {
		t.Fatalf("the drift alert's evidence is not the alerts: %v %.300s", err, alert.Evidence)
	}
	// The drift sends transactions to a category no calm transaction has:
	// its slot must be among the breaches, with the statistic's values
	// (a chi-squared p-value below its threshold in every window judged).
	var newCategory bool
	for _, a := range alerts {
		if a.Name == fraud.FeatureNames[fraud.FeatureCategoryOther] {
			newCategory = true
		}
		if len(a.Values) == 0 {
			t.Errorf("alert %s %s carries no values", a.Name, a.Statistic)
		}
		for _, v := range a.Values {
			if a.Statistic == "chi2_p" && !(v < a.Threshold) {
				t.Errorf("alert %s chi2_p: value %g is not below the threshold %g: %v", a.Name, v, a.Threshold, a.Values)
			}
		}
	}
	if !newCategory {
		t.Fatalf("no alert names %s: %+v", fraud.FeatureNames[fraud.FeatureCategoryOther], alerts)
	}

	requested := find(t, recs, "the retraining request", func(r registry.AuditRecord) bool {
		return r.Action == registry.ActionAlert && r.Kind == lifecycle.KindRetrainingRequested
	})
	var ev lifecycle.Event
	if err := json.Unmarshal(requested.Evidence, &ev); err != nil || ev.ID == "" || ev.Version != 1 ||
		!strings.Contains(ev.ExportURL, "/api/v1/models/fraud/export") || len(ev.Alerts) == 0 {
		t.Fatalf("the retraining request's evidence is not its event: %v %.500s", err, requested.Evidence)
	}
	delivered := find(t, recs, "the delivery", func(r registry.AuditRecord) bool {
		return r.Action == registry.ActionAlert && r.Kind == lifecycle.KindRetrainingDelivered
	})
	register := find(t, recs, "the candidate's registration", func(r registry.AuditRecord) bool {
		return r.Action == registry.ActionRegister && r.Version == 2
	})
	if !strings.Contains(register.Reason, ev.ID) {
		t.Fatalf("the candidate's registration does not name the event %s: %q", ev.ID, register.Reason)
	}
	validated := find(t, recs, "the candidate's validation", func(r registry.AuditRecord) bool {
		return r.Action == registry.ActionValidate && r.Version == 2
	})
	if validated.To != registry.StageValidated || len(validated.Evidence) == 0 {
		t.Fatalf("the candidate's validation: %+v", validated)
	}
	if !(alert.Seq < requested.Seq && requested.Seq < delivered.Seq && delivered.Seq < register.Seq && register.Seq < validated.Seq) {
		t.Fatalf("out of order: alert #%d, request #%d, delivery #%d, registration #%d, validation #%d",
			alert.Seq, requested.Seq, delivered.Seq, register.Seq, validated.Seq)
	}

	v := res.CandidateVersion
	l := v.Lineage
	m := l.TrainingMetrics
	// The story stops at "v2 validated", but the controller may already
	// have started its rollout (shadow) when the version is read.
	if (v.Stage != registry.StageValidated && v.Stage != registry.StageShadow) || l.ParentVersion != 1 || !strings.HasPrefix(l.DatasetDigest, "sha256:") ||
		l.CodeCommit != "demo-test" || !strings.Contains(l.DatasetURI, "since=") || len(v.ReferenceProfile) == 0 {
		t.Fatalf("candidate: stage %s, lineage %+v, profile %d bytes", v.Stage, l, len(v.ReferenceProfile))
	}
	// Trained on the labelled rows the node had when the webhook fired:
	// at least the job's minimum, at most every request sent. (Its
	// held-out AUC, on a few dozen frauds of two fraud patterns, is only
	// checked to be measured: TestDemoWorldRewardsRetraining measures the
	// gain that matters.)
	rows := m["train_rows"] + m["holdout_rows"]
	if rows < 1000 || rows > float64(c.Sent) || !(m["auc"] > 0 && m["auc"] <= 1) || !(m["log_loss"] > 0) {
		t.Fatalf("training metrics %v (%d requests sent)", m, c.Sent)
	}
}

// TestDemoFullStory plays the whole story: the candidate goes through
// shadow and canary and is promoted by the controller, then the bad
// candidate is pulled back on its own while the new champion stays, with
// zero failed client requests throughout.
func TestDemoFullStory(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a modelgate node and the retraining job for about two minutes")
	}
	res := playStory(t, testConfig(t))
	c := res.Traffic
	if c.FailedTotal() != 0 || c.Answered != c.Sent {
		t.Fatalf("client requests: %d sent, %d answered, failed %v (%v)", c.Sent, c.Answered, c.Failed, c.Examples)
	}
	cand, bad := res.Candidate, res.Bad
	if c.Versions[strconv.Itoa(cand)] == 0 {
		t.Fatalf("the promoted candidate v%d answered no request: %v", cand, c.Versions)
	}
	if res.Final.Champion != cand {
		t.Fatalf("final champion v%d, want the retrained v%d", res.Final.Champion, cand)
	}
	for _, v := range res.Final.Versions {
		if v.Number == bad && v.Stage != registry.StageRetired && v.Stage != registry.StageRolledBack {
			t.Fatalf("the bad candidate v%d ends in %s", bad, v.Stage)
		}
	}
	recs := res.Records
	canary := find(t, recs, "the candidate's canary", func(r registry.AuditRecord) bool {
		return r.Version == cand && r.To == registry.StageCanary && r.Auto
	})
	promote := find(t, recs, "the candidate's promotion", func(r registry.AuditRecord) bool {
		return r.Version == cand && r.Action == registry.ActionPromote && r.Auto
	})
	pulled := find(t, recs, "the bad candidate's pull-back", func(r registry.AuditRecord) bool {
		return r.Version == bad && r.Auto && (r.To == registry.StageRetired || r.To == registry.StageRolledBack)
	})
	if !(canary.Seq < promote.Seq && promote.Seq < pulled.Seq) {
		t.Fatalf("out of order: canary #%d, promotion #%d, pull-back #%d", canary.Seq, promote.Seq, pulled.Seq)
	}
	// The decisions carry their evidence: the promotion test passed on
	// the policy's metric; the pull-back names a trigger that fired.
	var d lifecycle.Decision
	if err := json.Unmarshal(promote.Evidence, &d); err != nil || d.Action != lifecycle.ActionPromote || !hasCheck(d, lifecycle.CheckPromotionTest, lifecycle.StatusPass) {
		t.Fatalf("the promotion's evidence: %v %.1000s", err, promote.Evidence)
	}
	d = lifecycle.Decision{}
	if err := json.Unmarshal(pulled.Evidence, &d); err != nil || d.Action != lifecycle.ActionRollBack || !hasCheck(d, "", lifecycle.StatusFired) {
		t.Fatalf("the pull-back's evidence: %v %.1000s", err, pulled.Evidence)
	}
}

func hasCheck(d lifecycle.Decision, name, status string) bool {
	for _, c := range d.Checks {
		if (name == "" || c.Name == name) && c.Status == status {
			return true
		}
	}
	return false
}

// find returns the first record that matches, failing the test when none
// does.
func find(t *testing.T, recs []registry.AuditRecord, what string, match func(registry.AuditRecord) bool) registry.AuditRecord {
	t.Helper()
	for _, r := range recs {
		if match(r) {
			return r
		}
	}
	t.Fatalf("no record of %s in the audit log (%d records)", what, len(recs))
	return registry.AuditRecord{}
}

func tailBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// TestConfigValidate: each setting the demo cannot run with is refused,
// naming the flag.
func TestConfigValidate(t *testing.T) {
	f := func(name string, change func(*Config), want string) {
		t.Helper()
		c := DefaultConfig()
		change(&c)
		err := c.Validate()
		if want == "" {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error naming %q", name, err, want)
		}
	}
	f("defaults", func(*Config) {}, "")
	f("no binary", func(c *Config) { c.Retrainer = "" }, "--retrainer")
	f("rate too low", func(c *Config) { c.Rate = 10 }, "--rate (10)")
	f("no workers", func(c *Config) { c.Workers = 0 }, "--workers (0)")
	f("negative label delay", func(c *Config) { c.LabelDelay = -time.Second }, "--label-delay")
	f("calm shorter than two windows", func(c *Config) { c.Calm = time.Second }, "--calm (1s)")
	f("window too short", func(c *Config) { c.DriftWindow = time.Millisecond; c.Calm = time.Minute }, "--drift-window (1ms)")
	f("unknown until", func(c *Config) { c.Until = "rollout" }, `--until "rollout"`)
	f("hang guard too short", func(c *Config) { c.ChapterTimeout = time.Second }, "--chapter-timeout (1s)")
}

// TestDemoPolicyIsValid: the policy the demo sets is one the registry
// accepts, with the rollout the demo's chapters wait for.
func TestDemoPolicyIsValid(t *testing.T) {
	p := demoPolicy(registry.DefaultPolicy(), "http://127.0.0.1:9/webhook")
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	r := p.EffectiveRollout()
	if r.Steps[0].Stage != registry.StageShadow || r.Steps[len(r.Steps)-1].Stage != registry.StageCanary ||
		p.Promotion.NeedsApproval(registry.StageCanary) || p.Promotion.NeedsApproval(registry.StageChampion) {
		t.Fatalf("rollout %+v, promotion %+v", r, p.Promotion)
	}
}

// TestRolloutChapters: the rollout chapters, which wait on the
// controller's records, find the move they name only when the controller
// made it (Auto), and fail at once, saying why, when the log tells
// another story: a move waiting for approval, a candidate pulled back, a
// bad candidate promoted.
func TestRolloutChapters(t *testing.T) {
	s := &story{}
	type rec = registry.AuditRecord
	shadowOp := rec{Seq: 1, Action: registry.ActionSetStage, Version: 2, From: registry.StageValidated, To: registry.StageShadow, Actor: "local-admin"}
	canaryAuto := rec{Seq: 2, Action: registry.ActionSetStage, Version: 2, From: registry.StageShadow, To: registry.StageCanary, Weight: 10, Auto: true, Actor: "rollout"}
	canaryOp := canaryAuto
	canaryOp.Auto = false
	approval := rec{Seq: 3, Action: registry.ActionRequestApproval, Version: 2, To: registry.StageChampion, Auto: true, Reason: "waits"}
	retired := rec{Seq: 4, Action: registry.ActionSetStage, Version: 2, From: registry.StageCanary, To: registry.StageRetired, Auto: true, Reason: "label_regression fired"}
	promoted := rec{Seq: 5, Action: registry.ActionPromote, Version: 3, From: registry.StageCanary, To: registry.StageChampion, Auto: true}
	badRolledBack := rec{Seq: 6, Action: registry.ActionRollback, Version: 3, From: registry.StageChampion, To: registry.StageRolledBack, Auto: true}
	badRetiredByHand := rec{Seq: 7, Action: registry.ActionSetStage, Version: 3, To: registry.StageRetired}

	f := func(name string, find func([]rec) (*rec, error), recs []rec, wantSeq uint64, wantErr string) {
		t.Helper()
		r, err := find(recs)
		switch {
		case wantErr != "":
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("%s: got %v, %v; want an error with %q", name, r, err, wantErr)
			}
		case err != nil:
			t.Errorf("%s: %v", name, err)
		case wantSeq == 0 && r != nil:
			t.Errorf("%s: found #%d, want nothing yet", name, r.Seq)
		case wantSeq != 0 && (r == nil || r.Seq != wantSeq):
			t.Errorf("%s: found %v, want #%d", name, r, wantSeq)
		}
	}
	f("canary by the controller", s.moved(2, registry.StageCanary), []rec{shadowOp, canaryAuto}, 2, "")
	f("canary by a person is not the controller's", s.moved(2, registry.StageCanary), []rec{shadowOp, canaryOp}, 0, "")
	f("operator's shadow is not the controller's start", s.moved(2, registry.StageShadow), []rec{shadowOp}, 0, "")
	f("operator's shadow starts the rollout", s.entered(2, registry.StageShadow), []rec{shadowOp}, 1, "")
	f("promotion waiting for approval", s.moved(2, registry.StageChampion), []rec{shadowOp, canaryAuto, approval}, 0, "waits for a person's approval")
	f("candidate pulled back", s.moved(2, registry.StageChampion), []rec{shadowOp, canaryAuto, retired}, 0, "v2 was pulled back (retired")
	f("bad candidate promoted", s.pulledBack(3), []rec{promoted, badRolledBack}, 0, "the bad candidate v3 was promoted")
	f("bad candidate rolled back", s.pulledBack(3), []rec{canaryAuto, badRolledBack}, 6, "")
	f("bad candidate retired by hand is not automatic", s.pulledBack(3), []rec{badRetiredByHand}, 0, "")
	f("delivery failed", s.alert(lifecycle.KindRetrainingDelivered, lifecycle.KindRetrainingFailed),
		[]rec{{Seq: 9, Action: registry.ActionAlert, Kind: lifecycle.KindRetrainingFailed, Reason: "connection refused"}}, 0, "retraining_failed: connection refused")
	f("candidate refused by the gate", s.validated(2),
		[]rec{{Seq: 9, Action: registry.ActionValidate, Version: 2, To: registry.StageFailed, Reason: "smoke run failed"}}, 0, "v2 went to failed: smoke run failed")
}

// TestTimelineShowsDecisionNumbers: a controller decision in the audit
// log (lifecycle.Decide's own evidence encoding) prints with the numbers
// behind it: both arms' AUC, the checks and the test's p-value.
func TestTimelineShowsDecisionNumbers(t *testing.T) {
	d := lifecycle.Decision{Action: lifecycle.ActionPromote, Phase: lifecycle.PhaseRamp, Step: 3, Stage: registry.StageChampion,
		Reason: "v2 is better than the champion on auc", Metric: registry.MetricAUC, Confidence: 0.95,
		Candidate: lifecycle.Arm{Version: 2, Requests: 5200, Labels: lifecycle.LabelStats{N: 4100, AUC: 0.781}},
		Champion:  lifecycle.Arm{Version: 1, Requests: 9000, Labels: lifecycle.LabelStats{N: 8000, AUC: 0.702}},
		Checks: []lifecycle.Check{
			{Name: lifecycle.CheckErrorRate, Status: lifecycle.StatusPass, Value: 0, Limit: 0.01},
			{Name: lifecycle.CheckPromotionTest, Status: lifecycle.StatusPass, Value: 0.079, Test: &lifecycle.TestResult{PValue: 0.0031}},
			{Name: lifecycle.CheckP99Ratio, Status: lifecycle.StatusDisabled},
		}}
	tl := newTimeline(nil, nil, time.Unix(1000, 0))
	line := tl.line(registry.AuditRecord{Seq: 17, Time: time.Unix(1042, 0), Actor: "rollout", Auto: true, Action: registry.ActionPromote,
		Version: 2, From: registry.StageCanary, To: registry.StageChampion, Reason: d.Reason, Evidence: d.Evidence()})
	for _, want := range []string{"+42.0s", "#17", "rollout (auto)", "v2", "promote canary→champion", d.Reason,
		"candidate v2: 5200 requests, 0 errors, 4100 labelled, AUC 0.781", "champion v1: AUC 0.702",
		"error_rate pass 0/0.01", "promotion_test pass 0.079/0 p=0.0031"} {
		if !strings.Contains(line, want) {
			t.Errorf("the timeline line lacks %q:\n%s", want, line)
		}
	}
	if strings.Contains(line, "disabled") {
		t.Errorf("a disabled check is printed:\n%s", line)
	}
}
