package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/modelgate/modelgate/registry"
)

// logCacheSize is how many of the newest raft log entries a node keeps in
// memory in front of its store.
const logCacheSize = 512

// Node is one member of the registry's Raft cluster: the raft instance, its
// Pebble log store, its snapshots, its TCP transport and the registry FSM.
// All methods are safe for concurrent use.
type Node struct {
	cfg   Config
	log   *slog.Logger
	store *Store
	snaps *raft.FileSnapshotStore
	trans *raft.NetworkTransport
	raft  *raft.Raft
	fsm   *FSM

	// Leadership watching: raft reports leader and state changes to obs; the
	// watch goroutine closes and replaces leaderCh on each.
	obs      *raft.Observer
	obsCh    chan raft.Observation
	mu       sync.Mutex
	leaderCh chan struct{}
	stop     chan struct{}
	done     chan struct{}
	sealCh   chan struct{} // seal.go

	closing    atomic.Bool
	announcing atomic.Bool // AdvertiseAdmin's goroutine runs
	openIndex  uint64      // the last index of the raft log at Open (CatchUp)
	closeOnce  sync.Once
	closeErr   error
}

// Open starts a node from cfg: it opens (or creates) the Raft store in
// DataDir/raft/log and the snapshots in DataDir/raft/snapshots, listens on
// BindAddr, bootstraps the cluster when cfg.Bootstrap is set and the node has
// no Raft state yet, and starts Raft. The registry state is rebuilt from the
// latest snapshot at once and from the log entries after it once the node
// (or its leader) has committed an entry of the current term — Barrier waits
// for that — except the entries the node knows were committed (its
// persisted commit index), which are replayed before Open returns
// (replay.go), so a node restarted with no leader reachable serves what it
// had. Close releases everything.
func Open(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	n := &Node{cfg: cfg, log: cfg.Logger, leaderCh: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{}), sealCh: make(chan struct{}, 1)}
	var cleanup []func() error // undone in reverse unless Open succeeds
	started := false
	defer func() {
		for i := len(cleanup) - 1; i >= 0 && !started; i-- {
			_ = cleanup[i]()
		}
	}()
	var err error

	raftDir := filepath.Join(cfg.DataDir, "raft")
	if err := os.MkdirAll(raftDir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster: cannot create %s: %w", raftDir, err)
	}
	if n.store, err = OpenStore(filepath.Join(raftDir, "log"), StoreOptions{Logger: cfg.Logger}); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, n.store.Close)
	hl := newHCLog(cfg.Logger, "raft")
	if n.snaps, err = raft.NewFileSnapshotStoreWithLogger(raftDir, SnapshotsRetained, hl.Named("snapshot")); err != nil {
		return nil, fmt.Errorf("cluster: cannot open snapshots in %s: %w", raftDir, err)
	}
	var advertise net.Addr // stays a nil interface unless set
	if cfg.AdvertiseAddr != "" {
		a, err := net.ResolveTCPAddr("tcp", cfg.AdvertiseAddr)
		if err != nil {
			return nil, fmt.Errorf("cluster: cannot resolve AdvertiseAddr %s: %w", cfg.AdvertiseAddr, err)
		}
		advertise = a
	}
	tcfg := &raft.NetworkTransportConfig{
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  hl.Named("transport"),
	}
	if cfg.TLS != nil || cfg.Fault != nil {
		var stream *tlsStream
		if stream, err = newTLSStream(cfg.BindAddr, advertise, cfg.TLS); err == nil {
			tcfg.Stream = stream
			if cfg.Fault != nil {
				tcfg.Stream = cfg.Fault.wrap(stream)
			}
			n.trans = raft.NewNetworkTransportWithConfig(tcfg)
		}
	} else {
		n.trans, err = raft.NewTCPTransportWithConfig(cfg.BindAddr, advertise, tcfg)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: cannot listen for raft on %s: %w", cfg.BindAddr, err)
	}
	cleanup = append(cleanup, n.trans.Close)

	rc := cfg.raftConfig()
	if cfg.Bootstrap {
		if err := n.bootstrap(rc); err != nil {
			return nil, err
		}
	}
	n.fsm = NewFSM(cfg.Logger)
	n.fsm.SetArchive(cfg.AuditArchive)
	// The newest entries are read back at once (the FSM applies them, the
	// leader replicates them): serve those from memory.
	n.replayCommitted(n.snaps)
	logs, err := newRaftLogStore(n.store, logCacheSize)
	if err != nil {
		return nil, fmt.Errorf("cluster: cannot start raft: %w", err)
	}
	if n.raft, err = raft.NewRaft(rc, n.fsm, logs, n.store, n.snaps, n.trans); err != nil {
		return nil, fmt.Errorf("cluster: cannot start raft in %s: %w", raftDir, err)
	}
	n.openIndex = n.raft.LastIndex()
	n.obsCh = make(chan raft.Observation, 16)
	n.obs = raft.NewObserver(n.obsCh, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation, raft.RaftState:
			return true
		}
		return false
	})
	n.raft.RegisterObserver(n.obs)
	go n.watch()
	go n.seal()
	started = true
	n.log.Info("cluster: node started", "id", cfg.NodeID, "addr", n.Addr(), "data_dir", cfg.DataDir)
	return n, nil
}

