package main

import (
	"bytes"
	"net"
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

	"github.com/modelgate/modelgate/internal/oiptest"
)

// buildBinary builds modelgate once per test run into a temp dir.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "modelgate")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestServeDrainsOnSIGTERM runs the real binary: demo model built by the
// demo command, served, scored continuously, then SIGTERM: every request
// sent before the signal must succeed and the process must exit 0.
func TestServeDrainsOnSIGTERM(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	model := filepath.Join(dir, "fraud.onnx")
	out, err := exec.Command(bin, "demo", "model", "--out", model).CombinedOutput()
	if err != nil {
		t.Fatalf("demo model: %v\n%s", err, out)
	}
	out2, _ := exec.Command(bin, "demo", "model", "--out", model+"2").CombinedOutput()
	if strings.Fields(string(out))[3] != strings.Fields(string(out2))[3] || !strings.Contains(string(out), "sha256") {
		t.Fatalf("demo model is not deterministic:\n%s\n%s", out, out2)
	}
	n := startNode(t, bin, filepath.Join(dir, "data"), "--model", "fraud="+model)
	addr, cmd, logs := n.addr, n.cmd, n.logs

	body := oiptest.GoodRequest(4)
	var (
		wg       sync.WaitGroup
		ok, bad  atomic.Int64
		signaled atomic.Bool
	)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 10 * time.Second}
			for !signaled.Load() {
				resp, err := c.Post("http://"+addr+"/v2/models/fraud/infer", "application/json", bytes.NewReader(body))
				if err != nil {
					if !signaled.Load() {
						bad.Add(1)
						t.Errorf("request before SIGTERM failed: %v", err)
					}
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					bad.Add(1)
					t.Errorf("status %d", resp.StatusCode)
					return
				}
				ok.Add(1)
			}
		}()
	}
	// SIGTERM once requests are being answered (a fixed sleep could end
	// before the first one on a busy machine); a minute is a hang.
	for deadline := time.Now().Add(time.Minute); ok.Load() < 8; {
		if bad.Load() > 0 || time.Now().After(deadline) {
			t.Fatalf("before SIGTERM: %d requests answered, %d failed", ok.Load(), bad.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	signaled.Store(true)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	select {
	case <-n.done:
		if err := n.waitErr; err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("did not exit 15s after SIGTERM:\n%s", logs.String())
	}
	if ok.Load() == 0 || bad.Load() > 0 {
		t.Fatalf("%d requests succeeded, %d failed", ok.Load(), bad.Load())
	}
	if !strings.Contains(logs.String(), "msg=stopped") {
		t.Fatalf("no clean stop in the log:\n%s", logs.String())
	}
}

func TestServeRefusesBadModel(t *testing.T) {
	bin := buildBinary(t)
	bad := filepath.Join(t.TempDir(), "bad.onnx")
	os.WriteFile(bad, []byte("not a model"), 0o644)
	var out []byte
	var err error
	for attempt := 0; attempt < 5; attempt++ { // a port picked free may be taken before serve binds it
		cmd := exec.Command(bin, "serve", "--listen", freeAddr(t), "--admin-listen", freeAddr(t), "--raft-listen", freeAddr(t), "--data-dir", t.TempDir(), "--model", "x="+bad)
		if out, err = cmd.CombinedOutput(); !strings.Contains(string(out), "address already in use") {
			break
		}
	}
	if err == nil || !strings.Contains(string(out), "validation failed: the file is not an ONNX model") {
		t.Fatalf("serving garbage: err=%v\n%s", err, out)
	}
	out, err = exec.Command(bin, "serve", "--ort-lib", "/nonexistent.so", "--data-dir", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "make ort") {
		t.Fatalf("missing ORT library: err=%v\n%s", err, out)
	}
	out, err = exec.Command(bin, "serve", "--model", "noequals").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("bad flag: err=%v\n%s", err, out)
	}
}
