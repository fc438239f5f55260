package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelgate/modelgate/lifecycle"
)

const testSecret = "retrainer-test-secret-0123456789"

// testConfig is a valid configuration for a node's admin API.
func testConfig(admin, token string) Config {
	c := DefaultConfig()
	c.Secret = []byte(testSecret)
	c.Admin = admin
	c.Token = token
	c.Model = "fraud"
	c.Commit = "0123456789abcdef0123456789abcdef01234567"
	c.Repo = "github.com/modelgate/modelgate"
	c.Backoff = 10 * time.Millisecond
	return c
}

// post sends a webhook request and returns the status and the error text
// (the body when it is not an error).
func post(t *testing.T, url string, body []byte, sig string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/webhook", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set(lifecycle.HeaderSignature, sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e struct{ Error string }
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return resp.StatusCode, e.Error
	}
	return resp.StatusCode, string(b)
}

func testEvent(id, exportURL string) []byte {
	b, _ := json.Marshal(lifecycle.Event{Event: lifecycle.EventDrift, ID: id, Time: time.Now().UTC(),
		Model: "fraud", Version: 1, ExportURL: exportURL, Alerts: nil})
	return b
}

// TestWebhookRefusesBadSignatures: every request that does not carry a
// fresh signature of this exact body by the shared secret is answered 401
// with the reason, and starts no job. The admin API it names is never
// called (nothing listens there).
func TestWebhookRefusesBadSignatures(t *testing.T) {
	r, url, _ := startRetrainer(t, testConfig("http://127.0.0.1:1", "token"))
	body := testEvent("drift-abc", "http://127.0.0.1:1/api/v1/models/fraud/export?labelled=true")
	now := time.Now()
	f := func(name string, body []byte, sig, want string) {
		t.Helper()
		code, msg := post(t, url, body, sig)
		if code != http.StatusUnauthorized || !strings.Contains(msg, want) {
			t.Errorf("%s: %d %s, want 401 naming %q", name, code, msg, want)
		}
	}
	f("unsigned", body, "", "no Modelgate-Signature header")
	f("another secret", body, lifecycle.Sign([]byte("another-secret"), now, body), "no v1 signature matches")
	tampered := []byte(strings.Replace(string(body), `"version":1`, `"version":7`, 1))
	f("tampered body", tampered, lifecycle.Sign([]byte(testSecret), now, body), "no v1 signature matches")
	f("replayed after the tolerance", body, lifecycle.Sign([]byte(testSecret), now.Add(-6*time.Minute), body), "outside the tolerance")
	f("from the future", body, lifecycle.Sign([]byte(testSecret), now.Add(6*time.Minute), body), "outside the tolerance")
	f("no timestamp", body, "v1="+strings.Repeat("ab", 32), "want t=<unix seconds>,v1=<hex>")
	f("malformed header", body, "t=1,v1=abc", "v1 is not a hex HMAC-SHA256")
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.jobs) != 0 {
		t.Fatalf("refused requests started %d jobs", len(r.jobs))
	}
}

// TestWebhookRefusesOtherModelsAndNonEvents: a correctly signed body that
// is not an event for this job's model is a permanent 4xx naming why.
func TestWebhookRefusesOtherModelsAndNonEvents(t *testing.T) {
	r, url, _ := startRetrainer(t, testConfig("http://127.0.0.1:1", "token"))
	sign := func(b []byte) string { return lifecycle.Sign([]byte(testSecret), time.Now(), b) }
	f := func(name string, body []byte, wantCode int, want string) {
		t.Helper()
		code, msg := post(t, url, body, sign(body))
		if code != wantCode || !strings.Contains(msg, want) {
			t.Errorf("%s: %d %s, want %d naming %q", name, code, msg, wantCode, want)
		}
	}
	other, _ := json.Marshal(lifecycle.Event{ID: "drift-x", Model: "churn", Version: 1, ExportURL: "http://127.0.0.1:1/x/export"})
	f("another model", other, http.StatusUnprocessableEntity, `retrains model "fraud", not "churn"`)
	f("not JSON", []byte("hello"), http.StatusBadRequest, "not a retraining event")
	noExport, _ := json.Marshal(lifecycle.Event{ID: "drift-y", Model: "fraud", Version: 1})
	f("no export link", noExport, http.StatusBadRequest, "no export_url")
	noID, _ := json.Marshal(lifecycle.Event{Model: "fraud", Version: 1, ExportURL: "http://127.0.0.1:1/x/export"})
	f("no id", noID, http.StatusBadRequest, "lacks its id")
	resp, err := http.Get(url + "/webhook")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /webhook: %d, want 405", resp.StatusCode)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.jobs) != 0 {
		t.Fatalf("refused requests started %d jobs", len(r.jobs))
	}
}

