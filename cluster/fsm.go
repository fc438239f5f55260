package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/hashicorp/raft"
	"github.com/modelgate/modelgate/registry"
)

// snapshotMagic starts every snapshot this package writes: the format of the
// envelope, followed (format 1) by exactly one registry snapshot
// (registry.MarshalSnapshot). The envelope leaves room for state that later
// lives beside the registry in the same FSM (artifact holders, readiness)
// without guessing what an old snapshot holds.
const snapshotMagic = "modelgate/cluster-snapshot/1\n"

// snapshotMagicMembers starts a snapshot of a cluster whose members have
// announced their admin addresses: the header, one line of JSON (the
// member table, members.go), then the registry snapshot. A cluster with
// no member records still writes format 1, byte for byte as before.
const snapshotMagicMembers = "modelgate/cluster-snapshot/2\n"

// ApplyResponse is what FSM.Apply returns for a command entry, and so what
// raft's ApplyFuture.Response holds on the node that proposed it. Exactly one
// of Result and Err is meaningful. Err is the registry's refusal (a
// *registry.TransitionError, *registry.FieldError …) or a decoding error
// wrapping registry.ErrMalformedCommand: deterministic, the same on every
// replica, and the state did not change.
type ApplyResponse struct {
	Result registry.Result
	Err    error
}

// FSM is the registry as a raft.FSM: raft calls Apply with every committed
// command entry, in log order, on every node, and all of them reach the same
// state (registry.State is deterministic).
//
// Readers never see a half-applied command: Apply and Restore change the
// state under a write lock; Read runs under the read lock, Clone returns a
// private copy. Changed returns a channel that is closed when the state
// changes, for watchers such as the gateway's reconciler.
type FSM struct {
	log     *slog.Logger
	archive AuditArchive // nil: trimmed records are dropped

	mu      sync.RWMutex
	state   *registry.State
	members map[string]MemberInfo // by node ID: what Raft's configuration does not hold
	// index is the raft index of the last entry Apply applied; restored is
	// set when a snapshot replaced the state since (Restore is not told
	// the snapshot's index: Node.AppliedIndex asks raft then).
	index    uint64
	restored bool
	changed  chan struct{} // closed and replaced whenever state changes
}

var _ raft.FSM = (*FSM)(nil)

// NewFSM returns an FSM over an empty registry (registry.New). logger may be
// nil (slog.Default()).
func NewFSM(logger *slog.Logger) *FSM {
	if logger == nil {
		logger = slog.Default()
	}
	return &FSM{log: logger, state: registry.New(), members: map[string]MemberInfo{}, changed: make(chan struct{})}
}

// Apply implements raft.FSM. It decodes the entry's command
// (registry.DecodeCommand) and applies it to the state, returning an
// *ApplyResponse. A refused or undecodable command is a result, not a
// failure: the state is unchanged on every replica and the proposer gets the
// error. Entries of other types are ignored (raft sends only commands).
// An entry whose Extensions name a member record (members.go) updates the
// member table instead and answers a *MemberResponse.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	defer f.noteIndex(l.Index)
	if bytes.Equal(l.Extensions, []byte(memberExtension)) {
		return f.applyMember(l)
	}
	cmd, err := registry.DecodeCommand(l.Data)
	if err != nil {
		return &ApplyResponse{Err: fmt.Errorf("cluster: cannot decode the command of raft log entry %d: %w", l.Index, err)}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.archiveTrimmed(&cmd, l.Index)
	before := f.state.LastSeq()
	res, err := f.applyRecover(cmd, l.Index)
	if f.state.LastSeq() != before {
		f.notifyLocked()
	}
	return &ApplyResponse{Result: res, Err: err}
}

// applyRecover applies cmd, turning a panic in the registry (a bug) into an
// error result. The registry copies what a command changes and installs it
// only at the end, so a panic leaves the state as it was — and it happens on
// every replica alike, so they stay identical; crashing instead would crash
// every node on the same entry, on every restart.
func (f *FSM) applyRecover(cmd registry.Command, index uint64) (res registry.Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			f.log.Error("cluster: registry panicked applying a command (a registry bug); the command is refused on every node",
				"index", index, "op", cmd.Op(), "idempotency_key", cmd.IdempotencyKey, "panic", fmt.Sprint(r))
			res, err = registry.Result{}, fmt.Errorf("cluster: registry failed on %s command of raft log entry %d (a bug: %v)", cmd.Op(), index, r)
		}
	}()
	return f.state.Apply(cmd)
}

// AuditArchive keeps the audit records a trim_audit removes from the
// replicated state, on this node. Put must make them durable before it
// returns nil, and must accept records it already holds (a trim replayed
// from the Raft log after a restart archives them again).
type AuditArchive interface {
	Put(recs []registry.AuditRecord) error
}

// SetArchive makes f archive what every trim_audit removes, before applying
// it. Call it before raft starts applying entries (cluster.Open does, from
// Config.AuditArchive); nil drops trimmed records.
func (f *FSM) SetArchive(a AuditArchive) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.archive = a
}

