package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// State is the whole registry: models, versions, aliases, policies, the
// audit log and the remembered idempotency keys. It changes only through
// Apply, which is deterministic: the same commands in the same order give
// the same state (and byte-identical snapshots) on every replica.
//
// A State is not safe for concurrent use; the cluster package serialises
// Apply (Raft does) and guards reads with a lock, or reads from a Clone.
type State struct {
	models map[string]*Model
	// audit holds the retained records: a contiguous run of Seq ending at
	// seq (trim_audit removes the oldest). It may be empty while seq is not.
	audit []AuditRecord
	// seq is the Seq of the last record ever appended. It is a counter of
	// its own, not len(audit), so trimming never renumbers anything.
	seq  uint64
	keys keyRing
}

// New returns an empty state that remembers the last
// DefaultIdempotencyWindow idempotency keys.
func New() *State {
	return &State{models: make(map[string]*Model), keys: newKeyRing(DefaultIdempotencyWindow)}
}

// Result is what a successful Apply did.
type Result struct {
	Op      Op     `json:"op"`
	Model   string `json:"model"`
	Version int    `json:"version,omitempty"` // the version acted on: the new number for register, the restored champion for rollback
	// Stage is the version's stage afterwards ("" after delete_version or
	// for a command on the model).
	Stage Stage `json:"stage,omitempty"`
	// PendingApproval: the move was recorded as waiting for a person
	// (Stage is unchanged); an approve command carries it out.
	PendingApproval bool `json:"pending_approval,omitempty"`
	// AuditSeq is the sequence number of the last audit record the command
	// appended.
	AuditSeq uint64 `json:"audit_seq"`
	// Replayed: the idempotency key had been applied before; this is that
	// first Result and nothing was applied now.
	Replayed bool `json:"replayed,omitempty"`
}

// Apply checks cmd and, if it is legal in the current state, applies it:
// it changes the state, appends one or more audit records and remembers the
// idempotency key. On error nothing changes. Errors are a *FieldError
// (ErrInvalid), a *TransitionError (ErrIllegalTransition), a *DuplicateError,
// an *IdempotencyError, or wrap ErrModelNotFound, ErrVersionNotFound,
// ErrModelExists or ErrMalformedCommand.
//
// A command whose idempotency key the state remembers is not applied again:
// Apply returns the first Result with Replayed set, or an *IdempotencyError
// if the key came with a different command (op, actor or arguments; the time
// may differ, as a retry is made later). A failed command does not use up
// its key.
//
// Apply normalises cmd.Args in place (see Command.Validate) and keeps no
// reference to them.
func (s *State) Apply(cmd Command) (Result, error) {
	if err := cmd.Validate(); err != nil {
		return Result{}, err
	}
	fp, err := fingerprint(&cmd)
	if err != nil {
		return Result{}, err
	}
	if e, ok := s.keys.get(cmd.IdempotencyKey); ok {
		if e.Fingerprint != fp {
			return Result{}, &IdempotencyError{Key: cmd.IdempotencyKey, Op: e.Result.Op}
		}
		r := e.Result
		r.Replayed = true
		return r, nil
	}
	t := &txn{s: s, cmd: &cmd, now: cmd.Time.UTC(), wire: cmd.WireVersion()}
	res, err := cmd.Args.apply(t)
	if err != nil {
		return Result{}, err
	}
	if len(t.records) == 0 {
		// Every op records what it did; a command that did not is a bug,
		// and applying it silently would make the audit log lie.
		return Result{}, fmt.Errorf("registry: %s command changed nothing (a registry bug)", cmd.Op())
	}
	// Commit: nothing below can fail.
	if t.m != nil {
		if len(t.m.PreviousChampions) == 0 {
			t.m.PreviousChampions = nil // as a snapshot restores it
		}
		s.models[t.m.Name] = t.m
	}
	if t.trimThrough > 0 {
		s.trim(t.trimThrough)
	}
	for _, r := range t.records {
		s.seq++
		r.Seq = s.seq
		s.audit = append(s.audit, r)
	}
	res.Op = cmd.Op()
	res.AuditSeq = s.seq
	s.keys.add(keyEntry{Key: cmd.IdempotencyKey, Fingerprint: fp, Result: res})
	return res, nil
}

// fingerprint identifies what a command asks for, apart from its time and
// key: two commands with the same key must have the same fingerprint.
func fingerprint(c *Command) (string, error) {
	args, err := json.Marshal(c.Args)
	if err != nil {
		return "", fmt.Errorf("%w: cannot encode %s args: %v", ErrMalformedCommand, c.Op(), err)
	}
	h := sha256.New()
	h.Write([]byte(c.Op()))
	h.Write([]byte{0})
	h.Write([]byte(c.Actor))
	h.Write([]byte{0})
	h.Write(args)
	return hex.EncodeToString(h.Sum(nil)[:16]), nil
}

// txn is one command being applied. The model it changes is a copy, installed
// only when the command succeeds, so an op may fail at any point without
// undoing anything.
type txn struct {
	s       *State
	cmd     *Command
	now     time.Time
	wire    int    // the wire version cmd was written in
	m       *Model // the (copied) model this command changes
	records []AuditRecord
	// trimThrough: trim_audit drops the retained records with Seq up to
	// this at commit (0: none).
	trimThrough uint64
}

