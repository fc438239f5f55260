package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	"github.com/modelgate/modelgate/registry"
)

// Membership. Raft's configuration is the truth about who is a member and
// who votes; it knows each member by ID and Raft address only. What the
// rest of a node needs besides — the admin address a follower forwards
// writes to — travels as member records: Raft log entries whose Extensions
// are memberExtension, applied by the FSM to a member table beside the
// registry (and kept in its snapshots). They never reach the registry, so
// they change neither its LastSeq nor its audit log.

// memberExtension marks a Raft log entry as a member record, not a registry
// command.
const memberExtension = "modelgate/member/1"

// MemberInfo is what the member table holds about one node.
type MemberInfo struct {
	ID        string `json:"id"`
	RaftAddr  string `json:"raft_addr"`
	AdminAddr string `json:"admin_addr"`
}

// Member is one node of the cluster as Raft's configuration and the member
// table describe it. AdminAddr is "" for a member that has not announced
// one (a node bootstrapped before member records existed, until it leads).
type Member struct {
	ID        string
	RaftAddr  string
	AdminAddr string
	// Voter: the node votes and counts towards the quorum; a non-voter
	// receives and applies the log but never votes.
	Voter bool
}

// memberRecord is a member record's payload.
type memberRecord struct {
	Op     string     `json:"op"` // "set" or "delete"
	Member MemberInfo `json:"member"`
}

// MemberResponse is what FSM.Apply returns for a member record.
type MemberResponse struct{ Err error }

// Member-record ops, for UnavailableError.Op.
const (
	opMemberSet    registry.Op = "member-set"
	opMemberDelete registry.Op = "member-delete"
)

