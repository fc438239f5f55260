package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// sampleCommands has one command of every op, with every field set that the
// op has, for round trips and fuzz seeds.
func sampleCommands() []Command {
	delta := -0.01
	p := DefaultPolicy()
	p.Rollback.MinLabelMetricDelta = &delta
	p.Retraining = RetrainingPolicy{Enabled: true, URL: "https://ci.example/hooks/retrain?model=fraud", SecretRef: "retrain-hmac", Cooldown: Duration(2 * time.Hour)}
	at := time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC)
	c := func(key string, a Args) Command {
		return Command{Time: at, Actor: "ci@example", IdempotencyKey: key, Args: a}
	}
	return []Command{
		c("k-create", &CreateModelArgs{Model: "fraud", Policy: &p, Reason: "card fraud scoring"}),
		c("k-register", &RegisterArgs{
			Model: "fraud", Digest: digestOf(1), Size: 123456,
			Signature: testSignature(),
			Lineage: Lineage{
				DatasetURI: "s3://data/fraud/2025-05", DatasetVersion: "2025-05", DatasetDigest: digestOf(99),
				CodeRepo: "git@example:ml/fraud.git", CodeCommit: "0a1b2c3d", TrainingMetrics: map[string]float64{"auc": 0.91, "logloss": 0.21},
				RegisteredBy: "retrain-job-17", Notes: "weekly retrain",
			},
			ReferenceProfile: json.RawMessage(`{"features":{"amount":{"bins":[0,10,100]}}}`),
			Golden:           json.RawMessage(`[{"inputs":{"features":[1,2]},"outputs":{"probability":[0.1]}}]`),
			Reason:           "weekly retrain",
		}),
		c("k-validate", &SetValidationArgs{Model: "fraud", Version: 1, Passed: true, Signature: testSignature(), Reason: "smoke ok", Evidence: json.RawMessage(`{"load_ms":12,"smoke_ms":0.4}`)}),
		c("k-stage", &SetStageArgs{Model: "fraud", Version: 2, Stage: StageCanary, Weight: 10, Auto: true, Reason: "ramp", Evidence: json.RawMessage(`{"agreement":0.99}`)}),
		c("k-promote", &PromoteArgs{Model: "fraud", Version: 2, Auto: true, Reason: "auc +0.01", Evidence: json.RawMessage(`{"p":0.01}`)}),
		c("k-rollback", &RollbackArgs{Model: "fraud", Auto: true, Reason: "p99", Evidence: json.RawMessage(`{"p99_ms":90}`)}),
		c("k-approve", &ApproveArgs{Model: "fraud", Version: 2, Reason: "ok"}),
		c("k-reject", &RejectArgs{Model: "fraud", Version: 2, Reason: "not yet"}),
		c("k-delete", &DeleteVersionArgs{Model: "fraud", Version: 3, Reason: "junk"}),
		c("k-policy", &SetPolicyArgs{Model: "fraud", Policy: p, Reason: "tune"}),
		c("k-alert", &RecordAlertArgs{Model: "fraud", Version: 1, Kind: "drift", Reason: "psi 0.31 on amount", Evidence: json.RawMessage(`{"psi":{"amount":0.31}}`)}),
		c("k-ref", &SetReferenceArgs{Model: "fraud", Version: 1, Profile: json.RawMessage(`{"rows":1000}`), Rows: 1000, Reason: "the first 1000 rows"}),
		c("k-trim", &TrimAuditArgs{KeepLast: 100, MaxAge: Duration(720 * time.Hour), Reason: "retention"}),
		c("k-ready", &ReportReadyArgs{Node: "n2", Model: "fraud", Version: 1, Digest: strings.Repeat("ab", 32)}),
	}
}

