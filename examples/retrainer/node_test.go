package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/fraud"
)

// The modelgate binary, built once per test run (the way cmd/modelgate's
// tests build it) and only by the tests that start a node.
var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func modelgateBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "retrainer-test-")
		if buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "modelgate")
		var out []byte
		out, buildErr = exec.Command("go", "build", "-o", buildBin, "github.com/modelgate/modelgate/cmd/modelgate").CombinedOutput()
		if buildErr != nil {
			buildErr = &buildError{err: buildErr, out: string(out)}
		}
	})
	if buildErr != nil {
		t.Fatalf("go build cmd/modelgate: %v", buildErr)
	}
	return buildBin
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// node is a `modelgate serve` process under test.
type node struct {
	cmd         *exec.Cmd
	addr, admin string
	token       string
	logs        *syncBuffer
	done        chan struct{}
	waitErr     error
}

// syncBuffer is a bytes.Buffer the process writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startNode runs `modelgate serve` on free loopback ports and waits until it
// is ready; a node that lost a port to another process is started again
// on new ones.
func startNode(t *testing.T, bin, dataDir string, args ...string) *node {
	t.Helper()
	for attempt := 1; ; attempt++ {
		n := &node{addr: freeAddr(t), admin: freeAddr(t), logs: &syncBuffer{}, done: make(chan struct{})}
		n.cmd = exec.Command(bin, append([]string{"serve", "--listen", n.addr, "--admin-listen", n.admin,
			"--raft-listen", freeAddr(t), "--data-dir", dataDir}, args...)...)
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

// ready waits for the node to report ready: a minute is a hang, even on a
// machine busy with other builds.
func (n *node) ready(t *testing.T, attempt int) bool {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
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
			n.cmd.Process.Kill()
			t.Fatalf("not ready after a minute:\n%s", n.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// api calls the admin API with the node's admin token.
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

// register uploads a model version the way an operator would.
func (n *node) register(t *testing.T, model string, onnx []byte) (int, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	part, _ := mw.CreateFormFile("model", "model.onnx")
	part.Write(onnx)
	mw.Close()
	return n.api(t, "POST", "/api/v1/models/"+model+"/versions", &buf, mw.FormDataContentType())
}

// infer scores one OIP request and returns the version that answered.
func (n *node) infer(t *testing.T, body []byte) string {
	t.Helper()
	resp, err := http.Post("http://"+n.addr+"/v2/models/fraud/infer", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("score: %d %s", resp.StatusCode, b)
	}
	const key = `"model_version":"`
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		t.Fatalf("score: no model_version in %s", b)
	}
	v := b[i+len(key):]
	return string(v[:bytes.IndexByte(v, '"')])
}

// txBody is an OIP request for n transactions drawn from g, and the ground
// truth of each (the generator's fraud label).
func txBody(g *fraud.Generator, id string, n int) ([]byte, []bool) {
	row := make([]float32, fraud.NumFeatures)
	labels := make([]bool, n)
	b := []byte(`{"id":"` + id + `","inputs":[{"name":"features","datatype":"FP32","shape":[` + strconv.Itoa(n) + `,30],"data":[`)
	for r := range n {
		labels[r] = g.Next(row)
		for i, v := range row {
			if r > 0 || i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendFloat(b, float64(v), 'g', -1, 32)
		}
	}
	return append(b, "]}]}"...), labels
}

// startRetrainer runs a retrainer in this process on a loopback port, as
// main would, and reports each job's end on the returned channel.
func startRetrainer(t *testing.T, cfg Config) (*retrainer, string, <-chan JobStatus) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r, err := newRetrainer(ctx, cfg, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ended := make(chan JobStatus, 16)
	r.onChange = func(s JobStatus) { ended <- s }
	srv := httptest.NewServer(r.handler())
	t.Cleanup(func() {
		srv.Close()
		cancel()
		r.wait(context.Background())
	})
	return r, srv.URL, ended
}

// waitJob waits for the next job to end; minutes are a hang guard only.
func waitJob(t *testing.T, ended <-chan JobStatus) JobStatus {
	t.Helper()
	select {
	case s := <-ended:
		return s
	case <-time.After(5 * time.Minute):
		t.Fatal("no retraining job ended within 5 minutes")
	}
	return JobStatus{}
}

// testWriter sends a component's log lines to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