func (f *FSM) applyMember(l *raft.Log) any {
	var rec memberRecord
	if err := json.Unmarshal(l.Data, &rec); err != nil {
		return &MemberResponse{Err: fmt.Errorf("cluster: cannot decode the member record of raft log entry %d: %w", l.Index, err)}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch rec.Op {
	case "set":
		f.members[rec.Member.ID] = rec.Member
	case "delete":
		delete(f.members, rec.Member.ID)
	default:
		return &MemberResponse{Err: fmt.Errorf("cluster: raft log entry %d: unknown member record op %q (a newer node wrote it: upgrade this one)", l.Index, rec.Op)}
	}
	return &MemberResponse{}
}

// memberList returns the member table sorted by ID. f.mu must be held.
func (f *FSM) memberList() []MemberInfo {
	out := make([]MemberInfo, 0, len(f.members))
	for _, m := range f.members {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// MemberInfo returns what the member table holds about node id.
func (f *FSM) MemberInfo(id string) (MemberInfo, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	m, ok := f.members[id]
	return m, ok
}

// Members returns every node of Raft's latest configuration (committed or
// not: a join in progress shows), sorted by ID, with the admin addresses
// the member table holds.
func (n *Node) Members() ([]Member, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("cluster: cannot read the raft configuration: %w", err)
	}
	var out []Member
	for _, s := range f.Configuration().Servers {
		m := Member{ID: string(s.ID), RaftAddr: string(s.Address), Voter: s.Suffrage == raft.Voter}
		if info, ok := n.fsm.MemberInfo(m.ID); ok {
			m.AdminAddr = info.AdminAddr
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// LeaderAdmin returns the leader's ID and its admin address as the member
// table holds it. id is "" when no leader is known; adminAddr is "" when the
// leader has not announced one.
func (n *Node) LeaderAdmin() (id, adminAddr string) {
	_, lid := n.raft.LeaderWithID()
	if lid == "" {
		return "", ""
	}
	info, _ := n.fsm.MemberInfo(string(lid))
	return string(lid), info.AdminAddr
}

// AppliedIndex is the index of the newest Raft log entry whose effect this
// node's registry holds: a follower that has reached the index a leader
// reported after a write sees that write. (raft's own AppliedIndex counts
// entries handed to the FSM, not yet applied by it: too early for that.)
func (n *Node) AppliedIndex() uint64 {
	idx, restored := n.fsm.appliedIndex()
	if restored {
		// A snapshot restore is done by the time raft records it as the
		// last snapshot: the state holds everything up to its index.
		if s, err := strconv.ParseUint(n.raft.Stats()["last_snapshot_index"], 10, 64); err == nil {
			idx = max(idx, s)
		}
	}
	return idx
}

// noteIndex records that the entry at index was applied.
func (f *FSM) noteIndex(index uint64) {
	f.mu.Lock()
	f.index, f.restored = max(f.index, index), false
	f.mu.Unlock()
}

func (f *FSM) appliedIndex() (uint64, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.index, f.restored || f.index == 0
}

// appliedPoll is how often WaitApplied looks again: member records and
// refused commands change the applied index without waking Changed.
const appliedPoll = 5 * time.Millisecond

// WaitApplied waits until this node has applied the log up to index, or
// ctx ends (an error wrapping ErrTimeout and ctx's error).
func (n *Node) WaitApplied(ctx context.Context, index uint64) error {
	t := time.NewTicker(appliedPoll)
	defer t.Stop()
	for {
		ch := n.fsm.Changed()
		if n.AppliedIndex() >= index {
			return nil
		}
		if n.closing.Load() {
			return ErrClosed
		}
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("cluster: node %s has applied the log to %d, not yet to %d: %w: %w", n.cfg.NodeID, n.AppliedIndex(), index, ErrTimeout, ctx.Err())
		}
	}
}

// CatchUp waits until this node's registry holds what it must before the
// node reads it for what to serve. On the leader: everything committed (a
// Barrier, skipped when its whole log is applied — admin writes call it
// before they read the state they change, because a newly elected leader
// replays its log only after it commits an entry of its term). On a
// follower, which cannot ask the leader's commit index: every entry its
// own log held when it opened, and, on a node that joined rather than
// bootstrapped, its own member record — the leader writes that after
// adding it, so everything committed before the join comes first.
func (n *Node) CatchUp(ctx context.Context) error {
	if n.IsLeader() {
		if n.raft.AppliedIndex() >= n.raft.LastIndex() {
			return nil
		}
		return n.Barrier(ctx)
	}
	// Bounded by ctx alone: a leader retries a follower it could not reach
	// with a backoff of up to about 40 s (raft's replication), so a node
	// that was down a while may wait that long for its first entries.
	t := time.NewTicker(appliedPoll)
	defer t.Stop()
	for {
		// raft's own counts: the commit index may name an entry the FSM
		// never sees (a configuration change, a new term's no-op).
		commit, applied := n.raft.CommitIndex(), n.raft.AppliedIndex()
		_, member := n.fsm.MemberInfo(n.cfg.NodeID)
		if commit >= max(n.openIndex, 1) && applied >= commit && (member || n.cfg.Bootstrap) {
			// Handed to the FSM is not applied by it yet: wait for the
			// last entry it will see.
			return n.WaitApplied(ctx, n.lastCommandIndex(commit))
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("cluster: node %s has applied the log to %d of the %d it held at start (commit index %d; own member record applied: %v): %w: %w",
				n.cfg.NodeID, applied, n.openIndex, commit, member, ErrTimeout, ctx.Err())
		}
	}
}

// LinearizableRead makes a read that follows it on this node see every
// write committed before it was called: the node checks with a quorum that
// it still leads (raft's VerifyLeader), then waits until its FSM has
// applied everything committed (Barrier). Only the leader can; elsewhere
// it fails with an error wrapping ErrNotLeader, and the read must go to
// the leader.
func (n *Node) LinearizableRead(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
	defer cancel()
	if !n.IsLeader() {
		return &UnavailableError{Op: "linearizable-read", Err: ErrNotLeader, Leader: n.leaderAddr(), LeaderID: n.leaderID()}
	}
	if err := waitFuture(ctx, n.raft.VerifyLeader()); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return &UnavailableError{Op: "linearizable-read", Err: ErrNotLeader, Cause: err, Leader: n.leaderAddr(), LeaderID: n.leaderID()}
		}
		return &UnavailableError{Op: "linearizable-read", Err: ErrNoLeader, Cause: err}
	}
	return n.Barrier(ctx)
}

func (n *Node) leaderAddr() string { a, _ := n.raft.LeaderWithID(); return string(a) }
func (n *Node) leaderID() string   { _, id := n.raft.LeaderWithID(); return string(id) }

// waitFuture waits for f or ctx, whichever ends first.
func waitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
	}
}

