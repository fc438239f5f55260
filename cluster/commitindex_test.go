package cluster

import (
	"testing"

	"github.com/hashicorp/raft"
)

// TestStoreCommitIndex pins raft.CommitTrackingLogStore's contract on the
// Pebble store: a staged commit index is persisted only by the next
// StoreLogs (never on its own), GetCommitIndex returns the latest persisted
// value clamped to the log's last index, a lower staged value does not
// move it back, and it survives a reopen.
func TestStoreCommitIndex(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	f := func(want uint64) {
		t.Helper()
		got, err := s.GetCommitIndex()
		if err != nil || got != want {
			t.Fatalf("GetCommitIndex() = %d, %v; want %d", got, err, want)
		}
	}
	reopen := func() {
		t.Helper()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openTestStore(t, dir)
	}

	f(0) // none persisted
	storeLogs(t, s, 1, 4)
	f(0) // entries without a staged index

	// Staged alone: nothing on disk, not even across a reopen.
	if err := s.StageCommitIndex(3); err != nil {
		t.Fatal(err)
	}
	f(0)
	if err := s.Set([]byte("CurrentTerm"), []byte{0, 0, 0, 0, 0, 0, 0, 2}); err != nil {
		t.Fatal(err)
	}
	f(0) // a stable-store write does not carry it either
	reopen()
	f(0)

	// With the next StoreLogs it is persisted.
	if err := s.StageCommitIndex(3); err != nil {
		t.Fatal(err)
	}
	storeLogs(t, s, 5, 6)
	f(3)
	reopen()
	f(3)

	// A lower staged index (a new leader starts from an older one) does not
	// move it back.
	if err := s.StageCommitIndex(2); err != nil {
		t.Fatal(err)
	}
	storeLogs(t, s, 7, 7)
	f(3)

	// Clamped to the last index: raft may stage beyond what one batch
	// holds, and a deleted suffix ends the log below it.
	if err := s.StageCommitIndex(10); err != nil {
		t.Fatal(err)
	}
	storeLogs(t, s, 8, 8)
	f(8)
	if err := s.DeleteRange(7, 8); err != nil {
		t.Fatal(err)
	}
	f(6)
	reopen()
	f(6)
	if raw, err := s.readCommitIndex(); err != nil || raw != 10 {
		t.Fatalf("persisted commit index %d, %v; want 10 (clamped only when read)", raw, err)
	}
	// The whole log gone (a snapshot installed from the leader): 0.
	if err := s.DeleteRange(1, 6); err != nil {
		t.Fatal(err)
	}
	f(0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetCommitIndex(); err != ErrStoreClosed {
		t.Fatalf("GetCommitIndex on a closed store = %v, want ErrStoreClosed", err)
	}
}

// TestNodeRaftStoreTracksCommits: the log store a Node hands raft is a
// raft.CommitTrackingLogStore (raft refuses to start with
// RestoreCommittedLogs on any other), and a single node that has applied
// writes has persisted a commit index within its log.
func TestNodeRaftStoreTracksCommits(t *testing.T) {
	var _ raft.CommitTrackingLogStore = (*raftLogStore)(nil)
	n := openNode(t, testConfig(t.TempDir(), "n1"))
	waitReady(t, n)
	c := newCmds()
	for _, cmd := range story(c, "fraud") {
		mustApply(t, n, cmd)
	}
	commit, err := n.store.GetCommitIndex()
	if err != nil {
		t.Fatal(err)
	}
	last, err := n.store.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	// The leader stages what it had committed before each batch: at least
	// every write but the last.
	if commit == 0 || commit >= last {
		t.Fatalf("persisted commit index %d with the log ending at %d; want one below it at most", commit, last)
	}
}