func TestCommandRoundTrip(t *testing.T) {
	ops := map[Op]bool{}
	for _, c := range sampleCommands() {
		ops[c.Op()] = true
		if err := c.Validate(); err != nil {
			t.Fatalf("%s: %v", c.Op(), err)
		}
		b, err := EncodeCommand(c)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte(`{"v":4,"op":"`+string(c.Op())+`","time":"2025-06-01T12:00:00.123456789Z","actor":"ci@example","idempotency_key":`)) {
			t.Fatalf("envelope: %s", b)
		}
		back, err := DecodeCommand(b)
		if err != nil {
			t.Fatalf("%s: %v\n%s", c.Op(), err, b)
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("%s: round trip\n got %#v\nwant %#v", c.Op(), back, c)
		}
		b2, _ := EncodeCommand(back)
		if !bytes.Equal(b, b2) {
			t.Fatalf("%s: re-encoding differs\n%s\n%s", c.Op(), b, b2)
		}
	}
	if len(ops) != len(newArgs) {
		t.Fatalf("samples cover %d ops of %d", len(ops), len(newArgs))
	}
}

// TestWireFormatStable pins the encoding of a command: changing it breaks
// every Raft log written before. A v1 command read back (a replayed entry)
// stays v1, byte for byte.
func TestWireFormatStable(t *testing.T) {
	c := Command{Time: time.Date(2025, 6, 1, 12, 0, 0, 0, time.FixedZone("CEST", 2*3600)), Actor: "ops", IdempotencyKey: "abc",
		Args: &SetStageArgs{Model: "fraud", Version: 3, Stage: StageCanary, Weight: 5, Force: true, Reason: "start canary"}}
	b, err := EncodeCommand(c)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"v":4,"op":"set_stage","time":"2025-06-01T10:00:00Z","actor":"ops","idempotency_key":"abc","args":{"model":"fraud","version":3,"stage":"canary","weight":5,"force":true,"reason":"start canary"}}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	const v1 = `{"v":1,"op":"set_stage","time":"2025-06-01T10:00:00Z","actor":"ops","idempotency_key":"abc","args":{"model":"fraud","version":3,"stage":"canary","weight":5,"reason":"start canary"}}`
	old, err := DecodeCommand([]byte(v1))
	if err != nil {
		t.Fatal(err)
	}
	if old.WireVersion() != 1 {
		t.Fatalf("a decoded v1 command says wire v%d", old.WireVersion())
	}
	if b, _ := EncodeCommand(old); string(b) != v1 {
		t.Fatalf("a v1 command re-encodes as\n%s\nwant\n%s", b, v1)
	}
}

