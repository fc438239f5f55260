package cluster

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/modelgate/modelgate/registry"
)

// Sentinel errors. Callers test for them with errors.Is; every error this
// package makes starts with "cluster:" — except ErrKeyNotFound, whose text
// hashicorp/raft compares (see its doc).
//
// Node.Apply returns either a registry error (the command was applied and
// refused deterministically: map it as the registry package says, 4xx), or
// an *UnavailableError, which unwraps to ErrUnavailable (HTTP 503) and to one
// of ErrNotLeader, ErrNoLeader, ErrTimeout, ErrLeadershipLost or ErrClosed.
var (
	// ErrUnavailable: the registry could not take the write now. Every
	// *UnavailableError unwraps to it; the HTTP layer answers 503.
	ErrUnavailable = errors.New("cluster: registry unavailable")
	// ErrNotLeader: this node is a follower and another node leads. Nothing
	// was applied; the write must go to the leader (UnavailableError.Leader).
	ErrNotLeader = errors.New("cluster: this node is not the leader")
	// ErrNoLeader: no leader was elected before the deadline (no quorum, or
	// an election in progress). Nothing was applied.
	ErrNoLeader = errors.New("cluster: no leader")
	// ErrTimeout: the deadline passed. If the command had been handed to
	// Raft its outcome is unknown (UnavailableError.OutcomeUnknown).
	ErrTimeout = errors.New("cluster: apply timed out")
	// ErrLeadershipLost: this node stopped being the leader while the
	// command was in flight; it may still be committed by the next leader.
	ErrLeadershipLost = errors.New("cluster: leadership lost while committing")
	// ErrClosed: the node is closed (or closing).
	ErrClosed = errors.New("cluster: node is closed")

	// ErrLostRaftState: the data dir was a cluster member (its cluster.json
	// says so) but holds no Raft state any more, and Config.ForceBootstrap is
	// not set. Open refuses to start a new, empty cluster over it; the
	// error says what is missing and how to recover.
	ErrLostRaftState = errors.New("cluster: the data dir has lost its raft state")

	// ErrInvalidMember: a join named a bad member id or address (HTTP 400).
	ErrInvalidMember = errors.New("cluster: invalid member")
	// ErrMemberConflict: a join or removal contradicts the configuration:
	// the id is a member at another address or suffrage, the address is
	// another member's, or the leader was asked to remove itself (HTTP 409).
	ErrMemberConflict = errors.New("cluster: membership conflict")
	// ErrNotMember: no member has that id (HTTP 404).
	ErrNotMember = errors.New("cluster: no such member")

	// ErrInvalidConfig: Config.Validate refused a field (the error names it).
	ErrInvalidConfig = errors.New("cluster: invalid config")

	// ErrStoreClosed is returned by every Store call after Close.
	ErrStoreClosed = errors.New("cluster: raft store is closed")
	// ErrStoreFailed wraps the first write the raft store could not commit
	// and sync. The store then refuses every write until it is reopened:
	// acknowledging after a failed sync could be a lie (etcd treats a failed
	// WAL save the same way). Reads keep working.
	ErrStoreFailed = errors.New("cluster: raft store failed a durable write; restart the node")
	// ErrCorruptLog: a stored raft log entry or stable value does not decode.
	ErrCorruptLog = errors.New("cluster: corrupt raft store entry")
	// ErrCorruptSnapshot: a snapshot handed to FSM.Restore is not one this
	// package wrote (wrong header) or its registry state does not restore.
	ErrCorruptSnapshot = errors.New("cluster: corrupt snapshot")

	// ErrKeyNotFound is what the StableStore returns for a key it does not
	// hold. Its text is exactly "not found" because hashicorp/raft (api.go
	// HasExistingState and NewRaft, raft.go requestVote) compares the error's
	// text, not its identity; raft-boltdb does the same.
	ErrKeyNotFound = errors.New("not found")
)

// UnavailableError says a write was not done, or may not have been, because
// the cluster could not commit it in time. It unwraps to ErrUnavailable and to
// Err (ErrNotLeader, ErrNoLeader, ErrTimeout, ErrLeadershipLost or ErrClosed),
// so the HTTP layer answers 503 without looking at the text.
//
// When OutcomeUnknown is false nothing was applied and a retry is a new
// attempt. When it is true the command may still be committed (now or by a
// later leader): the client must not assume either outcome, and retrying with
// the same idempotency key is safe — the registry remembers applied keys, so
// a retry of a command that did commit returns its first result (Replayed)
// instead of applying it twice.
type UnavailableError struct {
	Op             registry.Op
	IdempotencyKey string
	// Err is the reason: ErrNotLeader, ErrNoLeader, ErrTimeout,
	// ErrLeadershipLost or ErrClosed.
	Err error
	// OutcomeUnknown: the command was handed to Raft and may have been, or
	// may yet be, committed.
	OutcomeUnknown bool
	// Leader is the Raft address and ID of the leader this node knows of
	// ("" when none): where a write refused with ErrNotLeader must go.
	Leader, LeaderID string
	// Waited is how long Apply waited before giving up.
	Waited time.Duration
	// Cause is the underlying error (a raft error, or the context's), if any.
	Cause error
}

// Error says what failed, whether anything was applied, and what to do.
func (e *UnavailableError) Error() string {
	var b strings.Builder
	b.WriteString("cluster: cannot apply ")
	b.WriteString(string(e.Op))
	if e.IdempotencyKey != "" {
		b.WriteString(" (idempotency key " + strconv.Quote(e.IdempotencyKey) + ")")
	}
	b.WriteString(": ")
	b.WriteString(strings.TrimPrefix(e.Err.Error(), "cluster: "))
	if e.Cause != nil {
		b.WriteString(" (" + e.Cause.Error() + ")")
	}
	if e.Waited > 0 {
		b.WriteString(" after " + e.Waited.Round(time.Millisecond).String())
	}
	if e.Leader != "" && !e.OutcomeUnknown {
		b.WriteString("; the leader is " + e.LeaderID + " at " + e.Leader)
	}
	if e.OutcomeUnknown {
		b.WriteString("; the outcome is unknown: the command may still be committed. Retry with the same idempotency key (safe: a committed command is not applied twice)")
	} else {
		b.WriteString("; nothing was applied: retry")
		if errors.Is(e.Err, ErrNotLeader) {
			b.WriteString(" on the leader")
		} else {
			b.WriteString(" when the cluster has a leader")
		}
	}
	return b.String()
}

// Unwrap returns ErrUnavailable, Err and Cause (when set).
func (e *UnavailableError) Unwrap() []error {
	errs := []error{ErrUnavailable, e.Err}
	if e.Cause != nil {
		errs = append(errs, e.Cause)
	}
	return errs
}

// corrupt wraps ErrCorruptLog with what was being read.
func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorruptLog, fmt.Sprintf(format, args...))
}
