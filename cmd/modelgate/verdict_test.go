package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelgate/modelgate/internal/badmodels"
)

// TestUnservableModelsEndFailed is issue 12's "a validation verdict that
// cannot be recorded strands the version": models ONNX Runtime runs but no
// client could call (an output listed twice, no inputs, a 1 MB input name)
// answered 400 "validation ran but its verdict could not be recorded" and
// stayed registered. Through the admin API each must answer 400 with stage
// failed and the reason, and keep a failed validation record.
func TestUnservableModelsEndFailed(t *testing.T) {
	bin := buildBinary(t)
	n := startNode(t, bin, filepath.Join(t.TempDir(), "data"))
	for _, c := range []struct {
		name   string
		onnx   []byte
		reason string
	}{
		{"duplicate output name", badmodels.DuplicateOutput(), `signature.outputs[1].name (\"y\") is given twice`},
		{"no inputs", badmodels.NoInputs(), "must name at least one input and one output"},
		{"1 MB input name", badmodels.LongInputName(1 << 20), "signature.inputs[0].name"},
	} {
		code, b := n.register(t, "odd", c.onnx, "")
		var out struct {
			Error   string `json:"error"`
			Version int    `json:"version"`
			Stage   string `json:"stage"`
		}
		json.Unmarshal(b, &out)
		if code != 400 || out.Stage != "failed" || !strings.Contains(out.Error, "interface cannot be served") || strings.Contains(out.Error, "could not be recorded") {
			t.Fatalf("%s: %d %.600s; want 400, stage failed, the reason", c.name, code, b)
		}
		code, b = n.api(t, "GET", fmt.Sprintf("/api/v1/models/odd/versions/%d", out.Version), nil, "")
		var v struct {
			Stage      string `json:"stage"`
			Validation *struct {
				Passed bool   `json:"passed"`
				Reason string `json:"reason"`
			} `json:"validation"`
		}
		json.Unmarshal(b, &v)
		if code != 200 || v.Stage != "failed" || v.Validation == nil || v.Validation.Passed || !strings.Contains(v.Validation.Reason, strings.ReplaceAll(c.reason, `\"`, `"`)) {
			t.Fatalf("%s: version v%d: %d %.600s; want stage failed with a failed validation naming %q", c.name, out.Version, code, b, c.reason)
		}
		if len(b) > 64<<10 {
			t.Fatalf("%s: the version's record is %d bytes: the hostile name was kept whole", c.name, len(b))
		}
	}
}