// TestExportLinkMustBeOnTheAdminAPI: the job sends its token with the
// export request, so a link to another origin fails the job before any
// request is made, naming both origins.
func TestExportLinkMustBeOnTheAdminAPI(t *testing.T) {
	_, url, ended := startRetrainer(t, testConfig("http://127.0.0.1:1", "token"))
	body := testEvent("drift-elsewhere", "http://127.0.0.2:8081/api/v1/models/fraud/export?labelled=true")
	if code, msg := post(t, url, body, lifecycle.Sign([]byte(testSecret), time.Now(), body)); code != http.StatusAccepted {
		t.Fatalf("signed event: %d %s", code, msg)
	}
	st := waitJob(t, ended)
	if st.State != StateFailed || !strings.Contains(st.Reason, "is not on the admin API http://127.0.0.1:1") || st.ExportCalls != 0 {
		t.Fatalf("job: %+v", st)
	}
}

// TestDatasetKeepsOneServedRowPerLabelledRequest feeds export lines in the
// node's NDJSON format: only served one-row predictions with a 0/1 label
// and finite features are kept, once per id, and the digest covers exactly
// the kept lines.
func TestDatasetKeepsOneServedRowPerLabelledRequest(t *testing.T) {
	row := func(id, role, shape, data, label, cursor string) string {
		return `{"id":"` + id + `","model":"fraud","version":"2","role":"` + role + `","time":"2026-12-06T10:00:00Z","node":"n1","latency_ns":1000,` +
			`"inputs":[{"name":"features","datatype":"FP32","shape":` + shape + `,"data":` + data + `}],` +
			`"outputs":[{"name":"probability","datatype":"FP32","shape":[1,1],"data":[0.1]}],"label":` + label +
			`,"label_time":"2026-12-06T11:00:00Z","cursor":"` + cursor + "\"}\n"
	}
	keep1 := row("a", "champion", "[1,3]", "[1,2,3]", "1", "c1")
	keep2 := row("b", "canary", "[1,3]", "[4,5,6]", "0", "c2")
	lines := []string{
		keep1,
		row("a", "shadow", "[1,3]", "[1,2,3]", "1", "c3"),
		keep2,
		row("c", "champion", "[2,3]", "[1,2,3,4,5,6]", "1", "c4"),
		row("d", "champion", "[1,3]", "[1,null,3]", "0", "c5"),
		row("e", "champion", "[1,3]", "[1,2,3]", "2", "c6"),
		row("f", "champion", "[1,4]", "[1,2,3,4]", "0", "c7"),
		row("a", "champion", "[1,3]", "[1,2,3]", "0", "c8"),
		"not json\n",
	}
	d := newDataset("features", 100, 0.5)
	if n := d.addPage([]byte(strings.Join(lines, ""))); n != len(lines) {
		t.Fatalf("read %d lines, want %d", n, len(lines))
	}
	want := map[string]int{skipShadow: 1, skipBatch: 1, skipNonFinite: 1, skipLabel: 1, skipWidth: 1, skipDuplicate: 1, skipMalformed: 1}
	if d.kept() != 2 || d.features != 3 || len(d.skipped) != len(want) {
		t.Fatalf("kept %d rows of %d features, skipped %v; want 2 of 3, skipped %v", d.kept(), d.features, d.skipped, want)
	}
	for k, v := range want {
		if d.skipped[k] != v {
			t.Errorf("skipped[%s] = %d, want %d", k, d.skipped[k], v)
		}
	}
	sum := sha256.Sum256([]byte(keep1 + keep2))
	if got := d.digestHex(); got != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Fatalf("digest %s is not the sha256 of the two kept lines", got)
	}
	if d.cursor != "c8" {
		t.Fatalf("cursor %q, want the last row's c8", d.cursor)
	}

	// --max-rows stops at the cap and the cursor stays at the last row read,
	// so the lineage's range is exactly what was trained on.
	capped := newDataset("features", 1, 0.5)
	capped.addPage([]byte(keep1 + keep2))
	if capped.kept() != 1 || capped.cursor != "c1" || capped.lines != 1 {
		t.Fatalf("capped at 1: kept %d, cursor %q, lines %d", capped.kept(), capped.cursor, capped.lines)
	}
}

