package predlog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// PruneResult says what a retention pass removed.
type PruneResult struct {
	ByAge  int // predictions older than MaxAge
	BySize int // the oldest predictions, to get under MaxBytes
	Labels int // labels received before MaxAge ago
}

// Prune runs one retention pass at now: it deletes the predictions
// committed before now-MaxAge and the labels received before it, then, while
// the DB uses more than MaxBytes of disk, the oldest predictions of all
// models down to about 90% of MaxBytes. The background pass calls it every
// PruneInterval; a second concurrent call waits for the first.
//
// Predictions go as one DeleteRange per model over the blocks whose last
// stamp is before the cutoff (a block straddling it goes with a later pass).
// The id index's runs whose records are all gone are then deleted whole;
// entries of removed records in the runs that remain cost a lookup one
// wasted block seek, and merges drop them. Space comes back as Pebble
// compacts the ranges; the size pass compacts them at once, so the next
// pass measures the DB it left.
func (l *Log) Prune(now time.Time) (PruneResult, error) {
	l.pruneMu.Lock()
	defer l.pruneMu.Unlock()
	var res PruneResult
	if err := l.Healthy(); err != nil {
		if errors.Is(err, ErrClosed) {
			return res, err
		}
		return res, l.pruneFailed(err)
	}
	if l.cfg.MaxAge > 0 {
		cutoff := now.Add(-l.cfg.MaxAge).UnixNano()
		err := l.forEachModel(tagPred, func(m []byte) error {
			n, err := l.deletePredictions(string(m), cutoff, false)
			res.ByAge += n
			return err
		})
		if err == nil {
			err = l.forEachModel(tagLabelLog, func(m []byte) error {
				n, err := l.deleteLabels(string(m), cutoff)
				res.Labels += n
				return err
			})
		}
		if err != nil {
			return res, l.pruneFailed(err)
		}
	}
	if l.cfg.MaxBytes > 0 && l.liveBytes() > uint64(l.cfg.MaxBytes) {
		n, err := l.pruneSize()
		res.BySize = n
		if err != nil {
			return res, l.pruneFailed(err)
		}
	}
	if res.ByAge+res.BySize > 0 {
		floor, err := l.oldestStamp()
		if err == nil {
			err = l.dropRuns(floor)
		}
		if err != nil {
			return res, l.pruneFailed(err)
		}
	}
	l.pruned.Add(uint64(res.ByAge + res.BySize))
	return res, nil
}

// liveBytes is the disk space of the DB's live files: sstables, blob files
// and WAL. It leaves out obsolete files waiting for deletion, which a
// compaction just produced and the cleaner removes within moments: counting
// them would make the size pass delete more than it has to.
func (l *Log) liveBytes() uint64 {
	m := l.db.Metrics()
	return m.Table.Local.LiveSize + m.BlobFiles.Local.LiveSize + m.WAL.PhysicalSize
}

func (l *Log) pruneFailed(err error) error {
	l.pruneErrors.Add(1)
	return fmt.Errorf("predlog: retention pass on %s failed: %w", l.cfg.Dir, err)
}

