package predlog

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// The id index (see doc.go, "Lookup by request id") stays out of the
// memtable: the committer hands each committed record's id hash and stamp to
// the index in memory, and the indexer goroutine writes them as sorted runs
// of IndexRunSize entries, each an sstable of its own that Pebble ingests,
// and merges indexFanout runs of one level into one of the next (ingested
// while the inputs are excised, atomically). A lookup reads one chunk per
// run, and the number of runs grows with the log's size logarithmically.
//
// A run's keys are its own span of the keyspace, so an ingested run goes to
// the bottom level as it is and is never compacted, and the memtable holds
// only blocks (and labels): flushed tables of blocks do not overlap and move
// down without being rewritten.
const (
	tagRun = 'x' // x first-stamp level        -> run: last stamp, entries, models
	// x first-stamp level hash6 -> chunk: the run's entries from hash6 on

	indexFanout = 8       // runs of one level merged into one of the next (at most 256: see mergeOnce)
	chunkBytes  = 4 << 10 // a chunk's target size: what a lookup reads per run
	runKeyLen   = 1 + 8 + 1
	chunkKeyLen = runKeyLen + indexHashLen
)

// ixEnt is one index entry: the top indexHashLen bytes of an id's hash, the
// record's stamp and its model (an index into index.names in memory, into
// the run's model table on disk).
type ixEnt struct {
	hash  uint64
	stamp int64
	model uint32
}

// run describes a sorted run on disk. It holds the entries of every record
// stamped first to last (those retention had not removed when it was
// written). Runs never overlap in stamps.
type run struct {
	level       uint8
	first, last int64
	entries     uint64
	models      []string
}

// index is the in-memory half of the id index.
type index struct {
	mu      sync.Mutex
	names   []string          // models of the entries in memory
	byName  map[string]uint32 // names' positions
	tail    []ixEnt           // committed records not yet in a run, in stamp order
	sealed  [][]ixEnt         // full runs waiting for the indexer, oldest first
	spare   []ixEnt           // a written run's entries, for the next tail
	runs    []run             // on disk, in stamp order
	floor   int64             // retention removed every record stamped before it
	runSize int

	// pub is held by the indexer and retention while they change the runs
	// (an ingest, an excise) and read-held by lookups while they list the
	// runs and open their iterator, so the two always agree.
	pub     sync.RWMutex
	seq     int      // names the sstables built
	scratch []ixEnt  // the indexer's sort buffer
	keys    []uint64 // and sortByHash's
	opts    *pebble.Options
	dir     string // where runs are built before they are ingested

	kick chan struct{} // capacity 1: a run was sealed
	stop chan struct{}
	done chan struct{}
}

// intern returns the position of a model name in names.
func (ix *index) intern(model []byte) uint32 {
	if i, ok := ix.byName[string(model)]; ok {
		return i
	}
	i := uint32(len(ix.names))
	ix.names = append(ix.names, string(model))
	ix.byName[string(model)] = i
	return i
}

// add takes the entries of records just committed, in stamp order, and
// seals a run whenever the tail is full. The committer calls it with the
// index of its own scratch; it must be quick.
func (ix *index) add(ents []idxEnt) {
	ix.mu.Lock()
	var last []byte
	var ref uint32
	for _, e := range ents {
		if last == nil || !bytes.Equal(e.model, last) {
			last, ref = e.model, ix.intern(e.model)
		}
		ix.tail = append(ix.tail, ixEnt{e.hash, e.stamp, ref})
		if len(ix.tail) >= ix.runSize {
			ix.sealed = append(ix.sealed, ix.tail)
			// A fresh 1.5 MiB tail per run cost page faults and
			// garbage; the indexer hands back the last one it wrote.
			ix.tail, ix.spare = ix.spare, nil
			if cap(ix.tail) < ix.runSize {
				ix.tail = make([]ixEnt, 0, ix.runSize)
			}
			select {
			case ix.kick <- struct{}{}:
			default:
			}
		}
	}
	ix.mu.Unlock()
}