func TestDecodeCommandRefuses(t *testing.T) {
	f := func(in string, target error, want string) {
		t.Helper()
		_, err := DecodeCommand([]byte(in))
		if err == nil {
			t.Fatalf("%s: decoded", in)
		}
		if !errors.Is(err, target) || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s:\n got %v\nwant %v containing %q", in, err, target, want)
		}
	}
	const env = `"time":"2025-01-01T00:00:00Z","actor":"a","idempotency_key":"k"`
	f(``, ErrMalformedCommand, "EOF")
	f(`[]`, ErrMalformedCommand, "cannot unmarshal array")
	f(`{"v":5,"op":"promote",`+env+`,"args":{"model":"m","version":1}}`, ErrUnsupportedVersion, "v5 (this registry reads v1 to v4)")
	f(`{"v":3,"op":"report_ready",`+env+`,"args":{"node":"n2","model":"m","version":1,"digest":"`+strings.Repeat("ab", 32)+`"}}`, ErrUnknownOp, `"report_ready" in a v3 envelope (it came with wire v4)`)
	f(`{"v":3,"op":"register",`+env+`,"args":{"model":"m","digest":"`+strings.Repeat("ab", 32)+`","size":1,"signature":{},"lineage":{},"holder":"n1"}}`, ErrMalformedCommand, `unknown field "holder" (it came with wire v4`)
	f(`{"v":3,"op":"set_policy",`+env+`,"args":{"model":"m","policy":{"distribution":{"require_ready":"quorum"}}}}`, ErrMalformedCommand, `unknown field "distribution" (it came with wire v4`)
	f(`{"v":2,"op":"trim_audit",`+env+`,"args":{"keep_last":10}}`, ErrUnknownOp, `"trim_audit" in a v2 envelope (it came with wire v3)`)
	f(`{"v":2,"op":"set_reference",`+env+`,"args":{"model":"m","version":1,"profile":{}}}`, ErrUnknownOp, `"set_reference" in a v2 envelope`)
	f(`{"op":"promote",`+env+`,"args":{"model":"m","version":1}}`, ErrUnsupportedVersion, `has no "v"`)
	f(`{"v":1,"op":"explode",`+env+`,"args":{}}`, ErrUnknownOp, `"explode"`)
	f(`{"v":1,"op":"promote",`+env+`}`, ErrMalformedCommand, "promote command has no args")
	f(`{"v":1,"op":"promote",`+env+`,"args":null}`, ErrMalformedCommand, "has no args")
	f(`{"v":1,"op":"promote",`+env+`,"args":{"model":"m","version":1,"force":true}}`, ErrMalformedCommand, `unknown field "force" (it came with wire v2`)
	f(`{"v":1,"op":"set_stage",`+env+`,"args":{"model":"m","version":1,"stage":"canary","force":true}}`, ErrMalformedCommand, `unknown field "force"`)
	f(`{"v":2,"op":"promote",`+env+`,"args":{"model":"m","version":1,"forced":true}}`, ErrMalformedCommand, `unknown field "forced"`)
	f(`{"v":1,"op":"promote",`+env+`,"extra":1,"args":{"model":"m","version":1}}`, ErrMalformedCommand, `unknown field "extra"`)
	f(`{"v":1,"op":"promote",`+env+`,"args":{"model":"m","version":"1"}}`, ErrMalformedCommand, "cannot unmarshal string")
	f(`{"v":1,"op":"promote",`+env+`,"args":{"model":"m","version":1}} {}`, ErrMalformedCommand, "data after the command")
	f(`{"v":1,"op":"promote","time":"yesterday","actor":"a","idempotency_key":"k","args":{"model":"m","version":1}}`, ErrMalformedCommand, "cannot parse")
	f(`{"v":1,"op":"set_policy",`+env+`,"args":{"model":"m","policy":{"retraining":{"cooldown":5}}}}`, ErrMalformedCommand, "duration")
	f(strings.Repeat(" ", MaxCommandSize+1), ErrMalformedCommand, "more than the")
}

