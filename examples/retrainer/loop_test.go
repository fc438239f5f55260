package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/fraud"
	"github.com/modelgate/modelgate/lifecycle"
)

// labelledRows is how many one-row, labelled transactions the test scores:
// the export the job trains on.
const labelledRows = 2000

// webhookCapture keeps the first webhook request the node sent, byte for
// byte, so the test can replay it.
type webhookCapture struct {
	mu   sync.Mutex
	body []byte
	sig  string
	next http.Handler
}

func (c *webhookCapture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/webhook" && r.Method == http.MethodPost {
		b, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		if c.body == nil {
			c.body, c.sig = b, r.Header.Get(lifecycle.HeaderSignature)
		}
		c.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	c.next.ServeHTTP(w, r)
}

func (c *webhookCapture) captured() ([]byte, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.body, c.sig
}

// version is the part of GET /api/v1/models/{m}/versions/{v} the test checks.
type version struct {
	Version int    `json:"version"`
	Stage   string `json:"stage"`
	Lineage struct {
		DatasetURI      string             `json:"dataset_uri"`
		DatasetVersion  string             `json:"dataset_version"`
		DatasetDigest   string             `json:"dataset_digest"`
		CodeRepo        string             `json:"code_repo"`
		CodeCommit      string             `json:"code_commit"`
		TrainingMetrics map[string]float64 `json:"training_metrics"`
		ParentVersion   int                `json:"parent_version"`
	} `json:"lineage"`
	ReferenceProfile json.RawMessage `json:"reference_profile"`
	Validation       *struct {
		Passed bool `json:"passed"`
	} `json:"validation"`
}

