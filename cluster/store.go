package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"

	"github.com/modelgate/modelgate/internal/pebblelog"
)

// Key layout of the raft store's Pebble DB. One DB holds both stores, so a
// node has one directory, one WAL and one sync per write.
//
//	'l' + uint64 index, big-endian   → a raft.Log (logcodec.go)
//	's' + key                        → a stable-store value
//	'm' + "commit"                   → the commit index, uint64 big-endian (commitindex.go)
//
// Big-endian indexes sort in index order, so FirstIndex and LastIndex are
// the first and last keys under 'l', and DeleteRange is one range tombstone.
const (
	prefixLog    = 'l'
	prefixStable = 's'
	prefixMeta   = 'm'
)

// StoreOptions tunes OpenStore. The zero value is ready to use.
type StoreOptions struct {
	// Logger receives Pebble's messages (internal/pebblelog: errors and
	// fatal errors at ERROR with store="raft store" and the directory) and
	// the store's failure. nil: discarded.
	Logger *slog.Logger
	// FS is the filesystem Pebble uses. nil: the operating system's. Tests
	// pass an in-memory or fault-injecting one (pebble's vfs/errorfs).
	FS vfs.FS
}

// Store is hashicorp/raft's LogStore and StableStore on a Pebble DB of its
// own. Every write (StoreLog, StoreLogs, DeleteRange, Set, SetUint64) is one
// Pebble batch committed with pebble.Sync: when the call returns nil the
// write is on stable storage and survives a process crash or power loss.
// A write that fails makes the store refuse all later writes (see
// ErrStoreFailed). A Store is safe for concurrent use.
type Store struct {
	db  *pebble.DB
	dir string
	log *slog.Logger

	mu     sync.RWMutex // writers and readers hold it shared; Close exclusively
	closed bool
	failed atomic.Pointer[error] // the first failed write (wraps ErrStoreFailed), sticky

	// The commit index (commitindex.go): staged by StageCommitIndex,
	// written by the next StoreLogs in its batch when above persisted.
	staged    atomic.Uint64
	persisted atomic.Uint64
}

var (
	_ raft.LogStore               = (*Store)(nil)
	_ raft.StableStore            = (*Store)(nil)
	_ raft.CommitTrackingLogStore = (*Store)(nil)
)

// OpenStore opens (creating if needed) the raft store in dir. Only one Store
// may have dir open at a time, in any process: Pebble locks it.
func OpenStore(dir string, opts StoreOptions) (*Store, error) {
	lg := opts.Logger
	if lg == nil {
		lg = pebblelog.Discard()
	}
	po := &pebble.Options{
		FS:                 opts.FS,
		FormatMajorVersion: pebble.FormatNewest,
		// The log holds small entries and is read back mostly from the tail
		// (replication, restart): a small memtable and cache are enough.
		MemTableSize: 8 << 20,
		// Fatalf logs and panics with a *pebblelog.Fatal, which write
		// recovers into the sticky failure.
		Logger: pebblelog.New(lg, "raft store", dir, nil),
	}
	if po.FS == nil {
		po.FS = vfs.Default
	}
	// Before Pebble replays the WAL and silently drops a torn tail.
	torn, tornErr := findTornTail(po.FS, dir)
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("cluster: cannot open raft store %s: %w", dir, err)
	}
	s := &Store{db: db, dir: dir, log: lg}
	if err := s.loadCommitIndex(); err != nil {
		_ = db.Close()
		return nil, err
	}
	switch {
	case tornErr != nil:
		lg.Warn("cluster: cannot check the raft store's WAL for a torn tail", "dir", dir, "err", tornErr)
	case torn != nil:
		last, _ := s.LastIndex()
		lg.Warn("cluster: the raft log's tail was torn (a crash mid-write, or a file cut short) and is dropped: "+torn.dropped(last)+
			"; if the node had acknowledged those writes, the other voters hold them, but a single node has lost them", "dir", dir)
	}
	return s, nil
}

// Close closes the DB. Later calls return ErrStoreClosed. The raft instance
// using the store must be shut down first.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("cluster: cannot close raft store %s: %w", s.dir, err)
	}
	return nil
}

// Healthy returns nil, or the sticky error of the write that failed
// (wrapping ErrStoreFailed), or ErrStoreClosed.
func (s *Store) Healthy() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrStoreClosed
	}
	if e := s.failed.Load(); e != nil {
		return *e
	}
	return nil
}

func logKey(index uint64) [9]byte {
	var k [9]byte
	k[0] = prefixLog
	binary.BigEndian.PutUint64(k[1:], index)
	return k
}

func stableKey(key []byte) []byte {
	return append([]byte{prefixStable}, key...)
}

// FirstIndex implements raft.LogStore: the lowest stored index, 0 when the
// log is empty.
func (s *Store) FirstIndex() (uint64, error) { return s.edgeIndex(true) }

// LastIndex implements raft.LogStore: the highest stored index, 0 when the
// log is empty.
func (s *Store) LastIndex() (uint64, error) { return s.edgeIndex(false) }