// sortByHash writes ents (in stamp order, at most maxRunSize of them) to
// dst sorted by hash, equal hashes in stamp order, and returns it. It sorts
// 8-byte keys, the hash above each entry's position, with an LSD radix sort
// on the hash's 48 bits in four 12-bit digits, then gathers the entries by
// position: a third of the bytes moved per pass, and two passes fewer, than
// sorting the 24-byte entries by byte. keys is reused scratch.
func sortByHash(ents, dst []ixEnt, keys *[]uint64) []ixEnt {
	n := len(ents)
	dst = slices.Grow(dst[:0], n)[:n]
	if n == 0 {
		return dst
	}
	buf := slices.Grow((*keys)[:0], 2*n)[:2*n]
	*keys = buf
	a, b := buf[:n], buf[n:]
	for i := range ents {
		a[i] = ents[i].hash<<(64-8*indexHashLen) | uint64(i)
	}
	const digit, mask = 12, 1<<12 - 1
	var count [1<<digit + 1]int32
	for shift := 64 - 8*indexHashLen; shift < 64; shift += digit {
		clear(count[:])
		for _, k := range a {
			count[1+int(k>>shift&mask)]++
		}
		if count[1+int(a[0]>>shift&mask)] == int32(n) {
			continue // every entry has the same digit here
		}
		for i := 1; i < len(count); i++ {
			count[i] += count[i-1]
		}
		for _, k := range a {
			d := k >> shift & mask
			b[count[d]] = k
			count[d]++
		}
		a, b = b, a
	}
	for i, k := range a {
		dst[i] = ents[k&(maxRunSize-1)]
	}
	return dst
}

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

// indexLoop is the indexer: it writes sealed runs and merges runs.
func (l *Log) indexLoop() {
	defer close(l.ix.done)
	l.lowerPriority("indexer")
	for {
		if l.writeSealed() {
			l.mergeRuns()
		}
		select {
		case <-l.ix.kick:
		case <-l.ix.stop:
			l.writeSealed()
			return
		}
	}
}

// writeSealed writes the sealed runs as level-0 runs, oldest first. It
// returns false when it had to stop (the log failed).
func (l *Log) writeSealed() bool {
	for {
		l.ix.mu.Lock()
		if len(l.ix.sealed) == 0 {
			l.ix.mu.Unlock()
			return true
		}
		sealed := l.ix.sealed[0] // immutable once sealed; lookups read it
		names := l.ix.names[:len(l.ix.names):len(l.ix.names)]
		l.ix.mu.Unlock()
		if l.failure.Load() != nil {
			return false
		}
		first, last := sealed[0].stamp, sealed[len(sealed)-1].stamp
		ents := sortByHash(sealed, l.ix.scratch, &l.ix.keys)
		l.ix.scratch = ents
		i := 0
		r, path, err := l.buildRun(0, first, last, false, func() (ixEnt, bool, error) {
			if i == len(ents) {
				return ixEnt{}, false, nil
			}
			i++
			return ents[i-1], true, nil
		}, func(m uint32) string { return names[m] })
		if err != nil {
			l.setFailed(fmt.Errorf("%w: cannot write an index run in %s: %v", ErrUnhealthy, l.ix.dir, err))
			return false
		}
		l.ix.pub.Lock()
		err = l.ingest(path, pebble.KeyRange{})
		if err == nil {
			l.ix.mu.Lock()
			l.ix.sealed = l.ix.sealed[1:]
			l.ix.runs = append(l.ix.runs, r)
			// Lookups read sealed runs only under mu, so once it is out
			// of sealed nothing else holds it.
			l.ix.spare = sealed[:0]
			l.ix.mu.Unlock()
		}
		l.ix.pub.Unlock()
		if err != nil {
			return false
		}
	}
}

// mergeRuns merges the oldest indexFanout runs of the lowest level that has
// that many into one run of the next level, then looks again. Runs of a
// level are adjacent in stamp order (levels only fall with time: every new
// run is level 0, a merge replaces the oldest runs of its level), so the
// merged run covers their stamps with no gap, and its keys fall in the span
// excised with them. Entries retention made stale are dropped. Between
// merges it writes newly sealed runs first.
func (l *Log) mergeRuns() {
	for {
		l.ix.mu.Lock()
		var in []run
		for lvl := 0; lvl < 256 && in == nil; lvl++ {
			at, n := -1, 0
			for i, r := range l.ix.runs {
				if int(r.level) == lvl {
					if at < 0 {
						at = i
					}
					n++
				}
			}
			if n >= indexFanout {
				in = slices.Clone(l.ix.runs[at : at+indexFanout])
			}
		}
		floor := l.ix.floor
		l.ix.mu.Unlock()
		if in == nil {
			return
		}
		for _, r := range in {
			if r.level != in[0].level {
				return // not adjacent: cannot happen (see above); never merge across a gap
			}
		}
		if err := l.mergeOnce(in, floor); err != nil || !l.writeSealed() {
			return
		}
	}
}

