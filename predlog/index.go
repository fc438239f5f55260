package predlog

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
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
