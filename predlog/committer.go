package predlog

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// run is the committer: the goroutine that writes predictions. It swaps the
// ring for an empty one, writes what it took as Pebble batches and commits
// them, then goes back for more. Whatever accumulates while a commit is in
// flight becomes the next group, so batches grow with the load. It runs at
// BackgroundNice; durable records are committed by runDurable, at the
// process's priority, and the two take turns under commitMu.
//
// Sync rule: a group holding a durable record is committed with pebble.Sync;
// otherwise with pebble.NoSync, and the first unsynced commit arms a timer so
// that the WAL is synced at most SyncInterval later (by the next commit, or by
// an empty synced write when the log is idle).
func (l *Log) run() {
	defer close(l.done)
	l.lowerPriority("committer")
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	pause := time.NewTimer(time.Hour)
	pause.Stop()
	for {
		l.commitMu.Lock()
		t := l.swap()
		if t == nil {
			l.commitMu.Unlock()
			select {
			case <-l.wake:
			case <-timer.C:
				l.commitMu.Lock()
				if !l.syncDue.IsZero() {
					l.syncWAL()
					l.syncDue = time.Time{}
				}
				l.commitMu.Unlock()
			case <-l.stop:
				// Close set closed before stop: nothing more enters the ring.
				<-l.durableDone
				if t := l.swap(); t != nil {
					l.commitGroup(t, true)
				} else if !l.syncDue.IsZero() {
					l.syncWAL()
				}
				return
			}
			continue
		}
		start := time.Now()
		sync := t.durable || (!l.syncDue.IsZero() && !start.Before(l.syncDue))
		l.commitGroup(t, sync)
		switch {
		case sync:
			l.syncDue = time.Time{}
			timer.Stop()
		case l.syncDue.IsZero():
			l.syncDue = time.Now().Add(l.cfg.SyncInterval)
			timer.Reset(l.cfg.SyncInterval)
		}
		l.commitMu.Unlock()
		// Let the next group grow for up to commitInterval (from the start
		// of this commit): fewer, larger commits cost less per record. A
		// half-full ring or Close ends the wait.
		if wait := commitInterval - time.Since(start); wait > 0 {
			pause.Reset(wait)
			select {
			case <-pause.C:
			case <-l.urgent:
				pause.Stop()
			case <-l.stop:
				pause.Stop()
			}
		}
	}
}

// runDurable commits as soon as a durable record waits, at the process's
// priority. A durable appender waits for its commit, so the committer's
// wake-up is on its path: at nice 10 the kernel let it wait for the scoring
// threads' time slices, and a closed loop of durable requests ran 6-10%
// slower. It commits everything the ring holds, with pebble.Sync (the
// durable record may already be gone with the committer's last group; the
// sync is then one more than needed, never one too few).
func (l *Log) runDurable() {
	defer close(l.durableDone)
	for {
		select {
		case <-l.durableKick:
		case <-l.stop:
			return
		}
		l.commitMu.Lock()
		if t := l.swap(); t != nil {
			l.commitGroup(t, true)
			l.syncDue = time.Time{}
		}
		l.commitMu.Unlock()
	}
}

// commitInterval is the shortest time between the starts of two async
// group commits while records keep coming. Each wake-up of the committer,
// on a locked and niced thread, costs the Go scheduler a hand-over of its P
// and a few futex calls, so fewer, larger groups leave more CPU to scoring
// (BENCHMARKS.md, BenchmarkAppendPaced). Durable records do not wait for it
// (runDurable), and an async record waits at most about one interval and
// one commit to be committed, far inside SyncInterval.
const commitInterval = 10 * time.Millisecond

// take is what the committer took from the ring's shards in one swap.
type take struct {
	groups  []*group
	n       int
	durable bool
}

// swap takes every shard's group, leaving empty ones; nil when the ring is
// empty. It then wakes the durable appenders waiting for room.
func (l *Log) swap() *take {
	t := &l.take
	t.groups, t.n, t.durable = t.groups[:0], 0, false
	// Every shard is locked before any is taken, so the swap is one instant
	// for appenders: a record appended after another, by one goroutine, is
	// never in an earlier group than it (taking shard by shard, a record in
	// a shard already passed would wait for the next group while a later
	// one in a shard not yet passed went into this one).
	for i := range l.shards {
		l.shards[i].mu.Lock()
	}
	for i := range l.shards {
		sh := &l.shards[i]
		if g := sh.cur; g.n > 0 {
			sh.cur = &group{buf: sh.spare[:0], shard: i, done: make(chan struct{})}
			sh.spare = nil
			t.groups = append(t.groups, g)
			t.n += g.n
			t.durable = t.durable || g.durable
		}
	}
	for i := range l.shards {
		l.shards[i].mu.Unlock()
	}
	if t.n == 0 {
		return nil
	}
	l.wakeWaiters()
	return t
}

