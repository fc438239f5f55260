package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/modelgate/modelgate/registry"
)

// TestThreeNodes runs a three-voter cluster on loopback: every node reaches
// a byte-identical registry (the FSM is deterministic), a follower refuses
// writes naming the leader, and a leader that loses its quorum fails an
// Apply at the deadline instead of hanging.
func TestThreeNodes(t *testing.T) {
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
		// Far past any deadline below: an Apply that ignored its context
		// and waited for this instead would be caught without measuring
		// how close to its deadline a loaded machine returns.
		cfg.ApplyTimeout = 3 * time.Minute
		cfgs[i] = cfg
		nodes[i] = openNode(t, cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var leader *Node
	c := newCmds()
	for _, cmd := range append(story(c, "fraud"), story(c, "spam")...) {
		leader = applyOnLeader(ctx, t, nodes, cmd)
	}
	want := nodeSnapshot(t, leader)
	for _, n := range nodes {
		waitSnapshot(ctx, t, n, want)
	}

	// A follower does not apply: it names the leader. Judged only when
	// the same node led before and after the call (a follower that was
	// elected meanwhile would apply).
	var (
		err error
		ue  *UnavailableError
	)
	for {
		leader = waitOneLeader(ctx, t, nodes)
		var follower *Node
		for _, n := range nodes {
			if n != leader {
				follower = n
				break
			}
		}
		_, err = follower.Apply(ctx, c.cmd(registerArgs("fraud", 9)))
		if waitOneLeader(ctx, t, nodes) == leader {
			break
		}
		t.Logf("leadership moved during the follower's Apply (%v); again", err)
	}
	if !errors.As(err, &ue) || !errors.Is(err, ErrNotLeader) || ue.OutcomeUnknown || ue.LeaderID != leader.ID() || ue.Leader != leader.Addr() {
		t.Fatalf("Apply on a follower = %v, want ErrNotLeader naming %s at %s", err, leader.ID(), leader.Addr())
	}

	// Stop both followers: the leader keeps no quorum, and an Apply ends at
	// its deadline (timeout or lost leadership: outcome unknown; or no
	// leader, if the leader stepped down before the command reached it).
	for i, n := range nodes {
		if n != leader {
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
			nodes[i] = nil
		}
	}
	lost := c.cmd(registerArgs("fraud", 10))
	short, cancelShort := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancelShort()
	start := time.Now()
	_, err = leader.Apply(short, lost)
	took := time.Since(start)
	if !errors.As(err, &ue) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Apply without quorum = %v, want an *UnavailableError", err)
	}
	// Which failure depends on when the leader noticed it lost its quorum;
	// whether the command may still commit follows from it. A timeout is
	// of unknown outcome once Raft took the entry, known (nothing
	// applied) when Raft could not even take it in time.
	switch {
	case errors.Is(err, ErrLeadershipLost) && !ue.OutcomeUnknown,
		errors.Is(err, ErrTimeout) && !ue.OutcomeUnknown && !errors.Is(err, raft.ErrEnqueueTimeout) && !errors.Is(err, context.DeadlineExceeded),
		(errors.Is(err, ErrNotLeader) || errors.Is(err, ErrNoLeader)) && ue.OutcomeUnknown:
		t.Fatalf("Apply without quorum = %v: OutcomeUnknown %v", err, ue.OutcomeUnknown)
	}
	// The node's own ApplyTimeout is minutes: only an Apply that ignored
	// its context, not a busy machine, takes a minute.
	if took > time.Minute {
		t.Fatalf("Apply without quorum took %v, deadline 400ms", took)
	}
	t.Logf("Apply without quorum: %v", err)

	// The followers come back; the client retries the command of unknown
	// outcome with the same key until it gets an answer: the version exists
	// exactly once, on every node.
	for i, cfg := range cfgs {
		if nodes[i] == nil {
			nodes[i] = openNode(t, cfg)
		}
	}
	var res registry.Result
	for {
		leader = waitOneLeader(ctx, t, nodes)
		if res, err = leader.Apply(ctx, lost); err == nil {
			break
		}
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("retry: %v", err)
		}
	}
	t.Logf("retry after the quorum came back: %+v", res)
	want = nodeSnapshot(t, leader)
	for _, n := range nodes {
		waitSnapshot(ctx, t, n, want)
	}
	leader.FSM().Read(func(s *registry.State) {
		m, _ := s.Model("fraud")
		count := 0
		for _, v := range m.Versions {
			if v.Digest == digestOf(10) {
				count++
			}
		}
		if count != 1 || res.Version != m.Versions[len(m.Versions)-1].Number {
			t.Fatalf("the retried version exists %d times; result %+v", count, res)
		}
	})
}

// waitOneLeader waits until exactly one node leads and all agree on it.
// Nil entries are nodes that are down.
func waitOneLeader(ctx context.Context, t *testing.T, nodes []*Node) *Node {
	t.Helper()
	for {
		var leader *Node
		agree := true
		for _, n := range nodes {
			if n != nil && n.IsLeader() {
				leader = n
			}
		}
		for _, n := range nodes {
			if n == nil {
				continue
			}
			if id, _ := n.Leader(); leader == nil || id != leader.ID() {
				agree = false
			}
		}
		if agree {
			return leader
		}
		select {
		case <-ctx.Done():
			t.Fatal("no agreed leader")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitSnapshot waits until n's registry encodes to want.
func waitSnapshot(ctx context.Context, t *testing.T, n *Node, want []byte) {
	t.Helper()
	for {
		got := nodeSnapshot(t, n)
		if bytes.Equal(got, want) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("node %s: registry differs from the leader's:\n got %s\nwant %s", n.ID(), got, want)
		case <-n.FSM().Changed():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// applyOnLeader commits cmd through whichever node leads and returns that
// node. A leader change in the middle (an Apply refused as unavailable:
// not the leader, leadership lost, timed out) is followed: the command is
// sent again, with its idempotency key, to the next leader, so it is
// applied once. For the parts of a test that need some leader, not a
// particular one; nil entries are nodes that are down.
func applyOnLeader(ctx context.Context, t *testing.T, nodes []*Node, cmd registry.Command) *Node {
	t.Helper()
	for {
		leader := waitOneLeader(ctx, t, nodes)
		_, err := leader.Apply(ctx, cmd)
		if err == nil {
			return leader
		}
		if !errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
			t.Fatalf("%s on the leader %s: %v", cmd.Op(), leader.ID(), err)
		}
		t.Logf("%s on %s: %v; following the leader", cmd.Op(), leader.ID(), err)
		// A leadership transfer refuses at once while every node still
		// names the old leader: not a spin until it completes.
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}
