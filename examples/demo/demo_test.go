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

// rolloutLoopLanded says whether lifecycle.Controller runs rollouts (moves
// candidates shadow → canary → champion and pulls regressions back). Until
// it does, the rollout half of the story cannot happen and
// TestDemoFullStory is skipped; set it to true when the rollout loop is
// merged.
const rolloutLoopLanded = false

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
	if alert.Seq <= res.DriftSeq || alert.Version != 1 || alert.Actor != "drift" {
		t.Fatalf("drift alert %+v: want one by the controller about v1 after the drift was injected (after #%d)", alert, res.DriftSeq)
	}
	var alerts []drift.Alert
	if err := json.Unmarshal(alert.Evidence, &alerts); err != nil || len(alerts) == 0 {
		t.Fatalf("the drift alert's evidence is not the alerts: %v %.300s", err, alert.Evidence)
	}
	// The drift sends transactions to a category no calm transaction has:
	// its slot must be among the breaches, each sustained over the
	// policy's windows.
	var newCategory bool
	for _, a := range alerts {
		if a.Name == fraud.FeatureNames[fraud.FeatureCategoryOther] {
			newCategory = true
		}
		if len(a.Values) != driftWindows {
			t.Errorf("alert %s %s: %d windows of values, want the policy's %d", a.Name, a.Statistic, len(a.Values), driftWindows)
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
	if v.Stage != registry.StageValidated || l.ParentVersion != 1 || !strings.HasPrefix(l.DatasetDigest, "sha256:") ||
		l.CodeCommit != "demo-test" || !strings.Contains(l.DatasetURI, "since=") || len(v.ReferenceProfile) == 0 {
		t.Fatalf("candidate: stage %s, lineage %+v, profile %d bytes", v.Stage, l, len(v.ReferenceProfile))
	}
	// Trained on the labelled rows the node had when the webhook fired:
	// at least the calm phase's worth, at most every request sent.
	rows := m["train_rows"] + m["holdout_rows"]
	if rows < 1000 || rows > float64(c.Sent) || !(m["auc"] > 0.6 && m["auc"] <= 1) {
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
	if !rolloutLoopLanded {
		t.Skip("the lifecycle controller's rollout loop has not landed: the candidate cannot reach canary (set rolloutLoopLanded)")
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