// TestRetrainingLoop runs the closed loop on a real node: labelled traffic,
// then drifted traffic until the node's own drift alert fires the signed
// webhook at the retrainer, which pulls the export, trains and registers a
// validated candidate with its lineage and profile. Then it checks how the
// job handles what a real deployment sends it: the same event again, a bad
// signature, the same event after a restart, too few rows, a flaky and a
// refused export.
func TestRetrainingLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a modelgate node")
	}
	bin := modelgateBinary(t)
	dir := t.TempDir()
	lr, err := demo.FraudModel(demo.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "fraud.onnx"), lr, 0o644)
	n := startNode(t, bin, filepath.Join(dir, "data"), "--model", "fraud="+filepath.Join(dir, "fraud.onnx"),
		"--drift-window", "250ms", "--secret", "trainer="+testSecret)

	cfg := testConfig("http://"+n.admin, n.token)
	cfg.MinRows = 1000
	rt, rtURL, ended := startRetrainer(t, cfg)
	capture := &webhookCapture{next: rt.handler()}
	hook := httptest.NewServer(capture)
	defer hook.Close()

	// The drift policy of cmd/modelgate's TestRetrainingTrigger: windows of
	// a few hundred rows, judged by PSI, KS and chi-squared.
	policy := fmt.Sprintf(`{"drift":{"reference_sample_size":3000,"reference_period":"0s",
		"psi":{"min_count":100,"consecutive_windows":2},"js":{"enabled":false},
		"ks":{"min_count":100,"consecutive_windows":2},"chi2_p":{"min_count":100,"consecutive_windows":2}},
		"retraining":{"enabled":true,"url":%q,"secret_ref":"trainer","cooldown":"1h"}}`, hook.URL+"/webhook")
	if code, b := n.api(t, "PUT", "/api/v1/models/fraud/policy", strings.NewReader(policy), "application/json"); code != 200 {
		t.Fatalf("policy: %d %s", code, b)
	}
	// A new version picks the policy's reference size up when it loads.
	v2, _ := demo.FraudModel(demo.DefaultSeed + 1)
	if code, b := n.register(t, "fraud", v2); code != 201 {
		t.Fatalf("register v2: %d %s", code, b)
	}
	if code, b := n.api(t, "POST", "/api/v1/models/fraud/promote", strings.NewReader(`{"version":2}`), "application/json"); code != 200 {
		t.Fatalf("promote v2: %d %s", code, b)
	}
	probe := fraud.NewGenerator(10)
	for deadline := time.Now().Add(2 * time.Minute); ; {
		body, _ := txBody(probe, "probe", 1)
		resp, err := http.Post("http://"+n.addr+"/v2/models/fraud/infer", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 && bytes.Contains(b, []byte(`"model_version":"2"`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("version 2 never answered after its promotion")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Labelled traffic: one transaction per request, so each label judges
	// one row; labels are the generator's ground truth, posted in order.
	calm := fraud.NewGenerator(21)
	type label struct {
		ID    string `json:"id"`
		Label int    `json:"label"`
	}
	labels := make([]label, labelledRows)
	for i := range labels {
		id := "tx-" + strconv.Itoa(i)
		body, y := txBody(calm, id, 1)
		if v := n.infer(t, body); v != "2" {
			t.Fatalf("%s answered by v%s", id, v)
		}
		labels[i] = label{ID: id}
		if y[0] {
			labels[i].Label = 1
		}
	}
	// Unlabelled calm batches finish the 3,000-row reference and give the
	// judge calm windows.
	for i := range 40 {
		body, _ := txBody(calm, "calm-"+strconv.Itoa(i), 50)
		n.infer(t, body)
		time.Sleep(20 * time.Millisecond)
	}
	for i := 0; i < len(labels); i += 500 {
		b, _ := json.Marshal(labels[i : i+500])
		if code, resp := n.api(t, "POST", "/api/v1/models/fraud/labels", bytes.NewReader(b), "application/json"); code != 200 {
			t.Fatalf("labels: %d %s", code, resp)
		}
	}
	if body, _ := capture.captured(); body != nil {
		t.Fatalf("undrifted traffic fired the webhook: %s", body)
	}

	// Drift: amounts triple until the node's alert reaches the retrainer.
	shifted := fraud.NewGenerator(12, fraud.WithDrift(fraud.Drift{Kind: fraud.CovariateShift, Field: fraud.FieldAmount}))
	for i, deadline := 0, time.Now().Add(3*time.Minute); ; i++ {
		body, _ := txBody(shifted, "shift-"+strconv.Itoa(i), 50)
		n.infer(t, body)
		if b, _ := capture.captured(); b != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no webhook within 3 minutes of drifted traffic; node log:\n%s", grepLines(n.logs.String(), "drift"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	st := waitJob(t, ended)
	evBody, evSig := capture.captured()
	var ev lifecycle.Event
	if err := json.Unmarshal(evBody, &ev); err != nil {
		t.Fatal(err)
	}
	if st.State != StateRegistered || st.ID != ev.ID || st.Version != 3 || st.Stage != "validated" || st.ParentVersion != 2 {
		t.Fatalf("job: %+v", st)
	}
	if st.Rows != labelledRows || st.ExportLines != labelledRows || len(st.Skipped) != 0 {
		t.Fatalf("job trained on %d rows of %d exported lines (skipped %v), want the %d labelled ones", st.Rows, st.ExportLines, st.Skipped, labelledRows)
	}

	t.Run("candidate registered with lineage and profile", func(t *testing.T) {
		code, b := n.api(t, "GET", "/api/v1/models/fraud/versions/3", nil, "")
		if code != 200 {
			t.Fatalf("version 3: %d %s", code, b)
		}
		var v version
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		l := v.Lineage
		if v.Stage != "validated" || v.Validation == nil || !v.Validation.Passed || l.ParentVersion != 2 {
			t.Fatalf("version 3: stage %s, validation %+v, parent %d", v.Stage, v.Validation, l.ParentVersion)
		}
		// The digest is the sha256 of the export lines between the event's
		// cursor and the recorded one, fetched here independently.
		since := mustQuery(t, ev.ExportURL, "since")
		lines := exportRange(t, n, since, l.DatasetVersion)
		sum := sha256.Sum256(lines)
		if l.DatasetDigest != "sha256:"+hex.EncodeToString(sum[:]) || l.DatasetDigest != st.Digest {
			t.Fatalf("dataset digest %s, job %s; the export range hashes to sha256:%x", l.DatasetDigest, st.Digest, sum)
		}
		if got := bytes.Count(lines, []byte("\n")); got != labelledRows {
			t.Fatalf("the recorded range holds %d rows, want %d", got, labelledRows)
		}
		if mustQuery(t, l.DatasetURI, "since") != since || l.DatasetVersion != st.Cursor || l.DatasetVersion == since {
			t.Fatalf("dataset range %s → %s; event since %s", l.DatasetURI, l.DatasetVersion, since)
		}
		if l.CodeCommit != cfg.Commit || l.CodeRepo != cfg.Repo {
			t.Fatalf("code %s@%s", l.CodeRepo, l.CodeCommit)
		}
		m := l.TrainingMetrics
		// The demo fraud process is learnable (the demo model reaches about
		// 0.9): a working trainer on 1,600 rows clears 0.7 by far.
		if !(m["auc"] > 0.7 && m["auc"] <= 1) || !(m["log_loss"] > 0 && m["log_loss"] < math.Ln2) ||
			m["train_rows"]+m["holdout_rows"] != labelledRows || m["holdout_rows"] == 0 {
			t.Fatalf("training metrics %v", m)
		}
		p, err := drift.ParseProfile(v.ReferenceProfile)
		if err != nil {
			t.Fatalf("reference profile: %v\n%.300s", err, v.ReferenceProfile)
		}
		if p.Rows != int64(m["train_rows"]) || len(p.Features) != fraud.NumFeatures || p.Output == nil ||
			p.Inputs[0].Name != "features" || p.Output.Input != "probability" || p.Features[0].Name != fraud.FeatureNames[0] {
			t.Fatalf("profile: %d rows, %d features, inputs %+v, output %+v, first %q", p.Rows, len(p.Features), p.Inputs, p.Output, p.Features[0].Name)
		}
		_, audit := n.api(t, "GET", "/api/v1/audit?model=fraud", nil, "")
		if !bytes.Contains(audit, []byte(`"kind":"retraining_delivered"`)) {
			t.Fatalf("the node did not record the delivery: %.2000s", audit)
		}
	})

	t.Run("replayed event trains nothing", func(t *testing.T) {
		// The node's own request again, signature and all (still within
		// the tolerance), as a retry after a lost answer would be.
		code, msg := post(t, rtURL, evBody, evSig)
		if code != http.StatusOK || !strings.Contains(msg, `"status":"already handled"`) {
			t.Fatalf("replay: %d %s", code, msg)
		}
		noVersion(t, n, 4)
		rt.mu.Lock()
		jobs := len(rt.jobs)
		rt.mu.Unlock()
		if jobs != 1 {
			t.Fatalf("%d jobs after the replay, want 1", jobs)
		}
	})

	t.Run("bad signature refused", func(t *testing.T) {
		code, msg := post(t, rtURL, evBody, lifecycle.Sign([]byte("not-the-secret"), time.Now(), evBody))
		if code != http.StatusUnauthorized || !strings.Contains(msg, "no v1 signature matches") {
			t.Fatalf("wrong secret: %d %s", code, msg)
		}
	})

	t.Run("restarted job registers no second version", func(t *testing.T) {
		// A fresh process has forgotten the event; the registration's
		// idempotency key (the event id) makes the node answer v3 again.
		_, url, ended := startRetrainer(t, cfg)
		if code, msg := post(t, url, evBody, lifecycle.Sign([]byte(testSecret), time.Now(), evBody)); code != http.StatusAccepted {
			t.Fatalf("redelivery to a restarted job: %d %s", code, msg)
		}
		st := waitJob(t, ended)
		if st.State != StateRegistered || st.Version != 3 {
			t.Fatalf("job: %+v", st)
		}
		noVersion(t, n, 4)
	})

	t.Run("too few rows refused", func(t *testing.T) {
		c := cfg
		c.MinRows = labelledRows + 1
		_, url, ended := startRetrainer(t, c)
		body := resign(t, ev, "drift-too-few", ev.ExportURL)
		if code, msg := post(t, url, body, lifecycle.Sign([]byte(testSecret), time.Now(), body)); code != http.StatusAccepted {
			t.Fatalf("event: %d %s", code, msg)
		}
		// GET /jobs/{id}?wait= answers once the job has ended (5 minutes
		// is a hang guard).
		resp, err := http.Get(url + "/jobs/drift-too-few?wait=5m")
		if err != nil {
			t.Fatal(err)
		}
		var st JobStatus
		json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if !st.done() {
			t.Fatalf("/jobs/drift-too-few?wait=5m answered before the job ended: %+v", st)
		}
		waitJob(t, ended)
		want := fmt.Sprintf("%d usable labelled rows since the parent version (of %d exported), under the policy's --min-rows %d", labelledRows, labelledRows, labelledRows+1)
		if st.State != StateRefused || !strings.Contains(st.Reason, want) || st.Version != 0 {
			t.Fatalf("job: %+v", st)
		}
		noVersion(t, n, 4)
		resp, err = http.Get(url + "/status")
		if err != nil {
			t.Fatal(err)
		}
		var status struct{ Last JobStatus }
		json.NewDecoder(resp.Body).Decode(&status)
		resp.Body.Close()
		if status.Last.ID != "drift-too-few" || status.Last.State != StateRefused {
			t.Fatalf("/status: %+v", status)
		}
	})

	t.Run("export retried after 503s", func(t *testing.T) {
		// A proxy in front of the admin API answers the first two export
		// calls 503, as a node without a leader would.
		target, _ := url.Parse("http://" + n.admin)
		proxy := httputil.NewSingleHostReverseProxy(target)
		var failures atomic.Int32
		flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/export") && failures.Add(1) <= 2 {
				http.Error(w, `{"error":"no leader"}`, http.StatusServiceUnavailable)
				return
			}
			proxy.ServeHTTP(w, r)
		}))
		defer flaky.Close()
		c := cfg
		c.Admin = flaky.URL
		c.MinRows = labelledRows + 1 // pull everything, register nothing
		_, url, ended := startRetrainer(t, c)
		link := strings.Replace(ev.ExportURL, "http://"+n.admin, flaky.URL, 1)
		body := resign(t, ev, "drift-flaky", link)
		if code, msg := post(t, url, body, lifecycle.Sign([]byte(testSecret), time.Now(), body)); code != http.StatusAccepted {
			t.Fatalf("event: %d %s", code, msg)
		}
		st := waitJob(t, ended)
		if st.State != StateRefused || st.Rows != labelledRows || st.ExportAttempts != st.ExportCalls+2 {
			t.Fatalf("job: %+v", st)
		}
	})

	t.Run("export refused 401 is not retried", func(t *testing.T) {
		c := cfg
		c.Token = "not-a-token"
		_, url, ended := startRetrainer(t, c)
		body := resign(t, ev, "drift-bad-token", ev.ExportURL)
		if code, msg := post(t, url, body, lifecycle.Sign([]byte(testSecret), time.Now(), body)); code != http.StatusAccepted {
			t.Fatalf("event: %d %s", code, msg)
		}
		st := waitJob(t, ended)
		if st.State != StateFailed || !strings.Contains(st.Reason, "answered 401") || !strings.Contains(st.Reason, "check --token") || st.ExportAttempts != 1 {
			t.Fatalf("job: %+v", st)
		}
		noVersion(t, n, 4)
	})
}