// bootstrap writes the initial configuration if the node has no Raft state:
// this node alone, or cfg.InitialCluster. A data dir whose marker says it
// was a member before is not bootstrapped again unless forced: its Raft
// state was lost, not never made.
func (n *Node) bootstrap(rc *raft.Config) error {
	has, err := raft.HasExistingState(n.store, n.store, n.snaps)
	if err != nil {
		return fmt.Errorf("cluster: cannot read raft state in %s: %w", n.cfg.DataDir, err)
	}
	mark, markErr := readMarker(n.cfg.DataDir)
	if has {
		if markErr != nil {
			// A data dir from before markers, or one restored without it.
			return writeMarker(n.cfg.DataDir, marker{NodeID: n.cfg.NodeID, Since: time.Now().UTC(), Note: "written at a start with existing raft state"})
		}
		return nil
	}
	if markErr == nil {
		if !n.cfg.ForceBootstrap {
			return lostRaftState(n.cfg.DataDir, mark)
		}
		n.log.Warn("cluster: bootstrapping a new, empty cluster over a data dir whose raft state was lost (forced): the registry it held is gone",
			"data_dir", n.cfg.DataDir, "previous_node_id", mark.NodeID, "member_since", mark.Since)
	}
	servers := []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(n.cfg.NodeID), Address: n.trans.LocalAddr()}}
	if len(n.cfg.InitialCluster) > 0 {
		servers = servers[:0]
		for _, p := range n.cfg.InitialCluster {
			servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr)})
		}
	}
	if err := raft.BootstrapCluster(rc, n.store, n.store, n.snaps, n.trans, raft.Configuration{Servers: servers}); err != nil {
		return fmt.Errorf("cluster: cannot bootstrap the cluster in %s: %w", n.cfg.DataDir, err)
	}
	if err := writeMarker(n.cfg.DataDir, marker{NodeID: n.cfg.NodeID, Since: time.Now().UTC(), Note: "bootstrapped a new cluster"}); err != nil {
		return err
	}
	n.log.Info("cluster: bootstrapped a new cluster", "id", n.cfg.NodeID, "voters", len(servers))
	return nil
}

// watch turns raft's leader and state observations into leaderCh wake-ups.
// An observation raft drops (full channel) is never the last one: those in
// the buffer are newer, and each wakes the waiters, who re-read the state.
func (n *Node) watch() {
	defer close(n.done)
	for {
		select {
		case o := <-n.obsCh:
			if lo, ok := o.Data.(raft.LeaderObservation); ok {
				n.log.Info("cluster: leader changed", "leader_id", string(lo.LeaderID), "leader_addr", string(lo.LeaderAddr), "self", n.cfg.NodeID)
			}
			n.mu.Lock()
			close(n.leaderCh)
			n.leaderCh = make(chan struct{})
			n.mu.Unlock()
		case <-n.stop:
			return
		}
	}
}

// leaderChanged returns a channel closed at the next leader or state change.
func (n *Node) leaderChanged() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.leaderCh
}

// ID returns the node's ID.
func (n *Node) ID() string { return n.cfg.NodeID }

// Addr returns the Raft address the node advertises (with the actual port
// when BindAddr had port 0).
func (n *Node) Addr() string { return string(n.trans.LocalAddr()) }

// IsLeader reports whether this node is the leader now. It may stop being
// one at any moment; Apply does not rely on it.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the ID and address of the leader this node knows of, or
// empty strings when there is none.
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// State returns the node's Raft state: Follower, Candidate, Leader or
// Shutdown.
func (n *Node) State() raft.RaftState { return n.raft.State() }

