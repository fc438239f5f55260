package main

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/oiptest"
)

// TestCLI drives a real node with the modelgate commands an operator types.
func TestCLI(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	lr, _ := demo.FraudModel(demo.DefaultSeed)
	lrPath := filepath.Join(dir, "fraud.onnx")
	os.WriteFile(lrPath, lr, 0o644)
	n := startNode(t, bin, filepath.Join(dir, "data"), "--model", "fraud="+lrPath)
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append(args, "--admin", n.admin, "--data-dir", n.dataDir)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("modelgate %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	mlpPath := filepath.Join(dir, "mlp.onnx")
	if out, err := exec.Command(bin, "demo", "model", "--kind", "mlp", "--hidden", "16", "--out", mlpPath).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"model", "list"}, "fraud  v1"},
		{[]string{"model", "register", "fraud", "--file", mlpPath}, "registered fraud v2"},
		{[]string{"model", "stage", "fraud", "2", "shadow", "--reason", "watch it"}, "set_stage fraud v2: shadow"},
		{[]string{"model", "promote", "fraud", "2", "--reason", "better"}, "promote fraud v2: champion"},
		{[]string{"model", "rollback", "fraud", "--reason", "worse"}, "rollback fraud v1: champion"},
		{[]string{"model", "retire", "fraud", "2"}, "retired"},
		{[]string{"model", "show", "fraud"}, "v2       retired"},
		{[]string{"model", "show", "fraud", "2"}, `"stage": "retired"`},
		{[]string{"model", "policy", "fraud"}, `"promotion"`},
		{[]string{"audit", "--model", "fraud"}, "worse"},
	} {
		if out := run(c.args...); !strings.Contains(out, c.want) {
			t.Fatalf("modelgate %s: want %q in:\n%s", strings.Join(c.args, " "), c.want, out)
		}
	}
	pol := filepath.Join(dir, "pol.json")
	os.WriteFile(pol, []byte(`{"prediction_log":{"mode":"durable"}}`), 0o644)
	if out := run("model", "policy", "fraud", "--set", pol); !strings.Contains(out, "set_policy fraud") {
		t.Fatalf("policy --set: %s", out)
	}
	body := bytes.Replace(oiptest.GoodRequest(1), []byte(`"id":"42"`), []byte(`"id":"cli-1"`), 1)
	resp, err := http.Post("http://"+n.addr+"/v2/models/fraud/infer", "application/json", bytes.NewReader(body))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("score: %v %v", err, resp)
	}
	resp.Body.Close()
	// The reconciler applies the durable mode, and an async record is
	// committed, some milliseconds later: ask until the record is there
	// (it was a 200 ms sleep, which a busy machine could outlast).
	for deadline := time.Now().Add(time.Minute); ; {
		out, err := exec.Command(bin, "predictions", "get", "cli-1", "--admin", n.admin, "--data-dir", n.dataDir).CombinedOutput()
		if err == nil && strings.Contains(string(out), `"id": "cli-1"`) {
			if !strings.Contains(string(out), `"registered_by": "modelgate serve"`) {
				t.Fatalf("predictions get: %s", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("predictions get: %v %s", err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	labels := filepath.Join(dir, "labels.ndjson")
	os.WriteFile(labels, []byte(`{"id":"cli-1","label":1}`+"\n"), 0o644)
	if out := run("labels", "send", "fraud", "--file", labels); !strings.Contains(out, `"stored": 1`) {
		t.Fatalf("labels send: %s", out)
	}
	if out := run("predictions", "export", "fraud", "--labelled"); !strings.Contains(out, `"id":"cli-1"`) || !strings.Contains(out, `"label":1`) {
		t.Fatalf("predictions export: %s", out)
	}
	// Without a token the CLI says how to get one.
	cmd := exec.Command(bin, "model", "list", "--admin", n.admin, "--data-dir", t.TempDir())
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "MODELGATE_TOKEN") {
		t.Fatalf("no token: %v %s", err, out)
	}
}