// pruneSize deletes the oldest predictions, of all models alike, to bring the
// DB's disk use to 90% of MaxBytes.
func (l *Log) pruneSize() (int, error) {
	if err := protect(l.db.Flush); err != nil { // the memtable is not in the estimates
		return 0, err
	}
	usage := l.liveBytes()
	target := uint64(l.cfg.MaxBytes) / 10 * 9
	if usage <= target {
		return 0, nil
	}
	var models []string
	if err := l.forEachModel(tagPred, func(m []byte) error {
		models = append(models, string(m))
		return nil
	}); err != nil || len(models) == 0 {
		return 0, err
	}
	// est(c) is what the predictions stamped before c take on disk.
	est := func(c int64) (uint64, error) {
		var sum uint64
		for _, m := range models {
			lo := appendModelPrefix(nil, tagPred, m)
			n, err := l.db.EstimateDiskUsage(lo, appendStamp(lo, c))
			if err != nil {
				return 0, err
			}
			sum += n
		}
		return sum, nil
	}
	total, err := est(1<<63 - 1)
	if err != nil || total == 0 {
		return 0, err
	}
	// The index and the rest shrink with the predictions: remove the same
	// share of the predictions as of the whole DB.
	want := uint64(float64(total) * float64(usage-target) / float64(usage))
	lo, hi := int64(0), l.clock.Load()+1
	for lo < hi { // the smallest cutoff whose estimate reaches want
		mid := lo + (hi-lo)/2
		n, err := est(mid)
		if err != nil {
			return 0, err
		}
		if n >= want {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	deleted := 0
	for _, m := range models {
		n, err := l.deletePredictions(m, lo, true)
		deleted += n
		if err != nil {
			return deleted, err
		}
	}
	return deleted, nil
}

// deletePredictions deletes the blocks of a model whose records are all
// stamped before cutoff; compact reclaims the space at once.
func (l *Log) deletePredictions(model string, cutoff int64, compact bool) (int, error) {
	lo := appendModelPrefix(nil, tagPred, model)
	hi := appendStamp(appendModelPrefix(nil, tagPred, model), cutoff)
	n, err := l.countRecords(lo, hi)
	if err != nil || n == 0 {
		return n, err
	}
	b := l.db.NewBatch()
	_ = b.DeleteRange(lo, hi, nil)
	if err := l.applyPrune(b); err != nil {
		return n, err
	}
	if compact {
		// No iterator may be open here: the files the compaction replaces
		// are deleted only once nothing reads them.
		if err := protect(func() error { return l.db.Compact(context.Background(), lo, hi, false) }); err != nil {
			return n, err
		}
	}
	return n, nil
}

// countRecords counts the predictions in the blocks in [lo, hi).
func (l *Log) countRecords(lo, hi []byte) (int, error) {
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	n := 0
	var br blockReader
	for ok := it.First(); ok; ok = it.Next() {
		_, last, ok := parsePredKey(it.Key())
		if !ok {
			return n, fmt.Errorf("%w: key %q", ErrCorrupt, it.Key())
		}
		if err := l.openBlock(it, &br, last); err != nil {
			return n, err
		}
		n += int(br.last - br.first + 1)
	}
	return n, it.Error()
}

// oldestStamp returns the stamp of the oldest prediction in the log, or
// one past the last stamp handed out when there is none.
func (l *Log) oldestStamp() (int64, error) {
	oldest := l.clock.Load() + 1
	err := l.forEachModel(tagPred, func(m []byte) error {
		lo := appendModelPrefix(nil, tagPred, string(m))
		it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: modelEnd(nil, tagPred, string(m))})
		if err != nil {
			return err
		}
		defer it.Close()
		if !it.First() {
			return it.Error()
		}
		_, last, ok := parsePredKey(it.Key())
		if !ok {
			return corruptKey(ErrCorrupt, it.Key())
		}
		var br blockReader
		if err := l.openBlock(it, &br, last); err != nil {
			return err
		}
		oldest = min(oldest, br.first)
		return nil
	})
	return oldest, err
}

// deleteLabels deletes a model's labels received before cutoff.
func (l *Log) deleteLabels(model string, cutoff int64) (int, error) {
	l.labelMu.Lock()
	defer l.labelMu.Unlock()
	lo := appendModelPrefix(nil, tagLabelLog, model)
	hi := appendStamp(appendModelPrefix(nil, tagLabelLog, model), cutoff)
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	b := l.db.NewBatch()
	n := 0
	var key []byte
	for ok := it.First(); ok; ok = it.Next() {
		id, err := it.ValueAndErr()
		if err != nil {
			return n, err
		}
		key = appendLabelKey(key[:0], model, string(id))
		_ = b.Delete(key, nil)
		n++
	}
	if err := it.Error(); err != nil {
		return n, err
	}
	if n == 0 {
		_ = b.Close()
		return 0, nil
	}
	_ = b.DeleteRange(lo, hi, nil)
	return n, l.applyPrune(b)
}

// applyPrune commits a retention batch. It does not sync: a pass lost in a
// crash is redone by the next one.
func (l *Log) applyPrune(b *pebble.Batch) error {
	if err := protect(func() error { return b.Commit(pebble.NoSync) }); err != nil {
		return l.setFailed(fmt.Errorf("%w: cannot commit a retention batch to %s: %v", ErrUnhealthy, l.cfg.Dir, err))
	}
	return b.Close()
}

func (l *Log) pruneLoop() {
	defer close(l.pruneDone)
	t := time.NewTicker(l.cfg.PruneInterval)
	defer t.Stop()
	for {
		select {
		case <-l.pruneStop:
			return
		case now := <-t.C:
			// A failed pass is retried at the next tick; the log keeps
			// growing meanwhile, so the operator hears of each one.
			if _, err := l.Prune(now); err != nil && !errors.Is(err, ErrClosed) {
				l.cfg.Logger.Error(err.Error()+" (retried every "+l.cfg.PruneInterval.String()+"; the log grows past its retention until a pass succeeds)",
					"store", "predlog", "dir", l.cfg.Dir)
			}
		}
	}
}