// Announce records this node's admin address in the member table, unless
// it is there already. Only the leader can write (ErrNotLeader elsewhere):
// a node that bootstraps a cluster announces itself once it leads; a node
// that joins is recorded by the leader that adds it.
func (n *Node) Announce(ctx context.Context, adminAddr string) error {
	if info, ok := n.fsm.MemberInfo(n.cfg.NodeID); ok && info.AdminAddr == adminAddr && info.RaftAddr == n.Addr() {
		return nil
	}
	return n.setMember(ctx, MemberInfo{ID: n.cfg.NodeID, RaftAddr: n.Addr(), AdminAddr: adminAddr})
}

// Join adds m to the cluster on the leader — as a voter or, when m.Voter
// is false, a non-voter that receives the log but never votes — and records
// its admin address. Joining again with the same ID, address and suffrage
// changes nothing (a node retrying its join is safe). It fails with
// ErrMemberConflict when another member has m's Raft address or m's ID is
// a member with another address or suffrage (remove it first), and with an
// *UnavailableError (ErrNotLeader …) when this node cannot change the
// configuration.
func (n *Node) Join(ctx context.Context, m Member) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
	defer cancel()
	if err := checkNodeID(m.ID); err != "" {
		return fmt.Errorf("%w: member id %q %s", ErrInvalidMember, m.ID, err)
	}
	if err := checkAddr(m.RaftAddr, false); err != "" {
		return fmt.Errorf("%w: raft_addr %q %s", ErrInvalidMember, m.RaftAddr, err)
	}
	if err := checkAddr(m.AdminAddr, false); err != "" {
		return fmt.Errorf("%w: admin_addr %q %s", ErrInvalidMember, m.AdminAddr, err)
	}
	if !n.IsLeader() {
		return &UnavailableError{Op: "join", Err: ErrNotLeader, Leader: n.leaderAddr(), LeaderID: n.leaderID()}
	}
	members, err := n.Members()
	if err != nil {
		return err
	}
	present := false
	for _, cur := range members {
		switch {
		case cur.ID == m.ID && (cur.RaftAddr != m.RaftAddr || cur.Voter != m.Voter):
			return fmt.Errorf("%w: %s is already a member at %s (voter %v); remove it first to join it at %s (voter %v)", ErrMemberConflict, m.ID, cur.RaftAddr, cur.Voter, m.RaftAddr, m.Voter)
		case cur.ID != m.ID && cur.RaftAddr == m.RaftAddr:
			return fmt.Errorf("%w: raft address %s belongs to member %s", ErrMemberConflict, m.RaftAddr, cur.ID)
		case cur.ID == m.ID:
			present = true
		}
	}
	if !present {
		deadline, _ := ctx.Deadline()
		var f raft.IndexFuture
		if m.Voter {
			f = n.raft.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.RaftAddr), 0, time.Until(deadline))
		} else {
			f = n.raft.AddNonvoter(raft.ServerID(m.ID), raft.ServerAddress(m.RaftAddr), 0, time.Until(deadline))
		}
		if err := n.configError("join "+m.ID, waitFuture(ctx, f)); err != nil {
			return err
		}
		n.log.Info("cluster: member added", "id", m.ID, "raft_addr", m.RaftAddr, "admin_addr", m.AdminAddr, "voter", m.Voter)
	}
	if info, ok := n.fsm.MemberInfo(m.ID); ok && info.AdminAddr == m.AdminAddr && info.RaftAddr == m.RaftAddr {
		return nil
	}
	return n.setMember(ctx, MemberInfo{ID: m.ID, RaftAddr: m.RaftAddr, AdminAddr: m.AdminAddr})
}

