package predlog

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// Merging runs: indexFanout runs of a level become one of the next, read
// through a loser tree, and runs wholly below retention are dropped.

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
