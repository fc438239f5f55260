package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/fraud"
	"github.com/modelgate/modelgate/internal/validate"
)

// runCLI runs `modelgate validate args...` with stdin and returns stdout,
// stderr and the exit status.
func runCLI(t *testing.T, bin string, stdin []byte, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"validate"}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestValidateCommand runs the real binary, built once for its subtests.
func TestValidateCommand(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "modelgate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Run("cli", func(t *testing.T) { testValidateCLI(t, bin) })
	t.Run("memory limit", func(t *testing.T) { testValidateMemoryLimit(t, bin) })
}

func testValidateCLI(t *testing.T, bin string) {
	res, err := demo.TrainFraudModel(demo.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	model := writeFile(t, "fraud.onnx", res.ONNX)

	out, stderr, code := runCLI(t, bin, nil, model)
	var rep validate.Report
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || !rep.Passed || rep.Signature == nil || rep.Signature.Inputs[0].Name != "features" {
		t.Fatalf("demo model: exit %d\n%s\n%s", code, out, stderr)
	}
	out, _, code = runCLI(t, bin, res.ONNX, "--stdin", "--json=false")
	if code != 0 || !strings.HasPrefix(out, "PASSED") || !strings.Contains(out, "input  features FP32 [-1 30]") {
		t.Fatalf("--json=false: exit %d\n%s", code, out)
	}

	out, stderr, code = runCLI(t, bin, []byte("definitely not onnx"), "--stdin")
	rep = validate.Report{}
	if code != 1 || json.Unmarshal([]byte(out), &rep) != nil || rep.Passed || !strings.Contains(rep.Reason, "not an ONNX model") ||
		!strings.Contains(stderr, "the model did not pass") {
		t.Fatalf("bad model: exit %d\n%s\n%s", code, out, stderr)
	}

	// Golden pairs from a file: the Go model's own prediction passes, a
	// shifted one fails.
	x, _ := demo.SampleRows(3, 1)
	golden := func(shift float32) string {
		in := make([]any, len(x))
		for i, v := range x {
			in[i] = v
		}
		pairs := []validate.GoldenPair{{
			Inputs:  []validate.GoldenTensor{{Name: "features", Shape: []int64{1, fraud.NumFeatures}, Datatype: "FP32", Data: in}},
			Outputs: []validate.GoldenTensor{{Name: "probability", Shape: []int64{1, 1}, Datatype: "FP32", Data: []any{res.Model.Predict(x) + shift}}},
		}}
		b, _ := json.Marshal(pairs)
		return writeFile(t, "golden.json", b)
	}
	if out, stderr, code = runCLI(t, bin, nil, "--golden", golden(0), model); code != 0 {
		t.Fatalf("golden within tolerance: exit %d\n%s\n%s", code, out, stderr)
	}
	if out, _, code = runCLI(t, bin, nil, "--golden", golden(0.5), "--json=false", model); code != 1 || !strings.Contains(out, "FAIL    golden") {
		t.Fatalf("golden outside tolerance: exit %d\n%s", code, out)
	}

	usage := func(want string, stdin []byte, args ...string) {
		t.Helper()
		out, stderr, code := runCLI(t, bin, stdin, args...)
		if code != 2 || out != "" || !strings.Contains(stderr, want) {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q; want exit 2 saying %q", args, code, out, stderr, want)
		}
	}
	usage("want a model file or --stdin", nil)
	usage("not both", res.ONNX, "--stdin", model)
	usage("want one model file", nil, model, model)
	usage("want a byte count", nil, "--max-memory", "lots", model)
	usage("MaxMemory", nil, "--max-memory", "1MiB", model)
	usage("cannot read the model", nil, filepath.Join(t.TempDir(), "missing.onnx"))
	usage("cannot read golden pairs", nil, "--golden", filepath.Join(t.TempDir(), "missing.json"), model)
	usage("cannot decode golden pairs", nil, "--golden", writeFile(t, "bad.json", []byte(`{"inputs":`)), model)
	usage("has 2 values", nil, "--golden", writeFile(t, "short.json",
		[]byte(`[{"inputs":[{"name":"features","shape":[1,30],"datatype":"FP32","data":[1,2]}],"outputs":[{"name":"probability","datatype":"FP32","data":[0.5]}]}]`)), model)
}

// testValidateMemoryLimit: the address-space limit is in place in the
// child before it reads the model or loads ONNX Runtime.
func testValidateMemoryLimit(t *testing.T, bin string) {
	cmd := exec.Command(bin, "validate", "--stdin", "--max-memory", "3GiB")
	cmd.Env = append(os.Environ(), validate.EnvTestSleep+"=10s")
	cmd.Stdin = bytes.NewReader(nil)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	limits := fmt.Sprintf("/proc/%d/limits", cmd.Process.Pid)
	deadline := time.Now().Add(time.Minute) // only a hang: the child sets it first thing
	for {
		b, err := os.ReadFile(limits)
		if err != nil {
			t.Skipf("cannot read %s: %v", limits, err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "Max address space") && strings.Contains(line, "3221225472") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no 3 GiB address-space limit in %s:\n%s", limits, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
