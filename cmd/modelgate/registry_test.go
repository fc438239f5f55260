package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/badmodels"
	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/oiptest"
)

// node is a modelgate serve process under test.
type node struct {
	cmd               *exec.Cmd
	addr, admin, raft string
	dataDir, token    string
	logs              *bytes.Buffer
	done              chan struct{} // closed when the process has exited
	waitErr           error
}

// wait waits for the process to exit and returns how it ended.
func (n *node) wait() error { <-n.done; return n.waitErr }

// startNode runs `modelgate serve` on free loopback ports and waits until it
// is ready. A port picked free can be taken by another test binary before
// the node binds it, so a node that dies on "address already in use" is
// started again on new ports.
func startNode(t *testing.T, bin, dataDir string, args ...string) *node {
	t.Helper()
	for attempt := 1; ; attempt++ {
		n := &node{addr: freeAddr(t), admin: freeAddr(t), raft: freeAddr(t), dataDir: dataDir, logs: &bytes.Buffer{}, done: make(chan struct{})}
		n.cmd = exec.Command(bin, append([]string{"serve", "--listen", n.addr, "--admin-listen", n.admin, "--raft-listen", n.raft, "--data-dir", dataDir}, args...)...)
		n.cmd.Stderr = n.logs
		if err := n.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { n.waitErr = n.cmd.Wait(); close(n.done) }()
		if n.ready(t, attempt) {
			t.Cleanup(func() { n.cmd.Process.Kill(); <-n.done })
			b, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
			if err != nil {
				t.Fatal(err)
			}
			n.token = strings.TrimSpace(string(b))
			return n
		}
	}
}

