package cluster

import (
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// replayCommitted is how a restarted node serves what it had with no leader
// reachable: before raft.NewRaft, it applies the log entries after the
// newest snapshot up to the persisted commit index (commitindex.go) to a
// fresh FSM and writes the result as a snapshot at that index. NewRaft then
// restores that snapshot, as on any start: the registry holds every entry
// the node knew was committed when Open returns, raft's applied index is
// the snapshot's (so nothing is applied twice when the leader returns), and
// Raft's configuration is the snapshot's plus the configuration entries
// after it in the log.
//
// Why not raft's own replay (Config.RestoreCommittedLogs with a
// CommitTrackingLogStore, v1.8.0)? It replays inside NewRaft, then scans
// for configuration entries only after the replayed index: a node whose
// membership entries are in the replayed part comes up knowing no servers
// (TestFollowerRestartsCutOff caught it), and a voter that knows no servers
// never campaigns — a cluster restarted that way elects no leader, ever.
// It also hands the entries to the FSM's goroutine before starting it, so
// more than 128 batches block NewRaft forever. RestoreCommittedLogs stays
// on because raft stages the commit index only then; raftLogStore reports
// nothing to replay.
//
// Any failure here is logged and the node starts as before this existed:
// from its newest snapshot, the rest once a leader tells it the commit
// index.
func (n *Node) replayCommitted(snaps *raft.FileSnapshotStore) {
	start := time.Now()
	commit, snapIndex, err := n.writeReplaySnapshot(snaps)
	switch {
	case err != nil:
		n.log.Warn("cluster: cannot replay the committed raft log at start: the registry starts from the newest snapshot and catches up once a leader is reachable",
			"id", n.cfg.NodeID, "err", err)
	case commit > snapIndex:
		n.log.Info("cluster: replayed the committed raft log into a snapshot", "id", n.cfg.NodeID,
			"from_index", snapIndex+1, "commit_index", commit, "took", time.Since(start).Round(time.Millisecond))
	}
}

// writeReplaySnapshot does replayCommitted's work and returns the commit
// index and the newest snapshot's index before it; nothing is written when
// the first is not above the second.
func (n *Node) writeReplaySnapshot(snaps *raft.FileSnapshotStore) (commit, snapIndex uint64, err error) {
	defer func() {
		if r := recover(); r != nil { // raft.DecodeConfiguration panics on a bad entry
			err = fmt.Errorf("a log entry cannot be replayed: %v", r)
		}
	}()
	if commit, err = n.store.GetCommitIndex(); err != nil || commit == 0 {
		return 0, 0, err
	}
	fsm := NewFSM(n.cfg.Logger)
	// The trims replayed here are archived here; raft does not apply them
	// again (they are in the snapshot).
	fsm.SetArchive(n.cfg.AuditArchive)
	var conf raft.Configuration
	var confIndex uint64
	metas, err := snaps.List()
	if err != nil {
		return 0, 0, fmt.Errorf("cannot list snapshots: %w", err)
	}
	if len(metas) > 0 {
		meta, rc, err := snaps.Open(metas[0].ID)
		if err != nil {
			return 0, 0, fmt.Errorf("cannot open snapshot %s: %w", metas[0].ID, err)
		}
		if err := fsm.Restore(rc); err != nil { // closes rc
			return 0, 0, fmt.Errorf("cannot restore snapshot %s: %w", meta.ID, err)
		}
		snapIndex, conf, confIndex = meta.Index, meta.Configuration, meta.ConfigurationIndex
	}
	if commit <= snapIndex {
		return commit, snapIndex, nil
	}
	var l *raft.Log
	for i := snapIndex + 1; i <= commit; i++ {
		l = new(raft.Log) // the FSM may keep what it is given
		if err := n.store.GetLog(i, l); err != nil {
			return 0, 0, fmt.Errorf("cannot read raft log entry %d of the %d-%d to replay: %w", i, snapIndex+1, commit, err)
		}
		switch l.Type {
		case raft.LogCommand:
			fsm.Apply(l)
		case raft.LogConfiguration:
			conf, confIndex = raft.DecodeConfiguration(l.Data), l.Index
		}
	}
	// l is the entry at commit: the snapshot takes its term.
	sink, err := snaps.Create(raft.SnapshotVersionMax, commit, l.Term, conf, confIndex, n.trans)
	if err != nil {
		return 0, 0, fmt.Errorf("cannot create a snapshot at %d: %w", commit, err)
	}
	snap, err := fsm.Snapshot()
	if err != nil {
		_ = sink.Cancel()
		return 0, 0, err
	}
	defer snap.Release()
	if err := snap.Persist(sink); err != nil { // closes or cancels sink
		return 0, 0, err
	}
	return commit, snapIndex, nil
}
