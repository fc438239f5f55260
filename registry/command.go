package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// WireVersion is the command encoding EncodeCommand writes. DecodeCommand
// reads it and every older one, and marks older commands so they apply as
// they did when they were written (Raft replays old entries). See doc.go.
//
//	1  the first
//	2  promote and set_stage to canary refuse a version whose signature the
//	   champion's clients cannot call, unless the new "force" field is set
//	3  set_reference and trim_audit; a drift_reference record_alert no
//	   longer sets the version's bootstrapped reference (set_reference does)
//	4  artifact distribution: report_ready, register's "holder" and the
//	   policy's "distribution" section
const WireVersion = 4

// Size limits. They keep a single Raft log entry, and the snapshot, in
// bounds; artifacts themselves never travel in commands (only their digest).
const (
	MaxCommandSize   = 16 << 20 // a whole encoded command
	MaxProfileSize   = 8 << 20  // a version's drift reference profile
	MaxGoldenSize    = 4 << 20  // a version's golden input/output pairs
	MaxEvidenceSize  = 1 << 20  // evidence of one command
	MaxReasonSize    = 4 << 10  // a reason
	MaxNotesSize     = 16 << 10 // lineage notes
	maxTextSize      = 1 << 10  // names, URIs, actors, keys and other short strings
	maxTensorsPerSet = 4096
	maxRank          = 64
)

// Op names a command's operation on the wire.
type Op string

// The operations. Every one is a write: it changes the state and appends at
// least one audit record, or fails and changes nothing.
const (
	OpCreateModel   Op = "create_model"   // CreateModelArgs
	OpRegister      Op = "register"       // RegisterArgs
	OpSetValidation Op = "set_validation" // SetValidationArgs
	OpSetStage      Op = "set_stage"      // SetStageArgs
	OpPromote       Op = "promote"        // PromoteArgs
	OpRollback      Op = "rollback"       // RollbackArgs
	OpApprove       Op = "approve"        // ApproveArgs
	OpReject        Op = "reject"         // RejectArgs
	OpDeleteVersion Op = "delete_version" // DeleteVersionArgs
	OpSetPolicy     Op = "set_policy"     // SetPolicyArgs
	OpRecordAlert   Op = "record_alert"   // RecordAlertArgs
	OpSetReference  Op = "set_reference"  // SetReferenceArgs (wire v3)
	OpTrimAudit     Op = "trim_audit"     // TrimAuditArgs (wire v3)
	OpReportReady   Op = "report_ready"   // ReportReadyArgs (wire v4)
)

// opSince is the wire version that introduced an op (1 when absent): an
// older envelope naming it is refused, as a replica of that version would.
var opSince = map[Op]int{OpSetReference: 3, OpTrimAudit: 3, OpReportReady: 4}

// newArgs maps each op to a constructor of its arguments.
var newArgs = map[Op]func() Args{
	OpCreateModel:   func() Args { return new(CreateModelArgs) },
	OpRegister:      func() Args { return new(RegisterArgs) },
	OpSetValidation: func() Args { return new(SetValidationArgs) },
	OpSetStage:      func() Args { return new(SetStageArgs) },
	OpPromote:       func() Args { return new(PromoteArgs) },
	OpRollback:      func() Args { return new(RollbackArgs) },
	OpApprove:       func() Args { return new(ApproveArgs) },
	OpReject:        func() Args { return new(RejectArgs) },
	OpDeleteVersion: func() Args { return new(DeleteVersionArgs) },
	OpSetPolicy:     func() Args { return new(SetPolicyArgs) },
	OpRecordAlert:   func() Args { return new(RecordAlertArgs) },
	OpSetReference:  func() Args { return new(SetReferenceArgs) },
	OpTrimAudit:     func() Args { return new(TrimAuditArgs) },
	OpReportReady:   func() Args { return new(ReportReadyArgs) },
}

// Command is one write to the registry: who, when, what, and the key that
// makes a retry safe. The cluster package encodes it into a Raft log entry
// with EncodeCommand, and every replica decodes and applies the same bytes.
type Command struct {
	// Time is when the proposer made the command; the registry has no clock,
	// so every timestamp in the state comes from here. Stored in UTC.
	Time time.Time
	// Actor is who asked: a token's subject, "lifecycle", "modelgate serve" …
	Actor string
	// IdempotencyKey identifies the request: a command whose key the state
	// remembers is not applied again; its first Result is returned instead.
	IdempotencyKey string
	// Args is one of the *…Args types of this package and decides the Op.
	Args Args

	// wire is the wire version the command was decoded from; 0 means
	// WireVersion (a command made in this process). Apply keeps the rules
	// of the version a command was written in.
	wire int
}

