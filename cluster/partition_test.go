package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelgate/modelgate/registry"
)

// countingHandler counts the log lines whose message is one of its keys
// (Raft's own lines, through the node's logger).
type countingHandler struct {
	counts map[string]*atomic.Int64
}

func newCountingLogger(msgs ...string) (*slog.Logger, map[string]*atomic.Int64) {
	h := countingHandler{counts: map[string]*atomic.Int64{}}
	for _, m := range msgs {
		h.counts[m] = &atomic.Int64{}
	}
	if tl := testLogger(); tl.Enabled(context.Background(), slog.LevelDebug) {
		return slog.New(teeHandler{h, tl.Handler()}), h.counts
	}
	return slog.New(h), h.counts
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	if c := h.counts[r.Message]; c != nil {
		c.Add(1)
	}
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

type teeHandler struct{ a, b slog.Handler }

func (h teeHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h teeHandler) Handle(ctx context.Context, r slog.Record) error {
	_ = h.a.Handle(ctx, r)
	if h.b.Enabled(ctx, r.Level) {
		return h.b.Handle(ctx, r)
	}
	return nil
}
func (h teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return teeHandler{h.a.WithAttrs(as), h.b.WithAttrs(as)}
}
func (h teeHandler) WithGroup(g string) slog.Handler {
	return teeHandler{h.a.WithGroup(g), h.b.WithGroup(g)}
}

// threeWithFaults opens a three-voter cluster on loopback whose nodes'
// Raft transports are under Faults, with mod applied to each config.
func threeWithFaults(t *testing.T, mod func(*Config)) ([]*Node, []Config, []*Fault) {
	t.Helper()
	peers := make([]Peer, 3)
	for i := range peers {
		peers[i] = Peer{ID: fmt.Sprintf("n%d", i+1), Addr: freeAddr(t)}
	}
	nodes, cfgs, faults := make([]*Node, 3), make([]Config, 3), make([]*Fault, 3)
	for i, p := range peers {
		cfg := testConfig(t.TempDir(), p.ID)
		cfg.BindAddr, cfg.InitialCluster = p.Addr, peers
		clusterTimings(&cfg)
		faults[i] = NewFault()
		cfg.Fault = faults[i]
		if mod != nil {
			mod(&cfg)
		}
		cfgs[i] = cfg
		nodes[i] = openNode(t, cfg)
	}
	return nodes, cfgs, faults
}

// TestPartitionedLeaderConverges cuts the leader of three off the others
// (its Raft transport refuses every connection; the transport stays real
// TCP). The cut node still answers reads from its registry, as it was;
// a write on it fails within its deadline as unavailable; the other two
// elect a leader among themselves and commit writes. Healed, the old
// leader follows the new one and reaches the same registry, byte for
// byte, and its write retried with the same key is applied once.
func TestPartitionedLeaderConverges(t *testing.T) {
	if testing.Short() {
		t.Skip("three raft nodes")
	}
	nodes, _, faults := threeWithFaults(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var leader *Node
	c := newCmds()
	for _, cmd := range story(c, "fraud") {
		leader = applyOnLeader(ctx, t, nodes, cmd)
	}
	before := nodeSnapshot(t, leader)
	for _, n := range nodes {
		waitSnapshot(ctx, t, n, before)
	}

	var cut *Node
	var rest []*Node
	for i, n := range nodes {
		if n == leader {
			cut = n
			faults[i].Cut()
		} else {
			rest = append(rest, n)
		}
	}
	// The majority elects a leader of its own and commits.
	newLeader := waitOneLeader(ctx, t, rest)
	if newLeader == cut {
		t.Fatal("the cut node still leads the majority")
	}
	during := story(c, "spam")
	for _, cmd := range during {
		for {
			_, err := newLeader.Apply(ctx, cmd)
			if err == nil {
				break
			}
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("%s on the majority's leader: %v", cmd.Op(), err)
			}
			newLeader = waitOneLeader(ctx, t, rest)
		}
	}
	// The cut node answers reads from what it has, and refuses writes
	// within its deadline.
	if got := nodeSnapshot(t, cut); string(got) != string(before) {
		t.Fatalf("the cut node's registry changed while cut:\n got %s\nwant %s", got, before)
	}
	lone := c.cmd(registerArgs("fraud", 42))
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	_, err := cut.Apply(short, lone)
	cancelShort()
	var ue *UnavailableError
	if !errors.As(err, &ue) {
		t.Fatalf("a write on the cut node = %v, want an *UnavailableError", err)
	}
	t.Logf("write on the cut node: %v", err)

	for _, f := range faults {
		f.Heal()
	}
	leader = waitOneLeader(ctx, t, nodes)
	for {
		if _, err = leader.Apply(ctx, lone); err == nil {
			break
		}
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("retry of the cut node's write: %v", err)
		}
		leader = waitOneLeader(ctx, t, nodes)
	}
	want := nodeSnapshot(t, leader)
	for _, n := range nodes {
		waitSnapshot(ctx, t, n, want)
	}
	leader.FSM().Read(func(s *registry.State) {
		m, _ := s.Model("fraud")
		count := 0
		for _, v := range m.Versions {
			if v.Digest == digestOf(42) {
				count++
			}
		}
		if count != 1 {
			t.Fatalf("the retried write is applied %d times", count)
		}
		if _, err := s.Model("spam"); err != nil {
			t.Fatal("the majority's writes are lost")
		}
	})
}