// load returns a writable copy of the named model.
func (t *txn) load(name string) (*Model, error) {
	if t.m != nil && t.m.Name == name {
		return t.m, nil
	}
	m, ok := t.s.models[name]
	if !ok {
		return nil, modelNotFound(name)
	}
	t.m = m.cow()
	return t.m, nil
}

// version returns a writable copy of the named model and the index of
// version n in it.
func (t *txn) version(model string, n int) (*Model, int, error) {
	m, err := t.load(model)
	if err != nil {
		return nil, 0, err
	}
	i := m.index(n)
	if i < 0 {
		return nil, 0, versionNotFound(model, n)
	}
	return m, i, nil
}

// create makes a new model with policy p and records it.
func (t *txn) create(name string, p Policy, reason string) *Model {
	t.m = &Model{Name: name, Created: t.now, Policy: p.clone(), NextVersion: 1}
	ev, _ := json.Marshal(p) // p is valid, so it encodes
	t.record(AuditRecord{Action: ActionCreateModel, Reason: reason, Evidence: ev})
	return t.m
}

// record adds an audit record, filling in what every record of this command
// shares. Seq is set at commit.
func (t *txn) record(r AuditRecord) {
	r.Time = t.now
	r.Actor = t.cmd.Actor
	r.IdempotencyKey = t.cmd.IdempotencyKey
	if r.Model == "" && t.m != nil {
		r.Model = t.m.Name
	}
	t.records = append(t.records, r)
}

// Model returns a copy of the named model, or an error wrapping
// ErrModelNotFound.
func (s *State) Model(name string) (Model, error) {
	m, ok := s.models[name]
	if !ok {
		return Model{}, modelNotFound(name)
	}
	return m.clone(), nil
}

// Models returns copies of every model, sorted by name.
func (s *State) Models() []Model {
	out := make([]Model, 0, len(s.models))
	for _, name := range s.modelNames() {
		out = append(out, s.models[name].clone())
	}
	return out
}

func (s *State) modelNames() []string {
	names := make([]string, 0, len(s.models))
	for name := range s.models {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Version returns a copy of version n of the named model, or an error
// wrapping ErrModelNotFound or ErrVersionNotFound.
func (s *State) Version(model string, n int) (Version, error) {
	m, ok := s.models[model]
	if !ok {
		return Version{}, modelNotFound(model)
	}
	v, ok := m.Version(n)
	if !ok {
		return Version{}, versionNotFound(model, n)
	}
	return v, nil
}

// Champion returns a copy of the model's champion, or an error wrapping
// ErrModelNotFound or ErrNoChampion.
func (s *State) Champion(model string) (Version, error) {
	m, ok := s.models[model]
	if !ok {
		return Version{}, modelNotFound(model)
	}
	if m.Champion == 0 {
		return Version{}, fmt.Errorf("%w: %s (no version has passed validation yet)", ErrNoChampion, model)
	}
	v, _ := m.Version(m.Champion)
	return v, nil
}

// Canary returns a copy of the model's canary and its weight (0–100), or an
// error wrapping ErrModelNotFound or ErrNoCanary.
func (s *State) Canary(model string) (Version, float64, error) {
	m, ok := s.models[model]
	if !ok {
		return Version{}, 0, modelNotFound(model)
	}
	if m.Canary == 0 {
		return Version{}, 0, fmt.Errorf("%w: %s", ErrNoCanary, model)
	}
	v, _ := m.Version(m.Canary)
	return v, m.CanaryWeight, nil
}

// Policy returns a copy of the model's policy, or an error wrapping
// ErrModelNotFound.
func (s *State) Policy(model string) (Policy, error) {
	m, ok := s.models[model]
	if !ok {
		return Policy{}, modelNotFound(model)
	}
	return m.Policy.clone(), nil
}

// PendingApprovals returns copies of the versions that have a move waiting
// for approval, by model name then version.
func (s *State) PendingApprovals() []Version {
	var out []Version
	for _, name := range s.modelNames() {
		for i := range s.models[name].Versions {
			if v := &s.models[name].Versions[i]; v.Pending != nil {
				out = append(out, v.clone())
			}
		}
	}
	return out
}

// LastSeq is the sequence number of the last audit record ever appended (0
// for an empty state), whether or not trim_audit has removed it since.
// Every successful command raises it, so it doubles as the state's
// generation: a reader that saw the same LastSeq saw the same state.
func (s *State) LastSeq() uint64 { return s.seq }

// Clone returns a deep copy of s that shares nothing with it.
func (s *State) Clone() *State {
	c := &State{models: make(map[string]*Model, len(s.models)), audit: make([]AuditRecord, len(s.audit)), seq: s.seq, keys: s.keys.clone()}
	for name, m := range s.models {
		mc := m.clone()
		c.models[name] = &mc
	}
	for i := range s.audit {
		c.audit[i] = s.audit[i].clone()
	}
	return c
}
