package predlog

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// run is the committer: the only goroutine that writes predictions. It swaps
// the ring for an empty one, writes what it took as Pebble batches and
// commits them, then goes back for more. Whatever accumulates while a commit
// is in flight becomes the next group, so batches grow with the load.
//
// Sync rule: a group holding a durable record is committed with pebble.Sync;
// otherwise with pebble.NoSync, and the first unsynced commit arms a timer so
// that the WAL is synced at most SyncInterval later (by the next commit, or by
// an empty synced write when the log is idle).
func (l *Log) run() {
	defer close(l.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var syncDue time.Time // zero: everything committed is synced
	for {
		g := l.swap()
		if g == nil {
			select {
			case <-l.wake:
			case <-timer.C:
				if !syncDue.IsZero() {
					l.syncWAL()
					syncDue = time.Time{}
				}
			case <-l.stop:
				// Close set closed before stop: nothing more enters the ring.
				if g := l.swap(); g != nil {
					l.commitGroup(g, true)
				} else if !syncDue.IsZero() {
					l.syncWAL()
				}
				return
			}
			continue
		}
		sync := g.durable || (!syncDue.IsZero() && !time.Now().Before(syncDue))
		l.commitGroup(g, sync)
		switch {
		case sync:
			syncDue = time.Time{}
			timer.Stop()
		case syncDue.IsZero():
			syncDue = time.Now().Add(l.cfg.SyncInterval)
			timer.Reset(l.cfg.SyncInterval)
		}
	}
}

// swap takes the ring's group, leaving an empty one; nil when it is empty.
func (l *Log) swap() *group {
	l.mu.Lock()
	g := l.cur
	if g.n == 0 {
		l.mu.Unlock()
		return nil
	}
	l.cur = &group{buf: l.spare[:0], done: make(chan struct{})}
	l.spare = nil
	if !l.closed {
		close(l.swapped)
		l.swapped = make(chan struct{})
	}
	l.mu.Unlock()
	return g
}

// commitGroup writes g as one or more Pebble batches, in ring order, each
// record under a fresh stamp, and commits them; the last with sync.
func (l *Log) commitGroup(g *group, sync bool) {
	done := 0 // records in batches committed so far
	defer func() {
		l.failed.Add(uint64(g.n - done))
		l.committed.Add(uint64(done))
		close(g.done)
		if cap(g.buf) <= 16<<20 {
			l.mu.Lock()
			l.spare = g.buf
			l.mu.Unlock()
		}
	}()
	if f := l.failure.Load(); f != nil {
		g.err = *f
		return
	}
	stamp := l.reserve(g.n)
	b := l.db.NewBatchWithSize(min(len(g.buf)*2, l.cfg.MaxBatchBytes+64<<10))
	inBatch := 0
	var key [2*maxName + 32]byte
	buf := g.buf
	for len(buf) > 0 {
		n := int(binary.LittleEndian.Uint32(buf))
		e := buf[4 : 4+n]
		buf = buf[4+n:]
		ml := int(e[0])
		model := e[1 : 1+ml]
		vl := int(e[1+ml])
		version := e[2+ml : 2+ml+vl]
		hash := binary.BigEndian.Uint64(e[2+ml+vl:])
		value := e[10+ml+vl:]

		// p model 0x00 stamp version -> value
		k := append(key[:0], tagPred)
		k = append(k, model...)
		k = append(k, 0)
		k = appendStamp(k, stamp)
		k = append(k, version...)
		_ = b.Set(k, value, nil)
		// i hash stamp -> model 0x00 version
		k = appendIndexKey(key[:0], hash, stamp)
		v := append(k, model...)
		v = append(v, 0)
		v = append(v, version...)
		_ = b.Set(k, v[len(k):], nil)
		stamp++
		inBatch++

		if b.Len() >= l.cfg.MaxBatchBytes && len(buf) > 0 {
			if err := l.commitBatch(b, false, inBatch); err != nil {
				g.err = err
				return
			}
			done += inBatch
			inBatch = 0
			b = l.db.NewBatchWithSize(min(len(buf)*2, l.cfg.MaxBatchBytes+64<<10))
		}
	}
	if err := l.commitBatch(b, sync, inBatch); err != nil {
		g.err = err
		return
	}
	done += inBatch
	l.batches.Add(1)
	if n := uint64(g.n); n > l.maxBatch.Load() {
		l.maxBatch.Store(n)
	}
	l.batchHist[min((bits.Len(uint(g.n-1))+1)/2, 7)].Add(1)
}

// commitBatch commits and releases b. A failure (an error, or a panic:
// Pebble panics or calls Logger.Fatalf when its WAL cannot be written) makes
// the log unhealthy; the batch is then abandoned, as Pebble asks.
func (l *Log) commitBatch(b *pebble.Batch, sync bool, n int) (err error) {
	opts := pebble.NoSync
	if sync {
		opts = pebble.Sync
		l.syncs.Add(1)
	}
	if err = protect(func() error { return b.Commit(opts) }); err != nil {
		return l.setFailed(fmt.Errorf("%w: cannot commit %d records to %s: %v", ErrUnhealthy, n, l.cfg.Dir, err))
	}
	_ = b.Close()
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
