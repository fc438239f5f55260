package predlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/modelgate/modelgate/internal/niceness"
)

// Log is a prediction and label log in its own Pebble DB. All its methods
// are safe for concurrent use.
type Log struct {
	cfg Config
	db  *pebble.DB

	// The ring, in shards: an appender takes the shard its id hashes to, so
	// scoring goroutines on different cores rarely meet on one mutex (a
	// single ring's mutex and buffer bouncing between cores was a third of
	// Append's time with both cores scoring).
	shards     []shard
	shardN     int                           // records a shard holds
	shardBytes int                           // bytes a shard holds (one record always fits)
	swapped    atomic.Pointer[chan struct{}] // closed at each swap: wakes durable appenders waiting for room
	closing    atomic.Bool

	wake        chan struct{} // capacity 1: the ring went from empty to non-empty
	urgent      chan struct{} // capacity 1: a shard is half full
	durableKick chan struct{} // capacity 1: a durable record is waiting
	stop        chan struct{} // closed by Close: drain, sync, exit
	done        chan struct{} // closed when the committer exited
	durableDone chan struct{} // closed when runDurable exited

	// commitMu is held by whichever committer (run, runDurable) swaps the
	// ring and commits: it guards the scratch below and syncDue.
	commitMu sync.Mutex
	syncDue  time.Time // zero: everything committed is synced

	clock   atomic.Int64          // the last stamp handed out
	failure atomic.Pointer[error] // sticky: the first failed write
	take    take                  // the committer's scratch
	cb      *pebble.Batch         // the committer's batch, reused
	ents    []ent                 // the committer's scratch
	merged  []ent                 // the committer's scratch: ents in order
	ends    []int                 // the committer's scratch: each group's end in ents
	raw     []byte                // the committer's scratch: a block's records
	packed  []byte                // the committer's scratch: them compressed
	val     []byte                // the committer's scratch: the block
	idx     []idxEnt              // the committer's scratch
	ix      index                 // the id index's entries in memory, and its runs

	committed, failed, commitErrors, batches, maxBatch, syncs atomic.Uint64
	batchHist                                                 [8]atomic.Uint64
	labelsNew, labelsChanged, pruned, pruneErrors             atomic.Uint64

	labelMu   sync.Mutex // serialises PutLabels and label pruning
	pruneMu   sync.Mutex // one retention pass at a time
	pruneStop chan struct{}
	pruneDone chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// shard is one part of the ring, on cache lines of its own.
type shard struct {
	_        [64]byte
	mu       sync.Mutex
	cur      *group // records waiting for the committer
	spare    []byte // the buffer of the shard's last committed group, for reuse
	body     []byte // scratch for a record's body before zstd (CompressZstd)
	closed   bool
	appended uint64 // under mu
	dropped  uint64 // under mu
	oversize uint64 // under mu; also in dropped
	_        [64]byte
}

// ringShards returns how many shards a ring of size records and bytes is cut
// into: 8 when each still holds at least 1,024 records and a record of 1
// MiB (or MaxRecordBytes, when smaller), else 1 (small rings keep exact
// bounds). Records larger than a shard's share go to shard 0, alone.
func ringShards(c *Config) int {
	const n = maxShards
	if c.RingSize/n >= 1024 && c.RingBytes/n >= min(c.MaxRecordBytes, 1<<20) {
		return n
	}
	return 1
}

const maxShards = 8

// group is what the committer takes from a shard in one swap. Entries in
// buf are: length (4 bytes little-endian, of the rest), model length (1),
// model, version length (1), version, id hash (8, big-endian), the record's
// Time (8, big-endian), value.
type group struct {
	buf     []byte
	n       int
	durable bool
	big     bool // holds a record larger than a shard's share (shard 0 only)
	shard   int
	done    chan struct{} // closed once the group is committed (or failed)
	err     error         // set before done is closed
}

// Open opens (creating if needed) the log in cfg.Dir and starts its
// committer and, unless disabled, its retention pass.
func Open(cfg Config) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	l := &Log{
		cfg:         cfg,
		wake:        make(chan struct{}, 1),
		urgent:      make(chan struct{}, 1),
		durableKick: make(chan struct{}, 1),
		durableDone: make(chan struct{}),
		stop:        make(chan struct{}),
		done:        make(chan struct{}),
		pruneStop:   make(chan struct{}),
		pruneDone:   make(chan struct{}),
	}
	n := ringShards(&cfg)
	l.shards = make([]shard, n)
	l.shardN, l.shardBytes = cfg.RingSize/n, cfg.RingBytes/n
	for i := range l.shards {
		l.shards[i].cur = &group{shard: i, done: make(chan struct{})}
	}
	swapped := make(chan struct{})
	l.swapped.Store(&swapped)
	db, err := pebble.Open(cfg.Dir, l.pebbleOptions())
	if err != nil {
		return nil, fmt.Errorf("predlog: cannot open Pebble DB in %s: %w", cfg.Dir, err)
	}
	l.db = db
	last, err := l.lastStamp()
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("predlog: cannot recover the commit clock from %s: %w", cfg.Dir, err)
	}
	l.clock.Store(last)
	if err := l.openIndex(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("predlog: cannot open the id index in %s: %w", cfg.Dir, err)
	}
	go l.indexLoop()
	go l.run()
	go l.runDurable()
	if cfg.PruneInterval > 0 {
		go l.pruneLoop()
	} else {
		close(l.pruneDone)
	}
	return l, nil
}

