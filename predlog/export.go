package predlog

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Export streams a model's rows from cursor, calling fn for each, and
// returns the cursor to resume from. It stops after limit rows (0: no limit;
// a labelled export finishes the rows of the label it is on, so it may pass
// limit by the shadow rows of one request) or at the first error from fn; the returned cursor then stands before the
// row fn refused, so resuming with it retries that row. Rows are reused
// between calls and their Data slices are valid only during the call.
//
// All rows (labelledOnly false): every prediction of the model in commit
// order, with its label when one is stored. Commit order is stamp order, and
// the single committer assigns stamps in the order it commits, so a reader
// never sees a stamp before all smaller ones of the model are visible: a
// cursor never skips a row committed after it was handed out, whatever the
// rows' own Time says.
//
// Labelled rows (labelledOnly true): rows in the order their labels arrived,
// one row per logged prediction of the labelled id (the served one and its
// shadows, told apart by Role). A label that arrives weeks after its
// prediction, or that changes, shows up after the cursor of the job that
// exported yesterday: every labelled row is exported once per label value.
// A label whose prediction is not in the log (dropped from a full ring, not
// yet committed, pruned, or logged on another node) yields no row.
func (l *Log) Export(model string, cursor Cursor, labelledOnly bool, limit int, fn func(*Row) error) (Cursor, error) {
	if err := validName("model", model); err != nil {
		return cursor, err
	}
	from, err := cursor.stamp(labelledOnly)
	if err != nil {
		return cursor, err
	}
	if limit <= 0 {
		limit = -1
	}
	if labelledOnly {
		return l.exportLabelled(model, from, limit, fn)
	}
	return l.exportAll(model, from, limit, fn)
}

func (l *Log) exportAll(model string, from int64, limit int, fn func(*Row) error) (Cursor, error) {
	next := makeCursor(false, from)
	if from == 1<<63-1 {
		return next, nil
	}
	lo := appendStamp(appendModelPrefix(nil, tagPred, model), from+1)
	hi := modelEnd(nil, tagPred, model)
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return next, fmt.Errorf("predlog: cannot export %s: %w", model, err)
	}
	defer it.Close()
	var (
		row     Row
		scratch []byte
		lk      []byte
		br      blockReader
	)
	for ok := it.First(); ok && limit != 0; ok = it.Next() {
		m, last, ok := parsePredKey(it.Key())
		if !ok {
			return next, fmt.Errorf("%w: key %q", ErrCorrupt, it.Key())
		}
		if err := l.openBlock(it, &br, last); err != nil {
			return next, err
		}
		if err := br.skipTo(from + 1); err != nil {
			return next, corruptKey(err, it.Key())
		}
		for limit != 0 {
			stamp, version, val, ok, err := br.Next()
			if err != nil {
				return next, corruptKey(err, it.Key())
			}
			if !ok {
				break
			}
			if err := readRecord(it.Key(), val, &row.Record, &scratch, m, version, stamp); err != nil {
				return next, err
			}
			lk = appendLabelKey(lk[:0], model, row.Record.RequestID)
			if row.Labelled, err = l.getLabel(lk, &row.Label); err != nil {
				return next, err
			}
			if row.Labelled {
				row.Label.ID = row.Record.RequestID
			}
			row.Cursor = makeCursor(false, stamp)
			if err := fn(&row); err != nil {
				return next, err
			}
			next = row.Cursor
			limit--
		}
	}
	if err := it.Error(); err != nil {
		return next, fmt.Errorf("predlog: cannot export %s: %w", model, err)
	}
	return next, nil
}

func (l *Log) exportLabelled(model string, from int64, limit int, fn func(*Row) error) (Cursor, error) {
	next := makeCursor(true, from)
	if from == 1<<63-1 {
		return next, nil
	}
	lo := appendStamp(appendModelPrefix(nil, tagLabelLog, model), from+1)
	hi := modelEnd(nil, tagLabelLog, model)
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return next, fmt.Errorf("predlog: cannot export %s: %w", model, err)
	}
	defer it.Close()
	var (
		lk   []byte
		lb   Label
		recs []Record
		row  Row
	)
	prefix := len(appendModelPrefix(nil, tagLabelLog, model))
	for ok := it.First(); ok && limit != 0; ok = it.Next() {
		k := it.Key()
		if len(k) != prefix+8 {
			return next, fmt.Errorf("%w: key %q", ErrCorrupt, k)
		}
		stamp := int64(binary.BigEndian.Uint64(k[prefix:]))
		id, err := it.ValueAndErr()
		if err != nil {
			return next, fmt.Errorf("predlog: cannot export %s: %w", model, err)
		}
		lk = appendLabelKey(lk[:0], model, string(id))
		found, err := l.getLabel(lk, &lb)
		if err != nil {
			return next, err
		}
		if !found || lb.Stamp != stamp {
			next = makeCursor(true, stamp) // superseded: its successor comes later
			continue
		}
		lb.ID = string(id)
		recs = recs[:0]
		err = l.lookup(lb.ID, model, true, func(r *Record) error {
			recs = append(recs, *r)
			return nil
		})
		if err != nil {
			return next, err
		}
		entry := makeCursor(true, stamp)
		for i := range recs {
			row = Row{Record: recs[i], Labelled: true, Label: lb, Cursor: next}
			if i == len(recs)-1 {
				row.Cursor = entry // the label's rows are all out only after its last
			}
			if err := fn(&row); err != nil {
				return next, err
			}
			limit--
		}
		next = entry
	}
	if err := it.Error(); err != nil {
		return next, fmt.Errorf("predlog: cannot export %s: %w", model, err)
	}
	return next, nil
}