// FSM returns the node's registry: read it (Read, Clone) and watch it
// (Changed). Writes go through Apply.
func (n *Node) FSM() *FSM { return n.fsm }

// Stats returns raft's diagnostic counters (term, indexes, state …).
func (n *Node) Stats() map[string]string { return n.raft.Stats() }

// Healthy returns nil while the node can accept writes, ErrClosed once it is
// closed, or the raft store's sticky failure (wrapping ErrStoreFailed): such
// a node keeps serving reads but must be restarted to take writes again.
func (n *Node) Healthy() error {
	if n.closing.Load() {
		return ErrClosed
	}
	return n.store.Healthy()
}

// WaitLeader waits until the cluster has a leader (this node or another)
// or ctx ends; then it returns an error wrapping ErrNoLeader and ctx's error.
// On the leader, Barrier also waits for the registry to catch up.
func (n *Node) WaitLeader(ctx context.Context) error {
	start := time.Now()
	for {
		ch := n.leaderChanged()
		if n.closing.Load() || n.raft.State() == raft.Shutdown {
			return ErrClosed
		}
		if _, id := n.raft.LeaderWithID(); id != "" {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w elected after %s: %w", ErrNoLeader, time.Since(start).Round(time.Millisecond), ctx.Err())
		}
	}
}

// Apply proposes cmd through Raft and returns the registry's Result once the
// command is committed and applied on this node — or, deterministically, the
// registry's refusal (a *registry.TransitionError, *registry.FieldError …:
// the state did not change). cmd is validated first (registry errors, 400)
// and normalised in place.
//
// Apply waits at most until ctx's deadline or ApplyTimeout, whichever comes
// first. Every failure to get an answer in time is an *UnavailableError
// (errors.Is ErrUnavailable: HTTP 503):
//
//   - ErrNotLeader: another node leads (UnavailableError.Leader); nothing was
//     applied. Apply returns this at once: it does not forward.
//   - ErrNoLeader: no leader was elected in time; nothing was applied.
//   - ErrTimeout, ErrLeadershipLost, ErrClosed with OutcomeUnknown: the
//     command reached Raft and may or may not be committed. Retrying with the
//     same idempotency key is safe (the registry returns the first result,
//     Replayed, if it was applied).
//
// A node that does not lead yet but knows of no other leader (an election in
// progress, a single node just started) waits for the election within the
// deadline.
func (n *Node) Apply(ctx context.Context, cmd registry.Command) (registry.Result, error) {
	start := time.Now()
	if err := cmd.Validate(); err != nil {
		return registry.Result{}, err
	}
	data, err := registry.EncodeCommand(cmd)
	if err != nil {
		return registry.Result{}, err
	}
	if len(data) > registry.MaxCommandSize {
		return registry.Result{}, fmt.Errorf("%w: %s command encodes to %d bytes, more than the %d allowed", registry.ErrMalformedCommand, cmd.Op(), len(data), registry.MaxCommandSize)
	}
	r, err := n.propose(ctx, start, cmd.Op(), cmd.IdempotencyKey, raft.Log{Data: data})
	if err != nil {
		return registry.Result{}, err
	}
	resp, ok := r.(*ApplyResponse)
	if !ok {
		return registry.Result{}, fmt.Errorf("cluster: raft returned %T for a %s command, want *ApplyResponse (a bug)", r, cmd.Op())
	}
	n.sealSoon()
	return resp.Result, resp.Err
}