// archiveTrimmed archives the records cmd, a trim_audit, is about to
// remove. f.mu must be held for writing. The trim is applied whatever
// happens here — every replica must apply the same commands — so a failed
// archive write loses those records on this node only (the other nodes
// have them) and is logged for the operator.
func (f *FSM) archiveTrimmed(cmd *registry.Command, index uint64) {
	a, ok := cmd.Args.(*registry.TrimAuditArgs)
	if !ok || f.archive == nil || cmd.Validate() != nil {
		return
	}
	first, through := f.state.TrimPlan(a, cmd.Time)
	if through < first {
		return
	}
	recs := f.state.Audit(registry.AuditFilter{Since: first - 1, Until: through})
	if err := f.archive.Put(recs); err != nil {
		f.log.Error("cluster: cannot archive the audit records a trim removes from the registry; this node loses them (other nodes still have them in their archives): fix the archive's disk",
			"index", index, "from_seq", first, "through_seq", through, "err", err)
	}
}

// notifyLocked wakes every watcher. f.mu must be held for writing.
func (f *FSM) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// Snapshot implements raft.FSM. It takes a Clone of the state (raft does not
// call Apply while Snapshot runs, so this is the only work that delays the
// next command) and serialises it later, in Persist, outside any lock.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return &fsmSnapshot{state: f.state.Clone(), members: f.memberList()}, nil
}

// Restore implements raft.FSM: it replaces the whole state with the
// snapshot's — never merges into it. On error the state is unchanged.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("cluster: cannot read snapshot: %w", err)
	}
	s, members, err := decodeSnapshot(b)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.state = s
	f.index, f.restored = 0, true
	f.members = map[string]MemberInfo{}
	for _, m := range members {
		f.members[m.ID] = m
	}
	f.notifyLocked()
	f.mu.Unlock()
	return nil
}

// decodeSnapshot reads a snapshot written by fsmSnapshot.Persist, of
// either format.
func decodeSnapshot(b []byte) (*registry.State, []MemberInfo, error) {
	var members []MemberInfo
	body, ok := bytes.CutPrefix(b, []byte(snapshotMagic))
	if !ok {
		if body, ok = bytes.CutPrefix(b, []byte(snapshotMagicMembers)); !ok {
			n := min(len(b), len(snapshotMagic))
			return nil, nil, fmt.Errorf("%w: header %q, want %q or %q", ErrCorruptSnapshot, b[:n], snapshotMagic, snapshotMagicMembers)
		}
		line, rest, found := bytes.Cut(body, []byte("\n"))
		if !found {
			return nil, nil, fmt.Errorf("%w: the member table has no end of line", ErrCorruptSnapshot)
		}
		if err := json.Unmarshal(line, &members); err != nil {
			return nil, nil, fmt.Errorf("%w: member table: %w", ErrCorruptSnapshot, err)
		}
		body = rest
	}
	s, err := registry.RestoreSnapshot(body)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrCorruptSnapshot, err)
	}
	return s, members, nil
}

// Read calls fn with the current state under the read lock: fn sees one
// consistent state and must not keep it, modify it, or block (Apply waits
// for fn to return).
func (f *FSM) Read(fn func(*registry.State)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.state)
}

// Clone returns a deep copy of the current state, for a reader that needs
// it longer than a Read.
func (f *FSM) Clone() *registry.State {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state.Clone()
}

// LastSeq is the state's registry.LastSeq: it identifies the state.
func (f *FSM) LastSeq() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state.LastSeq()
}

// Changed returns a channel that is closed the next time the state changes
// (a command that changed it, or a restore). To watch without missing a
// change, take the channel first, then read the state, then wait:
//
//	for {
//		ch := fsm.Changed()
//		var view registry.RoutingView
//		fsm.Read(func(s *registry.State) { view = s.RoutingView() })
//		reconcile(view)
//		select {
//		case <-ch:
//		case <-ctx.Done():
//			return
//		}
//	}
//
// Changes that happen while the watcher is busy coalesce into one wake-up.
func (f *FSM) Changed() <-chan struct{} {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.changed
}

// fsmSnapshot is a private copy of the state, serialised by Persist.
type fsmSnapshot struct {
	state   *registry.State
	members []MemberInfo
}

// Persist implements raft.FSMSnapshot: the envelope header, then the
// registry snapshot.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	b, err := s.state.MarshalSnapshot()
	if err == nil {
		if len(s.members) == 0 {
			_, err = io.WriteString(sink, snapshotMagic)
		} else {
			var line []byte
			if line, err = json.Marshal(s.members); err == nil {
				_, err = sink.Write(append(append([]byte(snapshotMagicMembers), line...), '\n'))
			}
		}
		if err == nil {
			_, err = sink.Write(b)
		}
	}
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("cluster: cannot write snapshot %s: %w", sink.ID(), err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("cluster: cannot write snapshot %s: %w", sink.ID(), err)
	}
	return nil
}

// Release implements raft.FSMSnapshot.
func (s *fsmSnapshot) Release() {}