// TestFollowerCatchesUpBySnapshot keeps a follower down while the leader
// commits far past TrailingLogs and compacts its log, so the entries the
// follower lacks are gone: back, it is sent the leader's snapshot once,
// installs it once, and then follows by log entries again (new writes
// reach it with no second install) to the leader's registry, byte for
// byte. Snapshot sends and installs are counted from Raft's own log lines.
func TestFollowerCatchesUpBySnapshot(t *testing.T) {
	if testing.Short() {
		t.Skip("three raft nodes")
	}
	const trailing, threshold = 8, 16
	counters := make([]map[string]*atomic.Int64, 3)
	i := 0
	nodes, cfgs, _ := threeWithFaults(t, func(c *Config) {
		c.TrailingLogs, c.SnapshotThreshold, c.SnapshotInterval = trailing, threshold, 50*time.Millisecond
		c.Logger, counters[i] = newCountingLogger("Installed remote snapshot", "installing snapshot on", "failed to install snapshot")
		i++
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := newCmds()
	leader := applyOnLeader(ctx, t, nodes, c.cmd(registerArgs("fraud", 1)))
	want := nodeSnapshot(t, leader)
	for _, n := range nodes {
		waitSnapshot(ctx, t, n, want)
	}
	down := 0
	for nodes[down] == leader {
		down++
	}
	downLast := nodes[down].raft.LastIndex()
	if err := nodes[down].Close(); err != nil {
		t.Fatal(err)
	}
	nodes[down] = nil

	// Commit until the leader's log no longer holds the entry after the
	// down follower's last: only a snapshot can bring it back.
	for seed := 2; ; seed++ {
		leader = applyOnLeader(ctx, t, nodes, c.cmd(registerArgs("fraud", seed)))
		if first, err := leader.store.FirstIndex(); err != nil {
			t.Fatal(err)
		} else if first > downLast+1 && seed > 3*threshold {
			t.Logf("leader's log starts at %d; the follower stopped at %d (%d writes)", first, downLast, seed)
			break
		}
		if seed > 5000 {
			t.Fatal("the leader never compacted its log")
		}
	}
	if n := counters[down]["Installed remote snapshot"].Load(); n != 0 {
		t.Fatalf("%d snapshot installs before the follower returned", n)
	}

	nodes[down] = openNode(t, cfgs[down])
	want = nodeSnapshot(t, leader)
	waitSnapshot(ctx, t, nodes[down], want)
	// Then by log entries again: new writes, no second install.
	for seed := 9000; seed < 9000+threshold/2; seed++ {
		leader = applyOnLeader(ctx, t, nodes, c.cmd(registerArgs("fraud", seed)))
	}
	want = nodeSnapshot(t, leader)
	waitSnapshot(ctx, t, nodes[down], want)
	if err := nodes[down].WaitApplied(ctx, leader.AppliedIndex()); err != nil {
		t.Fatal(err)
	}
	// The leader may have tried while the follower was down (a failed
	// send, logged as such); what counts is what got through. Sends are
	// summed over the nodes: had leadership moved, the new leader would
	// be the one sending.
	installs := counters[down]["Installed remote snapshot"].Load()
	var sent, failed int64
	for j := range nodes {
		if j != down {
			sent += counters[j]["installing snapshot on"].Load()
			failed += counters[j]["failed to install snapshot"].Load()
		}
	}
	if installs != 1 || sent-failed != 1 {
		t.Fatalf("the follower installed %d snapshots; the leader sent %d (%d failed): want exactly one through", installs, sent, failed)
	}
	t.Logf("snapshot sends: %d, failed while the follower was down: %d, installed: %d", sent, failed, installs)
}
