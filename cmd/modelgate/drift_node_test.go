package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/fraud"
)

// badRowsBody is an OIP request of n rows whose every feature is far
// outside anything the fraud data holds: out of range for every numeric
// feature, an undeclared value for every categorical one.
func badRowsBody(id string, n int) []byte {
	b := []byte(`{"id":"` + id + `","inputs":[{"name":"features","datatype":"FP32","shape":[` + strconv.Itoa(n) + `,30],"data":[`)
	for i := 0; i < n*fraud.NumFeatures; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, "1e6"...)
	}
	return append(b, "]}]}"...)
}

// TestDriftOnARealNode runs a node and follows one version's drift from
// onboarding to drift through the API, the CLI and /metrics: a fresh
// node's `modelgate drift` shows the reservoir's progress instead of
// failing; a policy with the new fields is validated (400 naming the
// field); a version bootstrapped from its first rows then says "no data",
// "not enough data" with the count, and DRIFT with the drift share, the
// per-feature p-values and data quality, and /metrics says the same; hard
// constraints refuse rows within a tick of the policy change; a reference
// sampled by reservoir over a period freezes after it and is audited.
func TestDriftOnARealNode(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	lr, _ := demo.FraudModel(demo.DefaultSeed)
	os.WriteFile(filepath.Join(dir, "fraud.onnx"), lr, 0o644)
	n := startNode(t, bin, filepath.Join(dir, "data"), "--model", "fraud="+filepath.Join(dir, "fraud.onnx"), "--drift-window", "500ms")
	cli := []string{"--admin", "http://" + n.admin, "--token", n.token}
	drift := func(args ...string) string {
		t.Helper()
		out, _, err := runCmd(t, append(append([]string{"drift", "fraud"}, args...), cli...)...)
		if err != nil {
			t.Fatalf("modelgate drift fraud %v: %v\n%s", args, err, out)
		}
		return out
	}
	score := func(body []byte, version string) {
		t.Helper()
		resp, err := http.Post("http://"+n.addr+"/v2/models/fraud/infer", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"model_version":"`+version+`"`)) {
			t.Fatalf("score: %d %.300s", resp.StatusCode, b)
		}
	}
	metrics := func() string {
		t.Helper()
		_, b := n.api(t, "GET", "/metrics", nil, "")
		return string(b)
	}

	// Onboarding: v1 has no profile; the default policy samples 10,000 rows
	// over a day.
	if out := drift(); !strings.Contains(out, "fraud v1: bootstrapping the reference: 0 of 10,000 reference rows") {
		t.Fatalf("fresh node:\n%s", out)
	}
	calm := fraud.NewGenerator(21)
	score(txBody(calm, "boot-a", 50), "1")
	score(txBody(calm, "boot-b", 50), "1")
	if out := drift(); !strings.Contains(out, "100 of 10,000 reference rows, sampled from 100 rows scored so far, until") {
		t.Fatalf("bootstrapping:\n%s", out)
	}
	m := metrics()
	for _, want := range []string{`modelgate_drift_status{model="fraud",version="1",status="bootstrapping"} 1`,
		`modelgate_drift_status{model="fraud",version="1",status="no_drift"} 0`,
		`modelgate_drift_bootstrap_rows{model="fraud",version="1"} 100`, `modelgate_drift_bootstrap_target_rows{model="fraud",version="1"} 10000`} {
		if !strings.Contains(m, want) {
			t.Fatalf("/metrics lacks %s:\n%s", want, grepLines(m, "drift"))
		}
	}

	// The policy's new fields are validated like the rest.
	if code, b := n.api(t, "PUT", "/api/v1/models/fraud/policy", strings.NewReader(`{"drift":{"alpha":0.9}}`), "application/json"); code != 400 || !strings.Contains(string(b), "policy.drift.alpha (0.9) must be in (0, 0.5]") {
		t.Fatalf("a bad alpha: %d %s", code, b)
	}
	pol := `{"drift":{"reference_sample_size":1000,"reference_period":"0s","alpha":0.01,"drift_share":0.5}}`
	if code, b := n.api(t, "PUT", "/api/v1/models/fraud/policy", strings.NewReader(pol), "application/json"); code != 200 {
		t.Fatalf("policy: %d %s", code, b)
	}
	v2, _ := demo.FraudModel(demo.DefaultSeed + 1)
	if code, b := n.register(t, "fraud", v2, ""); code != 201 {
		t.Fatalf("register: %d %s", code, b)
	}
	if code, b := n.api(t, "POST", "/api/v1/models/fraud/promote", strings.NewReader(`{"version":2}`), "application/json"); code != 200 {
		t.Fatalf("promote: %d %s", code, b)
	}
	view := func() gateway.DriftView {
		t.Helper()
		code, b := n.api(t, "GET", "/api/v1/models/fraud/drift?version=2", nil, "")
		var v gateway.DriftView
		if code != 200 || json.Unmarshal(b, &v) != nil {
			t.Fatalf("drift of v2: %d %.500s", code, b)
		}
		return v
	}
	// Only a hang exceeds these deadlines: the node rotates 500 ms windows.
	waitStatus := func(status string, feed func()) gateway.DriftView {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for {
			if feed != nil {
				feed()
			}
			v := view()
			if v.Status == status {
				return v
			}
			if time.Now().After(deadline) {
				t.Fatalf("status %q, want %q: %s", v.Status, status, v.Summary)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// The reconciler routes to v2 soon after the promotion; until it has
	// loaded it, v2 is not monitored (404).
	for deadline := time.Now().Add(time.Minute); ; {
		if code, _ := n.api(t, "GET", "/api/v1/models/fraud/drift?version=2", nil, ""); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("v2 not monitored a minute after its promotion")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := 0; i < 20; i++ { // the first 1,000 rows become v2's reference
		score(txBody(calm, "ref-"+strconv.Itoa(i), 50), "2")
	}
	waitStatus("no_data", nil)
	if out := drift(); !strings.Contains(out, "fraud v2: no data") {
		t.Fatalf("no data:\n%s", out)
	}
	for i := 0; i < 4; i++ {
		score(txBody(calm, "few-"+strconv.Itoa(i), 50), "2")
	}
	v := waitStatus("not_enough_data", nil)
	if v.Rows != 200 || v.MinCount != 1000 || !strings.Contains(v.Summary, "not enough data: 200 of the 1000 rows a judgement needs") {
		t.Fatalf("not enough data: rows %d of %d, %q", v.Rows, v.MinCount, v.Summary)
	}

	// Amounts triple, and a few rows break every feature's range.
	shifted := fraud.NewGenerator(22, fraud.WithDrift(fraud.Drift{Kind: fraud.CovariateShift, Field: fraud.FieldAmount}))
	i := 0
	v = waitStatus("drift", func() {
		i++
		score(txBody(shifted, "shift-"+strconv.Itoa(i), 100), "2")
		score(badRowsBody("bad-"+strconv.Itoa(i), 1), "2")
	})
	if v.Report == nil || v.DriftShare <= 0 || v.DriftedFeatures == 0 || v.Quality.RowsAffected == 0 {
		t.Fatalf("drift view: %+v", v)
	}
	var amount *float64
	for _, f := range v.Features {
		if f.Name == "amount_log" {
			amount = f.KSP
			if !f.Breach || f.Quality.OutOfRange == 0 {
				t.Fatalf("amount_log: breach %v, quality %+v", f.Breach, f.Quality)
			}
		}
	}
	if amount == nil || *amount >= 0.01 {
		t.Fatalf("amount_log's ks_p: %v", amount)
	}
	out := drift("--version", "2")
	t.Logf("modelgate drift fraud --version 2:\n%s", out)
	for _, want := range []string{"fraud v2: DRIFT:", "data quality:", "newest run: 1", "reference rows — DRIFT:", "MIN_P", "out of range", "BREACH"} {
		if !strings.Contains(out, want) {
			t.Fatalf("the CLI lacks %q:\n%s", want, out)
		}
	}
	m = metrics()
	for _, want := range []string{`modelgate_drift_share{model="fraud",version="2"}`, `modelgate_drift_quality_rows_affected{model="fraud",version="2"}`,
		`modelgate_drift_quality_values{model="fraud",version="2",feature="amount_log",problem="out_of_range"}`} {
		if !strings.Contains(m, want) {
			t.Fatalf("/metrics lacks %s:\n%s", want, grepLines(m, "drift"))
		}
	}
	if !strings.Contains(m, `modelgate_drift_status{model="fraud",version="2",status="drift"} 1`) {
		// The judgement moves on as windows close; the newest run must
		// still hold the shifted rows (30 s of windows are within reach).
		t.Fatalf("/metrics' status disagrees with the API's drift:\n%s", grepLines(m, "status"))
	}

	// Hard constraints: a policy change reaches the scoring path within a
	// tick of the drift loop; a row out of its declared range is refused
	// with 400 naming the feature and the rule, and counted.
	pol = `{"drift":{"constraints":{"refuse_non_finite":true,"ranges":[{"feature":"amount_log","min":-10,"max":20}]}}}`
	if code, b := n.api(t, "PUT", "/api/v1/models/fraud/policy", strings.NewReader(pol), "application/json"); code != 200 {
		t.Fatalf("constraints: %d %s", code, b)
	}
	for deadline := time.Now().Add(time.Minute); ; {
		resp, err := http.Post("http://"+n.addr+"/v2/models/fraud/infer", "application/json", bytes.NewReader(badRowsBody("refused", 1)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 400 {
			if !strings.Contains(string(b), `feature \"amount_log\" is 1e+06, outside its declared range [-10, 20]`) {
				t.Fatalf("refusal: %s", b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the constraints never applied: %d %s", resp.StatusCode, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	score(txBody(calm, "calm-under-constraints", 50), "2")
	if m = metrics(); !strings.Contains(m, `modelgate_rows_refused_total{model="fraud",version="2",feature="amount_log",rule="range"} 1`) {
		t.Fatalf("/metrics lacks the refusal:\n%s", grepLines(m, "refused"))
	}

	// A reference sampled by reservoir over a period: v3 keeps sampling
	// after its 1,000 rows until 5 s have passed since its first row, then
	// freezes the sample and records it in the audit log.
	pol = `{"drift":{"reference_sample_size":1000,"reference_period":"5s","constraints":null}}`
	if code, b := n.api(t, "PUT", "/api/v1/models/fraud/policy", strings.NewReader(pol), "application/json"); code != 200 {
		t.Fatalf("policy: %d %s", code, b)
	}
	v3, _ := demo.FraudModel(demo.DefaultSeed + 2)
	if code, b := n.register(t, "fraud", v3, ""); code != 201 {
		t.Fatalf("register: %d %s", code, b)
	}
	if code, b := n.api(t, "POST", "/api/v1/models/fraud/promote", strings.NewReader(`{"version":3}`), "application/json"); code != 200 {
		t.Fatalf("promote: %d %s", code, b)
	}
	for deadline := time.Now().Add(time.Minute); ; {
		resp, err := http.Post("http://"+n.addr+"/v2/models/fraud/infer", "application/json", bytes.NewReader(txBody(calm, "probe", 1)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 && bytes.Contains(b, []byte(`"model_version":"3"`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("v3 never answered after its promotion: %d %s", resp.StatusCode, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := 0; i < 24; i++ {
		score(txBody(calm, "res-"+strconv.Itoa(i), 50), "3")
	}
	code, b := n.api(t, "GET", "/api/v1/models/fraud/drift", nil, "")
	if code != 200 || !bytes.Contains(b, []byte(`"status":"bootstrapping"`)) || !bytes.Contains(b, []byte("1,000 of 1,000 reference rows, sampled from")) {
		t.Skipf("v3's 5 s period ended before 1,200 rows were scored (a slow machine): %d %.300s", code, b)
	}
	for deadline := time.Now().Add(time.Minute); view3(t, n) == "bootstrapping"; {
		if time.Now().After(deadline) {
			t.Fatal("v3's reservoir never froze a minute after its 5 s period")
		}
		time.Sleep(100 * time.Millisecond)
		score(txBody(calm, "res-late", 10), "3")
	}
	_, audit := n.api(t, "GET", "/api/v1/audit?model=fraud", nil, "")
	if !bytes.Contains(audit, []byte("a uniform sample of 1000 rows out of those scored over 5s became the reference")) {
		t.Fatalf("the audit log lacks v3's reservoir reference:\n%s", grepLines(string(audit), "drift_reference"))
	}
}

// view3 is the status of the champion's drift.
func view3(t *testing.T, n *node) string {
	t.Helper()
	_, b := n.api(t, "GET", "/api/v1/models/fraud/drift", nil, "")
	var v gateway.DriftView
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("drift: %v %.300s", err, b)
	}
	return v.Status
}
