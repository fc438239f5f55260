package registry

import (
	"encoding/json"
	"time"
)

// Action is what an audit record says happened.
type Action string

// The audit actions. One command may append several records: a promotion
// records the new champion and the retirement of the old one; a validation
// that makes the first champion records both steps.
const (
	ActionCreateModel     Action = "create_model"
	ActionRegister        Action = "register"
	ActionValidate        Action = "validate"           // To is validated or failed; Evidence is the gate's
	ActionSetStage        Action = "set_stage"          // to shadow, canary (or a new weight) or retired
	ActionPromote         Action = "promote"            // a version became champion
	ActionRetire          Action = "retire"             // the former champion, replaced by a promotion
	ActionRollback        Action = "rollback"           // two records: champion → rolled_back, previous → champion
	ActionRequestApproval Action = "approval_requested" // an automatic move waits for a person
	ActionApprove         Action = "approve"            // followed by the move's own record
	ActionReject          Action = "reject"
	ActionDeleteVersion   Action = "delete_version"
	ActionSetPolicy       Action = "set_policy" // Evidence is the new policy
	ActionAlert           Action = "alert"      // Kind says which
	ActionReady           Action = "ready"      // report_ready: a node's verdict on a version's bytes
)

// AuditRecord is one entry of the append-only audit log. Records are never
// changed; Seq numbers them 1, 2, 3 … without gaps. trim_audit removes the
// oldest from the state (nodes archive them), never renumbering the rest.
type AuditRecord struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"` // the command's time
	Actor   string    `json:"actor"`
	Action  Action    `json:"action"`
	Model   string    `json:"model"`
	Version int       `json:"version,omitempty"` // 0 for a record about the model
	From    Stage     `json:"from,omitempty"`
	To      Stage     `json:"to,omitempty"`
	Weight  float64   `json:"weight,omitempty"` // the canary weight in percent, when To is canary
	// Auto marks a move proposed by the lifecycle controller.
	Auto bool `json:"auto,omitempty"`
	// Kind is the alert's kind, for ActionAlert.
	Kind     string          `json:"kind,omitempty"`
	Reason   string          `json:"reason,omitempty"`
	Evidence json.RawMessage `json:"evidence,omitempty"`
	// Forced is what a forced move (Force) overrode: the signature
	// incompatibility the check would have refused. Empty when nothing was
	// overridden.
	Forced string `json:"forced,omitempty"`
	// IdempotencyKey is the key of the command that wrote the record.
	IdempotencyKey string `json:"idempotency_key"`
}

func (r *AuditRecord) clone() AuditRecord {
	c := *r
	c.Evidence = cloneRaw(r.Evidence)
	return c
}

// AuditFilter selects audit records. The zero filter selects all of them.
type AuditFilter struct {
	Model   string // "" for every model
	Version int    // 0 for every version (and the model's own records)
	Since   uint64 // only records with Seq > Since
	Until   uint64 // only records with Seq <= Until; 0 for no bound
	Limit   int    // at most this many, oldest first; <= 0 for no limit
}

// Match reports whether r passes f's model and version filter (not its
// Seq bounds or limit), for stores that keep records outside the state.
func (f *AuditFilter) Match(r *AuditRecord) bool {
	return (f.Model == "" || r.Model == f.Model) && (f.Version == 0 || r.Version == f.Version)
}

// Audit returns copies of the retained records f selects, in Seq order.
// Paging: pass the last record's Seq as the next Since. Records trimmed
// by trim_audit (Seq below FirstRetainedSeq) are not here.
func (s *State) Audit(f AuditFilter) []AuditRecord {
	var out []AuditRecord
	first := s.FirstRetainedSeq()
	start := uint64(0)
	if f.Since >= first {
		start = f.Since - first + 1
	}
	for i := start; i < uint64(len(s.audit)); i++ {
		r := &s.audit[i]
		if f.Until != 0 && r.Seq > f.Until {
			break
		}
		if !f.Match(r) {
			continue
		}
		out = append(out, r.clone())
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out
}

// FirstRetainedSeq is the Seq of the oldest record the state still holds:
// records before it were trimmed (and live only in nodes' archives). It is
// LastSeq+1 when the state holds none.
func (s *State) FirstRetainedSeq() uint64 {
	if len(s.audit) == 0 {
		return s.seq + 1
	}
	return s.audit[0].Seq
}