// wakeWaiters wakes the durable appenders waiting for room in a full shard:
// they wait on the channel swapped holds, which this replaces and closes.
func (l *Log) wakeWaiters() {
	ch := make(chan struct{})
	close(*l.swapped.Swap(&ch))
}

// ent is one record of a group, as the committer reads it from the ring.
type ent struct {
	model, version []byte
	hash           uint64
	time           int64 // the record's Time
	value          []byte
	shared         int // bytes of value shared with the previous record of its block
}

// commitGroup writes the records of t as one or more Pebble batches, and
// commits them; the last with sync. The records of each model, in the
// order they were served, go into blocks (block.go) under consecutive stamps; once a batch is committed, its
// records' ids go to the index (index.go), in memory.
func (l *Log) commitGroup(t *take, sync bool) {
	done := 0 // records in batches committed so far
	var err error
	defer func() {
		if cap(l.val) > 4*maxBlockBytes || cap(l.packed) > 4*maxBlockBytes {
			l.val, l.packed = nil, nil // a rare huge record: let its buffers go
		}
		l.failed.Add(uint64(t.n - done))
		l.committed.Add(uint64(done))
		for _, g := range t.groups {
			g.err = err
			close(g.done)
			if cap(g.buf) <= 16<<20 {
				sh := &l.shards[g.shard]
				sh.mu.Lock()
				sh.spare = g.buf
				sh.mu.Unlock()
			}
		}
	}()
	if f := l.failure.Load(); f != nil {
		err = *f
		return
	}
	ents := l.ents[:0]
	mixed := false
	ends := l.ends[:0] // where each group's entries end in ents
	for _, g := range t.groups {
		for buf := g.buf; len(buf) > 0; {
			n := int(binary.LittleEndian.Uint32(buf))
			e := buf[4 : 4+n]
			buf = buf[4+n:]
			ml := int(e[0])
			vl := int(e[1+ml])
			en := ent{
				model:   e[1 : 1+ml],
				version: e[2+ml : 2+ml+vl],
				hash:    binary.BigEndian.Uint64(e[2+ml+vl:]),
				time:    int64(binary.BigEndian.Uint64(e[10+ml+vl:])),
				value:   e[18+ml+vl:],
			}
			if len(ents) > 0 && !mixed {
				mixed = !bytes.Equal(en.model, ents[0].model)
			}
			ents = append(ents, en)
		}
		ends = append(ends, len(ents))
	}
	l.ends = ends
	if cap(ents) <= 1<<16 {
		l.ents = ents[:0]
	}
	if len(t.groups) > 1 {
		// Shards interleave: put the records back in the order they were
		// served, so a caller's requests one after another keep their
		// order.
		ents = l.mergeByTime(ents, ends)
	}
	if mixed {
		slices.SortStableFunc(ents, func(a, b ent) int { return bytes.Compare(a.model, b.model) })
	}
	stamp := l.reserve(len(ents))
	idx := l.idx[:0]
	size := 0
	for _, g := range t.groups {
		size += len(g.buf)
	}
	b := l.batch(min(size, l.cfg.MaxBatchBytes+64<<10))
	inBatch := 0
	var key [2*maxName + 32]byte
	for i := 0; i < len(ents); {
		// The block: ents[i:j], one model, at most maxBlockBytes (but at
		// least one record).
		first := &ents[i]
		first.shared = 0
		size := entrySize(first, 0)
		j := i + 1
		for j < len(ents) && bytes.Equal(ents[j].model, first.model) {
			e := &ents[j]
			e.shared = sharedPrefix(ents[j-1].value, e.value)
			s := entrySize(e, e.shared)
			if size+s > maxBlockBytes {
				break
			}
			size += s
			j++
		}
		n := j - i
		last := stamp + int64(n) - 1
		// p model 0x00 last-stamp -> block
		k := append(key[:0], tagPred)
		k = append(k, first.model...)
		k = append(k, 0)
		k = appendStamp(k, last)
		raw := l.raw[:0]
		for _, e := range ents[i:j] {
			raw = append(raw, byte(len(e.version)))
			raw = append(raw, e.version...)
			raw = binary.AppendUvarint(raw, uint64(e.shared))
			raw = binary.AppendUvarint(raw, uint64(len(e.value)-e.shared))
			raw = append(raw, e.value[e.shared:]...)
		}
		l.val = appendBlock(l.val[:0], n, raw, &l.packed)
		_ = b.Set(k, l.val, nil)
		if cap(raw) <= 4*maxBlockBytes {
			l.raw = raw
		}
		for _, e := range ents[i:j] {
			idx = append(idx, idxEnt{e.hash >> (64 - 8*indexHashLen), stamp, e.model})
			stamp++
		}
		inBatch += n
		i = j

		if b.Len() >= l.cfg.MaxBatchBytes && i < len(ents) {
			if err = l.commitBatch(b, false, inBatch); err != nil {
				return
			}
			l.ix.add(idx)
			idx = idx[:0]
			done += inBatch
			inBatch = 0
			b = l.batch(l.cfg.MaxBatchBytes + 64<<10)
		}
	}
	if err = l.commitBatch(b, sync, inBatch); err != nil {
		return
	}
	l.ix.add(idx)
	if cap(idx) <= 1<<16 {
		l.idx = idx[:0]
	}
	done += inBatch
	l.batches.Add(1)
	if n := uint64(t.n); n > l.maxBatch.Load() {
		l.maxBatch.Store(n)
	}
	l.batchHist[min((bits.Len(uint(t.n-1))+1)/2, 7)].Add(1)
}

