package predlog

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// PutLabels stores ground-truth labels for a model's predictions, by request
// id, durably (synced) before it returns. It is idempotent: a label equal to
// the stored one (same id, same value) changes nothing; a different value
// replaces it and the row is exported again in the labelled export. n is the
// number of labels that changed the log (new or replaced); Stats counts the
// two apart. Within one call, the last label of an id wins.
//
// A label may arrive before its prediction is committed, or for a prediction
// this node never logged: it is stored all the same and joins the prediction
// on export once both are there (all-rows export), or is skipped (labelled
// export, see Export).
func (l *Log) PutLabels(model string, labels []Label) (n int, err error) {
	if err := validName("model", model); err != nil {
		return 0, err
	}
	for i := range labels {
		lb := &labels[i]
		if len(lb.ID) == 0 || len(lb.ID) > maxName {
			return 0, invalid(fmt.Sprintf("labels[%d].id", i), "%d bytes, want 1 to %d", len(lb.ID), maxName)
		}
		if math.IsNaN(lb.Value) || math.IsInf(lb.Value, 0) {
			return 0, invalid(fmt.Sprintf("labels[%d].label", i), "%v is not a finite number", lb.Value)
		}
	}
	l.labelMu.Lock()
	defer l.labelMu.Unlock()
	if err := l.Healthy(); err != nil {
		return 0, err
	}
	b := l.db.NewIndexedBatch()
	defer b.Close()
	var (
		key, logKey []byte
		old         Label
		added       uint64
		changed     uint64
	)
	now := time.Now().UnixNano()
	stamp := l.reserve(max(len(labels), 1))
	for i := range labels {
		lb := labels[i]
		key = appendLabelKey(key[:0], model, lb.ID)
		v, closer, err := b.Get(key)
		switch {
		case errors.Is(err, pebble.ErrNotFound):
			added++
		case err != nil:
			return 0, fmt.Errorf("predlog: cannot read label %q of %s: %w", lb.ID, model, err)
		default:
			err := decodeLabelValue(&old, v)
			_ = closer.Close()
			if err != nil {
				return 0, fmt.Errorf("%w: label %q of %s", err, lb.ID, model)
			}
			if math.Float64bits(old.Value) == math.Float64bits(lb.Value) {
				continue
			}
			changed++
			// The old entry of the label stream goes: the new one replaces it.
			_ = b.Delete(appendLabelLogKey(logKey[:0], model, old.Stamp), nil)
		}
		lb.Stamp = stamp
		stamp++
		if lb.Time == 0 {
			lb.Time = now
		}
		_ = b.Set(key, appendLabelValue(nil, &lb), nil)
		logKey = appendLabelLogKey(logKey[:0], model, lb.Stamp)
		_ = b.Set(logKey, []byte(lb.ID), nil)
	}
	if b.Empty() {
		return 0, nil
	}
	if err := protect(func() error { return b.Commit(pebble.Sync) }); err != nil {
		return 0, l.setFailed(fmt.Errorf("%w: cannot commit %d labels of %s to %s: %v", ErrUnhealthy, len(labels), model, l.cfg.Dir, err))
	}
	l.labelsNew.Add(added)
	l.labelsChanged.Add(changed)
	return int(added + changed), nil
}
