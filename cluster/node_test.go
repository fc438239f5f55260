package cluster

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/modelgate/modelgate/registry"
)

// testConfig is a single node in dir on a loopback port, with Raft timings
// short enough for tests.
func testConfig(dir, id string) Config {
	return Config{
		NodeID:             id,
		DataDir:            dir,
		BindAddr:           "127.0.0.1:0",
		Bootstrap:          true,
		ApplyTimeout:       10 * time.Second,
		HeartbeatTimeout:   100 * time.Millisecond,
		ElectionTimeout:    100 * time.Millisecond,
		LeaderLeaseTimeout: 100 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		Logger:             testLogger(),
	}
}

func openNode(t testing.TB, cfg Config) *Node {
	t.Helper()
	n, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// waitReady waits until n leads and its registry has applied everything
// committed before.
func waitReady(t testing.TB, n *Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	if !n.IsLeader() {
		t.Fatalf("node %s is %v, want the leader", n.ID(), n.State())
	}
	if err := n.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
}

func mustApply(t testing.TB, n *Node, c registry.Command) registry.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := n.Apply(ctx, c)
	if err != nil {
		t.Fatalf("%s: %v", c.Op(), err)
	}
	return r
}

func nodeSnapshot(t testing.TB, n *Node) []byte {
	t.Helper()
	var b []byte
	var err error
	n.FSM().Read(func(s *registry.State) { b, err = s.MarshalSnapshot() })
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func nodeAudit(n *Node) []registry.AuditRecord {
	var a []registry.AuditRecord
	n.FSM().Read(func(s *registry.State) { a = s.Audit(registry.AuditFilter{}) })
	return a
}

func TestNodeSingleRestart(t *testing.T) {
	dir := t.TempDir()
	n := openNode(t, testConfig(dir, "n1"))
	waitReady(t, n)
	if id, addr := n.Leader(); id != "n1" || addr != n.Addr() {
		t.Fatalf("Leader() = %s %s, want n1 %s", id, addr, n.Addr())
	}

	c := newCmds()
	var results []registry.Result
	for _, cmd := range story(c, "fraud") {
		results = append(results, mustApply(t, n, cmd))
	}
	if r := results[1]; r.Version != 1 || r.Stage != registry.StageChampion {
		t.Fatalf("validating v1 = %+v, want v1 champion (first to pass)", r)
	}
	if r := results[4]; r.Op != registry.OpPromote || r.Version != 2 || r.Stage != registry.StageChampion {
		t.Fatalf("promote = %+v", r)
	}
	wantState, wantAudit := nodeSnapshot(t, n), nodeAudit(n)
	var champ registry.Version
	n.FSM().Read(func(s *registry.State) { champ, _ = s.Champion("fraud") })
	if champ.Number != 2 {
		t.Fatalf("champion v%d, want v2", champ.Number)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	// Restart from the same data dir: same registry, same audit log.
	n = openNode(t, testConfig(dir, "n1"))
	waitReady(t, n)
	if got := nodeSnapshot(t, n); !bytes.Equal(got, wantState) {
		t.Fatalf("state after restart differs:\n got %s\nwant %s", got, wantState)
	}
	if got := nodeAudit(n); !reflect.DeepEqual(got, wantAudit) {
		t.Fatalf("audit log after restart differs: %d records, want %d", len(got), len(wantAudit))
	}
	// It takes writes again, and remembers what it applied before.
	if r := mustApply(t, n, c.cmd(registerArgs("fraud", 4))); r.Version != 4 {
		t.Fatalf("register after restart = %+v, want v4", r)
	}
	if r := mustApply(t, n, story(newCmds(), "fraud")[2]); !r.Replayed || r.Version != 2 {
		t.Fatalf("a retry of register v2 after restart = %+v, want Replayed v2", r)
	}
}

func TestNodeIdempotentRetry(t *testing.T) {
	n := openNode(t, testConfig(t.TempDir(), "n1"))
	waitReady(t, n)
	c := newCmds()
	reg := c.cmd(registerArgs("m", 1))
	first := mustApply(t, n, reg)
	retry := reg
	retry.Time = retry.Time.Add(time.Minute) // a retry is made later
	second := mustApply(t, n, retry)
	if first.Replayed || !second.Replayed || second.Version != first.Version || second.AuditSeq != first.AuditSeq {
		t.Fatalf("first %+v, retry %+v: want the same version, the retry Replayed", first, second)
	}
	var versions int
	n.FSM().Read(func(s *registry.State) { m, _ := s.Model("m"); versions = len(m.Versions) })
	if versions != 1 {
		t.Fatalf("%d versions after a retried register, want 1", versions)
	}
	// The same key for a different command is the registry's 409, not a 503.
	other := c.cmd(registerArgs("m", 2))
	other.IdempotencyKey = reg.IdempotencyKey
	_, err := n.Apply(context.Background(), other)
	var ie *registry.IdempotencyError
	if !errors.As(err, &ie) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("reused key = %v, want *registry.IdempotencyError", err)
	}
}

func TestNodeRegistryErrorsPassThrough(t *testing.T) {
	n := openNode(t, testConfig(t.TempDir(), "n1"))
	waitReady(t, n)
	c := newCmds()
	_, err := n.Apply(context.Background(), c.cmd(&registry.PromoteArgs{Model: "nope", Version: 1}))
	if !errors.Is(err, registry.ErrModelNotFound) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("promote of an unknown model = %v, want registry.ErrModelNotFound", err)
	}
	// A command that fails validation is refused before Raft sees it.
	last := n.raft.LastIndex()
	bad := c.cmd(registerArgs("m", 1))
	bad.Time = time.Time{}
	_, err = n.Apply(context.Background(), bad)
	var fe *registry.FieldError
	if !errors.As(err, &fe) || fe.Field != "time" {
		t.Fatalf("command without a time = %v, want a *registry.FieldError on time", err)
	}
	if n.raft.LastIndex() != last {
		t.Fatal("an invalid command reached the raft log")
	}
}

func TestNodeSnapshotRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir, "n1")
	cfg.TrailingLogs = 1 // compact (almost) the whole log behind a snapshot
	n := openNode(t, cfg)
	waitReady(t, n)
	c := newCmds()
	for _, cmd := range story(c, "fraud") {
		mustApply(t, n, cmd)
	}
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	atSnapshot := n.FSM().LastSeq()
	first, err := n.store.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	if first <= 2 {
		t.Fatalf("log starts at %d after a snapshot with TrailingLogs 1: not compacted", first)
	}
	for _, cmd := range story(c, "spam") { // after the snapshot: in the log only
		mustApply(t, n, cmd)
	}
	want := nodeSnapshot(t, n)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	snaps, _ := os.ReadDir(filepath.Join(dir, "raft", "snapshots"))
	if len(snaps) != 1 {
		t.Fatalf("%d snapshots on disk, want 1", len(snaps))
	}

	n = openNode(t, cfg)
	// Open restores the snapshot (the entries it covers are gone from the
	// log, so they can only come from there) and the committed entries
	// after it (replay.go) before Raft elects anyone.
	if got := n.FSM().LastSeq(); got < atSnapshot {
		t.Fatalf("registry at LastSeq %d right after Open, want at least the snapshot's %d", got, atSnapshot)
	}
	waitReady(t, n)
	if got := nodeSnapshot(t, n); !bytes.Equal(got, want) {
		t.Fatalf("state after snapshot + restart differs:\n got %s\nwant %s", got, want)
	}
}

func TestNodeNoQuorum(t *testing.T) {
	// Two voters, the second of which never exists: no leader can be
	// elected, and Apply must give up at its deadline, not hang.
	cfg := testConfig(t.TempDir(), "n1")
	cfg.BindAddr = freeAddr(t)
	cfg.InitialCluster = []Peer{{ID: "n1", Addr: cfg.BindAddr}, {ID: "ghost", Addr: freeAddr(t)}}
	cfg.ApplyTimeout = 250 * time.Millisecond
	n := openNode(t, cfg)
	c := newCmds()

	f := func(name string, ctx context.Context, within time.Duration) {
		t.Helper()
		start := time.Now()
		_, err := n.Apply(ctx, c.cmd(registerArgs("m", 1)))
		took := time.Since(start)
		var ue *UnavailableError
		if !errors.As(err, &ue) || !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrNoLeader) {
			t.Fatalf("%s: Apply = %v, want an *UnavailableError wrapping ErrNoLeader", name, err)
		}
		if ue.OutcomeUnknown || ue.IdempotencyKey == "" || ue.Op != registry.OpRegister {
			t.Fatalf("%s: %+v", name, ue)
		}
		// Only a hang, not a busy machine, may fail this: with 100 ms and
		// 250 ms deadlines no smaller slack could tell which one Apply
		// honoured anyway.
		if took > within+30*time.Second {
			t.Fatalf("%s: Apply took %v, deadline %v", name, took, within)
		}
		if !strings.Contains(err.Error(), "nothing was applied") {
			t.Fatalf("%s: message %q does not tell the client nothing was applied", name, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	f("ctx deadline", ctx, 100*time.Millisecond)
	f("ApplyTimeout", context.Background(), cfg.ApplyTimeout)

	wctx, wcancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer wcancel()
	if err := n.WaitLeader(wctx); !errors.Is(err, ErrNoLeader) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitLeader = %v, want ErrNoLeader", err)
	}
	if n.IsLeader() {
		t.Fatal("a node without quorum is leader")
	}
	if err := n.Barrier(context.Background()); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Barrier off the leader = %v", err)
	}
}

func TestNodeClosed(t *testing.T) {
	n := openNode(t, testConfig(t.TempDir(), "n1"))
	waitReady(t, n)
	if err := n.Healthy(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := n.Apply(context.Background(), newCmds().cmd(registerArgs("m", 1)))
	if !errors.Is(err, ErrClosed) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Apply after Close = %v, want ErrClosed", err)
	}
	if err := n.Healthy(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Healthy after Close = %v", err)
	}
	if n.State() != raft.Shutdown {
		t.Fatalf("State after Close = %v", n.State())
	}
}

func TestNodeDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	openNode(t, testConfig(dir, "n1"))
	if n, err := Open(testConfig(dir, "n1")); err == nil {
		n.Close()
		t.Fatal("a second node opened a data dir in use")
	}
}

// freeAddr returns a loopback address with a port free at the moment.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestNodeCloseWakesWaiters(t *testing.T) {
	// An Apply waiting for an election that cannot happen returns ErrClosed
	// when the node closes, not at its deadline.
	cfg := testConfig(t.TempDir(), "n1")
	cfg.BindAddr = freeAddr(t)
	cfg.InitialCluster = []Peer{{ID: "n1", Addr: cfg.BindAddr}, {ID: "ghost", Addr: freeAddr(t)}}
	// Far past the wait below: an Apply that Close did not wake would end
	// here, and a loaded machine's slow Close cannot pass for it.
	cfg.ApplyTimeout = 3 * time.Minute
	n := openNode(t, cfg)
	errc := make(chan error, 1)
	go func() {
		_, err := n.Apply(context.Background(), newCmds().cmd(registerArgs("m", 1)))
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Apply during Close = %v, want ErrClosed", err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("Apply still waiting a minute after Close (%v)", time.Since(start))
	}
}
