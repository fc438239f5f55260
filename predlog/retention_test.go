package predlog

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// countKeys counts the keys under a tag.
func countKeys(t *testing.T, l *Log, tag byte) int {
	t.Helper()
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tag}, UpperBound: []byte{tag + 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	return n
}

func TestPruneByAge(t *testing.T) {
	c := testConfig(t)
	c.IndexRunSize = 16 // runs, merged ones too, for retention to drop
	c.MaxAge = time.Hour
	c.MaxBytes = -1
	l := openLog(t, c)
	g := newDemoGen(10)
	appendN := func(n int, models ...string) (ids []string) {
		for i := 0; i < n; i++ {
			r := g.next()
			r.Model = models[i%len(models)]
			if err := l.AppendDurable(r); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, r.RequestID)
		}
		return ids
	}
	oldIDs := appendN(100, "a", "b")
	if _, err := l.PutLabels("a", []Label{{ID: oldIDs[0], Value: 1}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	mid := time.Now()
	time.Sleep(2 * time.Millisecond)
	newIDs := appendN(50, "a", "b")
	if _, err := l.PutLabels("a", []Label{{ID: newIDs[0], Value: 0}}); err != nil {
		t.Fatal(err)
	}

	// Nothing is an hour old yet.
	if res, err := l.Prune(time.Now()); err != nil || res != (PruneResult{}) {
		t.Fatalf("Prune(now) = %+v, %v", res, err)
	}
	// An hour after mid, the first hundred are too old.
	res, err := l.Prune(mid.Add(c.MaxAge))
	if err != nil || res.ByAge != 100 || res.Labels != 1 || res.BySize != 0 {
		t.Fatalf("Prune = %+v, %v", res, err)
	}
	for _, id := range oldIDs {
		if _, err := l.Get(id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("pruned %s: Get = %v", id, err)
		}
	}
	for _, id := range newIDs {
		if _, err := l.Get(id); err != nil {
			t.Fatalf("kept %s: %v", id, err)
		}
	}
	checkIndexPruned(t, l, len(newIDs))
	if n := countKeys(t, l, tagLabel); n != 1 {
		t.Fatalf("%d labels left, want 1", n)
	}
	if l.Stats().Pruned != 100 {
		t.Fatalf("stats %+v", l.Stats())
	}
}

func TestPruneBySize(t *testing.T) {
	c := testConfig(t)
	c.IndexRunSize = 1000
	c.MaxAge = -1
	c.MaxBytes = -1
	l := openLog(t, c)
	g := newDemoGen(11)
	const n = 40000
	var ids []string
	for i := 0; i < n; i++ {
		r := g.next()
		if err := l.Append(r); err != nil {
			i--
			time.Sleep(time.Millisecond) // ring full: let the committer catch up
			continue
		}
		ids = append(ids, r.RequestID)
	}
	if err := closeLog(t, l); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, c)
	if err := l.db.Flush(); err != nil {
		t.Fatal(err)
	}
	full := l.liveBytes()
	if err := closeLog(t, l); err != nil {
		t.Fatal(err)
	}
	c.MaxBytes = int64(full / 2)
	if c.MaxBytes < 1<<20 {
		t.Fatalf("only %d bytes on disk: the test needs more records", full)
	}
	l = openLog(t, c)
	res, err := l.Prune(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	after := l.db.Metrics().DiskSpaceUsage()
	t.Logf("%d bytes for %d records; MaxBytes %d; pruned %d; %d bytes after", full, n, c.MaxBytes, res.BySize, after)
	if res.BySize < n/4 || res.BySize > n*3/4 || res.ByAge != 0 {
		t.Fatalf("Prune = %+v", res)
	}
	// The pass compacts what it deleted, but a compaction Pebble started on
	// its own after the reopen can still be writing out index tables that
	// predate the tombstones: the live size settles once it ends.
	waitFor(t, "the live bytes to fall under MaxBytes", func() bool { return l.liveBytes() <= uint64(c.MaxBytes) })
	// Pebble keeps obsolete WAL files for reuse (about a memtable's worth)
	// beside what MaxBytes bounds.
	waitFor(t, "the obsolete tables to go", func() bool {
		m := l.db.Metrics()
		after = m.DiskSpaceUsage()
		return after <= uint64(c.MaxBytes)+m.WAL.ObsoletePhysicalSize
	})
	t.Logf("%d bytes on disk once the obsolete files went", after)
	// The oldest went, the newest stayed.
	if _, err := l.Get(ids[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("oldest record: %v", err)
	}
	if _, err := l.Get(ids[n-1]); err != nil {
		t.Fatalf("newest record: %v", err)
	}
	checkIndexPruned(t, l, n-res.BySize)
	// Under the limit now: a second pass removes nothing.
	if res, err := l.Prune(time.Now()); err != nil || res.BySize != 0 {
		t.Fatalf("second Prune = %+v, %v", res, err)
	}
}

// checkIndexPruned checks that retention left no index run whose records
// are all gone, and that the index still holds the live records' entries.
func checkIndexPruned(t *testing.T, l *Log, live int) {
	t.Helper()
	floor, err := l.oldestStamp()
	if err != nil {
		t.Fatal(err)
	}
	l.ix.mu.Lock()
	runs := slices.Clone(l.ix.runs)
	l.ix.mu.Unlock()
	for _, r := range runs {
		if r.last < floor {
			t.Fatalf("index run %+v kept, but retention removed every record before %d", r, floor)
		}
	}
	if st := l.IndexStats(); int(st.OnDisk)+st.Pending < live {
		t.Fatalf("index %+v: fewer entries than the %d live records", st, live)
	}
}

func TestBackgroundPrune(t *testing.T) {
	c := testConfig(t)
	c.MaxAge = time.Second
	c.PruneInterval = 20 * time.Millisecond
	l := openLog(t, c)
	if err := l.AppendDurable(newDemoGen(12).next()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the background pass to prune", func() bool { return l.Stats().Pruned == 1 })
}
