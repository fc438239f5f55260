package cluster

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/modelgate/modelgate/registry"
)

// clusterTimings loosens the single-node test timings: several nodes share
// two cores with other work, under -race beside other test binaries. A
// leader steps down when it has heard from no quorum for
// LeaderLeaseTimeout; at 150 ms a loaded machine's stall was enough to
// move leadership in the middle of a test, so the lease is the heartbeat
// timeout (the most raft allows) and both are half a second. Tests that
// only need some leader to commit use applyOnLeader, which follows a
// leader change; this keeps those that assert who leads (n1 after it
// bootstrapped alone) from depending on a stall-free second.
func clusterTimings(cfg *Config) {
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 500*time.Millisecond, 500*time.Millisecond, 500*time.Millisecond
}

// TestMembership grows a one-voter cluster on loopback by joins: two
// voters and a non-voter. Every member applies the log (identical
// registries, the non-voter's included), the member table with every
// admin address reaches every node, the non-voter is a Nonvoter in Raft's
// configuration, a repeated join changes nothing, a conflicting one is
// refused, and a removed member leaves the configuration and the table.
func TestMembership(t *testing.T) {
	if testing.Short() {
		t.Skip("four raft nodes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := testConfig(t.TempDir(), "n1")
	clusterTimings(&cfg)
	cfg.BindAddr = freeAddr(t)
	n1 := openNode(t, cfg)
	waitReady(t, n1)
	if err := n1.Announce(ctx, "127.0.0.1:9101"); err != nil {
		t.Fatal(err)
	}
	nodes := map[string]*Node{"n1": n1}
	for _, id := range []string{"n2", "n3", "edge"} {
		c := testConfig(t.TempDir(), id)
		clusterTimings(&c)
		c.BindAddr, c.Bootstrap = freeAddr(t), false
		nodes[id] = openNode(t, c)
		if err := n1.Join(ctx, Member{ID: id, RaftAddr: nodes[id].Addr(), AdminAddr: "127.0.0.1:91" + map[string]string{"n2": "02", "n3": "03", "edge": "04"}[id], Voter: id != "edge"}); err != nil {
			t.Fatalf("join %s: %v", id, err)
		}
	}
	c := newCmds()
	for _, cmd := range story(c, "fraud") {
		mustApply(t, n1, cmd)
	}
	want := nodeSnapshot(t, n1)
	for _, n := range nodes {
		waitSnapshot(ctx, t, n, want)
	}

	// Raft's configuration: three voters and the non-voter.
	f := n1.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	suffrage := map[string]raft.ServerSuffrage{}
	for _, s := range f.Configuration().Servers {
		suffrage[string(s.ID)] = s.Suffrage
	}
	if len(suffrage) != 4 || suffrage["n1"] != raft.Voter || suffrage["n2"] != raft.Voter || suffrage["n3"] != raft.Voter || suffrage["edge"] != raft.Nonvoter {
		t.Fatalf("raft configuration %v, want n1-n3 voters and edge a non-voter", suffrage)
	}
	// Every node, the non-voter too, knows every member's admin address.
	for id, n := range nodes {
		if err := n.WaitApplied(ctx, n1.AppliedIndex()); err != nil {
			t.Fatal(err)
		}
		ms, err := n.Members()
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 4 || ms[0].ID != "edge" || ms[0].Voter || ms[0].AdminAddr != "127.0.0.1:9104" || ms[1].AdminAddr != "127.0.0.1:9101" {
			t.Fatalf("members on %s: %+v", id, ms)
		}
		if lid, admin := n.LeaderAdmin(); lid != "n1" || admin != "127.0.0.1:9101" {
			t.Fatalf("leader on %s: %s at %s", id, lid, admin)
		}
	}
	if nodes["edge"].State() != raft.Follower {
		t.Fatalf("the non-voter is %v", nodes["edge"].State())
	}

	// A repeated join is a no-op; a conflicting one is refused.
	if err := n1.Join(ctx, Member{ID: "n2", RaftAddr: nodes["n2"].Addr(), AdminAddr: "127.0.0.1:9102", Voter: true}); err != nil {
		t.Fatalf("repeated join: %v", err)
	}
	if err := n1.Join(ctx, Member{ID: "n2", RaftAddr: nodes["n2"].Addr(), AdminAddr: "127.0.0.1:9102", Voter: false}); !errors.Is(err, ErrMemberConflict) {
		t.Fatalf("join n2 as a non-voter = %v, want ErrMemberConflict", err)
	}
	if err := n1.Join(ctx, Member{ID: "n9", RaftAddr: nodes["n3"].Addr(), AdminAddr: "127.0.0.1:9109", Voter: true}); !errors.Is(err, ErrMemberConflict) {
		t.Fatalf("join n9 at n3's address = %v, want ErrMemberConflict", err)
	}
	if err := nodes["n2"].Join(ctx, Member{ID: "n9", RaftAddr: freeAddr(t), AdminAddr: "127.0.0.1:9109", Voter: true}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("join on a follower = %v, want ErrNotLeader", err)
	}
	if err := n1.Remove(ctx, "n1"); !errors.Is(err, ErrMemberConflict) {
		t.Fatalf("the leader removing itself = %v, want ErrMemberConflict", err)
	}
	if err := n1.Remove(ctx, "ghost"); !errors.Is(err, ErrNotMember) {
		t.Fatalf("remove ghost = %v, want ErrNotMember", err)
	}

	// n3 leaves: out of the configuration and the member table; the other
	// three go on committing without it.
	if err := n1.Remove(ctx, "n3"); err != nil {
		t.Fatal(err)
	}
	ms, err := n1.Members()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.ID == "n3" {
			t.Fatalf("n3 still a member: %+v", ms)
		}
	}
	if _, ok := n1.FSM().MemberInfo("n3"); ok {
		t.Fatal("n3 still in the member table")
	}
	// The removed node is no longer replicated to: stop it.
	if err := nodes["n3"].Close(); err != nil {
		t.Fatal(err)
	}
	mustApply(t, n1, c.cmd(registerArgs("fraud", 7)))
	want = nodeSnapshot(t, n1)
	for _, id := range []string{"n2", "edge"} {
		waitSnapshot(ctx, t, nodes[id], want)
	}
}

// TestMemberTableSnapshot: the member table survives a snapshot and a
// restore, and a registry without members still writes format 1.
func TestMemberTableSnapshot(t *testing.T) {
	f := NewFSM(testLogger())
	c := newCmds()
	for i, cmd := range story(c, "fraud") {
		data, err := registry.EncodeCommand(cmd)
		if err != nil {
			t.Fatal(err)
		}
		f.Apply(&raft.Log{Type: raft.LogCommand, Index: uint64(i + 1), Data: data})
	}
	if got := persist(t, f); string(got[:len(snapshotMagic)]) != snapshotMagic {
		t.Fatalf("no members: header %q", got[:len(snapshotMagic)])
	}
	rec := `{"op":"set","member":{"id":"n2","raft_addr":"127.0.0.1:1","admin_addr":"127.0.0.1:2"}}`
	if r := f.Apply(&raft.Log{Type: raft.LogCommand, Index: 99, Data: []byte(rec), Extensions: []byte(memberExtension)}); r.(*MemberResponse).Err != nil {
		t.Fatal(r.(*MemberResponse).Err)
	}
	snap := persist(t, f)
	g := NewFSM(testLogger())
	if err := g.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	if m, ok := g.MemberInfo("n2"); !ok || m.AdminAddr != "127.0.0.1:2" {
		t.Fatalf("restored member n2: %+v %v", m, ok)
	}
	if f.LastSeq() != g.LastSeq() {
		t.Fatalf("restored LastSeq %d, want %d", g.LastSeq(), f.LastSeq())
	}
	if r := f.Apply(&raft.Log{Type: raft.LogCommand, Index: 100, Data: []byte(`{"op":"merge"}`), Extensions: []byte(memberExtension)}); r.(*MemberResponse).Err == nil {
		t.Fatal("an unknown member op was applied")
	}
}
