package registry

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestFailedVerdictAlwaysRecordable: whatever the gate says about a hostile
// model — a reason of a megabyte with control characters and broken UTF-8,
// evidence over the limit or not JSON — the failure, cut by
// RecordableReason and RecordableEvidence, is applied and leaves the
// version failed with the start of the reason.
func TestFailedVerdictAlwaysRecordable(t *testing.T) {
	f := func(name, reason string, evidence []byte) {
		t.Helper()
		h := newHarness(t)
		n := h.register("m", 1)
		r := RecordableReason(reason)
		if !utf8.ValidString(r) || len(r) > MaxReasonSize {
			t.Fatalf("%s: RecordableReason gave %d bytes (valid UTF-8 %t)", name, len(r), utf8.ValidString(r))
		}
		res := h.must(&SetValidationArgs{Model: "m", Version: n, Passed: false, Reason: r, Evidence: RecordableEvidence(evidence)})
		if res.Stage != StageFailed {
			t.Fatalf("%s: stage %s, want failed", name, res.Stage)
		}
		v, _ := h.s.Version("m", n)
		if v.Validation == nil || v.Validation.Passed || !strings.HasPrefix(v.Validation.Reason, "smoke run failed") {
			t.Fatalf("%s: validation record %+v", name, v.Validation)
		}
	}
	huge := strings.Repeat("é", 600<<10) // 1.2 MB, cut inside a two-byte rune unless cut at a boundary
	f("long reason", "smoke run failed: "+huge, []byte(`{"ok":false}`))
	f("control characters and bad UTF-8", "smoke run failed: \x00\x1b[31m\xff\xfe name", nil)
	f("evidence over the limit", "smoke run failed", []byte(`{"name":"`+strings.Repeat("x", MaxEvidenceSize)+`"}`))
	f("evidence not JSON", "smoke run failed", []byte(`{"truncated`))
}

// TestRecordableEvidenceKeepsWhatFits: evidence within the limit is kept
// as it is (compacted); larger evidence becomes a note with its size.
func TestRecordableEvidenceKeepsWhatFits(t *testing.T) {
	if got := RecordableEvidence(json.RawMessage(`{ "a": 1 }`)); string(got) != `{"a":1}` {
		t.Fatalf("small evidence: %s", got)
	}
	big := json.RawMessage(`"` + strings.Repeat("x", MaxEvidenceSize) + `"`)
	var note struct {
		Note  string `json:"note"`
		Bytes int    `json:"bytes"`
		Head  string `json:"head"`
	}
	if err := json.Unmarshal(RecordableEvidence(big), &note); err != nil || note.Bytes != len(big) || len(note.Head) != 4096 {
		t.Fatalf("big evidence: %+v %v", note, err)
	}
}

// TestCheckSignatureRefusesUnservable: the interfaces ONNX Runtime runs but
// clients cannot call are refused, each for its own reason.
func TestCheckSignatureRefusesUnservable(t *testing.T) {
	f := func(s Signature, want string) {
		t.Helper()
		err := CheckSignature(s)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Fatalf("CheckSignature(%+v) = %v, want ErrInvalid with %q", s, err, want)
		}
	}
	y := TensorSpec{Name: "y", DataType: "FP32", Shape: []int64{-1, 2}}
	x := TensorSpec{Name: "x", DataType: "FP32", Shape: []int64{-1, 2}}
	f(Signature{Inputs: []TensorSpec{x}, Outputs: []TensorSpec{y, y}}, `signature.outputs[1].name ("y") is given twice`)
	f(Signature{Outputs: []TensorSpec{y}}, "must name at least one input and one output")
	f(Signature{}, "must name at least one input and one output")
	long := x
	long.Name = strings.Repeat("x", 1<<20)
	f(Signature{Inputs: []TensorSpec{long}, Outputs: []TensorSpec{y}}, "is 1048576 bytes; at most 1024 are allowed")
	if err := CheckSignature(Signature{Inputs: []TensorSpec{x}, Outputs: []TensorSpec{y}}); err != nil {
		t.Fatalf("a plain signature: %v", err)
	}
}
