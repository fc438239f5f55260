package predlog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// A run on disk: its key and value in the run table, its sstable of
// chunks, and how one is built and ingested.

// maxRunSize bounds IndexRunSize: sortByHash packs an entry's position in
// its run into the 16 bits below its 48-bit hash.
const maxRunSize = 1 << (64 - 8*indexHashLen)

// idxEnt is an index entry as the committer collects it.
type idxEnt struct {
	hash  uint64 // the top indexHashLen bytes of the id hash
	stamp int64
	model []byte
}

// appendRunKey appends the prefix of a run's keys.
func appendRunKey(dst []byte, first int64, level byte) []byte {
	return append(appendStamp(append(dst, tagRun), first), level)
}

// appendRunDescKey appends the key of a run's descriptor: its prefix and
// seven 0xff bytes, after every chunk key of the run (those are the prefix
// and six bytes of hash).
func appendRunDescKey(dst []byte, first int64, level byte) []byte {
	return append(appendRunKey(dst, first, level), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
}

const runDescKeyLen = runKeyLen + 7

// runValue: last stamp (8 bytes), entries (uvarint), model count (uvarint),
// models (uvarint length, bytes each).
func appendRunValue(dst []byte, r *run) []byte {
	dst = appendStamp(dst, r.last)
	dst = binary.AppendUvarint(dst, r.entries)
	dst = binary.AppendUvarint(dst, uint64(len(r.models)))
	for _, m := range r.models {
		dst = binary.AppendUvarint(dst, uint64(len(m)))
		dst = append(dst, m...)
	}
	return dst
}

func decodeRun(k, v []byte) (run, error) {
	var r run
	if len(k) != runDescKeyLen || len(v) < 8 {
		return r, ErrCorrupt
	}
	r.first = int64(binary.BigEndian.Uint64(k[1:]))
	r.level = k[9]
	r.last = int64(binary.BigEndian.Uint64(v))
	v = v[8:]
	var n uint64
	var ok bool
	if r.entries, v, ok = uvarint(v); !ok {
		return r, ErrCorrupt
	}
	if n, v, ok = uvarint(v); !ok || n > uint64(len(v)) {
		return r, ErrCorrupt
	}
	for range n {
		var l uint64
		if l, v, ok = uvarint(v); !ok || l > uint64(len(v)) {
			return r, ErrCorrupt
		}
		r.models = append(r.models, string(v[:l]))
		v = v[l:]
	}
	if len(v) != 0 || r.last < r.first {
		return r, ErrCorrupt
	}
	return r, nil
}

func uvarint(b []byte) (uint64, []byte, bool) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, b, false
	}
	return v, b[n:], true
}

// chunkWriter cuts a run's entries, in (hash, stamp) order, into chunks:
// a count, then per entry the hash as its difference from the previous one
// (the first's is in the key), the stamp's offset from the run's first
// stamp, and the model's position in the run's table, each a uvarint. A
// chunk never ends between two entries of one hash, so a lookup reads one
// chunk per run.
type chunkWriter struct {
	prefix []byte // x level first-stamp
	first  int64
	emit   func(key, value []byte) error
	body   []byte
	n      int
	start  uint64 // the chunk's first hash
	prev   uint64
	key    []byte
	val    []byte
}

func (w *chunkWriter) add(e ixEnt) error {
	if w.n > 0 && len(w.body) >= chunkBytes && e.hash != w.prev {
		if err := w.flush(); err != nil {
			return err
		}
	}
	if w.n == 0 {
		w.start, w.prev = e.hash, e.hash
	}
	w.body = binary.AppendUvarint(w.body, e.hash-w.prev)
	w.body = binary.AppendUvarint(w.body, uint64(e.stamp-w.first))
	w.body = binary.AppendUvarint(w.body, uint64(e.model))
	w.prev = e.hash
	w.n++
	return nil
}

func (w *chunkWriter) flush() error {
	if w.n == 0 {
		return nil
	}
	w.key = appendHash(append(w.key[:0], w.prefix...), w.start<<(64-8*indexHashLen))
	w.val = binary.AppendUvarint(w.val[:0], uint64(w.n))
	w.val = append(w.val, w.body...)
	w.body, w.n = w.body[:0], 0
	return w.emit(w.key, w.val)
}

// chunkReader decodes a chunk's entries in order.
type chunkReader struct {
	rest  []byte
	left  uint64
	hash  uint64
	first int64
}

