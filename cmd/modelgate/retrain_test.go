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
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/fraud"
	"github.com/modelgate/modelgate/lifecycle"
)

// txBody is an OIP request of n generated transactions with the given id.
func txBody(g *fraud.Generator, id string, n int) []byte {
	row := make([]float32, fraud.NumFeatures)
	b := []byte(`{"id":"` + id + `","inputs":[{"name":"features","datatype":"FP32","shape":[` + strconv.Itoa(n) + `,30],"data":[`)
	for r := 0; r < n; r++ {
		g.Next(row)
		for i, v := range row {
			if r > 0 || i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendFloat(b, float64(v), 'g', -1, 32)
		}
	}
	return append(b, "]}]}"...)
}

// TestRetrainingTrigger runs the whole loop on a real node: a policy with a
// retraining webhook, a reference bootstrapped from the first scored rows,
// then traffic whose amounts triple. The receiver on 127.0.0.1 fails the
// first two attempts; it gets exactly one signed, verifiable request for the
// episode, with the same idempotency key on every attempt, and the export
// link in it returns the labelled rows scored since the version was made.
func TestRetrainingTrigger(t *testing.T) {
	const secret = "webhook-signing-secret-0123456789"
	var (
		mu       sync.Mutex
		attempts int
		keys     = map[string]bool{}
		accepted []lifecycle.Event
	)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		attempts++
		keys[r.Header.Get("Modelgate-Idempotency-Key")] = true
		if attempts <= 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		if err := lifecycle.Verify([]byte(secret), r.Header.Get("Modelgate-Signature"), body, time.Now(), time.Minute); err != nil {
			t.Errorf("signature: %v", err)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var ev lifecycle.Event
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Errorf("event: %v", err)
		}
		accepted = append(accepted, ev)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer recv.Close()

	bin := buildBinary(t)
	dir := t.TempDir()
	lr, _ := demo.FraudModel(demo.DefaultSeed)
	os.WriteFile(filepath.Join(dir, "fraud.onnx"), lr, 0o644)
	n := startNode(t, bin, filepath.Join(dir, "data"), "--model", "fraud="+filepath.Join(dir, "fraud.onnx"),
		"--drift-window", "250ms", "--secret", "hook="+secret)

	// Windows of a few hundred rows are small: the JS distance of two such
	// samples of one distribution sits near its 0.1 threshold by chance, so
	// this test judges by PSI, KS and chi-squared (the drift package's tests
	// cover JS at realistic sizes).
	policy := fmt.Sprintf(`{"drift":{"reference_sample_size":3000,"reference_period":"0s",
		"psi":{"min_count":100,"consecutive_windows":2},"js":{"enabled":false},
		"ks":{"min_count":100,"consecutive_windows":2},"chi2_p":{"min_count":100,"consecutive_windows":2}},
		"retraining":{"enabled":true,"url":%q,"secret_ref":"hook","cooldown":"1h"}}`, recv.URL)
	if code, b := n.api(t, "PUT", "/api/v1/models/fraud/policy", strings.NewReader(policy), "application/json"); code != 200 {
		t.Fatalf("policy: %d %s", code, b)
	}
	// A new version picks the policy's reference size up when it loads.
	v2, _ := demo.FraudModel(demo.DefaultSeed + 1)
	if code, b := n.register(t, "fraud", v2, ""); code != 201 {
		t.Fatalf("register: %d %s", code, b)
	}
	if code, b := n.api(t, "POST", "/api/v1/models/fraud/promote", strings.NewReader(`{"version":2}`), "application/json"); code != 200 {
		t.Fatalf("promote: %d %s", code, b)
	}
	// Wait for the reconciler to route to version 2 (a 200 ms sleep could
	// pass before it did on a busy machine), probing with calm rows.
	probe := fraud.NewGenerator(10)
	for deadline := time.Now().Add(time.Minute); ; {
		resp, err := http.Post("http://"+n.addr+"/v2/models/fraud/infer", "application/json", bytes.NewReader(txBody(probe, "probe", 1)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 && bytes.Contains(b, []byte(`"model_version":"2"`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("version 2 never answered after its promotion: %d %s", resp.StatusCode, b)
		}
		time.Sleep(10 * time.Millisecond)
	}

	score := func(g *fraud.Generator, id string) {
		resp, err := http.Post("http://"+n.addr+"/v2/models/fraud/infer", "application/json", bytes.NewReader(txBody(g, id, 50)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"model_version":"2"`)) {
			t.Fatalf("score: %d %s", resp.StatusCode, b)
		}
	}
	calm := fraud.NewGenerator(11)
	for i := 0; i < 100; i++ { // 5,000 rows: the 3,000-row reference, then calm windows
		score(calm, "calm-"+strconv.Itoa(i))
		time.Sleep(20 * time.Millisecond)
	}
	labels := `[{"id":"calm-80","label":1},{"id":"calm-85","label":0}]`
	if code, b := n.api(t, "POST", "/api/v1/models/fraud/labels", strings.NewReader(labels), "application/json"); code != 200 {
		t.Fatalf("labels: %d %s", code, b)
	}
	mu.Lock()
	if attempts != 0 {
		t.Fatalf("undrifted traffic triggered retraining (%d attempts)", attempts)
	}
	mu.Unlock()

	shifted := fraud.NewGenerator(12, fraud.WithDrift(fraud.Drift{Kind: fraud.CovariateShift, Field: fraud.FieldAmount}))
	deadline := time.Now().Add(time.Minute)
	for i := 0; ; i++ {
		score(shifted, "shift-"+strconv.Itoa(i))
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		done := len(accepted) > 0
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			_, audit := n.api(t, "GET", "/api/v1/audit?model=fraud", nil, "")
			var a struct {
				Records []struct{ Action, Kind, Reason string }
			}
			json.Unmarshal(audit, &a)
			_, rep := n.api(t, "GET", "/api/v1/models/fraud/versions/2/drift?window=1s", nil, "")
			t.Fatalf("no retraining request within a minute of drift (%d attempts)\ndrift: %.600s\nlogs: %s", attempts, rep, grepLines(n.logs.String(), "drift"))
		}
	}
	// The episode goes on: still exactly one request (the cooldown is 1h).
	for i := 0; i < 40; i++ {
		score(shifted, "more-"+strconv.Itoa(i))
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(accepted) != 1 || attempts != 3 || len(keys) != 1 {
		t.Fatalf("%d accepted, %d attempts, %d idempotency keys: want 1, 3, 1", len(accepted), attempts, len(keys))
	}
	ev := accepted[0]
	if ev.Model != "fraud" || ev.Version != 2 || len(ev.Alerts) == 0 || !strings.Contains(string(ev.Report), "amount_log") {
		t.Fatalf("event: %+v", ev)
	}
	u := strings.TrimPrefix(ev.ExportURL, "http://"+n.admin)
	if u == ev.ExportURL {
		t.Fatalf("export URL %q is not on the node's admin API", ev.ExportURL)
	}
	code, rows := n.api(t, "GET", u, nil, "")
	if code != 200 || !bytes.Contains(rows, []byte(`"id":"calm-80"`)) || !bytes.Contains(rows, []byte(`"id":"calm-85"`)) {
		t.Fatalf("export from the event's cursor: %d %.500s", code, rows)
	}
	_, audit := n.api(t, "GET", "/api/v1/audit?model=fraud", nil, "")
	for _, kind := range []string{`"kind":"drift_reference"`, `"kind":"drift"`, `"kind":"retraining_requested"`, `"kind":"retraining_delivered"`} {
		if !bytes.Contains(audit, []byte(kind)) {
			t.Fatalf("the audit log lacks %s", kind)
		}
	}
}

func grepLines(s, word string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