// ready waits for the node to report ready. It reports false when the node
// died on a port another process took first and may be started again.
func (n *node) ready(t *testing.T, attempt int) bool {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-n.done:
			if attempt < 5 && strings.Contains(n.logs.String(), "address already in use") {
				return false
			}
			t.Fatalf("the node exited before it was ready (%v):\n%s", n.waitErr, n.logs.String())
		default:
		}
		resp, err := http.Get("http://" + n.addr + "/v2/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return true
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 30s:\n%s", n.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// api calls the admin API and returns the status and body.
func (n *node) api(t *testing.T, method, path string, body io.Reader, contentType string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+n.admin+path, body)
	req.Header.Set("Authorization", "Bearer "+n.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (n *node) register(t *testing.T, model string, onnx []byte, metadata string) (int, []byte) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if metadata != "" {
		mw.WriteField("metadata", metadata)
	}
	part, _ := mw.CreateFormFile("model", "model.onnx")
	part.Write(onnx)
	mw.Close()
	return n.api(t, "POST", "/api/v1/models/"+model+"/versions", &buf, mw.FormDataContentType())
}

// scorers score the unversioned model from 8 goroutines until stopped and
// count failures and the versions that answered.
type scorers struct {
	stop     atomic.Bool
	wg       sync.WaitGroup
	ok, bad  atomic.Int64
	mu       sync.Mutex
	versions map[string]int
	errs     []string
}

func score(n *node) *scorers {
	s := &scorers{versions: map[string]int{}}
	body := oiptest.GoodRequest(1)
	for g := 0; g < 8; g++ {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			c := &http.Client{Timeout: 10 * time.Second}
			for !s.stop.Load() {
				resp, err := c.Post("http://"+n.addr+"/v2/models/fraud/infer", "application/json", bytes.NewReader(body))
				if err != nil {
					s.fail(err.Error())
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var r struct {
					Version string `json:"model_version"`
				}
				if resp.StatusCode != 200 || json.Unmarshal(b, &r) != nil {
					s.fail(fmt.Sprintf("%d %s", resp.StatusCode, b))
					continue
				}
				s.ok.Add(1)
				s.mu.Lock()
				s.versions[r.Version]++
				s.mu.Unlock()
			}
		}()
	}
	return s
}

func (s *scorers) fail(msg string) {
	s.bad.Add(1)
	s.mu.Lock()
	if len(s.errs) < 5 {
		s.errs = append(s.errs, msg)
	}
	s.mu.Unlock()
}

// answered waits until version has answered once more than it had when
// called, or a minute passes (only a hang takes that long). It replaces
// sleeping after a promotion or rollback, which on a busy machine could
// pass before the reconciler had switched versions.
func (s *scorers) answered(t *testing.T, version string) {
	t.Helper()
	s.mu.Lock()
	mark := s.versions[version]
	s.mu.Unlock()
	deadline := time.Now().Add(time.Minute)
	for {
		s.mu.Lock()
		n := s.versions[version]
		s.mu.Unlock()
		if n > mark {
			return
		}
		if s.bad.Load() > 0 || time.Now().After(deadline) {
			t.Fatalf("version %s did not answer within a minute (%d failures: %v)", version, s.bad.Load(), s.errs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *scorers) finish(t *testing.T) map[string]int {
	s.stop.Store(true)
	s.wg.Wait()
	if s.bad.Load() > 0 {
		t.Fatalf("%d scoring requests failed (of %d): %v", s.bad.Load(), s.ok.Load()+s.bad.Load(), s.errs)
	}
	return s.versions
}

// TestRegistryLifecycle runs a node the way an operator does: it serves the
// demo model, refuses six hostile or broken uploads with their reasons in
// the answer and the audit log, takes an MLP, promotes and rolls back five
// times, all while eight clients score without one failure; then it is
// SIGKILLed and comes back from its data dir with the same registry, audit
// log and champion.
func TestRegistryLifecycle(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	lr, err := demo.FraudModel(demo.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	lrPath := filepath.Join(dir, "fraud.onnx")
	os.WriteFile(lrPath, lr, 0o644)
	// Drift off: its reference, bootstrapped from the first 10,000 scored
	// rows, is written to the registry whenever the sample fills, which
	// could fall between reading the registry and the SIGKILL below; this
	// test is about what a kill keeps, not when drift writes.
	n := startNode(t, bin, filepath.Join(dir, "data"), "--model", "fraud="+lrPath, "--drift=false")

	sc := score(n)
	cases, err := badmodels.All(lr)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		code, b := n.register(t, "fraud", c.Bytes, c.Metadata)
		var out struct {
			Error   string `json:"error"`
			Version int    `json:"version"`
			Stage   string `json:"stage"`
		}
		json.Unmarshal(b, &out)
		if code != 400 || out.Stage != "failed" || !strings.Contains(strings.ToLower(out.Error), strings.ToLower(c.Reason)) {
			t.Fatalf("%s: %d %s, want 400, stage failed and a reason mentioning %q", c.Name, code, b, c.Reason)
		}
		_, audit := n.api(t, "GET", fmt.Sprintf("/api/v1/audit?model=fraud&version=%d", out.Version), nil, "")
		if !strings.Contains(string(audit), `"to":"failed"`) || !strings.Contains(strings.ToLower(string(audit)), strings.ToLower(c.Reason)) {
			t.Fatalf("%s: the audit log lacks the refusal: %s", c.Name, audit)
		}
	}
	mlp, err := demo.FraudMLP(demo.DefaultSeed, 32)
	if err != nil {
		t.Fatal(err)
	}
	meta := `{"lineage":{"dataset_uri":"synthetic://fraud","code_commit":"abc123","training_metrics":{"auc":0.9}},"idempotency_key":"mlp-1"}`
	code, b := n.register(t, "fraud", mlp, meta)
	if code != 201 || !strings.Contains(string(b), `"stage":"validated"`) {
		t.Fatalf("register mlp: %d %s", code, b)
	}
	var reg struct{ Version int }
	json.Unmarshal(b, &reg)
	// The same upload again (a retry) registers nothing new; the same key
	// for a different registration is refused.
	if code, b2 := n.register(t, "fraud", mlp, meta); code != 201 || !bytes.Contains(b2, []byte(fmt.Sprintf(`"version":%d`, reg.Version))) {
		t.Fatalf("retried registration: %d %s", code, b2)
	}
	if code, b2 := n.register(t, "fraud", mlp, `{"idempotency_key":"mlp-1"}`); code != 409 {
		t.Fatalf("a reused key for another registration: %d %s", code, b2)
	}
	for i := 0; i < 5; i++ {
		if code, b := n.api(t, "POST", "/api/v1/models/fraud/promote", strings.NewReader(fmt.Sprintf(`{"version":%d,"reason":"try %d"}`, reg.Version, i)), "application/json"); code != 200 {
			t.Fatalf("promote: %d %s", code, b)
		}
		sc.answered(t, fmt.Sprint(reg.Version))
		if code, b := n.api(t, "POST", "/api/v1/models/fraud/rollback", strings.NewReader(`{"reason":"back"}`), "application/json"); code != 200 {
			t.Fatalf("rollback: %d %s", code, b)
		}
		sc.answered(t, "1")
	}
	versions := sc.finish(t)
	if versions["1"] == 0 || versions[fmt.Sprint(reg.Version)] == 0 {
		t.Fatalf("answers by version: %v: both versions should have answered", versions)
	}
	t.Logf("answers by version across 5 promotions and rollbacks: %v, none failed", versions)

	_, models := n.api(t, "GET", "/api/v1/models/fraud", nil, "")
	_, audit := n.api(t, "GET", "/api/v1/audit?limit=10000", nil, "")
	n.cmd.Process.Signal(syscall.SIGKILL)
	n.wait()

	n2 := startNode(t, bin, n.dataDir)
	_, models2 := n2.api(t, "GET", "/api/v1/models/fraud", nil, "")
	_, audit2 := n2.api(t, "GET", "/api/v1/audit?limit=10000", nil, "")
	if !bytes.Equal(models, models2) {
		t.Fatalf("the registry changed across SIGKILL:\n%s\n%s", models, models2)
	}
	if !bytes.Equal(audit, audit2) {
		t.Fatal("the audit log changed across SIGKILL")
	}
	resp, err := http.Post("http://"+n2.addr+"/v2/models/fraud/infer", "application/json", bytes.NewReader(oiptest.GoodRequest(1)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"model_version":"1"`)) {
		t.Fatalf("after restart: %d %s", resp.StatusCode, body)
	}
}