// WireVersion returns the wire version c was decoded from (WireVersion for
// a command made in this process).
func (c *Command) WireVersion() int {
	if c.wire == 0 {
		return WireVersion
	}
	return c.wire
}

// Op returns the operation of c's Args ("" when Args is nil).
func (c *Command) Op() Op {
	if c.Args == nil {
		return ""
	}
	return c.Args.Op()
}

// Args is a command's operation and its arguments. It is implemented only by
// the *…Args types of this package.
type Args interface {
	// Op names the operation on the wire.
	Op() Op
	// validate checks the arguments on their own (no state) and normalises
	// them (compacted JSON, nil for empty).
	validate() error
	// apply runs the operation in a transaction.
	apply(t *txn) (Result, error)
}

// CreateModelArgs creates a model before its first version, to give it a
// policy from the start. Registering a version of an unknown model creates it
// with DefaultPolicy, so this op is optional.
type CreateModelArgs struct {
	Model  string  `json:"model"`
	Policy *Policy `json:"policy,omitempty"` // nil: DefaultPolicy()
	Reason string  `json:"reason,omitempty"`
}

// RegisterArgs adds a version. Its number is the model's next one; it starts
// in stage registered. The artifact must already be stored under Digest.
type RegisterArgs struct {
	Model  string `json:"model"`
	Digest string `json:"digest"` // sha256, 64 lowercase hex characters
	Size   int64  `json:"size"`
	// Signature may be empty when the registrant does not know it; the
	// validation result then supplies it.
	Signature        Signature       `json:"signature"`
	Lineage          Lineage         `json:"lineage"`
	ReferenceProfile json.RawMessage `json:"reference_profile,omitempty"`
	Golden           json.RawMessage `json:"golden,omitempty"`
	Reason           string          `json:"reason,omitempty"`
	// Holder is the node that stored the bytes (the one that received the
	// upload): the version's first holder, which the other nodes fetch
	// from. Empty for a registration without a cluster. Wire version 4.
	Holder string `json:"holder,omitempty"`
}

// SetValidationArgs records the validation gate's outcome for a registered
// version: validated (and, when the model has no champion yet, champion at
// once) or failed.
type SetValidationArgs struct {
	Model   string `json:"model"`
	Version int    `json:"version"`
	Passed  bool   `json:"passed"`
	// Signature is what the gate saw the model declare. Required when the
	// registration carried none; otherwise it must equal the registered one.
	Signature Signature       `json:"signature"`
	Reason    string          `json:"reason,omitempty"`
	Evidence  json.RawMessage `json:"evidence,omitempty"`
}

// SetStageArgs moves a version to shadow, canary (with Weight, a percentage from 0 to 100 in steps of 0.01) or
// retired, or changes the canary's weight.
type SetStageArgs struct {
	Model   string  `json:"model"`
	Version int     `json:"version"`
	Stage   Stage   `json:"stage"`            // shadow, canary or retired
	Weight  float64 `json:"weight,omitempty"` // canary only: percent, in steps of 0.01
	// Force makes a version the canary even though the champion's clients
	// cannot call it (see CheckCompatible); the audit record says what was
	// forced past. Wire version 2.
	Force bool `json:"force,omitempty"`
	// Auto marks a move proposed by the lifecycle controller: the policy
	// may make it wait for approval, and it may not touch a rolled-back
	// version. A person's move (Auto false) happens at once.
	Auto     bool            `json:"auto,omitempty"`
	Reason   string          `json:"reason,omitempty"`
	Evidence json.RawMessage `json:"evidence,omitempty"`
}

// PromoteArgs makes a version the champion. The former champion becomes
// retired and goes onto the rollback stack.
type PromoteArgs struct {
	Model   string `json:"model"`
	Version int    `json:"version"`
	Auto    bool   `json:"auto,omitempty"` // as in SetStageArgs
	// Force promotes a version even though the champion's clients cannot
	// call it (see CheckCompatible); the audit record says what was forced
	// past. Wire version 2.
	Force    bool            `json:"force,omitempty"`
	Reason   string          `json:"reason,omitempty"`
	Evidence json.RawMessage `json:"evidence,omitempty"`
}