// Remove takes member id out of the cluster on the leader and drops its
// member record. The leader stops replicating to the removed node at once,
// so that node may never learn it was removed (it shuts its Raft down only
// if it applies the change: ShutdownOnRemove): stop it. Until then it
// serves what it had loaded, and its Raft elections are refused by the
// remaining members. The leader
// does not remove itself (ErrMemberConflict: transfer leadership by
// stopping it, or remove it from the new leader); an unknown id is
// ErrNotMember.
func (n *Node) Remove(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
	defer cancel()
	if !n.IsLeader() {
		return &UnavailableError{Op: "remove", Err: ErrNotLeader, Leader: n.leaderAddr(), LeaderID: n.leaderID()}
	}
	if id == n.cfg.NodeID {
		return fmt.Errorf("%w: %s is the leader and does not remove itself; stop it (another node takes over) and remove it there", ErrMemberConflict, id)
	}
	members, err := n.Members()
	if err != nil {
		return err
	}
	found := false
	for _, m := range members {
		found = found || m.ID == id
	}
	if found {
		deadline, _ := ctx.Deadline()
		if err := n.configError("remove "+id, waitFuture(ctx, n.raft.RemoveServer(raft.ServerID(id), 0, time.Until(deadline)))); err != nil {
			return err
		}
		n.log.Info("cluster: member removed", "id", id)
	} else if _, ok := n.fsm.MemberInfo(id); !ok {
		return fmt.Errorf("%w: %s", ErrNotMember, id)
	}
	if _, ok := n.fsm.MemberInfo(id); !ok {
		return nil
	}
	return n.proposeMember(ctx, opMemberDelete, memberRecord{Op: "delete", Member: MemberInfo{ID: id}})
}

// configError turns a failed configuration change into an
// *UnavailableError: nothing changed, or (a timeout) it may still.
func (n *Node) configError(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader):
		return &UnavailableError{Op: registry.Op(op), Err: ErrNotLeader, Leader: n.leaderAddr(), LeaderID: n.leaderID()}
	case errors.Is(err, ErrTimeout):
		return &UnavailableError{Op: registry.Op(op), Err: ErrTimeout, OutcomeUnknown: true, Cause: err}
	case errors.Is(err, raft.ErrLeadershipLost):
		return &UnavailableError{Op: registry.Op(op), Err: ErrLeadershipLost, OutcomeUnknown: true}
	case errors.Is(err, raft.ErrRaftShutdown):
		return &UnavailableError{Op: registry.Op(op), Err: ErrClosed, OutcomeUnknown: true}
	}
	return &UnavailableError{Op: registry.Op(op), Err: ErrUnavailable, OutcomeUnknown: true, Cause: err}
}

func (n *Node) setMember(ctx context.Context, m MemberInfo) error {
	return n.proposeMember(ctx, opMemberSet, memberRecord{Op: "set", Member: m})
}

func (n *Node) proposeMember(ctx context.Context, op registry.Op, rec memberRecord) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("cluster: cannot encode a member record: %w", err)
	}
	r, err := n.propose(ctx, time.Now(), op, "", raft.Log{Data: data, Extensions: []byte(memberExtension)})
	if err != nil {
		return err
	}
	if resp, ok := r.(*MemberResponse); ok {
		n.sealSoon()
		return resp.Err
	}
	return fmt.Errorf("cluster: raft returned %T for a member record, want *MemberResponse (a bug)", r)
}

// announceRetry is how soon a leader that could not record its admin
// address tries again.
const announceRetry = time.Second

// AdvertiseAdmin sets the admin address this node announces: from now on,
// whenever it leads and the member table holds another address for it (or
// none), it records this one (Announce), so followers always forward
// writes to where the leader listens now — after a restart on a new port,
// or a failover to a node whose address was never recorded. Call it once,
// when the admin listener is bound.
func (n *Node) AdvertiseAdmin(addr string) {
	if !n.announcing.CompareAndSwap(false, true) {
		n.log.Warn("cluster: AdvertiseAdmin called twice; keeping the first address", "addr", addr)
		return
	}
	go func() {
		for {
			ch := n.leaderChanged()
			retry := (<-chan time.Time)(nil)
			if n.IsLeader() {
				ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ApplyTimeout)
				err := n.Announce(ctx, addr)
				cancel()
				if err != nil && !n.closing.Load() {
					n.log.Warn("cluster: cannot record this leader's admin address; followers cannot forward writes to it until it can (retrying)", "addr", addr, "err", err)
					retry = time.After(announceRetry)
				}
			}
			select {
			case <-ch:
			case <-retry:
			case <-n.stop:
				return
			}
		}
	}()
}

// lastCommandIndex is the index of the newest entry at or below upTo that
// the FSM applies (a command or member record), or 0 when the log holds
// none (compacted into a snapshot, which is applied whole).
func (n *Node) lastCommandIndex(upTo uint64) uint64 {
	for i := upTo; i > 0; i-- {
		var l raft.Log
		if err := n.store.GetLog(i, &l); err != nil {
			return 0
		}
		if l.Type == raft.LogCommand {
			return i
		}
	}
	return 0
}
