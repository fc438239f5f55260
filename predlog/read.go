package predlog

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Get returns the prediction logged for a request id: the one served
// (champion or canary) when there is one, else the latest shadow record.
// Lookup visits them all. It returns ErrNotFound when the log has none.
func (l *Log) Get(requestID string) (Record, error) {
	var best Record
	found := false
	err := l.lookup(requestID, "", true, func(r *Record) error {
		better := !found ||
			(r.Role.Served() && !best.Role.Served()) ||
			(r.Role.Served() == best.Role.Served() && r.Stamp > best.Stamp)
		if better {
			best, found = *r, true
			*r = Record{} // r owns its memory: hand it over
		}
		return nil
	})
	if err != nil {
		return Record{}, err
	}
	if !found {
		return Record{}, ErrNotFound
	}
	return best, nil
}

// Lookup calls fn with every record logged for a request id (the served one
// and its shadows, in commit order). The record is reused between calls and
// its Data slices are valid only during the call.
func (l *Log) Lookup(requestID string, fn func(*Record) error) error {
	return l.lookup(requestID, "", false, fn)
}

// lookup reads the records the index points to for id, skipping those of
// other models (unless model is empty), of other ids with the same hash,
// and those retention removed.
func (l *Log) lookup(id, model string, own bool, fn func(*Record) error) error {
	if len(id) == 0 || len(id) > maxName {
		return ErrNotFound
	}
	cands, err := l.indexCandidates(id)
	if err != nil {
		return fmt.Errorf("predlog: cannot look up %q: %w", id, err)
	}
	if len(cands) == 0 {
		return nil
	}
	pit, err := l.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagPred}, UpperBound: []byte{tagPred + 1}})
	if err != nil {
		return fmt.Errorf("predlog: cannot look up %q: %w", id, err)
	}
	defer pit.Close()
	var (
		rec     Record
		scratch []byte
		pk      []byte
		br      blockReader
	)
	for _, c := range cands {
		m, stamp := c.model, c.stamp
		if model != "" && string(m) != model {
			continue
		}
		// The block holding the stamp is the first of the model's blocks
		// whose last stamp is not before it.
		pk = appendStamp(appendModelPrefix(pk[:0], tagPred, string(m)), stamp)
		if !pit.SeekGE(pk) {
			if err := pit.Error(); err != nil {
				return fmt.Errorf("predlog: cannot read the record of %q: %w", id, err)
			}
			continue // pruned
		}
		bm, last, ok := parsePredKey(pit.Key())
		if !ok {
			return corruptKey(ErrCorrupt, pit.Key())
		}
		if !bytes.Equal(bm, m) {
			continue // pruned
		}
		val, err := pit.ValueAndErr()
		if err != nil {
			return fmt.Errorf("predlog: cannot read the record of %q: %w", id, err)
		}
		if err := br.open(val, last); err != nil {
			return corruptKey(err, pit.Key())
		}
		if stamp < br.first {
			continue // pruned
		}
		if err := br.skipTo(stamp); err != nil {
			return corruptKey(err, pit.Key())
		}
		_, version, v, ok, err := br.Next()
		if err != nil || !ok {
			return corruptKey(ErrCorrupt, pit.Key())
		}
		if own {
			rec = Record{}
		}
		err = decodeValue(&rec, v, &scratch, own)
		if err == nil && rec.RequestID == id {
			setString(&rec.Model, m)
			setString(&rec.Version, version)
			rec.Stamp = stamp
			err = fn(&rec)
		} else if err != nil {
			err = fmt.Errorf("%w: the record of %q at stamp %d in %q", err, id, stamp, pit.Key())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func setString(s *string, b []byte) {
	if *s != string(b) {
		*s = string(b)
	}
}

// upperBound returns the smallest key greater than every key with prefix p.
func upperBound(p []byte) []byte {
	u := bytes.Clone(p)
	for i := len(u) - 1; i >= 0; i-- {
		if u[i] != 0xff {
			u[i]++
			return u[:i+1]
		}
	}
	return nil
}

// Scan calls fn with the predictions of a model committed in [from, to), in
// commit order, only those of version unless it is empty. A record's commit
// stamp trails its Time by the time it waited in the ring (well under a
// second unless the log is overloaded). The record is reused between calls
// and its Data slices are valid only during the call; an error from fn stops
// the scan and is returned.
func (l *Log) Scan(model, version string, from, to time.Time, fn func(*Record) error) error {
	lo := appendStamp(appendModelPrefix(nil, tagPred, model), from.UnixNano())
	hi := modelEnd(nil, tagPred, model)
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("predlog: cannot scan %s: %w", model, err)
	}
	defer it.Close()
	var (
		rec      Record
		scratch  []byte
		br       blockReader
		fromNano = from.UnixNano()
		toNano   = to.UnixNano()
	)
	for ok := it.First(); ok; ok = it.Next() {
		m, last, ok := parsePredKey(it.Key())
		if !ok {
			return fmt.Errorf("%w: key %q", ErrCorrupt, it.Key())
		}
		if err := l.openBlock(it, &br, last); err != nil {
			return err
		}
		if br.first >= toNano {
			break
		}
		if err := br.skipTo(fromNano); err != nil {
			return corruptKey(err, it.Key())
		}
		for {
			stamp, v, val, ok, err := br.Next()
			if err != nil {
				return corruptKey(err, it.Key())
			}
			if !ok || stamp >= toNano {
				break
			}
			if version != "" && string(v) != version {
				continue
			}
			if err := readRecord(it.Key(), val, &rec, &scratch, m, v, stamp); err != nil {
				return err
			}
			if err := fn(&rec); err != nil {
				return err
			}
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("predlog: cannot scan %s: %w", model, err)
	}
	return nil
}

// openBlock positions br before the first record of the iterator's block.
func (l *Log) openBlock(it *pebble.Iterator, br *blockReader, last int64) error {
	val, err := it.ValueAndErr()
	if err != nil {
		return fmt.Errorf("predlog: cannot read %q: %w", it.Key(), err)
	}
	if err := br.open(val, last); err != nil {
		return corruptKey(err, it.Key())
	}
	return nil
}

func readRecord(key, val []byte, rec *Record, scratch *[]byte, model, version []byte, stamp int64) error {
	if err := decodeValue(rec, val, scratch, false); err != nil {
		return fmt.Errorf("%w: stamp %d in key %q", err, stamp, key)
	}
	setString(&rec.Model, model)
	setString(&rec.Version, version)
	rec.Stamp = stamp
	return nil
}

// getLabel reads the label of (model, id) into lb; false when there is none.
func (l *Log) getLabel(key []byte, lb *Label) (bool, error) {
	v, closer, err := l.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("predlog: cannot read label %q: %w", key, err)
	}
	defer closer.Close()
	if err := decodeLabelValue(lb, v); err != nil {
		return false, fmt.Errorf("%w: label %q", err, key)
	}
	return true, nil
}