// RollbackArgs returns the previous champion to champion and marks the
// current one rolled_back. A rollback never waits for approval.
type RollbackArgs struct {
	Model    string          `json:"model"`
	Auto     bool            `json:"auto,omitempty"` // recorded in the audit log only
	Reason   string          `json:"reason,omitempty"`
	Evidence json.RawMessage `json:"evidence,omitempty"`
}

// ApproveArgs carries out the move waiting for approval on a version.
type ApproveArgs struct {
	Model   string `json:"model"`
	Version int    `json:"version"`
	Reason  string `json:"reason,omitempty"`
}

// RejectArgs drops the move waiting for approval on a version.
type RejectArgs struct {
	Model   string `json:"model"`
	Version int    `json:"version"`
	Reason  string `json:"reason,omitempty"`
}

// DeleteVersionArgs deletes a version that takes no traffic (not the
// champion, the canary or a shadow). Its number is not reused.
type DeleteVersionArgs struct {
	Model   string `json:"model"`
	Version int    `json:"version"`
	Reason  string `json:"reason,omitempty"`
}

// SetPolicyArgs replaces a model's policy (whole: see Policy).
type SetPolicyArgs struct {
	Model  string `json:"model"`
	Policy Policy `json:"policy"`
	Reason string `json:"reason,omitempty"`
}

// RecordAlertArgs writes an event that changes no version into the audit log
// (a drift alert, a retraining request, a trigger that fired) and remembers
// its time per kind on the model.
type RecordAlertArgs struct {
	Model   string `json:"model"`
	Version int    `json:"version,omitempty"` // 0: the model as a whole
	// Kind is a lowercase word: "drift", "retraining_requested" …
	Kind     string          `json:"kind"`
	Reason   string          `json:"reason,omitempty"`
	Evidence json.RawMessage `json:"evidence,omitempty"`
}

// Op implements Args.
func (*CreateModelArgs) Op() Op { return OpCreateModel }

// Op implements Args.
func (*RegisterArgs) Op() Op { return OpRegister }

// Op implements Args.
func (*SetValidationArgs) Op() Op { return OpSetValidation }

// Op implements Args.
func (*SetStageArgs) Op() Op { return OpSetStage }

// Op implements Args.
func (*PromoteArgs) Op() Op { return OpPromote }

// Op implements Args.
func (*RollbackArgs) Op() Op { return OpRollback }

// Op implements Args.
func (*ApproveArgs) Op() Op { return OpApprove }

// Op implements Args.
func (*RejectArgs) Op() Op { return OpReject }

// Op implements Args.
func (*DeleteVersionArgs) Op() Op { return OpDeleteVersion }

// Op implements Args.
func (*SetPolicyArgs) Op() Op { return OpSetPolicy }

// Op implements Args.
func (*RecordAlertArgs) Op() Op { return OpRecordAlert }

// wireCommand is the version 1 envelope.
type wireCommand struct {
	V              int             `json:"v"`
	Op             Op              `json:"op"`
	Time           time.Time       `json:"time"`
	Actor          string          `json:"actor"`
	IdempotencyKey string          `json:"idempotency_key"`
	Args           json.RawMessage `json:"args"`
}

// EncodeCommand writes c in its wire version: WireVersion, or the older one
// it was decoded from. It checks only that c has Args; call c.Validate
// first to refuse a bad command before proposing it.
func EncodeCommand(c Command) ([]byte, error) {
	if c.Args == nil {
		return nil, fmt.Errorf("%w: command has no args", ErrMalformedCommand)
	}
	args, err := json.Marshal(c.Args)
	if err != nil {
		return nil, fmt.Errorf("registry: cannot encode %s command: %w", c.Args.Op(), err)
	}
	return json.Marshal(wireCommand{
		V:              c.WireVersion(),
		Op:             c.Args.Op(),
		Time:           c.Time.UTC(),
		Actor:          c.Actor,
		IdempotencyKey: c.IdempotencyKey,
		Args:           args,
	})
}