func (l *Log) mergeOnce(in []run, floor int64) error {
	// One iterator per input run, over its chunks.
	type source struct {
		it  *pebble.Iterator
		cr  chunkReader
		cur ixEnt
		ok  bool
		run *run
	}
	srcs := make([]source, len(in))
	defer func() {
		for i := range srcs {
			if srcs[i].it != nil {
				_ = srcs[i].it.Close()
			}
		}
	}()
	// advance moves s to its next entry, opening the next chunk as needed;
	// the descriptor, after the chunks, ends the run.
	advance := func(s *source) error {
		for {
			e, ok, err := s.cr.next()
			if err != nil {
				return corruptKey(err, s.it.Key())
			}
			if ok {
				s.cur, s.ok = e, true
				return nil
			}
			if !s.it.Next() || len(s.it.Key()) != chunkKeyLen {
				s.ok = false
				return s.it.Error()
			}
			if err := s.cr.open(s.it.Key(), s.it.Value(), s.run.first); err != nil {
				return corruptKey(err, s.it.Key())
			}
		}
	}
	var names []string
	pos := map[string]uint32{}
	remap := make([][]uint32, len(in))
	for i := range in {
		r := &in[i]
		for _, m := range r.models {
			p, ok := pos[m]
			if !ok {
				p = uint32(len(names))
				pos[m] = p
				names = append(names, m)
			}
			remap[i] = append(remap[i], p)
		}
		lo := appendRunKey(nil, r.first, r.level)
		it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: upperBound(lo)})
		if err != nil {
			return err
		}
		srcs[i] = source{it: it, run: r}
		if it.First() && len(it.Key()) == chunkKeyLen {
			if err := srcs[i].cr.open(it.Key(), it.Value(), r.first); err != nil {
				return corruptKey(err, it.Key())
			}
			if err := advance(&srcs[i]); err != nil {
				return err
			}
		} else if err := it.Error(); err != nil {
			return err
		}
	}
	// The sources' heads in a loser tree, each keyed by its hash above its
	// source's position: runs are in stamp order, so for equal hashes the
	// lower position holds the lower stamps and goes first, which is the
	// (hash, stamp) order. A linear pick of the least head, comparing
	// whole entries, was a third of a merge's CPU.
	keys := make([]uint64, len(srcs))
	for i := range srcs {
		keys[i] = math.MaxUint64 // exhausted
		if srcs[i].ok {
			keys[i] = srcs[i].cur.hash<<8 | uint64(i)
		}
	}
	lt := newLoserTree(keys)
	next := func() (ixEnt, bool, error) {
		for {
			i := lt.winner()
			if keys[i] == math.MaxUint64 {
				return ixEnt{}, false, nil
			}
			s := &srcs[i]
			e := s.cur
			if int(e.model) >= len(remap[i]) {
				return e, false, fmt.Errorf("%w: index run at stamp %d names model %d of %d", ErrCorrupt, in[i].first, e.model, len(remap[i]))
			}
			e.model = remap[i][e.model]
			if err := advance(s); err != nil {
				return e, false, err
			}
			keys[i] = math.MaxUint64
			if s.ok {
				keys[i] = s.cur.hash<<8 | uint64(i)
			}
			lt.replay(i)
			if e.stamp >= floor {
				return e, true, nil
			}
		}
	}
	r, path, err := l.buildRun(in[0].level+1, in[0].first, in[len(in)-1].last, true, next, func(m uint32) string { return names[m] })
	if err != nil {
		if !errors.Is(err, errIndexStopped) {
			l.setFailed(fmt.Errorf("%w: cannot merge index runs in %s: %v", ErrUnhealthy, l.ix.dir, err))
		}
		return err
	}
	l.ix.pub.Lock()
	defer l.ix.pub.Unlock()
	// Only the indexer adds runs; retention may have dropped the oldest
	// inputs meanwhile. Then the merge is abandoned.
	l.ix.mu.Lock()
	i := slices.IndexFunc(l.ix.runs, func(x run) bool { return x.level == in[0].level && x.first == in[0].first })
	same := i >= 0 && i+len(in) <= len(l.ix.runs) && slices.EqualFunc(l.ix.runs[i:i+len(in)], in, func(x, y run) bool {
		return x.level == y.level && x.first == y.first
	})
	l.ix.mu.Unlock()
	if !same {
		_ = l.cfg.FS.Remove(path)
		return nil
	}
	if err := l.ingest(path, runsSpan(in[0], in[len(in)-1])); err != nil {
		return err
	}
	l.ix.mu.Lock()
	l.ix.runs = slices.Replace(l.ix.runs, i, i+len(in), r)
	l.ix.mu.Unlock()
	return nil
}

