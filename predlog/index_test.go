package predlog

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// appendAll appends n demo records (each id also logged as a shadow of
// version 2, so an id has several records) and waits until all are
// committed; it returns the ids.
func appendAll(t *testing.T, l *Log, g *demoGen, n int) []string {
	t.Helper()
	var ids []string
	for len(ids) < n {
		r := g.next()
		if err := l.Append(r); err != nil {
			time.Sleep(time.Millisecond) // ring full
			continue
		}
		ids = append(ids, r.RequestID)
		if len(ids)%10 == 0 {
			r.Version, r.Role = "2", RoleShadow
			if err := l.AppendDurable(r); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, "the ring to drain", func() bool { return l.Stats().Pending == 0 })
	return ids
}

// checkAll checks that every id's served record, and the shadow of every
// tenth, is found.
func checkAll(t *testing.T, l *Log, ids []string) {
	t.Helper()
	for i, id := range ids {
		rec, err := l.Get(id)
		if err != nil || rec.RequestID != id || rec.Role != RoleChampion {
			t.Fatalf("Get(%s) = %+v, %v", id, rec.RequestID, err)
		}
		if (i+1)%10 == 0 {
			n := 0
			if err := l.Lookup(id, func(r *Record) error { n++; return nil }); err != nil || n != 2 {
				t.Fatalf("Lookup(%s): %d records, %v", id, n, err)
			}
		}
	}
}

func waitIndexSettled(t testing.TB, l *Log, runSize int) IndexStats {
	t.Helper()
	var st IndexStats
	waitFor(t, "the indexer to write and merge its runs", func() bool {
		st = l.IndexStats()
		l.ix.mu.Lock()
		defer l.ix.mu.Unlock()
		perLevel := map[uint8]int{}
		for _, r := range l.ix.runs {
			perLevel[r.level]++
		}
		for _, n := range perLevel {
			if n >= indexFanout {
				return false
			}
		}
		return len(l.ix.sealed) == 0 && len(l.ix.tail) < runSize
	})
	return st
}

// TestIndexRunsMergeAndReopen fills the index with enough runs for two
// levels of merges, checks every lookup, and does it again after a reopen
// (runs read back, the tail rebuilt from the records).
func TestIndexRunsMergeAndReopen(t *testing.T) {
	c := testConfig(t)
	c.IndexRunSize = 16
	l := openLog(t, c)
	g := newDemoGen(21)
	n := 16*indexFanout*indexFanout + 36 // a multiple of 10, for checkAll
	ids := appendAll(t, l, g, n)
	st := waitIndexSettled(t, l, c.IndexRunSize)
	t.Logf("%d records: %+v", n, st)
	if st.Levels < 3 || st.Runs > 3*(indexFanout-1) {
		t.Fatalf("index %+v: want runs merged into a third level", st)
	}
	if total := int(st.OnDisk) + st.Pending; total != n+n/10 {
		t.Fatalf("index holds %d entries, want %d", total, n+n/10)
	}
	checkAll(t, l, ids)
	if _, err := l.Get("no-such-id"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(unknown) = %v", err)
	}
	if err := closeLog(t, l); err != nil {
		t.Fatal(err)
	}

	l = openLog(t, c)
	if st2 := l.IndexStats(); st2.OnDisk != st.OnDisk || st2.Pending != st.Pending {
		t.Fatalf("after reopen %+v, before %+v", st2, st)
	}
	checkAll(t, l, ids)
	more := appendAll(t, l, g, 100)
	checkAll(t, l, append(ids, more...))
}

// TestIndexLookupsDuringMerges looks records up from several goroutines
// while appends seal runs and the indexer writes and merges them: a lookup
// must never miss a committed record, whichever step the index is at.
func TestIndexLookupsDuringMerges(t *testing.T) {
	c := testConfig(t)
	c.IndexRunSize = 16
	l := openLog(t, c)
	g := newDemoGen(22)
	var (
		mu   sync.Mutex
		done []string // committed ids
		stop atomic.Bool
		wg   sync.WaitGroup
		fail atomic.Value
	)
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; !stop.Load(); i++ {
				mu.Lock()
				if len(done) == 0 {
					mu.Unlock()
					continue
				}
				id := done[i%len(done)]
				mu.Unlock()
				if _, err := l.Get(id); err != nil {
					fail.Store(fmt.Errorf("Get(%s): %w", id, err))
					return
				}
			}
		}(w)
	}
	for round := 0; round < 40 && fail.Load() == nil; round++ {
		var batch []string
		for range 50 {
			r := g.next()
			if err := l.AppendDurable(r); err != nil { // committed on return
				t.Fatal(err)
			}
			batch = append(batch, r.RequestID)
		}
		mu.Lock()
		done = append(done, batch...)
		mu.Unlock()
	}
	// The lookups go on until a merge has happened: the indexer runs at
	// nice 10, and beside three spinning readers (under the race detector
	// too) it may still be writing level-0 runs when the appends end.
	waitFor(t, "a merge while lookups run", func() bool { return l.IndexStats().Levels >= 2 || fail.Load() != nil })
	stop.Store(true)
	within(t, "the appenders", wg.Wait)
	if err := fail.Load(); err != nil {
		t.Fatal(err)
	}
}

