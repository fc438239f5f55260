package registry

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// This file keeps the audit log's size in bounds: trim_audit removes the
// oldest records from the replicated state. The registry only forgets
// them; each node archives what a trim removes before applying it (the
// cluster package does, into the node's Pebble), so history is moved out
// of snapshots, not lost.

// ActionTrimAudit records a trim_audit: Evidence says which Seq range left
// the state and under which bounds.
const ActionTrimAudit Action = "trim_audit"

// ErrNothingToTrim is trim_audit's refusal when no record is outside its
// bounds (another trim got there first, or the log is within them).
var ErrNothingToTrim = errors.New("registry: no audit record is outside the retention bounds")

// TrimAuditArgs removes the oldest audit records from the state: when it
// holds more than KeepLast records (KeepLast > 0), the oldest go until
// KeepLast remain counting the trim's own record, so the next trim has
// nothing to do until new records come; and records older than MaxAge
// before the command's time go (MaxAge > 0).
// Only a prefix is removed, so the records kept stay numbered without
// gaps: the first record that neither bound removes stops the trim (times
// come from proposers' clocks and need not rise with Seq). The command's
// own record is appended after the trim. Wire version 3.
type TrimAuditArgs struct {
	KeepLast int      `json:"keep_last,omitempty"`
	MaxAge   Duration `json:"max_age,omitempty"`
	Reason   string   `json:"reason,omitempty"`
}

// Op implements Args.
func (*TrimAuditArgs) Op() Op { return OpTrimAudit }

func (a *TrimAuditArgs) validate() error {
	if a.KeepLast < 0 {
		return fieldErr("keep_last", a.KeepLast, "must be >= 0 (0: no bound by count)")
	}
	if a.MaxAge < 0 {
		return fieldErr("max_age", time.Duration(a.MaxAge).String(), "must be >= 0 (0: no bound by age)")
	}
	if a.KeepLast == 0 && a.MaxAge == 0 {
		return fieldErr("keep_last", 0, "or max_age must be set: a trim needs a bound")
	}
	return checkText("reason", a.Reason, MaxReasonSize, false)
}

// TrimPlan returns the Seq range [first, through] of the records a
// trim_audit with a, made at now, would remove from s (through < first:
// none). A node archives that range before applying the command.
func (s *State) TrimPlan(a *TrimAuditArgs, now time.Time) (first, through uint64) {
	first = s.FirstRetainedSeq()
	cutoff := now.UTC().Add(-time.Duration(a.MaxAge))
	nCount := 0
	if a.KeepLast > 0 && len(s.audit) > a.KeepLast {
		nCount = len(s.audit) - (a.KeepLast - 1) // room for the trim's own record
	}
	n := 0
	for n < len(s.audit) {
		byCount := n < nCount
		byAge := a.MaxAge > 0 && s.audit[n].Time.Before(cutoff)
		if !byCount && !byAge {
			break
		}
		n++
	}
	return first, first + uint64(n) - 1
}

func (a *TrimAuditArgs) apply(t *txn) (Result, error) {
	first, through := t.s.TrimPlan(a, t.now)
	if through < first {
		return Result{}, fmt.Errorf("%w: the state holds records %d to %d, within keep_last %d and max_age %s",
			ErrNothingToTrim, first, t.s.seq, a.KeepLast, time.Duration(a.MaxAge))
	}
	t.trimThrough = through
	reason := a.Reason
	if reason == "" {
		reason = "audit retention: records " + strconv.FormatUint(first, 10) + " to " + strconv.FormatUint(through, 10) + " moved to the nodes' archives"
	}
	t.record(AuditRecord{Action: ActionTrimAudit, Reason: reason, Evidence: mustJSON(map[string]any{
		"trimmed_from": first, "trimmed_through": through, "keep_last": a.KeepLast, "max_age": a.MaxAge})})
	return Result{}, nil
}

// trim drops the retained records with Seq up to through. The kept ones
// move to a new array, so the trimmed ones (evidence up to 1 MiB each) can
// be collected.
func (s *State) trim(through uint64) {
	first := s.FirstRetainedSeq()
	if through < first {
		return
	}
	cut := min(int(through-first+1), len(s.audit))
	s.audit = slices.Clone(s.audit[cut:])
}