// DecodeCommand reads a command written by EncodeCommand (or by hand, in the
// same format), in any wire version up to WireVersion. It refuses bytes over
// MaxCommandSize, an unknown "v" or "op", unknown fields (a field newer than
// the envelope's version is unknown to it) and trailing data; it does not
// check the arguments' values (Validate and Apply do).
func DecodeCommand(b []byte) (Command, error) {
	if len(b) > MaxCommandSize {
		return Command{}, fmt.Errorf("%w: %d bytes, more than the %d allowed", ErrMalformedCommand, len(b), MaxCommandSize)
	}
	var w wireCommand
	if err := strictUnmarshal(b, &w); err != nil {
		return Command{}, fmt.Errorf("%w: %v", ErrMalformedCommand, err)
	}
	if w.V < 1 || w.V > WireVersion {
		if w.V == 0 {
			return Command{}, fmt.Errorf("%w: the envelope has no \"v\" (this registry reads v1 to v%d)", ErrUnsupportedVersion, WireVersion)
		}
		return Command{}, fmt.Errorf("%w: v%d (this registry reads v1 to v%d)", ErrUnsupportedVersion, w.V, WireVersion)
	}
	if y := w.Time.UTC().Year(); y < 0 || y > 9999 {
		// Parsable with a zone offset, but not writable back in UTC.
		return Command{}, fmt.Errorf("%w: time %s is outside the years 0-9999 in UTC", ErrMalformedCommand, w.Time.Format(time.RFC3339))
	}
	mk, ok := newArgs[w.Op]
	if !ok || w.V < opSince[w.Op] {
		if ok {
			return Command{}, fmt.Errorf("%w: %q in a v%d envelope (it came with wire v%d)", ErrUnknownOp, w.Op, w.V, opSince[w.Op])
		}
		return Command{}, fmt.Errorf("%w: %q", ErrUnknownOp, w.Op)
	}
	if len(w.Args) == 0 || bytes.Equal(w.Args, []byte("null")) {
		return Command{}, fmt.Errorf("%w: %s command has no args", ErrMalformedCommand, w.Op)
	}
	args := mk()
	if err := strictUnmarshal(w.Args, args); err != nil {
		return Command{}, fmt.Errorf("%w: %s args: %v", ErrMalformedCommand, w.Op, err)
	}
	if w.V < 2 && forced(args) {
		return Command{}, fmt.Errorf("%w: %s args: json: unknown field \"force\" (it came with wire v2; this envelope is v%d)", ErrMalformedCommand, w.Op, w.V)
	}
	if f := distributionField(args); w.V < 4 && f != "" {
		return Command{}, fmt.Errorf("%w: %s args: json: unknown field %q (it came with wire v4; this envelope is v%d)", ErrMalformedCommand, w.Op, f, w.V)
	}
	c := Command{Time: w.Time.UTC(), Actor: w.Actor, IdempotencyKey: w.IdempotencyKey, Args: args}
	if w.V != WireVersion {
		c.wire = w.V
	}
	return c, nil
}

// forced reports whether args use the wire v2 force field.
func forced(args Args) bool {
	switch a := args.(type) {
	case *PromoteArgs:
		return a.Force
	case *SetStageArgs:
		return a.Force
	}
	return false
}

// distributionField names the wire v4 field args use ("" when none).
func distributionField(args Args) string {
	switch a := args.(type) {
	case *RegisterArgs:
		if a.Holder != "" {
			return "holder"
		}
	case *SetPolicyArgs:
		if a.Policy.Distribution != nil {
			return "distribution"
		}
	case *CreateModelArgs:
		if a.Policy != nil && a.Policy.Distribution != nil {
			return "distribution"
		}
	}
	return ""
}

// strictUnmarshal decodes exactly one JSON value into v, refusing unknown
// fields and anything after the value.
func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the command")
	}
	return nil
}

// Validate checks everything about c that does not depend on the state: the
// envelope (time, actor, idempotency key) and the arguments. Apply runs it
// too; a proposer runs it first to answer 400 without going through Raft.
// It normalises c's Args in place (compacts JSON, drops empty values), which
// does not change what the command means.
func (c *Command) Validate() error {
	if c.Args == nil {
		return fmt.Errorf("%w: command has no args", ErrMalformedCommand)
	}
	if c.Time.IsZero() {
		return fieldErr("time", nil, "must be set: the registry has no clock, every command carries its time")
	}
	if y := c.Time.UTC().Year(); y < 1970 || y > 9999 {
		return fieldErr("time", c.Time.UTC().Format(time.RFC3339), "must be between the years 1970 and 9999")
	}
	if err := checkText("actor", c.Actor, maxTextSize, true); err != nil {
		return err
	}
	if err := checkText("idempotency_key", c.IdempotencyKey, maxTextSize, true); err != nil {
		return err
	}
	return c.Args.validate()
}
