package lifecycle

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/modelgate/modelgate/cluster"
	"github.com/modelgate/modelgate/registry"
)

func loopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// leaderOf waits until exactly one of the open nodes leads and has applied
// everything committed before; only a hang exceeds the deadline.
func leaderOf(t *testing.T, nodes []*cluster.Node) *cluster.Node {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var leaders []*cluster.Node
		for _, n := range nodes {
			if n != nil && n.IsLeader() {
				leaders = append(leaders, n)
			}
		}
		if len(leaders) == 1 {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := leaders[0].Barrier(ctx)
			cancel()
			if err == nil {
				return leaders[0]
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no single leader within 60 s")
	return nil
}

// TestNewLeaderDeliversAnUndeliveredRequest: on a three-node Raft cluster
// on loopback, the leader's controller records a retraining request and
// starts sending it; the leader stops before the receiver answers. The
// controller of the node that leads next delivers the request, with the
// same event id, and the receiver accepts it exactly once however often
// the controllers step.
func TestNewLeaderDeliversAnUndeliveredRequest(t *testing.T) {
	if testing.Short() {
		t.Skip("three raft nodes")
	}
	hold := make(chan struct{})
	recv := newHookReceiver(t, hold)

	nodes := startCluster(t, 3)
	old := leaderOf(t, nodes)

	// The registry's setup, as newTestRegistry makes it, through Raft.
	setup := newTestRegistry(t, recv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var cmds []registry.Command
	setup.View(func(st *registry.State) {
		pol, _ := st.Policy(testModel)
		v, _ := st.Version(testModel, 1)
		cmds = []registry.Command{
			{Time: t0, Actor: "test", IdempotencyKey: "create", Args: &registry.CreateModelArgs{Model: testModel, Policy: &pol}},
			{Time: t0, Actor: "test", IdempotencyKey: "register", Args: &registry.RegisterArgs{Model: testModel, Digest: v.Digest, Size: 1}},
		}
	})
	for _, cmd := range cmds {
		if _, err := old.Apply(ctx, cmd); err != nil {
			t.Fatalf("%s: %v", cmd.Op(), err)
		}
	}

	clock := &fakeClock{now: t0}
	w := windows(t, clock)
	traffic(t, w, clock, 1, 2000, [3]float64{2, 0, 0})
	clock.Add(time.Minute)
	controllers := make([]*Controller, 3)
	for i, n := range nodes {
		c, err := NewController(ControllerConfig{Registry: n, IsLeader: n.IsLeader, Now: clock.Now,
			Drift: staticDrift{{Model: testModel, Version: 1, Windows: w}}, Secrets: map[string][]byte{"hook": []byte(hookSecret)}})
		if err != nil {
			t.Fatal(err)
		}
		controllers[i] = c
		t.Cleanup(c.Close)
	}

	// The leader's controller records the request and starts sending it;
	// the receiver holds it unanswered. (Every controller steps, as Run
	// would: only the leader's acts, whichever node leads on this busy
	// machine.)
	var requested Event
	deadline := time.Now().Add(30 * time.Second)
	for requested.ID == "" || recv.pending() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no retraining request recorded and sent within 30 s (request %q, at the receiver %d)", requested.ID, recv.pending())
		}
		for _, c := range controllers {
			c.Step()
		}
		time.Sleep(20 * time.Millisecond)
		old.View(func(st *registry.State) {
			for _, r := range st.Audit(registry.AuditFilter{Model: testModel}) {
				if r.Kind == KindRetrainingRequested {
					_ = json.Unmarshal(r.Evidence, &requested)
				}
			}
		})
	}
	sender := -1
	for i, c := range controllers {
		c.mu.Lock()
		if _, ok := c.sending[requested.ID]; ok {
			sender = i
		}
		c.mu.Unlock()
	}
	if sender < 0 {
		t.Fatal("the receiver holds a request but no controller is sending it")
	}
	old = nodes[sender]

	// The old leader stops before the receiver answers.
	for i, n := range nodes {
		if n == old {
			controllers[i].Close()
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
			nodes[i], controllers[i] = nil, nil
		}
	}
	recv.waitHungUp(t)
	if got := recv.counts(); len(got) != 0 {
		t.Fatalf("the receiver accepted %v from the stopped leader", got)
	}
	close(hold)

	// Every remaining controller steps, as Run would once a window, until
	// the request is delivered: only the leader's acts, and it sends the
	// request once however often it steps.
	next := leaderOf(t, nodes)
	deadline = time.Now().Add(30 * time.Second)
	var delivered []registry.AuditRecord
	var kinds []string
	for len(delivered) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the new leader did not deliver the request within 30 s (receiver: %v; audit: %v)", recv.counts(), kinds)
		}
		for i, c := range controllers {
			if c != nil {
				if nodes[i].IsLeader() && nodes[i] != next {
					t.Logf("leader changed to %s", nodes[i].ID())
				}
				c.Step()
			}
		}
		time.Sleep(20 * time.Millisecond)
		next.View(func(st *registry.State) {
			delivered, kinds = delivered[:0], kinds[:0]
			for _, r := range st.Audit(registry.AuditFilter{Model: testModel}) {
				kinds = append(kinds, r.Kind)
				if r.Kind == KindRetrainingDelivered {
					delivered = append(delivered, r)
				}
			}
		})
	}
	for _, c := range controllers {
		if c != nil {
			c.Step()
			c.Close()
		}
	}
	if got := recv.counts(); len(got) != 1 || got[requested.ID] != 1 {
		t.Fatalf("deliveries by event id: %v, want %s once", got, requested.ID)
	}
	if len(delivered) != 1 || !strings.HasPrefix(delivered[0].IdempotencyKey, requested.ID) {
		t.Fatalf("delivered records: %+v, want one for %s", delivered, requested.ID)
	}
}

// startCluster starts n raft nodes on loopback that form one cluster.
func startCluster(t *testing.T, n int) []*cluster.Node {
	t.Helper()
	peers := make([]cluster.Peer, n)
	for i := range peers {
		peers[i] = cluster.Peer{ID: fmt.Sprintf("n%d", i+1), Addr: loopbackAddr(t)}
	}
	nodes := make([]*cluster.Node, n)
	for i, p := range peers {
		cfg := cluster.DefaultConfig()
		cfg.NodeID, cfg.DataDir, cfg.BindAddr, cfg.InitialCluster = p.ID, t.TempDir(), p.Addr, peers
		cfg.Logger = slog.New(slog.DiscardHandler)
		// Loose timings: three nodes share two cores with other work.
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 300*time.Millisecond, 300*time.Millisecond, 150*time.Millisecond
		node, err := cluster.Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = node
		t.Cleanup(func() { _ = node.Close() })
	}
	return nodes
}
