package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/modelgate/modelgate/internal/badmodels"
	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/onnxpb"
)

// fourFeatureModel is probability [N,1] = features [N,4] × W [4,1]: the
// demo model's names and datatypes, but four features instead of thirty.
func fourFeatureModel() []byte {
	raw := make([]byte, 16)
	for i := range 4 {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(0.25))
	}
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(&onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}},
		Graph: &onnxpb.GraphProto{
			Name:        proto.String("four_features"),
			Node:        []*onnxpb.NodeProto{{OpType: proto.String("MatMul"), Name: proto.String("mm"), Input: []string{"features", "W"}, Output: []string{"probability"}}},
			Initializer: []*onnxpb.TensorProto{{Name: proto.String("W"), Dims: []int64{4, 1}, DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), RawData: raw}},
			Input:       []*onnxpb.ValueInfoProto{badmodels.FP32Info("features", -1, 4)},
			Output:      []*onnxpb.ValueInfoProto{badmodels.FP32Info("probability", -1, 1)},
		},
	})
	return b
}

// cli runs a modelgate subcommand against n's admin API.
func (n *node) cli(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, append(args, "--admin", "http://"+n.admin, "--token", n.token)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// TestPromotionChecksSignature is issue 12's "promotion ignores the
// signature" through the admin API and the CLI: clients send features
// [1,30] to the champion; a version taking [-1,4] is refused as champion
// and as canary with 409 and a message naming the input and both shapes;
// `model promote --force` promotes it and the audit log records the force.
func TestPromotionChecksSignature(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	lr, err := demo.FraudModel(demo.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	lrPath := filepath.Join(dir, "fraud.onnx")
	os.WriteFile(lrPath, lr, 0o644)
	n := startNode(t, bin, filepath.Join(dir, "data"), "--model", "fraud="+lrPath)
	if code, b := n.register(t, "fraud", fourFeatureModel(), ""); code != 201 || !strings.Contains(string(b), `"version":2`) {
		t.Fatalf("register the four-feature model: %d %s", code, b)
	}
	const why = `input \"features\" takes FP32 [-1,4] but clients send FP32 [-1,30]`
	code, b := n.api(t, "POST", "/api/v1/models/fraud/promote", strings.NewReader(`{"version":2}`), "application/json")
	if code != 409 || !strings.Contains(string(b), why) {
		t.Fatalf("promote an incompatible version: %d %s; want 409 naming the input and both shapes", code, b)
	}
	code, b = n.api(t, "POST", "/api/v1/models/fraud/versions/2/stage", strings.NewReader(`{"stage":"canary","weight":10}`), "application/json")
	if code != 409 || !strings.Contains(string(b), "the canary") || !strings.Contains(string(b), why) {
		t.Fatalf("canary an incompatible version: %d %s; want 409 naming the input and both shapes", code, b)
	}
	if _, stderr, code := n.cli(t, bin, "model", "promote", "fraud", "2", "--reason", "try"); code == 0 || !strings.Contains(stderr, strings.ReplaceAll(why, `\"`, `"`)) {
		t.Fatalf("model promote without --force: exit %d, stderr %q; want a failure naming the input", code, stderr)
	}
	if champ, _ := modelState(t, n, "fraud"); champ != 1 {
		t.Fatalf("champion v%d after refused promotions, want v1", champ)
	}
	if out, stderr, code := n.cli(t, bin, "model", "promote", "fraud", "2", "--reason", "clients moved to 4 features", "--force"); code != 0 {
		t.Fatalf("model promote --force: exit %d\n%s%s", code, out, stderr)
	}
	if champ, _ := modelState(t, n, "fraud"); champ != 2 {
		t.Fatalf("champion v%d after a forced promotion, want v2", champ)
	}
	_, audit := n.api(t, "GET", "/api/v1/audit?model=fraud&version=2", nil, "")
	var recs struct {
		Records []struct {
			Action string `json:"action"`
			Forced string `json:"forced"`
			Reason string `json:"reason"`
		} `json:"records"`
	}
	json.Unmarshal(audit, &recs)
	found := false
	for _, r := range recs.Records {
		if r.Action == "promote" {
			found = strings.Contains(r.Forced, strings.ReplaceAll(why, `\"`, `"`)) && r.Reason == "clients moved to 4 features"
		}
	}
	if !found {
		t.Fatalf("the audit log does not record the forced promotion: %s", audit)
	}
}