func (s *Store) edgeIndex(first bool) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ErrStoreClosed
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixLog}, UpperBound: []byte{prefixLog + 1}})
	if err != nil {
		return 0, fmt.Errorf("cluster: cannot read raft log bounds: %w", err)
	}
	var ok bool
	if first {
		ok = it.First()
	} else {
		ok = it.Last()
	}
	var index uint64
	if ok {
		k := it.Key()
		if len(k) != 9 {
			_ = it.Close()
			return 0, corrupt("raft log key %x", k)
		}
		index = binary.BigEndian.Uint64(k[1:])
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return 0, fmt.Errorf("cluster: cannot read raft log bounds: %w", err)
	}
	return index, nil
}

// GetLog implements raft.LogStore: it fills l with the entry at index, or
// returns raft.ErrLogNotFound.
func (s *Store) GetLog(index uint64, l *raft.Log) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrStoreClosed
	}
	k := logKey(index)
	v, closer, err := s.db.Get(k[:])
	if errors.Is(err, pebble.ErrNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return fmt.Errorf("cluster: cannot read raft log entry %d: %w", index, err)
	}
	defer closer.Close()
	if err := decodeLog(v, l); err != nil {
		return fmt.Errorf("cluster: cannot read raft log entry %d: %w", index, err)
	}
	if l.Index != index {
		return corrupt("raft log key %d holds entry %d", index, l.Index)
	}
	return nil
}

// StoreLog implements raft.LogStore.
func (s *Store) StoreLog(l *raft.Log) error {
	return s.StoreLogs([]*raft.Log{l})
}

// StoreLogs implements raft.LogStore: all the entries are written in one
// synced batch, so after a crash either all of them are there or none. The
// commit index staged since the last StoreLogs (StageCommitIndex) goes into
// the same batch.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	commit := s.staged.Load()
	if commit <= s.persisted.Load() {
		commit = 0
	}
	err := s.write(func(b *pebble.Batch) error {
		var buf []byte
		for _, l := range logs {
			k := logKey(l.Index)
			buf = appendLog(buf[:0], l)
			if err := b.Set(k[:], buf, nil); err != nil { // Set copies
				return err
			}
		}
		// After the entries: torn.go names a torn batch by its first key.
		if commit > 0 {
			return b.Set(commitKey, binary.BigEndian.AppendUint64(nil, commit), nil)
		}
		return nil
	}, "store raft log entries %d–%d", logs[0].Index, logs[len(logs)-1].Index)
	if err == nil && commit > 0 {
		s.notePersisted(commit)
	}
	return err
}

// DeleteRange implements raft.LogStore: it deletes the entries from min to
// max, both included.
func (s *Store) DeleteRange(min, max uint64) error {
	if min > max {
		return nil
	}
	lo := logKey(min)
	hi := []byte{prefixLog + 1}
	if max < math.MaxUint64 {
		k := logKey(max + 1)
		hi = k[:]
	}
	return s.write(func(b *pebble.Batch) error {
		return b.DeleteRange(lo[:], hi, nil)
	}, "delete raft log entries %d–%d", min, max)
}

// Set implements raft.StableStore.
func (s *Store) Set(key, val []byte) error {
	return s.write(func(b *pebble.Batch) error {
		return b.Set(stableKey(key), val, nil)
	}, "set %q", key)
}

// Get implements raft.StableStore: a copy of the value, or ErrKeyNotFound.
func (s *Store) Get(key []byte) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrStoreClosed
	}
	v, closer, err := s.db.Get(stableKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrKeyNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: cannot read %q from the raft store: %w", key, err)
	}
	defer closer.Close()
	return append([]byte{}, v...), nil
}

// SetUint64 implements raft.StableStore (8 bytes, big-endian).
func (s *Store) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 implements raft.StableStore: the value, or 0 and ErrKeyNotFound.
func (s *Store) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, corrupt("stable key %q holds %d bytes, want 8", key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// write builds a batch with fill and commits it synced. A commit that fails
// (an error, or Pebble's Fatalf on a WAL write or sync it could not do)
// marks the store failed: no write is acknowledged after one was lost.
func (s *Store) write(fill func(*pebble.Batch) error, what string, args ...any) (err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrStoreClosed
	}
	if e := s.failed.Load(); e != nil {
		return *e
	}
	b := s.db.NewBatch()
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(*pebblelog.Fatal)
			if !ok {
				panic(r)
			}
			err = s.fail(fmt.Errorf("%w: cannot %s: %s", ErrStoreFailed, fmt.Sprintf(what, args...), f.Msg))
			return // the batch stays unclosed: Pebble may still hold it
		}
		_ = b.Close()
	}()
	if err := fill(b); err != nil {
		return fmt.Errorf("cluster: cannot %s: %w", fmt.Sprintf(what, args...), err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return s.fail(fmt.Errorf("%w: cannot %s: %w", ErrStoreFailed, fmt.Sprintf(what, args...), err))
	}
	return nil
}

// fail records err as the store's sticky failure (the first one wins) and
// returns the recorded one.
func (s *Store) fail(err error) error {
	if s.failed.CompareAndSwap(nil, &err) {
		s.log.Error(err.Error(), "dir", s.dir)
	}
	return *s.failed.Load()
}