// Append queues rec for the next group commit and returns at once; it never
// blocks on I/O. It returns ErrDropped when the ring is full (the record is
// dropped and counted), the sticky error when the log is unhealthy, ErrClosed
// after Close, and an *InvalidError for a record it cannot store. A nil error
// means queued, not durable: see doc.go for what async logging may lose.
//
// Append copies rec; the caller may reuse it and its buffers at once.
func (l *Log) Append(rec *Record) error { return l.append(rec, false) }

// MaxRecordBytes is the largest record the log stores (Config.MaxRecordBytes,
// default applied): the gateway refuses a durable request whose inputs alone
// exceed it before running the model.
func (l *Log) MaxRecordBytes() int { return l.cfg.MaxRecordBytes }

// AppendDurable queues rec and waits until the batch holding it is committed
// and its WAL fsynced. It waits for room rather than drop when the ring is
// full. A nil error means the record survives a process or OS crash; an error
// means it may or may not have been stored, and the caller must not
// acknowledge it.
func (l *Log) AppendDurable(rec *Record) error { return l.append(rec, true) }

func (l *Log) append(r *Record, durable bool) error {
	if err := validName("model", r.Model); err != nil {
		return err
	}
	if err := validName("version", r.Version); err != nil {
		return err
	}
	hash := idHash(r.RequestID)
	sh := &l.shards[int(hash>>32)%len(l.shards)]
	big := len(l.shards) > 1 && recordSize(r) > l.shardBytes
	if big {
		// A record larger than a shard's share goes to shard 0, which
		// takes one such record per group on top of its share: the ring
		// holds at most RingBytes plus one of them.
		sh = &l.shards[0]
	}
	sh.mu.Lock()
	var g *group
	var start int // where the record begins in g.buf
	for {
		if sh.closed {
			sh.mu.Unlock()
			return ErrClosed
		}
		if f := l.failure.Load(); f != nil {
			sh.appended++
			sh.dropped++
			sh.mu.Unlock()
			return *f
		}
		// The record is encoded straight into the shard, under its lock:
		// encoding into a pooled buffer and copying it in cost a pool
		// round trip and a second pass over its bytes, on the scoring
		// goroutine.
		g = sh.cur
		if g.n < l.shardN {
			start = len(g.buf)
			e, err := l.appendEntry(g.buf, r, hash, &sh.body)
			if err != nil {
				g.buf = e[:start]
				if errors.Is(err, ErrTooLarge) {
					// A prediction the log cannot hold whole: dropped,
					// and counted where operators look for drops.
					sh.appended++
					sh.dropped++
					sh.oversize++
				}
				sh.mu.Unlock()
				return err
			}
			if g.n == 0 || len(e) <= l.shardBytes || big && !g.big {
				g.buf = e
				g.big = g.big || big
				break
			}
			g.buf = e[:start] // no room: the shard holds its bound
		}
		if !durable {
			sh.appended++
			sh.dropped++
			sh.mu.Unlock()
			return ErrDropped
		}
		ch := *l.swapped.Load()
		sh.mu.Unlock()
		<-ch
		sh.mu.Lock()
	}
	g.n++
	g.durable = g.durable || durable
	sh.appended++
	first := g.n == 1
	half := l.shardBytes / 2
	urgent := !durable && (g.n == max(l.shardN/2, 1) || len(g.buf) > half && start <= half)
	if cap(sh.body) > 64<<10 {
		sh.body = nil // a rare huge zstd record: let its buffer go
	}
	sh.mu.Unlock()
	if first {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	if urgent {
		select {
		case l.urgent <- struct{}{}:
		default:
		}
	}
	if !durable {
		return nil
	}
	select {
	case l.durableKick <- struct{}{}:
	default:
	}
	<-g.done
	return g.err
}

// appendEntry appends r as a group entry (see group) to dst. On error, dst's
// first len(dst) bytes are unchanged.
func (l *Log) appendEntry(dst []byte, r *Record, hash uint64, scratch *[]byte) ([]byte, error) {
	start := len(dst)
	e := append(dst, 0, 0, 0, 0, byte(len(r.Model)))
	e = append(e, r.Model...)
	e = append(e, byte(len(r.Version)))
	e = append(e, r.Version...)
	e = binary.BigEndian.AppendUint64(e, hash)
	e = binary.BigEndian.AppendUint64(e, uint64(r.Time))
	e, err := encodeValue(e, r, l.cfg.ValueCompression, l.cfg.MaxRecordBytes, scratch)
	if err != nil {
		return e, err
	}
	binary.LittleEndian.PutUint32(e[start:], uint32(len(e)-start-4))
	return e, nil
}

// setNice is niceness.Lower; tests replace it to make it fail, which a
// process may always do for real (raising a thread's nice value needs no
// privilege), so no test could otherwise see the warning.
var setNice = niceness.Lower

// lowerPriority runs the calling background goroutine at BackgroundNice
// (see Config). Failing to is not an error of the log: the work is the same,
// it only competes with scoring as an equal.
func (l *Log) lowerPriority(who string) {
	if l.cfg.BackgroundNice <= 0 {
		return
	}
	if err := setNice(l.cfg.BackgroundNice); err != nil {
		l.cfg.Logger.Warn("predlog: cannot lower the "+who+"'s thread priority; it competes with scoring as an equal (set --predlog-nice -1 to stop trying)",
			"store", "predlog", "dir", l.cfg.Dir, "nice", l.cfg.BackgroundNice, "err", err)
	}
}

// Healthy returns nil while the log accepts writes; after a failed commit,
// the sticky error wrapping ErrUnhealthy (the node should report itself not
// ready); after Close, ErrClosed.
func (l *Log) Healthy() error {
	if f := l.failure.Load(); f != nil {
		return *f
	}
	if l.closing.Load() {
		return ErrClosed
	}
	return nil
}

// setFailed counts a failed write and records the first one, which makes
// the log unhealthy for good; it returns the first.
func (l *Log) setFailed(err error) error {
	l.commitErrors.Add(1)
	return l.markFailed(err)
}

func (l *Log) markFailed(err error) error {
	l.failure.CompareAndSwap(nil, &err)
	return *l.failure.Load()
}

// Stats are the log's counters since Open. Appended = Committed + Dropped +
// Failed + Pending at every quiet moment, and after Close with Pending 0.
type Stats struct {
	Appended     uint64 // records offered to Append or AppendDurable while open (invalid ones not counted)
	Dropped      uint64 // dropped at once: ring full (async), log unhealthy, or Oversize
	Oversize     uint64 // dropped because the record is larger than MaxRecordBytes (*TooLargeError)
	Committed    uint64 // committed to Pebble
	Failed       uint64 // in a commit that failed: not acknowledged, maybe not stored
	Pending      uint64 // in the ring or in the batch being committed
	CommitErrors uint64 // failed commits and syncs; the first made the log unhealthy
	Batches      uint64 // group commits (each one or more Pebble batches)
	MaxBatch     uint64 // records in the largest group commit
	// BatchHist counts group commits by size: ≤1, ≤4, ≤16, ≤64, ≤256,
	// ≤1024, ≤4096 and more records.
	BatchHist     [8]uint64
	Syncs         uint64 // WAL fsyncs asked for: durable groups, SyncInterval, Close
	LabelsNew     uint64 // labels stored for an id that had none
	LabelsChanged uint64 // labels that replaced a different value
	Pruned        uint64 // predictions deleted by retention
	PruneErrors   uint64 // failed retention passes
}

// Stats returns a snapshot of the counters (each read atomically, not all at
// one instant).
func (l *Log) Stats() Stats {
	s := Stats{
		Committed:     l.committed.Load(),
		Failed:        l.failed.Load(),
		CommitErrors:  l.commitErrors.Load(),
		Batches:       l.batches.Load(),
		MaxBatch:      l.maxBatch.Load(),
		Syncs:         l.syncs.Load(),
		LabelsNew:     l.labelsNew.Load(),
		LabelsChanged: l.labelsChanged.Load(),
		Pruned:        l.pruned.Load(),
		PruneErrors:   l.pruneErrors.Load(),
	}
	for i := range s.BatchHist {
		s.BatchHist[i] = l.batchHist[i].Load()
	}
	// Appended is read after the other counters, so Pending never comes
	// out negative.
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		s.Appended += sh.appended
		s.Dropped += sh.dropped
		s.Oversize += sh.oversize
		sh.mu.Unlock()
	}
	if done := s.Committed + s.Failed + s.Dropped; s.Appended > done {
		s.Pending = s.Appended - done
	}
	return s
}

