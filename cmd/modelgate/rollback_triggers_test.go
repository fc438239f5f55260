package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/fraud"
	"github.com/modelgate/modelgate/internal/onnxexport"
	"github.com/modelgate/modelgate/internal/train"
	"github.com/modelgate/modelgate/lifecycle"
	"github.com/modelgate/modelgate/registry"
)

// TestRolloutP99TriggerRollsBackASlowCanary: on a real node (the binary,
// 1 s windows, the controller stepping each window) with the demo LR as
// champion, a canary at 50% that is a two-layer MLP of width 1024 — the
// same signature, ~1M multiply-adds a row against the LR's 30 — is
// retired by the p99 trigger (max_p99_ratio 2, the only trigger on), and
// its retirement record in the audit log carries both versions' p99 from
// the node's per-version latency windows, the canary's more than twice
// the champion's.
func TestRolloutP99TriggerRollsBackASlowCanary(t *testing.T) {
	lr, err := demo.TrainFraudModel(demo.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	slow, err := wideMLP(lr.Model.Scaler, 1024)
	if err != nil {
		t.Fatal(err)
	}
	rec, d := rollBackCanary(t, lr.ONNX, slow, func(tr *registry.RolloutTriggers) { tr.MaxP99Ratio = 2 })
	lat := check(t, d, lifecycle.CheckP99Ratio)
	if lat.Status != lifecycle.StatusFired || lat.Limit != 2 {
		t.Fatalf("p99 check %+v, want fired at limit 2\n%s", lat, rec.Evidence)
	}
	if d.Candidate.P99Micros <= 2*d.Champion.P99Micros || d.Champion.P99Micros <= 0 {
		t.Fatalf("recorded p99s: canary %dµs, champion %dµs; want the canary above twice the champion\n%s", d.Candidate.P99Micros, d.Champion.P99Micros, rec.Evidence)
	}
	if s := check(t, d, lifecycle.CheckScoreShift); s.Status != lifecycle.StatusDisabled {
		t.Fatalf("score-shift check %+v, want disabled", s)
	}
	t.Logf("rolled back: %s (canary p99 %dµs, champion p99 %dµs, %s)", rec.Reason, d.Candidate.P99Micros, d.Champion.P99Micros, lat.Detail)
}

// TestRolloutScoreShiftTriggerRollsBackBeforeLabels: the same node with a
// canary whose scores are the champion's mirrored (the demo LR with its
// weights and bias negated: every score p becomes 1-p, so the fraud
// model's mass near 0 moves near 1) is retired by the score-shift trigger
// (PSI of the canary's scores against the champion's over the rollout
// period, max_score_shift 0.25) with no label ever posted: the evidence
// shows no labelled rows for either version.
func TestRolloutScoreShiftTriggerRollsBackBeforeLabels(t *testing.T) {
	lr, err := demo.TrainFraudModel(demo.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	inv := *lr.Model
	inv.Weights = append([]float32(nil), inv.Weights...)
	for i := range inv.Weights {
		inv.Weights[i] = -inv.Weights[i]
	}
	inv.Bias = -inv.Bias
	shifted, err := onnxexport.Logistic(&inv, onnxexport.Metadata{FeatureNames: fraud.FeatureNames[:], TrainingSeed: demo.DefaultSeed})
	if err != nil {
		t.Fatal(err)
	}
	rec, d := rollBackCanary(t, lr.ONNX, shifted, func(tr *registry.RolloutTriggers) { tr.MaxScoreShift = 0.25 })
	s := check(t, d, lifecycle.CheckScoreShift)
	if s.Status != lifecycle.StatusFired || s.Value <= 0.25 || !strings.Contains(s.Detail, "PSI of") {
		t.Fatalf("score-shift check %+v, want fired with a PSI above 0.25\n%s", s, rec.Evidence)
	}
	if d.Candidate.Labels.N != 0 || d.Champion.Labels.N != 0 {
		t.Fatalf("labelled rows %d and %d, want none: no label was posted", d.Candidate.Labels.N, d.Champion.Labels.N)
	}
	if l := check(t, d, lifecycle.CheckP99Ratio); l.Status != lifecycle.StatusDisabled {
		t.Fatalf("p99 check %+v, want disabled", l)
	}
	t.Logf("rolled back: %s (PSI %.2f; %s)", rec.Reason, s.Value, s.Detail)
}

// rollBackCanary starts a node with champion as v1 of "fraud", puts
// candidate on canary 50% under a rollout policy whose triggers are all
// off but what set turns on (and whose step never ends on its own), sends
// real scoring traffic until the controller retires the canary, and
// returns the retirement's audit record and its decision.
func rollBackCanary(t *testing.T, champion, candidate []byte, set func(*registry.RolloutTriggers)) (registry.AuditRecord, lifecycle.Decision) {
	t.Helper()
	bin := buildBinary(t)
	dir := t.TempDir()
	p1 := filepath.Join(dir, "fraud.onnx")
	if err := os.WriteFile(p1, champion, 0o644); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, bin, filepath.Join(dir, "data"), "--model", "fraud="+p1, "--drift-window", "1s")

	var pol registry.Policy
	getJSON(t, n, "/api/v1/models/fraud/policy", &pol)
	ro := registry.DefaultRollout()
	ro.Steps = []registry.RolloutStep{{Stage: registry.StageCanary, Weight: 50, MinDuration: registry.Duration(time.Hour), MinSamples: 1 << 40}}
	ro.Triggers = registry.RolloutTriggers{MinRequests: 500}
	set(&ro.Triggers)
	pol.Rollout = &ro
	body, _ := json.Marshal(pol)
	if code, b := n.api(t, "PUT", "/api/v1/models/fraud/policy", bytes.NewReader(body), "application/json"); code != 200 {
		t.Fatalf("set policy: %d %s", code, b)
	}
	if code, b := n.register(t, "fraud", candidate, ""); code != 201 {
		t.Fatalf("register v2: %d %s", code, b)
	}
	if code, b := n.api(t, "POST", "/api/v1/models/fraud/versions/2/stage", strings.NewReader(`{"stage":"canary","weight":50}`), "application/json"); code != 200 {
		t.Fatalf("stage v2 canary 50%%: %d %s", code, b)
	}

	g := fraud.NewGenerator(5)
	row := make([]float32, fraud.NumFeatures)
	c := &http.Client{Timeout: 30 * time.Second}
	sent, byVersion := 0, map[string]int{}
	waitFor(t, "the controller retires the canary", func() (bool, string) {
		var v registry.Version
		getJSON(t, n, "/api/v1/models/fraud/versions/2", &v)
		if v.Stage == registry.StageRetired {
			return true, ""
		}
		for range 100 {
			g.Next(row)
			resp, err := c.Post("http://"+n.addr+"/v2/models/fraud/infer", "application/json", bytes.NewReader(labelledBody(fmt.Sprintf("tx-%d", sent), row)))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("scoring: %d %s", resp.StatusCode, b)
			}
			var out struct {
				Version string `json:"model_version"`
			}
			_ = json.Unmarshal(b, &out)
			byVersion[out.Version]++
			sent++
		}
		return false, fmt.Sprintf("v2 is %s after %d requests (by version %v)", v.Stage, sent, byVersion)
	})

	_, audit := n.api(t, "GET", "/api/v1/audit?model=fraud&version=2", nil, "")
	var recs struct {
		Records []registry.AuditRecord `json:"records"`
	}
	if err := json.Unmarshal(audit, &recs); err != nil {
		t.Fatalf("audit: %v %.300s", err, audit)
	}
	for _, r := range recs.Records {
		if r.To != registry.StageRetired {
			continue
		}
		var d lifecycle.Decision
		if err := json.Unmarshal(r.Evidence, &d); err != nil {
			t.Fatalf("the retirement's evidence: %v\n%s", err, r.Evidence)
		}
		if r.Actor != "rollout" || !r.Auto || d.Action != lifecycle.ActionRollBack || d.Candidate.Version != 2 || d.Champion.Version != 1 {
			t.Fatalf("retirement by %q (auto %v), decision %s on v%d against v%d; want the rollout's roll_back of v2 against v1\n%s",
				r.Actor, r.Auto, d.Action, d.Candidate.Version, d.Champion.Version, r.Evidence)
		}
		if e := check(t, d, lifecycle.CheckErrorRate); e.Status == lifecycle.StatusFired {
			t.Fatalf("the error-rate trigger fired: %+v", e)
		}
		return r, d
	}
	t.Fatalf("no retirement of v2 in the audit log:\n%s", audit)
	return registry.AuditRecord{}, lifecycle.Decision{}
}

// check returns d's check named name.
func check(t *testing.T, d lifecycle.Decision, name string) lifecycle.Check {
	t.Helper()
	for _, c := range d.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("decision has no %s check: %+v", name, d.Checks)
	return lifecycle.Check{}
}

// wideMLP is an MLP over scaler's inputs with two ReLU layers of width
// hidden and small random weights: untrained, because only its cost
// matters here, and training one this wide takes a minute.
func wideMLP(scaler train.Standardizer, hidden int) ([]byte, error) {
	rng := rand.New(rand.NewSource(1))
	dense := func(in, out int) train.Dense {
		d := train.Dense{In: in, Out: out, W: make([]float32, in*out), B: make([]float32, out)}
		for i := range d.W {
			d.W[i] = float32(rng.NormFloat64() / float64(in))
		}
		return d
	}
	in := len(scaler.Mean)
	m := &train.MLP{Scaler: scaler, Hidden: []train.Dense{dense(in, hidden), dense(hidden, hidden)}, Output: dense(hidden, 1)}
	return onnxexport.MLP(m, onnxexport.Metadata{FeatureNames: fraud.FeatureNames[:], GraphName: "slow_mlp"})
}
