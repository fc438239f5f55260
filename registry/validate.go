package registry

import (
	"bytes"
	"encoding/json"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file checks command arguments on their own, before any state is
// looked at. Every string that enters the state must be valid UTF-8: JSON
// would silently rewrite anything else, and a replica restored from a
// snapshot would then hold different bytes from one that applied the log.

// CheckModelName returns a *FieldError unless name is a valid model name:
// 1–64 characters of a-z 0-9 . _ -, starting with a letter or digit. Names
// appear in URLs and file names, so nothing else is allowed.
func CheckModelName(name string) error {
	if !validModelName(name) {
		return fieldErr("model", name, "must be 1-64 characters of a-z 0-9 . _ - starting with a letter or digit")
	}
	return nil
}

func validModelName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// validKind reports whether s is an alert kind: a lowercase word of 1–64
// characters a-z 0-9 _, starting with a letter.
func validKind(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func validDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// dataTypes are the Open Inference Protocol tensor types a signature may name.
var dataTypes = map[string]bool{
	"BOOL": true, "UINT8": true, "UINT16": true, "UINT32": true, "UINT64": true,
	"INT8": true, "INT16": true, "INT32": true, "INT64": true,
	"FP16": true, "FP32": true, "FP64": true, "BYTES": true,
}

// checkText refuses invalid UTF-8, control characters other than newline
// and tab, strings over max bytes, and (when required) empty strings.
func checkText(field, s string, max int, required bool) error {
	if s == "" {
		if required {
			return fieldErr(field, nil, "must be set")
		}
		return nil
	}
	if len(s) > max {
		return fieldErr(field, s, "is "+strconv.Itoa(len(s))+" bytes; at most "+strconv.Itoa(max)+" are allowed")
	}
	if !utf8.ValidString(s) {
		return fieldErr(field, s, "must be valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return fieldErr(field, s, "must not contain control characters")
		}
	}
	return nil
}

// checkRaw checks that *raw is JSON of at most max bytes and normalises it:
// compacted, and nil for JSON null, so equal documents are equal bytes.
func checkRaw(field string, raw *json.RawMessage, max int) error {
	if len(*raw) == 0 {
		*raw = nil
		return nil
	}
	if len(*raw) > max {
		return fieldErr(field, nil, "is "+strconv.Itoa(len(*raw))+" bytes; at most "+strconv.Itoa(max)+" are allowed")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, *raw); err != nil {
		return fieldErr(field, nil, "must be JSON: "+err.Error())
	}
	if bytes.Equal(buf.Bytes(), []byte("null")) {
		*raw = nil
		return nil
	}
	// Marshal writes a RawMessage with <, > and & escaped; store it that way
	// so the bytes in memory are the bytes in a snapshot.
	b, err := json.Marshal(json.RawMessage(buf.Bytes()))
	if err != nil {
		return fieldErr(field, nil, "must be JSON: "+err.Error())
	}
	*raw = b
	return nil
}

func checkVersionNumber(n int) error {
	if n < 1 {
		return fieldErr("version", n, "must be >= 1")
	}
	return nil
}

func checkFinite(field string, f float64) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fieldErr(field, f, "must be a finite number")
	}
	return nil
}

// checkSignature checks a signature's specs; an empty signature passes.
func checkSignature(field string, s *Signature) error {
	for _, set := range []struct {
		name  string
		specs []TensorSpec
	}{{"inputs", s.Inputs}, {"outputs", s.Outputs}} {
		if len(set.specs) > maxTensorsPerSet {
			return fieldErr(field+"."+set.name, len(set.specs), "tensors; at most "+strconv.Itoa(maxTensorsPerSet)+" are allowed")
		}
		seen := make(map[string]bool, len(set.specs))
		for i, t := range set.specs {
			p := field + "." + set.name + "[" + strconv.Itoa(i) + "]"
			if err := checkText(p+".name", t.Name, maxTextSize, true); err != nil {
				return err
			}
			if seen[t.Name] {
				return fieldErr(p+".name", t.Name, "is given twice")
			}
			seen[t.Name] = true
			if !dataTypes[t.DataType] {
				return fieldErr(p+".datatype", t.DataType, "must be an Open Inference Protocol datatype (BOOL, INT64, FP32, BYTES …)")
			}
			if len(t.Shape) > maxRank {
				return fieldErr(p+".shape", len(t.Shape), "dimensions; at most "+strconv.Itoa(maxRank)+" are allowed")
			}
			for _, d := range t.Shape {
				if d < -1 {
					return fieldErr(p+".shape", d, "must hold sizes >= 0, or -1 for a dynamic dimension")
				}
			}
		}
	}
	if (len(s.Inputs) == 0) != (len(s.Outputs) == 0) {
		return fieldErr(field, nil, "must name at least one input and one output (or neither, when not yet known)")
	}
	s.Inputs, s.Outputs = cloneSpecs(s.Inputs), cloneSpecs(s.Outputs)
	return nil
}

