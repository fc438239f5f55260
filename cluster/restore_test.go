package cluster

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/modelgate/modelgate/registry"
)

// countingArchive is an AuditArchive that counts its Puts: the FSM calls
// Put once each time it applies a trim_audit that removes records, so a
// trim applied twice on one node shows up as a second Put (the registry's
// idempotency keys hide a second application from the state itself).
type countingArchive struct {
	mu   sync.Mutex
	puts int
	recs []registry.AuditRecord
}

func (a *countingArchive) Put(recs []registry.AuditRecord) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.puts++
	a.recs = append(a.recs, recs...)
	return nil
}

func (a *countingArchive) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.puts
}

// TestFollowerRestartsCutOff: a follower of a three-voter cluster on
// loopback, restarted while the other two are down (no leader reachable),
// comes up with every write it had applied — models, champion, audit log
// — before any leader exists, from its log alone (fewer entries than the
// snapshot threshold: no snapshot holds them). When the others return it
// converges with the leader without applying any entry twice: its
// archive saw the one trim_audit once, and its audit log and sequence
// numbers equal the leader's.
func TestFollowerRestartsCutOff(t *testing.T) {
	if testing.Short() {
		t.Skip("three raft nodes")
	}
	peers := make([]Peer, 3)
	for i := range peers {
		peers[i] = Peer{ID: fmt.Sprintf("n%d", i+1), Addr: freeAddr(t)}
	}
	nodes := make([]*Node, 3)
	cfgs := make([]Config, 3)
	for i, p := range peers {
		cfg := testConfig(t.TempDir(), p.ID)
		cfg.BindAddr = p.Addr
		cfg.InitialCluster = peers
		clusterTimings(&cfg)
		cfgs[i] = cfg
		nodes[i] = openNode(t, cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	leader := waitOneLeader(ctx, t, nodes)

	c := newCmds()
	writes := append(story(c, "fraud"), c.cmd(&registry.TrimAuditArgs{KeepLast: 3, Reason: "test retention"}), c.cmd(registerArgs("fraud", 4)))
	for _, cmd := range writes {
		if _, err := leader.Apply(ctx, cmd); err != nil {
			t.Fatalf("%s on the leader: %v", cmd.Op(), err)
		}
	}
	// No barrier here: the leader follows a burst of writes with its own
	// (seal.go), which carries the last write's commit index to the
	// followers' disks.
	lastWrite := leader.raft.AppliedIndex()
	fi := 0
	for i, n := range nodes {
		if n == leader {
			fi = (i + 1) % len(nodes)
		}
	}
	follower := nodes[fi]
	want, wantAudit := nodeSnapshot(t, leader), nodeAudit(leader)
	waitSnapshot(ctx, t, follower, want)
	for {
		c, err := follower.store.GetCommitIndex()
		if err != nil {
			t.Fatal(err)
		}
		if c >= lastWrite {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("follower %s persisted the commit index %d, the last write is at %d: the leader's barrier never reached it", follower.ID(), c, lastWrite)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if last := follower.raft.LastIndex(); last >= DefaultSnapshotThreshold {
		t.Fatalf("log holds %d entries; the test needs fewer than the snapshot threshold", last)
	}

	// The follower stops first, then the other two: when it comes back
	// no leader is reachable.
	if err := follower.Close(); err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		if i != fi {
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
		}
		nodes[i] = nil
	}
	arch := &countingArchive{}
	cfgs[fi].AuditArchive = arch
	follower = openNode(t, cfgs[fi])
	nodes[fi] = follower

	// At once, before any election could end: Open returned with the
	// registry replayed.
	if got := nodeSnapshot(t, follower); !bytes.Equal(got, want) {
		t.Fatalf("registry of the follower restarted alone differs from what it had applied:\n got %s\nwant %s", got, want)
	}
	if got := nodeAudit(follower); !reflect.DeepEqual(got, wantAudit) {
		t.Fatalf("audit log of the follower restarted alone: %d records, want %d", len(got), len(wantAudit))
	}
	follower.FSM().Read(func(s *registry.State) {
		if champ, err := s.Champion("fraud"); err != nil || champ.Number != 2 {
			t.Fatalf("champion of fraud on the follower restarted alone = v%d, %v; want v2", champ.Number, err)
		}
	})
	if n := arch.count(); n != 1 {
		t.Fatalf("the archive saw %d trims after the restart, want 1 (the replayed trim_audit)", n)
	}
	// Raft's configuration must survive the replay: a voter that forgot
	// its peers would never campaign.
	cf := follower.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		t.Fatal(err)
	}
	if got := len(cf.Configuration().Servers); got != 3 {
		t.Fatalf("follower restarted alone knows %d servers, want 3: %+v", got, cf.Configuration().Servers)
	}
	// Still no leader: it serves what it had, on its own.
	time.Sleep(3 * clusterHeartbeat())
	if id, _ := follower.Leader(); id != "" || follower.IsLeader() {
		t.Fatalf("follower alone sees leader %q (state %v), want none", id, follower.State())
	}
	if got := nodeSnapshot(t, follower); !bytes.Equal(got, want) {
		t.Fatalf("registry of the follower alone changed while it waited")
	}

	// The others return: one leader, everyone converges, and the follower
	// applied nothing twice.
	for i := range nodes {
		if nodes[i] == nil {
			nodes[i] = openNode(t, cfgs[i])
		}
	}
	leader = waitOneLeader(ctx, t, nodes)
	if err := leader.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := leader.Apply(ctx, c.cmd(registerArgs("fraud", 5))); err != nil {
		t.Fatalf("a write after the cluster came back: %v", err)
	}
	want, wantAudit = nodeSnapshot(t, leader), nodeAudit(leader)
	for _, n := range nodes {
		waitSnapshot(ctx, t, n, want)
	}
	if got := nodeAudit(follower); !reflect.DeepEqual(got, wantAudit) {
		t.Fatalf("audit log of the follower after it reconnected: %d records, want the leader's %d", len(got), len(wantAudit))
	}
	if f, l := follower.FSM().LastSeq(), leader.FSM().LastSeq(); f != l {
		t.Fatalf("LastSeq: follower %d, leader %d", f, l)
	}
	if n := arch.count(); n != 1 {
		t.Fatalf("the archive saw %d trims once the leader returned, want 1: an entry was applied twice", n)
	}
}

// clusterHeartbeat is clusterTimings' heartbeat timeout.
func clusterHeartbeat() time.Duration {
	var cfg Config
	clusterTimings(&cfg)
	return cfg.HeartbeatTimeout
}

// TestNonVoterRestartsCutOffAfterSnapshot: a non-voter that joined by a
// snapshot (the leader had compacted its log) holds its own membership,
// its member record and later writes in the log after that snapshot.
// Restarted with the leader down, it comes up with the registry it had
// applied and the same members (Raft's configuration, non-voter included,
// and the member table with admin addresses) — the configuration entries
// after the snapshot are not lost to the replay — and converges when the
// leader returns.
func TestNonVoterRestartsCutOffAfterSnapshot(t *testing.T) {
	if testing.Short() {
		t.Skip("two raft nodes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg1 := testConfig(t.TempDir(), "n1")
	clusterTimings(&cfg1)
	cfg1.BindAddr = freeAddr(t)
	cfg1.TrailingLogs = 1 // the joiner must get a snapshot, not the log from 1
	n1 := openNode(t, cfg1)
	waitReady(t, n1)
	if err := n1.Announce(ctx, "127.0.0.1:9101"); err != nil {
		t.Fatal(err)
	}
	c := newCmds()
	for _, cmd := range story(c, "fraud") {
		mustApply(t, n1, cmd)
	}
	if err := n1.Snapshot(); err != nil {
		t.Fatal(err)
	}
	cfgE := testConfig(t.TempDir(), "edge")
	clusterTimings(&cfgE)
	cfgE.BindAddr, cfgE.Bootstrap = freeAddr(t), false
	edge := openNode(t, cfgE)
	if err := n1.Join(ctx, Member{ID: "edge", RaftAddr: edge.Addr(), AdminAddr: "127.0.0.1:9104", Voter: false}); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range story(c, "spam") {
		mustApply(t, n1, cmd)
	}
	if err := n1.Barrier(ctx); err != nil { // carries the commit index of the last write to edge
		t.Fatal(err)
	}
	want := nodeSnapshot(t, n1)
	waitSnapshot(ctx, t, edge, want)
	for edge.raft.LastIndex() < n1.raft.LastIndex() {
		select {
		case <-ctx.Done():
			t.Fatalf("edge holds the log to %d, n1 to %d", edge.raft.LastIndex(), n1.raft.LastIndex())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if s := edge.Stats()["last_snapshot_index"]; s == "0" {
		t.Fatal("edge joined without a snapshot; the test needs one")
	}
	if err := edge.WaitApplied(ctx, n1.AppliedIndex()); err != nil {
		t.Fatal(err)
	}
	wantMembers, err := edge.Members()
	if err != nil {
		t.Fatal(err)
	}
	if len(wantMembers) != 2 {
		t.Fatalf("edge knows members %+v before the cut, want n1 and edge", wantMembers)
	}

	if err := edge.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n1.Close(); err != nil {
		t.Fatal(err)
	}
	edge = openNode(t, cfgE)
	if got := nodeSnapshot(t, edge); !bytes.Equal(got, want) {
		t.Fatalf("registry of the non-voter restarted alone differs from what it had applied:\n got %s\nwant %s", got, want)
	}
	got, err := edge.Members()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, wantMembers) {
		t.Fatalf("members of the non-voter restarted alone = %+v, want what it had: %+v", got, wantMembers)
	}
	if id, _ := edge.Leader(); id != "" {
		t.Fatalf("edge restarted alone sees leader %q", id)
	}

	n1 = openNode(t, cfg1)
	waitReady(t, n1)
	mustApply(t, n1, c.cmd(registerArgs("spam", 4)))
	want = nodeSnapshot(t, n1)
	waitSnapshot(ctx, t, edge, want)
	if got, want := nodeAudit(edge), nodeAudit(n1); !reflect.DeepEqual(got, want) {
		t.Fatalf("audit log of the non-voter after the leader returned: %d records, want the leader's %d", len(got), len(want))
	}
}
