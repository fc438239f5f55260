package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/fraud"
	"github.com/modelgate/modelgate/lifecycle"
	"github.com/modelgate/modelgate/registry"
)

// TestRolloutOverHTTP: a real node (the binary, its controller stepping
// every second) with v1 the champion, v2 in shadow and a manual rollout
// policy: shadow until 200 runs, then canary 50%. After real mirrored
// traffic the controller proposes canary 50% as a pending approval, the
// alert webhook gets a signed approval_waiting alert, GET .../rollout
// shows the shadow step's gates with the node's numbers, and once
// `modelgate model approve` passes it, `modelgate rollout` shows the
// candidate on canary 50%, step 2 of 2, and what comes next.
func TestRolloutOverHTTP(t *testing.T) {
	const secret = "alert-signing-secret-0123456789"
	var mu sync.Mutex
	var alerts []lifecycle.Alert
	var badSig int
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if err := lifecycle.Verify([]byte(secret), r.Header.Get(lifecycle.HeaderSignature), body, time.Now(), 5*time.Minute); err != nil {
			badSig++
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var a lifecycle.Alert
		_ = json.Unmarshal(body, &a)
		alerts = append(alerts, a)
	}))
	defer recv.Close()

	bin := buildBinary(t)
	dir := t.TempDir()
	v1, err := demo.FraudModel(demo.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := demo.FraudModel(demo.DefaultSeed + 1)
	if err != nil {
		t.Fatal(err)
	}
	p1 := filepath.Join(dir, "fraud.onnx")
	if err := os.WriteFile(p1, v1, 0o644); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, bin, filepath.Join(dir, "data"), "--model", "fraud="+p1, "--drift-window", "1s", "--secret", "alerts="+secret)

	// Before a rollout section the model has no rollout, and says why.
	stdout, stderr, code := n.cli(t, bin, "rollout", "fraud")
	if code != 0 || !strings.Contains(stdout, "no rollout: the model's policy has no rollout section") {
		t.Fatalf("rollout before a policy: %d\n%s%s", code, stdout, stderr)
	}
	if code, b := n.api(t, "GET", "/api/v1/models/nosuch/rollout", nil, ""); code != 404 {
		t.Fatalf("rollout of an unknown model: %d %s, want 404", code, b)
	}

	var pol registry.Policy
	getJSON(t, n, "/api/v1/models/fraud/policy", &pol)
	pol.Promotion.Mode = registry.PromotionManual
	ro := registry.DefaultRollout()
	ro.Steps = []registry.RolloutStep{
		{Stage: registry.StageShadow, MinSamples: 200},
		{Stage: registry.StageCanary, Weight: 50, MinSamples: 100},
	}
	pol.Rollout = &ro
	pol.Alerts = &registry.AlertPolicy{URL: recv.URL, SecretRef: "alerts"}
	body, _ := json.Marshal(pol)
	if code, b := n.api(t, "PUT", "/api/v1/models/fraud/policy", bytes.NewReader(body), "application/json"); code != 200 {
		t.Fatalf("set policy: %d %s", code, b)
	}
	if code, b := n.register(t, "fraud", v2, ""); code != 201 {
		t.Fatalf("register v2: %d %s", code, b)
	}
	if code, b := n.api(t, "POST", "/api/v1/models/fraud/versions/2/stage", strings.NewReader(`{"stage":"shadow"}`), "application/json"); code != 200 {
		t.Fatalf("stage v2 shadow: %d %s", code, b)
	}

	// Real traffic, mirrored to the shadow, until the controller
	// proposes the move.
	g := fraud.NewGenerator(3)
	row := make([]float32, fraud.NumFeatures)
	c := &http.Client{Timeout: 30 * time.Second}
	sent := 0
	pending := func() (bool, string) {
		var v registry.Version
		b := getJSON(t, n, "/api/v1/models/fraud/versions/2", &v)
		return v.Pending != nil, string(b)
	}
	waitFor(t, "the controller proposes canary 50% for approval", func() (bool, string) {
		if ok, last := pending(); ok {
			return true, last
		}
		for range 50 {
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
			sent++
		}
		return false, fmt.Sprintf("%d requests sent", sent)
	})
	var v registry.Version
	getJSON(t, n, "/api/v1/models/fraud/versions/2", &v)
	if p := v.Pending; p.To != registry.StageCanary || p.Weight != 50 || p.RequestedBy != "rollout" || v.Stage != registry.StageShadow {
		t.Fatalf("pending move %+v on a %s version, want canary 50%% by the rollout on the shadow", p, v.Stage)
	}

	var rep rolloutReport
	b := getJSON(t, n, "/api/v1/models/fraud/rollout", &rep)
	if !rep.Active || rep.Candidate != 2 || rep.Against != 1 || rep.Stage != registry.StageShadow || rep.State == nil || !rep.State.Pending ||
		rep.Next == nil || rep.Next.Action != lifecycle.ActionHold || !rep.Leader {
		t.Fatalf("rollout report while waiting: %s", b)
	}
	var errs *lifecycle.Check
	for i := range rep.Next.Checks {
		if rep.Next.Checks[i].Name == lifecycle.CheckErrorRate {
			errs = &rep.Next.Checks[i]
		}
	}
	if errs == nil || errs.Status != lifecycle.StatusPass || !strings.Contains(errs.Detail, "0 of ") || rep.Next.Candidate.Requests < 200 {
		t.Fatalf("the error-rate gate should pass on the shadow's real runs (at least 200): %+v, candidate %+v", errs, rep.Next.Candidate)
	}

	waitFor(t, "the approval_waiting alert is delivered", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(alerts) > 0 || badSig > 0, fmt.Sprintf("%d alerts", len(alerts))
	})
	mu.Lock()
	if badSig > 0 || alerts[0].Kind != lifecycle.AlertApproval || alerts[0].Model != "fraud" || alerts[0].Version != 2 {
		t.Fatalf("alerts %+v, %d with bad signatures", alerts, badSig)
	}
	mu.Unlock()

	if stdout, stderr, code := n.cli(t, bin, "model", "approve", "fraud", "2", "--reason", "shadow looks fine"); code != 0 {
		t.Fatalf("approve: %d\n%s%s", code, stdout, stderr)
	}
	waitFor(t, "the rollout report shows canary 50%", func() (bool, string) {
		stdout, stderr, code = n.cli(t, bin, "rollout", "fraud")
		return code == 0 && strings.Contains(stdout, "candidate v2 (canary 50%) against v1, phase ramp, step 2 of 2"), stdout + stderr
	})
	for _, want := range []string{"CHECK", "error_rate", "promotion_test", "next: hold"} {
		if !strings.Contains(stdout, want) {
			t.Fatalf("modelgate rollout does not show %q:\n%s", want, stdout)
		}
	}
	t.Logf("modelgate rollout fraud:\n%s", stdout)
}