func checkLineage(l *Lineage) error {
	for _, f := range []struct{ name, v string }{
		{"lineage.dataset_uri", l.DatasetURI},
		{"lineage.dataset_version", l.DatasetVersion},
		{"lineage.dataset_digest", l.DatasetDigest},
		{"lineage.code_repo", l.CodeRepo},
		{"lineage.code_commit", l.CodeCommit},
		{"lineage.registered_by", l.RegisteredBy},
	} {
		if err := checkText(f.name, f.v, maxTextSize, false); err != nil {
			return err
		}
	}
	if err := checkText("lineage.notes", l.Notes, MaxNotesSize, false); err != nil {
		return err
	}
	if l.ParentVersion < 0 {
		return fieldErr("lineage.parent_version", l.ParentVersion, "must be a version number, or 0 for none")
	}
	if len(l.TrainingMetrics) > 1024 {
		return fieldErr("lineage.training_metrics", len(l.TrainingMetrics), "metrics; at most 1024 are allowed")
	}
	for _, k := range slices.Sorted(maps.Keys(l.TrainingMetrics)) {
		v := l.TrainingMetrics[k]
		if err := checkText("lineage.training_metrics key", k, maxTextSize, true); err != nil {
			return err
		}
		if err := checkFinite("lineage.training_metrics."+k, v); err != nil {
			return err
		}
	}
	if len(l.TrainingMetrics) == 0 {
		l.TrainingMetrics = nil
	}
	return nil
}

func (a *CreateModelArgs) validate() error {
	if err := CheckModelName(a.Model); err != nil {
		return err
	}
	if a.Policy != nil {
		if err := a.Policy.Validate(); err != nil {
			return err
		}
	}
	return checkText("reason", a.Reason, MaxReasonSize, false)
}

func (a *RegisterArgs) validate() error {
	if err := CheckModelName(a.Model); err != nil {
		return err
	}
	if !validDigest(a.Digest) {
		return fieldErr("digest", a.Digest, "must be a sha256 digest: 64 lowercase hex characters")
	}
	if a.Size < 1 {
		return fieldErr("size", a.Size, "must be > 0 bytes")
	}
	if err := checkSignature("signature", &a.Signature); err != nil {
		return err
	}
	if err := checkLineage(&a.Lineage); err != nil {
		return err
	}
	if err := checkRaw("reference_profile", &a.ReferenceProfile, MaxProfileSize); err != nil {
		return err
	}
	if err := checkRaw("golden", &a.Golden, MaxGoldenSize); err != nil {
		return err
	}
	if a.Holder != "" {
		if err := checkNodeID("holder", a.Holder); err != nil {
			return err
		}
	}
	return checkText("reason", a.Reason, MaxReasonSize, false)
}

func (a *SetValidationArgs) validate() error {
	if err := CheckModelName(a.Model); err != nil {
		return err
	}
	if err := checkVersionNumber(a.Version); err != nil {
		return err
	}
	if err := checkSignature("signature", &a.Signature); err != nil {
		return err
	}
	if err := checkRaw("evidence", &a.Evidence, MaxEvidenceSize); err != nil {
		return err
	}
	return checkText("reason", a.Reason, MaxReasonSize, false)
}

func (a *SetStageArgs) validate() error {
	if err := CheckModelName(a.Model); err != nil {
		return err
	}
	if err := checkVersionNumber(a.Version); err != nil {
		return err
	}
	switch a.Stage {
	case StageShadow, StageRetired:
		if a.Weight != 0 {
			return fieldErr("weight", a.Weight, "applies only to stage canary")
		}
	case StageCanary:
		if err := CheckWeight(a.Weight); err != nil {
			return fieldErr("weight", a.Weight, err.Error())
		}
	case StageChampion:
		return fieldErr("stage", string(a.Stage), "cannot be set directly; promote the version instead")
	case StageRolledBack:
		return fieldErr("stage", string(a.Stage), "cannot be set directly; roll the model back instead")
	case StageValidated, StageFailed:
		return fieldErr("stage", string(a.Stage), "cannot be set directly; record a validation result instead")
	default:
		return fieldErr("stage", string(a.Stage), "must be shadow, canary or retired")
	}
	if err := checkRaw("evidence", &a.Evidence, MaxEvidenceSize); err != nil {
		return err
	}
	return checkText("reason", a.Reason, MaxReasonSize, false)
}