// TestBuildLineage: the code commit comes from the binary's VCS stamp,
// marked dirty when the tree was modified.
func TestBuildLineage(t *testing.T) {
	bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/modelgate/modelgate"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "true"}}}
	if c, r := buildLineage(bi); c != "abc123-dirty" || r != "github.com/modelgate/modelgate" {
		t.Fatalf("got %q %q", c, r)
	}
	bi.Settings[1].Value = "false"
	if c, _ := buildLineage(bi); c != "abc123" {
		t.Fatalf("clean tree: got %q", c)
	}
	if c, _ := buildLineage(&debug.BuildInfo{}); c != "" {
		t.Fatalf("no stamp: got %q", c)
	}
}

// TestParseFlags: secrets come from the environment when the flags are
// absent, and a bad setting is a usage error naming the flag.
func TestParseFlags(t *testing.T) {
	env := map[string]string{envSecret: "s3cret", envToken: "tok"}
	c, err := parseFlags([]string{"--admin", "http://127.0.0.1:8081/", "--commit", "abc", "--min-rows", "50"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if string(c.Secret) != "s3cret" || c.Token != "tok" || c.Admin != "http://127.0.0.1:8081" || c.MinRows != 50 || c.Commit != "abc" {
		t.Fatalf("config: %+v", c)
	}
	f := func(args []string, env map[string]string, want string) {
		t.Helper()
		_, err := parseFlags(args, func(k string) string { return env[k] }, io.Discard)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: %v, want a usage error naming %q", args, err, want)
		}
	}
	f([]string{"--admin", "http://x", "--commit", "c"}, map[string]string{envToken: "t"}, "no webhook secret")
	f([]string{"--admin", "http://x", "--commit", "c"}, map[string]string{envSecret: "s"}, "no admin token")
	f([]string{"--commit", "c"}, env, "--admin is required")
	f([]string{"--admin", "ftp://x", "--commit", "c"}, env, `--admin "ftp://x" is not an http(s) URL`)
	f([]string{"--admin", "http://x", "--commit", "c", "--min-rows", "1"}, env, "--min-rows (1)")
	f([]string{"--admin", "http://x", "--commit", "c", "--holdout", "1"}, env, "--holdout (1)")
	f([]string{"--admin", "http://x", "--commit", "c", "--epochs", "-1"}, env, "Epochs (-1)")
}

// TestExportFromANonModelgateServerIsNotRetried: an --admin that points at
// something other than modelgate answers 200 without an export cursor; the
// same request would get the same answer, so the job fails at once, saying
// what is wrong.
func TestExportFromANonModelgateServerIsNotRetried(t *testing.T) {
	var calls atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		io.WriteString(w, "<html>welcome</html>\n")
	}))
	defer other.Close()
	_, url, ended := startRetrainer(t, testConfig(other.URL, "token"))
	body := testEvent("drift-other", other.URL+"/api/v1/models/fraud/export?labelled=true")
	if code, msg := post(t, url, body, lifecycle.Sign([]byte(testSecret), time.Now(), body)); code != http.StatusAccepted {
		t.Fatalf("signed event: %d %s", code, msg)
	}
	st := waitJob(t, ended)
	if st.State != StateFailed || !strings.Contains(st.Reason, "is "+other.URL+" a modelgate admin API?") || st.ExportAttempts != 1 || calls.Load() != 1 {
		t.Fatalf("job after %d calls: %+v", calls.Load(), st)
	}
}