func TestValidateRefuses(t *testing.T) {
	ok := sampleCommands()[1] // a register
	f := func(change func(c *Command), want string) {
		t.Helper()
		c := ok
		a := *ok.Args.(*RegisterArgs)
		c.Args = &a
		change(&c)
		err := c.Validate()
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v, want ErrInvalid containing %q", err, want)
		}
	}
	reg := func(c *Command) *RegisterArgs { return c.Args.(*RegisterArgs) }
	f(func(c *Command) { c.Time = time.Time{} }, "registry: time must be set")
	f(func(c *Command) { c.Time = time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC) }, "between the years 1970 and 9999")
	f(func(c *Command) { c.Actor = "" }, "registry: actor must be set")
	f(func(c *Command) { c.IdempotencyKey = "" }, "registry: idempotency_key must be set")
	f(func(c *Command) { c.Actor = "a\x00b" }, "control characters")
	f(func(c *Command) { c.IdempotencyKey = strings.Repeat("k", 2000) }, "at most 1024 are allowed")
	f(func(c *Command) { reg(c).Model = "Fraud" }, `registry: model ("Fraud") must be 1-64 characters of a-z 0-9 . _ - starting with a letter or digit`)
	f(func(c *Command) { reg(c).Model = "-x" }, "starting with a letter or digit")
	f(func(c *Command) { reg(c).Model = strings.Repeat("a", 65) }, "must be 1-64")
	f(func(c *Command) { reg(c).Digest = strings.ToUpper(digestOf(1)) }, "must be a sha256 digest: 64 lowercase hex characters")
	f(func(c *Command) { reg(c).Size = 0 }, "registry: size (0) must be > 0 bytes")
	f(func(c *Command) { reg(c).Signature.Outputs = nil }, "registry: signature must name at least one input and one output")
	f(func(c *Command) {
		reg(c).Signature = Signature{Inputs: []TensorSpec{{Name: "x", DataType: "FLOAT", Shape: []int64{1}}}, Outputs: testSignature().Outputs}
	}, `registry: signature.inputs[0].datatype ("FLOAT") must be an Open Inference Protocol datatype`)
	f(func(c *Command) {
		reg(c).Signature = Signature{Inputs: []TensorSpec{{Name: "x", DataType: "FP32", Shape: []int64{-2}}}, Outputs: testSignature().Outputs}
	}, "registry: signature.inputs[0].shape (-2) must hold sizes >= 0, or -1 for a dynamic dimension")
	f(func(c *Command) {
		s := testSignature()
		s.Outputs = append(s.Outputs, s.Outputs[0])
		reg(c).Signature = s
	}, `registry: signature.outputs[1].name ("probability") is given twice`)
	f(func(c *Command) { reg(c).Lineage.ParentVersion = -1 }, "lineage.parent_version (-1)")
	f(func(c *Command) { reg(c).Lineage.CodeCommit = "\xff" }, "lineage.code_commit")
	f(func(c *Command) { reg(c).Lineage.TrainingMetrics = map[string]float64{"auc": 0.9, "bad": 1 / zero()} }, "registry: lineage.training_metrics.bad (+Inf) must be a finite number")
	f(func(c *Command) { reg(c).ReferenceProfile = json.RawMessage(`{"a":`) }, "registry: reference_profile must be JSON")
	f(func(c *Command) { reg(c).Golden = make(json.RawMessage, MaxGoldenSize+1) }, "registry: golden is 4194305 bytes")
	f(func(c *Command) { reg(c).Reason = strings.Repeat("r", MaxReasonSize+1) }, "reason")

	g := func(a Args, want string) {
		t.Helper()
		c := Command{Time: t0, Actor: "a", IdempotencyKey: "k", Args: a}
		err := c.Validate()
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: got %v, want %q", a.Op(), err, want)
		}
	}
	g(&PromoteArgs{Model: "m"}, "registry: version (0) must be >= 1")
	g(&ApproveArgs{Model: "m", Version: -3}, "version (-3)")
	g(&RecordAlertArgs{Model: "m", Kind: "Drift!"}, `registry: kind ("Drift!") must be a lowercase word`)
	g(&RecordAlertArgs{Model: "m", Kind: "drift", Version: -1}, "must be a version number, or 0 for the whole model")
	g(&SetValidationArgs{Model: "m", Version: 1, Evidence: json.RawMessage(`nope`)}, "registry: evidence must be JSON")
	g(&RollbackArgs{Model: ""}, `registry: model ("") must be`)
	if err := (&Command{Time: t0, Actor: "a", IdempotencyKey: "k"}).Validate(); !errors.Is(err, ErrMalformedCommand) {
		t.Fatal(err)
	}
}

func zero() float64 { return 0 }

func TestRawJSONNormalised(t *testing.T) {
	h := newHarness(t)
	h.register("m", 1)
	h.must(&SetValidationArgs{Model: "m", Version: 1, Passed: true, Evidence: json.RawMessage(" {\n \"a\" : \"<b>\" } ")})
	v, _ := h.s.Version("m", 1)
	if string(v.Validation.Evidence) != `{"a":"\u003cb\u003e"}` {
		t.Fatalf("%s", v.Validation.Evidence)
	}
	h.must(&RecordAlertArgs{Model: "m", Kind: "drift", Evidence: json.RawMessage("null")})
	if recs := h.s.Audit(AuditFilter{Since: h.s.LastSeq() - 1}); recs[0].Evidence != nil {
		t.Fatalf("%s", recs[0].Evidence)
	}
}