// loserTree picks the least of k keys in log2(k) comparisons after one
// changes: each inner node holds the loser of the match played there, and
// only the changed key's path is replayed.
type loserTree struct {
	keys []uint64 // the sources' keys, changed by the caller; distinct but for exhausted ones (MaxUint64)
	tree []int    // tree[0] the winner, tree[1:] the losers of the inner nodes
}

func newLoserTree(keys []uint64) loserTree {
	k := len(keys)
	t := loserTree{keys: keys, tree: make([]int, max(k, 1))}
	win := make([]int, 2*k)
	for i := range k {
		win[k+i] = i
	}
	for n := k - 1; n >= 1; n-- {
		a, b := win[2*n], win[2*n+1]
		if keys[b] < keys[a] {
			a, b = b, a
		}
		win[n], t.tree[n] = a, b
	}
	if k > 1 {
		t.tree[0] = win[1]
	}
	return t
}

func (t *loserTree) winner() int { return t.tree[0] }

// replay restores the tree after keys[i] changed; i must be the winner.
func (t *loserTree) replay(i int) {
	w := i
	for n := (i + len(t.keys)) / 2; n >= 1; n /= 2 {
		if l := t.tree[n]; t.keys[l] < t.keys[w] {
			t.tree[n], w = w, l
		}
	}
	t.tree[0] = w
}

// dropRuns deletes the runs whose records retention has all removed
// (stamped before floor), and remembers floor so merges drop stale entries.
func (l *Log) dropRuns(floor int64) error {
	l.ix.pub.Lock()
	defer l.ix.pub.Unlock()
	l.ix.mu.Lock()
	l.ix.floor = max(l.ix.floor, floor)
	n := 0
	for n < len(l.ix.runs) && l.ix.runs[n].last < floor {
		n++
	}
	runs := l.ix.runs
	l.ix.mu.Unlock()
	if n == 0 {
		return nil
	}
	if err := protect(func() error { return l.db.Excise(context.Background(), runsSpan(runs[0], runs[n-1])) }); err != nil {
		return l.setFailed(fmt.Errorf("%w: cannot delete index runs from %s: %v", ErrUnhealthy, l.cfg.Dir, err))
	}
	l.ix.mu.Lock()
	l.ix.runs = slices.Delete(l.ix.runs, 0, n)
	l.ix.mu.Unlock()
	return nil
}

// openIndex loads the runs, deletes the per-record index keys of earlier
// versions and what a crash left in the build directory, and rebuilds the
// entries of the records no run holds from the records themselves. The
// indexer is not running yet.
func (l *Log) openIndex() error {
	ix := &l.ix
	ix.byName = map[string]uint32{}
	ix.kick = make(chan struct{}, 1)
	ix.stop = make(chan struct{})
	ix.done = make(chan struct{})
	ix.runSize = l.cfg.IndexRunSize
	ix.tail = make([]ixEnt, 0, min(ix.runSize, 1024))
	ix.opts = l.pebbleOptions()
	ix.opts.EnsureDefaults()
	ix.dir = l.cfg.FS.PathJoin(l.cfg.Dir, "index-build")
	if err := l.cfg.FS.RemoveAll(ix.dir); err != nil {
		return err
	}
	if err := l.cfg.FS.MkdirAll(ix.dir, 0o755); err != nil {
		return err
	}

	// The runs: each run's last key is its descriptor.
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagRun}, UpperBound: []byte{tagRun + 1}})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; {
		if len(it.Key()) < runKeyLen {
			_ = it.Close()
			return corruptKey(ErrCorrupt, it.Key())
		}
		end := upperBound(it.Key()[:runKeyLen])
		if !it.SeekLT(end) {
			break
		}
		r, err := decodeRun(it.Key(), it.Value())
		if err != nil {
			_ = it.Close()
			return corruptKey(err, it.Key())
		}
		ix.runs = append(ix.runs, r)
		ok = it.SeekGE(end)
	}
	if err := it.Close(); err != nil {
		return err
	}
	covered := int64(0)
	for _, r := range ix.runs {
		covered = max(covered, r.last)
	}

	if err := l.deleteLegacyIndex(); err != nil {
		return err
	}

	// Rebuild: every record stamped after the last run, in stamp order.
	var ents []idxEnt
	from, to := time.Unix(0, covered+1), time.Unix(0, math.MaxInt64)
	err = l.forEachModel(tagPred, func(m []byte) error {
		model := bytes.Clone(m)
		return l.Scan(string(m), "", from, to, func(r *Record) error {
			ents = append(ents, idxEnt{idHash(r.RequestID) >> (64 - 8*indexHashLen), r.Stamp, model})
			return nil
		})
	})
	if err != nil {
		return err
	}
	slices.SortFunc(ents, func(a, b idxEnt) int { return cmp.Compare(a.stamp, b.stamp) })
	ix.add(ents)
	return nil
}