// exportRange reads the labelled export from since until the row whose
// cursor is end, and returns its lines.
func exportRange(t *testing.T, n *node, since, end string) []byte {
	t.Helper()
	var out []byte
	for cursor := since; ; {
		q := url.Values{"labelled": {"true"}, "since": {cursor}}
		code, page := n.api(t, "GET", "/api/v1/models/fraud/export?"+q.Encode(), nil, "")
		if code != 200 || len(page) == 0 {
			t.Fatalf("export from %q: %d, %d bytes, before reaching cursor %q", cursor, code, len(page), end)
		}
		for _, line := range bytes.SplitAfter(page, []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			out = append(out, line...)
			var row struct{ Cursor string }
			json.Unmarshal(line, &row)
			cursor = row.Cursor
			if cursor == end {
				return out
			}
		}
	}
}

// noVersion checks the model has no version v.
func noVersion(t *testing.T, n *node, v int) {
	t.Helper()
	if code, b := n.api(t, "GET", "/api/v1/models/fraud/versions/"+strconv.Itoa(v), nil, ""); code != 404 {
		t.Fatalf("version %d: %d %.300s, want 404", v, code, b)
	}
}

// resign returns ev under another id and export link, as JSON.
func resign(t *testing.T, ev lifecycle.Event, id, link string) []byte {
	t.Helper()
	ev.ID, ev.ExportURL = id, link
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustQuery(t *testing.T, link, key string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get(key)
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