// TestIndexOpenCleansUp: a run a crash left half-built, and the
// per-record index keys of earlier versions, are deleted at Open; lookups
// still work.
func TestIndexOpenCleansUp(t *testing.T) {
	c := testConfig(t)
	c.IndexRunSize = 16
	l := openLog(t, c)
	ids := appendAll(t, l, newDemoGen(23), 200)
	waitIndexSettled(t, l, c.IndexRunSize)
	legacy := append([]byte{tagIndex}, "0123456789abcd"...)
	if err := l.db.Set(legacy, []byte("fraud"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := closeLog(t, l); err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(c.Dir, "index-build", "run-000001.sst")
	if err := os.WriteFile(stray, []byte("half a table"), 0o644); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, c)
	if _, closer, err := l.db.Get(legacy); err == nil {
		closer.Close()
		t.Fatalf("legacy index key survived Open")
	}
	if _, err := os.Stat(stray); !os.IsNotExist(err) {
		t.Fatalf("stray run file: %v", err)
	}
	checkAll(t, l, ids)
}

// TestIndexCorruptChunk: a damaged chunk makes lookups that read it fail
// with ErrCorrupt, not panic or answer wrongly.
func TestIndexCorruptChunk(t *testing.T) {
	c := testConfig(t)
	c.IndexRunSize = 16
	l := openLog(t, c)
	ids := appendAll(t, l, newDemoGen(24), 16)
	waitIndexSettled(t, l, c.IndexRunSize)
	l.ix.mu.Lock()
	r := l.ix.runs[0]
	l.ix.mu.Unlock()
	b := l.db.NewBatch()
	lo := appendRunKey(nil, r.first, r.level)
	_ = b.DeleteRange(lo, appendRunDescKey(nil, r.first, r.level), nil)
	_ = b.Set(appendHash(lo, 0), []byte{5, 1}, nil) // five entries promised, none there
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Get(ids[0]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get over a damaged chunk = %v, want ErrCorrupt", err)
	}
}

func TestSortByHash(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var keys []uint64
	for _, n := range []int{0, 1, 2, 100, 5000, maxRunSize} {
		ents := make([]ixEnt, n)
		for i := range ents {
			// Few distinct hashes, so ties must keep stamp order; in odd
			// positions random ones, every bit of the 48 in play.
			ents[i] = ixEnt{hash: uint64(i*7919%97) << 20 * 0x10001 & (1<<48 - 1), stamp: int64(i), model: uint32(i % 3)}
			if i%2 == 1 {
				ents[i].hash = rng.Uint64() >> 16
			}
		}
		got := sortByHash(ents, nil, &keys)
		want := slices.Clone(ents)
		slices.SortStableFunc(want, func(a, b ixEnt) int { return cmp.Compare(a.hash, b.hash) })
		if !slices.Equal(got, want) {
			t.Fatalf("n=%d: sortByHash differs from a stable sort", n)
		}
		if n > 0 && (ents[0].stamp != 0 || ents[n-1].stamp != int64(n-1)) {
			t.Fatalf("n=%d: the input was changed", n)
		}
	}
}