// reserve hands out n consecutive stamps: unix nanoseconds now, or just after
// the last stamp when the clock has not moved past it (several records in
// one nanosecond, a clock stepped back). Stamps never repeat or go back
// within a log, across restarts too (Open recovers the last one).
func (l *Log) reserve(n int) int64 {
	now := time.Now().UnixNano()
	for {
		last := l.clock.Load()
		s := max(now, last+1)
		if l.clock.CompareAndSwap(last, s+int64(n)-1) {
			return s
		}
	}
}

// Close stops accepting records, commits what the ring holds, syncs the WAL
// and closes the DB. Durable appenders waiting for room get ErrClosed; those
// whose record made it into the ring get the outcome of the final commit.
// Close returns the first failure the log had, if any.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		close(l.pruneStop)
		<-l.pruneDone
		l.closing.Store(true)
		for i := range l.shards {
			sh := &l.shards[i]
			sh.mu.Lock()
			sh.closed = true
			sh.mu.Unlock()
		}
		l.wakeWaiters()
		close(l.stop)
		<-l.done
		l.closeIndex()
		if l.cb != nil {
			_ = l.cb.Close()
		}
		err := closeDB(l.db)
		if f := l.failure.Load(); f != nil {
			l.closeErr = *f
		} else if err != nil {
			l.closeErr = fmt.Errorf("predlog: cannot close the Pebble DB in %s: %w", l.cfg.Dir, err)
		}
	})
	return l.closeErr
}

func closeDB(db *pebble.DB) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("pebble panicked on close: %v", r)
		}
	}()
	return db.Close()
}