// mergeByTime merges the groups' entries (ents, group k ending at ends[k])
// by taking the head with the smallest Time each time, into the
// committer's second buffer. A group is in append order but not quite in
// Time order (Time is when a request started, and requests overlap), yet
// one caller's records come out in its order: when its record B is a head,
// everything appended to any shard before its earlier record A has a Time
// before A was appended, so before B's Time, and A goes out first. A
// comparison sort did the same at about twice the cost.
func (l *Log) mergeByTime(ents []ent, ends []int) []ent {
	var heads [maxShards]int
	for k := 1; k < len(ends); k++ {
		heads[k] = ends[k-1]
	}
	out := l.merged[:0]
	for range ents {
		best := -1
		for k, end := range ends {
			if h := heads[k]; h < end && (best < 0 || ents[h].time < ents[heads[best]].time) {
				best = k
			}
		}
		out = append(out, ents[heads[best]])
		heads[best]++
	}
	if cap(out) <= 1<<16 {
		l.merged = out[:0]
	}
	return out
}

// batch returns the committer's batch, empty: one batch reset after each
// commit keeps its buffer, where a batch from Pebble's pool came with a
// fresh one on most commits (a third of the bytes the scoring node
// allocated with the log on).
func (l *Log) batch(size int) *pebble.Batch {
	if l.cb == nil {
		l.cb = l.db.NewBatchWithSize(size)
	}
	return l.cb
}

// commitBatch commits b and resets it for the next commit. A failure (an
// error, or a panic: Pebble panics or calls Logger.Fatalf when its WAL cannot
// be written) makes the log unhealthy; the batch is then abandoned, as
// Pebble asks.
func (l *Log) commitBatch(b *pebble.Batch, sync bool, n int) (err error) {
	opts := pebble.NoSync
	if sync {
		opts = pebble.Sync
		l.syncs.Add(1)
	}
	if err = protect(func() error { return b.Commit(opts) }); err != nil {
		l.cb = nil
		return l.setFailed(fmt.Errorf("%w: cannot commit %d records to %s: %v", ErrUnhealthy, n, l.cfg.Dir, err))
	}
	b.Reset()
	return nil
}

// syncWAL fsyncs the WAL through the last commit, writing an empty record.
func (l *Log) syncWAL() {
	if l.failure.Load() != nil {
		return
	}
	l.syncs.Add(1)
	if err := protect(func() error { return l.db.LogData(nil, pebble.Sync) }); err != nil {
		l.setFailed(fmt.Errorf("%w: cannot sync the WAL of %s: %v", ErrUnhealthy, l.cfg.Dir, err))
	}
}

// protect runs f, turning a panic into an error.
func protect(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("pebble panicked: %v", r)
		}
	}()
	return f()
}