func (r *chunkReader) open(key, val []byte, first int64) error {
	if len(key) != chunkKeyLen {
		return ErrCorrupt
	}
	var b [8]byte
	copy(b[:], key[runKeyLen:])
	r.hash = binary.BigEndian.Uint64(b[:]) >> (64 - 8*indexHashLen)
	r.first = first
	var ok bool
	if r.left, r.rest, ok = uvarint(val); !ok || r.left == 0 {
		return ErrCorrupt
	}
	return nil
}

func (r *chunkReader) next() (e ixEnt, ok bool, err error) {
	if r.left == 0 {
		if len(r.rest) != 0 {
			return e, false, ErrCorrupt
		}
		return e, false, nil
	}
	d, rest, ok1 := uvarint(r.rest)
	s, rest, ok2 := uvarint(rest)
	m, rest, ok3 := uvarint(rest)
	if !ok1 || !ok2 || !ok3 || m > 1<<32-1 {
		return e, false, ErrCorrupt
	}
	r.rest, r.left = rest, r.left-1
	r.hash += d
	return ixEnt{r.hash, r.first + int64(s), uint32(m)}, true, nil
}

// buildRun writes the entries next yields, in (hash, stamp) order, of the
// records stamped first to last, as a run of the given level: an sstable
// holding the chunks and, after them, the descriptor, ready to be ingested.
// The entries' models are positions in names. It returns the run and the
// file's path.
func (l *Log) buildRun(level uint8, first, last int64, stoppable bool, next func() (ixEnt, bool, error), names func(uint32) string) (r run, path string, err error) {
	r = run{level: level, first: first, last: last}
	l.ix.seq++
	path = l.cfg.FS.PathJoin(l.ix.dir, fmt.Sprintf("run-%06d.sst", l.ix.seq))
	f, err := l.cfg.FS.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return r, "", err
	}
	wo := l.ix.opts.MakeWriterOptions(len(l.ix.opts.Levels)-1, l.db.TableFormat())
	if level == 0 {
		// A level-0 run lives until it is merged (seven more runs later):
		// compressing it is CPU spent on the hot load for a few bytes
		// per entry for a short while. Merged runs are compressed.
		wo.Compression = sstable.NoCompression
	}
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), wo)
	defer func() {
		if w != nil {
			_ = w.Close()
		}
		if err != nil {
			_ = l.cfg.FS.Remove(path)
		}
	}()
	refs := map[uint32]uint32{}
	var lastModel, lastRef uint32 // most runs hold one model or few
	cw := chunkWriter{prefix: appendRunKey(nil, first, level), first: first}
	n := 0
	cw.emit = func(k, v []byte) error {
		n++
		if stoppable && n%256 == 0 {
			select {
			case <-l.ix.stop:
				return errIndexStopped
			default:
			}
		}
		return w.Set(k, v)
	}
	for {
		e, ok, err := next()
		if err != nil {
			return r, path, err
		}
		if !ok {
			break
		}
		if e.model != lastModel || r.entries == 0 {
			ref, seen := refs[e.model]
			if !seen {
				ref = uint32(len(r.models))
				refs[e.model] = ref
				r.models = append(r.models, names(e.model))
			}
			lastModel, lastRef = e.model, ref
		}
		e.model = lastRef
		if err := cw.add(e); err != nil {
			return r, path, err
		}
		r.entries++
	}
	if err := cw.flush(); err != nil {
		return r, path, err
	}
	if err := w.Set(appendRunDescKey(nil, first, level), appendRunValue(nil, &r)); err != nil {
		return r, path, err
	}
	err = w.Close()
	w = nil
	return r, path, err
}

var errIndexStopped = errors.New("predlog: index stopped")

// ingest adds a built run to the DB, atomically excising span first when it
// is valid (a merge's inputs), and removes the file. A failure makes the
// log unhealthy: the index can no longer keep up with the records.
func (l *Log) ingest(path string, span pebble.KeyRange) error {
	defer l.cfg.FS.Remove(path)
	err := protect(func() error {
		if span.Valid() {
			_, err := l.db.IngestAndExcise(context.Background(), []string{path}, nil, nil, span)
			return err
		}
		return l.db.Ingest(context.Background(), []string{path})
	})
	if err != nil {
		return l.setFailed(fmt.Errorf("%w: cannot ingest an index run into %s: %v", ErrUnhealthy, l.cfg.Dir, err))
	}
	return nil
}

// runsSpan is the key span of the runs from first to last (inclusive).
func runsSpan(first, last run) pebble.KeyRange {
	return pebble.KeyRange{
		Start: appendStamp([]byte{tagRun}, first.first),
		End:   appendStamp([]byte{tagRun}, last.first+1),
	}
}