func (a *PromoteArgs) validate() error {
	if err := CheckModelName(a.Model); err != nil {
		return err
	}
	if err := checkVersionNumber(a.Version); err != nil {
		return err
	}
	if err := checkRaw("evidence", &a.Evidence, MaxEvidenceSize); err != nil {
		return err
	}
	return checkText("reason", a.Reason, MaxReasonSize, false)
}

func (a *RollbackArgs) validate() error {
	if err := CheckModelName(a.Model); err != nil {
		return err
	}
	if err := checkRaw("evidence", &a.Evidence, MaxEvidenceSize); err != nil {
		return err
	}
	return checkText("reason", a.Reason, MaxReasonSize, false)
}

func (a *ApproveArgs) validate() error {
	return checkModelVersionReason(a.Model, a.Version, a.Reason)
}

func (a *RejectArgs) validate() error {
	return checkModelVersionReason(a.Model, a.Version, a.Reason)
}

func (a *DeleteVersionArgs) validate() error {
	return checkModelVersionReason(a.Model, a.Version, a.Reason)
}

func checkModelVersionReason(model string, version int, reason string) error {
	if err := CheckModelName(model); err != nil {
		return err
	}
	if err := checkVersionNumber(version); err != nil {
		return err
	}
	return checkText("reason", reason, MaxReasonSize, false)
}

func (a *SetPolicyArgs) validate() error {
	if err := CheckModelName(a.Model); err != nil {
		return err
	}
	if err := a.Policy.Validate(); err != nil {
		return err
	}
	return checkText("reason", a.Reason, MaxReasonSize, false)
}

func (a *RecordAlertArgs) validate() error {
	if err := CheckModelName(a.Model); err != nil {
		return err
	}
	if a.Version < 0 {
		return fieldErr("version", a.Version, "must be a version number, or 0 for the whole model")
	}
	if !validKind(a.Kind) {
		return fieldErr("kind", a.Kind, "must be a lowercase word of a-z 0-9 _ (e.g. drift, retraining_requested)")
	}
	if err := checkRaw("evidence", &a.Evidence, MaxEvidenceSize); err != nil {
		return err
	}
	return checkText("reason", a.Reason, MaxReasonSize, false)
}

// CheckSignature returns a *FieldError unless s is a signature a validated
// version may have: at least one input and one output, each named once
// (valid UTF-8, at most 1 KiB), with an Open Inference Protocol datatype
// and a shape of sizes or -1. The validation gate's proposer checks a
// model's signature with it before recording a pass: ONNX Runtime runs
// models no client could call (no inputs, an output listed twice), and such
// a verdict must be recorded as a failure, not refused.
func CheckSignature(s Signature) error {
	if s.Empty() {
		return fieldErr("signature", nil, "must name at least one input and one output")
	}
	return checkSignature("signature", &s)
}

// RecordableReason returns reason as a reason every command accepts: valid
// UTF-8, control characters other than newline and tab replaced by spaces,
// cut at a character boundary to at most MaxReasonSize bytes (with "…" at
// the cut). A verdict's reason often quotes what a hostile model declared;
// it must never be what stops the verdict being recorded.
func RecordableReason(reason string) string {
	reason = strings.ToValidUTF8(reason, "\uFFFD")
	reason = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return ' '
		}
		return r
	}, reason)
	if len(reason) <= MaxReasonSize {
		return reason
	}
	const ellipsis = "…"
	cut := MaxReasonSize - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(reason[cut]) {
		cut--
	}
	return reason[:cut] + ellipsis
}

// RecordableEvidence returns evidence if a command would accept it (JSON of
// at most MaxEvidenceSize bytes once compacted), else a small JSON object
// that says what was dropped and keeps the start of the original as text.
func RecordableEvidence(evidence json.RawMessage) json.RawMessage {
	ev := evidence
	if err := checkRaw("evidence", &ev, MaxEvidenceSize); err == nil {
		return ev
	}
	head := string(evidence)
	if len(head) > 4096 {
		head = head[:4096]
	}
	return mustJSON(struct {
		Note  string `json:"note"`
		Bytes int    `json:"bytes"`
		Head  string `json:"head"`
	}{"evidence was not JSON of at most " + strconv.Itoa(MaxEvidenceSize) + " bytes; only its start is kept", len(evidence), strings.ToValidUTF8(head, "\uFFFD")})
}