// deleteLegacyIndex deletes the per-record index keys ("i" hash stamp) that
// versions before the run index wrote; Open rebuilds their entries.
func (l *Log) deleteLegacyIndex() error {
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagIndex}, UpperBound: []byte{tagIndex + 1}})
	if err != nil {
		return err
	}
	any := it.First()
	if err := it.Close(); err != nil || !any {
		return err
	}
	b := l.db.NewBatch()
	_ = b.DeleteRange([]byte{tagIndex}, []byte{tagIndex + 1}, nil)
	if err := protect(func() error { return b.Commit(pebble.Sync) }); err != nil {
		return err
	}
	return b.Close()
}

// closeIndex stops the indexer; it writes the runs already sealed and
// abandons a merge in progress.
func (l *Log) closeIndex() {
	close(l.ix.stop)
	<-l.ix.done
}

// indexCandidates returns where the records of an id may be: the models and
// stamps of the index entries with its hash, in stamp order.
func (l *Log) indexCandidates(id string) ([]idxEnt, error) {
	h := idHash(id) >> (64 - 8*indexHashLen)
	var out []idxEnt
	l.ix.pub.RLock()
	l.ix.mu.Lock()
	for _, part := range append(slices.Clip(l.ix.sealed), l.ix.tail) {
		for _, e := range part {
			if e.hash == h {
				out = append(out, idxEnt{e.hash, e.stamp, []byte(l.ix.names[e.model])})
			}
		}
	}
	runs := slices.Clone(l.ix.runs)
	l.ix.mu.Unlock()
	var it *pebble.Iterator
	var err error
	if len(runs) > 0 {
		// Made under pub: the iterator sees exactly the runs listed.
		it, err = l.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagRun}, UpperBound: []byte{tagRun + 1}})
	}
	l.ix.pub.RUnlock()
	if err != nil {
		return nil, err
	}
	if it != nil {
		defer it.Close()
	}
	var seek []byte
	var cr chunkReader
	for i := range runs {
		r := &runs[i]
		prefix := appendRunKey(nil, r.first, r.level)
		// The chunk that may hold h is the last one starting at or before
		// it (the descriptor sorts after every chunk).
		seek = append(appendHash(append(seek[:0], prefix...), h<<(64-8*indexHashLen)), 0)
		if !it.SeekLT(seek) {
			if err := it.Error(); err != nil {
				return nil, err
			}
			continue
		}
		if !bytes.HasPrefix(it.Key(), prefix) {
			continue // h is before the run's first chunk
		}
		if err := cr.open(it.Key(), it.Value(), r.first); err != nil {
			return nil, corruptKey(err, it.Key())
		}
		for {
			e, ok, err := cr.next()
			if err != nil {
				return nil, corruptKey(err, it.Key())
			}
			if !ok || e.hash > h {
				break
			}
			if e.hash == h {
				if int(e.model) >= len(r.models) {
					return nil, corruptKey(ErrCorrupt, it.Key())
				}
				out = append(out, idxEnt{e.hash, e.stamp, []byte(r.models[e.model])})
			}
		}
	}
	slices.SortFunc(out, func(a, b idxEnt) int { return cmp.Compare(a.stamp, b.stamp) })
	return out, nil
}

// IndexStats describes the id index.
type IndexStats struct {
	Runs    int    // sorted runs on disk
	Levels  int    // levels among them
	OnDisk  uint64 // entries in the runs
	Pending int    // entries held in memory (the tail and sealed runs)
}

// IndexStats returns the id index's shape.
func (l *Log) IndexStats() IndexStats {
	l.ix.mu.Lock()
	defer l.ix.mu.Unlock()
	s := IndexStats{Runs: len(l.ix.runs), Pending: len(l.ix.tail)}
	for _, p := range l.ix.sealed {
		s.Pending += len(p)
	}
	for _, r := range l.ix.runs {
		s.OnDisk += r.entries
		s.Levels = max(s.Levels, int(r.level)+1)
	}
	return s
}
