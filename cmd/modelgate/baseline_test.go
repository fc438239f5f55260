package main

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/ortlib"
)

// baselineRepoRoot walks up from the working directory to go.mod.
func baselineRepoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// TestBaselineCommand runs each baseline from the real binary: it starts,
// is ready, scores a demo request, and exits 0 on SIGTERM.
func TestBaselineCommand(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "modelgate")
	build := exec.Command("go", "build", "-o", bin, "./cmd/modelgate")
	build.Dir = baselineRepoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	onnx, err := demo.FraudModel(demo.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(dir, "fraud.onnx")
	if err := os.WriteFile(model, onnx, 0o644); err != nil {
		t.Fatal(err)
	}
	row := demo.SampleRequestRow(1)
	var req bytes.Buffer
	req.WriteString(`{"id":"cli","inputs":[{"name":"features","shape":[1,30],"datatype":"FP32","data":[`)
	for i, v := range row {
		if i > 0 {
			req.WriteByte(',')
		}
		req.WriteString(strconv.FormatFloat(float64(v), 'g', -1, 32))
	}
	req.WriteString(`]}]}`)

	client := &http.Client{Timeout: 10 * time.Second}
	for _, kind := range []string{"bare", "nethttp"} {
		cmd := exec.Command(bin, "baseline", kind, "--model", model, "--listen", "127.0.0.1:0", "--sessions", "1", "--ort-lib", ortlib.Path())
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("%s: no listening line: %v\nstderr: %s", kind, err, stderr.String())
		}
		_, rest, ok := strings.Cut(line, "listening on http://")
		if !ok {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("%s: unexpected line %q", kind, line)
		}
		addr := strings.Fields(rest)[0]
		resp, err := client.Get("http://" + addr + "/v2/health/ready")
		if err == nil {
			resp.Body.Close()
		}
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("%s: ready: %v %v", kind, err, resp)
		}
		resp, err = client.Post("http://"+addr+"/v2/models/fraud/infer", "application/json", bytes.NewReader(req.Bytes()))
		if err != nil {
			t.Errorf("%s: infer: %v", kind, err)
		} else {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte(`"model_version":"baseline"`)) || !bytes.Contains(b, []byte(`"probability"`)) {
				t.Errorf("%s: infer: %d %s", kind, resp.StatusCode, b)
			}
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: exit after SIGTERM: %v\nstderr: %s", kind, err, stderr.String())
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("%s: still running 15s after SIGTERM", kind)
		}
	}
}

// TestBaselineUsage checks the command line's mistakes exit 2.
func TestBaselineUsage(t *testing.T) {
	for _, args := range [][]string{
		{"baseline"},
		{"baseline", "grpc", "--model", "x.onnx"},
		{"baseline", "bare"},
		{"baseline", "nethttp", "--model", "x.onnx", "--sessions", "-1"},
		{"baseline", "bare", "--nope"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2; stderr %s", args, code, errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"baseline", "bare", "--model", filepath.Join(t.TempDir(), "missing.onnx")}, &out, &errb); code != 1 {
		t.Errorf("missing model file: exit %d, want 1", code)
	}
}