// propose hands one entry to Raft on the leader and returns what the FSM
// answered for it, under Apply's rules: bounded by ctx and ApplyTimeout,
// every failure an *UnavailableError naming op and key.
func (n *Node) propose(ctx context.Context, start time.Time, op registry.Op, key string, entry raft.Log) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
	defer cancel()
	unavailable := func(reason error, unknown bool, cause error) error {
		addr, id := n.raft.LeaderWithID()
		return &UnavailableError{
			Op: op, IdempotencyKey: key, Err: reason, OutcomeUnknown: unknown,
			Leader: string(addr), LeaderID: string(id), Waited: time.Since(start), Cause: cause,
		}
	}

	// Wait until this node leads, unless another one does.
	for {
		ch := n.leaderChanged()
		state := n.raft.State()
		if n.closing.Load() || state == raft.Shutdown {
			return nil, unavailable(ErrClosed, false, nil)
		}
		if state == raft.Leader {
			break
		}
		if _, id := n.raft.LeaderWithID(); id != "" && string(id) != n.cfg.NodeID {
			return nil, unavailable(ErrNotLeader, false, nil)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, unavailable(ErrNoLeader, false, ctx.Err())
		}
	}

	// raft's own timeout only bounds handing the entry to its leader loop;
	// the wait for the commit is bounded here, by ctx.
	deadline, _ := ctx.Deadline()
	remaining := time.Until(deadline)
	if remaining <= 0 { // raft would take 0 as "no timeout"
		return nil, unavailable(ErrTimeout, false, context.DeadlineExceeded)
	}
	f := n.raft.ApplyLog(entry, remaining)
	done := make(chan struct{})
	go func() {
		_ = f.Error() // returns once raft commits, fails or shuts down
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return nil, unavailable(ErrTimeout, true, ctx.Err())
	}
	if err := f.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader):
			return nil, unavailable(ErrNotLeader, false, nil)
		case errors.Is(err, raft.ErrLeadershipTransferInProgress):
			return nil, unavailable(ErrNoLeader, false, err)
		case errors.Is(err, raft.ErrEnqueueTimeout):
			return nil, unavailable(ErrTimeout, false, err)
		case errors.Is(err, raft.ErrLeadershipLost):
			return nil, unavailable(ErrLeadershipLost, true, nil)
		case errors.Is(err, raft.ErrAbortedByRestore):
			// The entry's effects are discarded by the restore.
			return nil, unavailable(ErrLeadershipLost, false, err)
		case errors.Is(err, raft.ErrRaftShutdown):
			return nil, unavailable(ErrClosed, true, nil)
		default:
			return nil, unavailable(ErrUnavailable, true, err)
		}
	}
	return f.Response(), nil
}

// Barrier waits until every entry committed before it is applied to this
// node's registry — after a restart, until the registry has replayed the log.
// Only the leader can; elsewhere it fails with an error wrapping
// ErrNotLeader. It is bounded like Apply (ctx or ApplyTimeout).
func (n *Node) Barrier(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
	defer cancel()
	if !n.IsLeader() {
		return fmt.Errorf("cluster: barrier: %w", ErrNotLeader)
	}
	deadline, _ := ctx.Deadline()
	remaining := time.Until(deadline)
	if remaining <= 0 {
		return fmt.Errorf("cluster: barrier: %w: %w", ErrTimeout, context.DeadlineExceeded)
	}
	f := n.raft.Barrier(remaining)
	done := make(chan struct{})
	go func() {
		_ = f.Error()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("cluster: barrier: %w: %w", ErrTimeout, ctx.Err())
	}
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return fmt.Errorf("cluster: barrier: %w: %w", ErrNotLeader, err)
		}
		return fmt.Errorf("cluster: barrier: %w", err)
	}
	return nil
}

// Snapshot makes Raft take a snapshot now (it also takes them on its own,
// per SnapshotInterval and SnapshotThreshold) and compact the log behind it,
// keeping TrailingLogs entries. It fails, wrapping raft.ErrNothingNewToSnapshot,
// when nothing was applied since the last one.
func (n *Node) Snapshot() error {
	if err := n.raft.Snapshot().Error(); err != nil {
		return fmt.Errorf("cluster: cannot snapshot node %s: %w", n.cfg.NodeID, err)
	}
	return nil
}

// Close stops the node: Raft shuts down (in-flight Applies fail with
// ErrClosed), the transport stops listening, and the store is closed. It is
// safe to call more than once; later calls return the first one's result.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.closing.Store(true)
		n.raft.DeregisterObserver(n.obs)
		close(n.stop)
		<-n.done
		n.mu.Lock() // wake Apply and WaitLeader calls waiting for a leader: they see closing
		close(n.leaderCh)
		n.leaderCh = make(chan struct{})
		n.mu.Unlock()
		errShutdown := n.raft.Shutdown().Error() // also closes the transport
		n.closeErr = errors.Join(errShutdown, n.trans.Close(), n.store.Close())
		if n.closeErr != nil {
			n.closeErr = fmt.Errorf("cluster: cannot close node %s cleanly: %w", n.cfg.NodeID, n.closeErr)
		}
		n.log.Info("cluster: node stopped", "id", n.cfg.NodeID)
	})
	return n.closeErr
}
