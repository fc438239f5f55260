package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
)

// The commit index on disk lets a restarted node replay every entry it
// knows was committed before raft.NewRaft returns (raft's
// Config.RestoreCommittedLogs), instead of waiting for a leader to tell it
// the commit index. Without it a follower restarted while cut off from the
// leader (an edge site on a poor link) comes up with only its last snapshot
// and serves nothing of what it applied after it.
//
// What a node persists is the commit index raft knew when it last appended
// entries: a follower learns that an entry committed from the leader's next
// message, so the newest write is restored only if another entry (any
// write, a member record, a barrier) reached the node after it.

// commitKey holds the persisted commit index (big-endian uint64).
var commitKey = []byte{prefixMeta, 'c', 'o', 'm', 'm', 'i', 't'}

// StageCommitIndex implements raft.CommitTrackingLogStore: idx is written
// in the batch of the next StoreLogs, never on its own, so after a crash the
// persisted commit index never names an entry the log lost with it (a torn
// batch loses both). A staged value at or below the persisted one is not
// written: a commit index never goes back, and a new leader stages the
// lower one it starts from.
func (s *Store) StageCommitIndex(idx uint64) error {
	s.staged.Store(idx)
	return nil
}

// GetCommitIndex implements raft.CommitTrackingLogStore: the persisted
// commit index, clamped to the last index in the log (a log whose suffix
// was deleted ends below it), or 0 when none was persisted.
func (s *Store) GetCommitIndex() (uint64, error) {
	c, err := s.readCommitIndex()
	if err != nil || c == 0 {
		return 0, err
	}
	last, err := s.LastIndex()
	if err != nil {
		return 0, err
	}
	return min(c, last), nil
}

// readCommitIndex reads the persisted commit index, unclamped.
func (s *Store) readCommitIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ErrStoreClosed
	}
	v, closer, err := s.db.Get(commitKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("cluster: cannot read the commit index from the raft store: %w", err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, corrupt("the commit index holds %d bytes, want 8", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// loadCommitIndex primes persisted at open, so StoreLogs writes only a
// commit index that moved forward.
func (s *Store) loadCommitIndex() error {
	c, err := s.readCommitIndex()
	if err != nil {
		return err
	}
	s.persisted.Store(c)
	return nil
}

// notePersisted raises persisted to c after a batch holding c committed.
func (s *Store) notePersisted(c uint64) {
	for {
		p := s.persisted.Load()
		if c <= p || s.persisted.CompareAndSwap(p, c) {
			return
		}
	}
}

// raftLogStore is the LogStore a Node hands raft: the LogCache in front of
// the Store, still a raft.CommitTrackingLogStore — raft stages the commit
// index only with RestoreCommittedLogs on, and refuses to start with it on
// a store that is not one (LogCache is not).
type raftLogStore struct {
	*raft.LogCache
	store *Store
}

var _ raft.CommitTrackingLogStore = (*raftLogStore)(nil)

func newRaftLogStore(s *Store, cacheSize int) (*raftLogStore, error) {
	c, err := raft.NewLogCache(cacheSize, s)
	if err != nil {
		return nil, err
	}
	return &raftLogStore{LogCache: c, store: s}, nil
}

// StageCommitIndex implements raft.CommitTrackingLogStore.
func (r *raftLogStore) StageCommitIndex(idx uint64) error { return r.store.StageCommitIndex(idx) }

// GetCommitIndex implements raft.CommitTrackingLogStore for raft's replay
// in NewRaft, which must find nothing to do: Open has already replayed the
// committed entries into a snapshot (replay.go says why raft's own replay
// is not used). The Store's GetCommitIndex is the persisted value.
func (r *raftLogStore) GetCommitIndex() (uint64, error) { return 0, nil }
