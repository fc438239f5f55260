package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/modelgate/modelgate/internal/demo"
)

// modelState reads a model's champion and the stage of each version.
func modelState(t *testing.T, n *node, model string) (champion int, stages map[int]string) {
	t.Helper()
	code, b := n.api(t, "GET", "/api/v1/models/"+model, nil, "")
	if code != 200 {
		t.Fatalf("GET model %s: %d %s", model, code, b)
	}
	var m struct {
		Champion int `json:"champion"`
		Versions []struct {
			Version int    `json:"version"`
			Stage   string `json:"stage"`
		} `json:"versions"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	stages = map[int]string{}
	for _, v := range m.Versions {
		stages[v.Version] = v.Stage
	}
	return m.Champion, stages
}

// stopNode sends SIGTERM and waits for a clean exit.
func stopNode(t *testing.T, n *node) {
	t.Helper()
	n.cmd.Process.Signal(syscall.SIGTERM)
	if err := n.wait(); err != nil {
		t.Fatalf("node did not stop cleanly (%v):\n%s", err, n.logs.String())
	}
}

// TestRestartWithModelKeepsPromotedChampion is issue 12's "restarting with
// --model undoes the operator's promotions": a node started with --model
// fraud=F, an admin promotes another version, the node restarts with the
// same --model: the admin's champion must stay, with no new promotion in the
// audit log. A new file for that model becomes a new version, validated but
// not champion; a model whose champion is still its previous --model file
// takes the new file as champion.
func TestRestartWithModelKeepsPromotedChampion(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	write := func(name string, b []byte, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	lr, err := demo.FraudModel(demo.DefaultSeed)
	lrPath := write("lr.onnx", lr, err)
	mlp, err := demo.FraudMLP(demo.DefaultSeed, 32)
	if err != nil {
		t.Fatal(err)
	}
	mlp2, err := demo.FraudMLP(demo.DefaultSeed, 16)
	mlp2Path := write("mlp2.onnx", mlp2, err)
	data := filepath.Join(dir, "data")

	n := startNode(t, bin, data, "--model", "fraud="+lrPath, "--model", "other="+lrPath)
	if code, b := n.register(t, "fraud", mlp, ""); code != 201 || !strings.Contains(string(b), `"version":2`) {
		t.Fatalf("register the MLP: %d %s", code, b)
	}
	if code, b := n.api(t, "POST", "/api/v1/models/fraud/promote", strings.NewReader(`{"version":2,"reason":"better AUC"}`), "application/json"); code != 200 {
		t.Fatalf("promote v2: %d %s", code, b)
	}
	_, auditBefore := n.api(t, "GET", "/api/v1/audit?model=fraud", nil, "")
	stopNode(t, n)

	// The same --model again: nothing changes.
	n = startNode(t, bin, data, "--model", "fraud="+lrPath, "--model", "other="+lrPath)
	if champ, stages := modelState(t, n, "fraud"); champ != 2 || stages[1] != "retired" || len(stages) != 2 {
		t.Fatalf("after a restart with --model fraud=lr: champion v%d, stages %v; want the admin's v2 champion and v1 retired", champ, stages)
	}
	if _, audit := n.api(t, "GET", "/api/v1/audit?model=fraud", nil, ""); string(audit) != string(auditBefore) {
		t.Fatalf("the restart wrote to fraud's audit log:\nbefore %s\nafter  %s", auditBefore, audit)
	}
	stopNode(t, n)

	// A new file: a new version, validated; the admin's champion stays, and
	// the log says why. other's champion was its --model file: the new file
	// replaces it.
	n = startNode(t, bin, data, "--model", "fraud="+mlp2Path, "--model", "other="+mlp2Path)
	if champ, stages := modelState(t, n, "fraud"); champ != 2 || stages[3] != "validated" {
		t.Fatalf("after a restart with a new --model file: champion v%d, stages %v; want v2 champion and the new file as validated v3", champ, stages)
	}
	if !strings.Contains(n.logs.String(), "v2 stays champion: it was chosen through the registry") {
		t.Fatalf("the log does not say why the new file is not the champion:\n%s", n.logs.String())
	}
	if champ, stages := modelState(t, n, "other"); champ != 2 || stages[1] != "retired" {
		t.Fatalf("other: champion v%d, stages %v; want its new --model file (v2) to replace its previous one", champ, stages)
	}
}

// TestServeRegistersTheDemoModelWithItsProfile is what `make run` does:
// `demo model --profile-out` writes the model's drift reference beside it,
// `serve --profile` registers it with the --model file, so drift is judged
// from the first request instead of after a day of sampling. A --profile
// without its --model, and a file that is no profile, are refused.
func TestServeRegistersTheDemoModelWithItsProfile(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	model, prof := filepath.Join(dir, "fraud.onnx"), filepath.Join(dir, "fraud.profile.json")
	if out, err := exec.Command(bin, "demo", "model", "--out", model, "--profile-out", prof).CombinedOutput(); err != nil {
		t.Fatalf("demo model --profile-out: %v\n%s", err, out)
	}
	for _, bad := range [][]string{
		{"--model", "fraud=" + model, "--profile", "other=" + prof},
		{"--model", "fraud=" + model, "--profile", "fraud=" + model},
	} {
		args := append([]string{"serve", "--data-dir", filepath.Join(dir, "refused"), "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--raft-listen", "127.0.0.1:0"}, bad...)
		if out, err := exec.Command(bin, args...).CombinedOutput(); err == nil || !strings.Contains(string(out), "--profile") {
			t.Fatalf("serve %v: %v, want a refusal naming --profile:\n%s", bad, err, out)
		}
	}

	n := startNode(t, bin, filepath.Join(dir, "data"), "--model", "fraud="+model, "--profile", "fraud="+prof)
	code, b := n.api(t, "GET", "/api/v1/models/fraud/versions/1", nil, "")
	if code != 200 || !strings.Contains(string(b), `"reference_profile"`) {
		t.Fatalf("v1 has no reference profile: %d %s", code, b)
	}
	if code, b := n.api(t, "GET", "/api/v1/models/fraud/drift", nil, ""); code != 200 || strings.Contains(string(b), `"bootstrapping"`) {
		t.Fatalf("drift with a registered profile: %d %s; want judged, not bootstrapping", code, b)
	}
	stopNode(t, n)
}
