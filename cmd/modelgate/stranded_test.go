package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/artifact"
	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/validate"
)

// versionRecord is the part of GET …/versions/{v} these tests read.
type versionRecord struct {
	Digest     string `json:"digest"`
	Stage      string `json:"stage"`
	Validation *struct {
		Passed bool   `json:"passed"`
		Reason string `json:"reason"`
	} `json:"validation"`
}

// TestKillBetweenRegisterAndValidate is issue 12's "a kill between register
// and validate leaves versions in registered forever": two registrations
// commit while their validation children hang (the gate's test sleep), the
// node is SIGKILLed, one version's artifact is then lost; on restart the
// node must validate the one whose artifact is there (the first version of
// its model: champion) and fail the other with the reason, before it
// reports ready.
func TestKillBetweenRegisterAndValidate(t *testing.T) {
	bin := buildBinary(t)
	data := filepath.Join(t.TempDir(), "data")
	lr, err := demo.FraudModel(demo.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	mlp, err := demo.FraudMLP(demo.DefaultSeed, 16)
	if err != nil {
		t.Fatal(err)
	}

	// The children sleep far longer than the test waits; they die with
	// the node (Pdeathsig).
	t.Setenv(validate.EnvTestSleep, "10m")
	n := startNode(t, bin, data, "--validate-timeout", "15m")
	for i, onnx := range [][]byte{lr, mlp} {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		part, _ := mw.CreateFormFile("model", "model.onnx")
		part.Write(onnx)
		mw.Close()
		req, _ := http.NewRequest("POST", "http://"+n.admin+"/api/v1/models/stranded/versions", &buf)
		req.Header.Set("Authorization", "Bearer "+n.token)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		// The answer never comes: the node is killed while validating.
		go func() {
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		// One at a time, so the numbers follow the order.
		deadline := time.Now().Add(2 * time.Minute)
		for {
			code, b := n.api(t, "GET", "/api/v1/models/stranded", nil, "")
			if code == 200 && strings.Count(string(b), `"stage":"registered"`) == i+1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("registration %d never committed: %d %s\n%s", i+1, code, b, n.logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	n.cmd.Process.Signal(syscall.SIGKILL)
	n.wait()

	// The second upload is lost with the crash.
	store, err := artifact.Open(filepath.Join(data, "artifacts"), artifact.Config{})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(mlp)
	lost := hex.EncodeToString(sum[:])
	if err := store.Delete(lost); err != nil {
		t.Fatal(err)
	}
	store.Close()

	os.Unsetenv(validate.EnvTestSleep)
	n = startNode(t, bin, data)
	versions := map[string]versionRecord{}
	for v, onnx := range map[string][]byte{"1": lr, "2": mlp} {
		code, b := n.api(t, "GET", "/api/v1/models/stranded/versions/"+v, nil, "")
		var rec versionRecord
		json.Unmarshal(b, &rec)
		sum := sha256.Sum256(onnx)
		if code != 200 || rec.Digest != hex.EncodeToString(sum[:]) {
			t.Fatalf("GET v%s: %d %s; want the file registered as v%s", v, code, b, v)
		}
		versions[v] = rec
	}
	if v := versions["1"]; v.Stage != "champion" || v.Validation == nil || !v.Validation.Passed {
		t.Fatalf("v1 (artifact kept): stage %s, validation %+v; want validated at start, champion", v.Stage, v.Validation)
	}
	if v := versions["2"]; v.Stage != "failed" || v.Validation == nil || v.Validation.Passed ||
		!strings.Contains(v.Validation.Reason, "stopped between registration and validation") || !strings.Contains(v.Validation.Reason, lost) {
		t.Fatalf("v2 (artifact lost): stage %s, validation %+v; want failed naming the lost artifact", v.Stage, v.Validation)
	}
	if logs := n.logs.String(); !strings.Contains(logs, "a version left registered by a crash passed validation") || !strings.Contains(logs, "a version left registered by a crash is now failed") {
		t.Fatalf("the start does not log what it did with the stranded versions:\n%s", logs)
	}
}
