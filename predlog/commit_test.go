package predlog

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// walGate is an errorfs injector on the WAL's fsyncs: it can hold them until
// released, or fail them.
type walGate struct {
	mu    sync.Mutex
	held  chan struct{} // non-nil: syncs wait until it is closed
	fail  atomic.Bool
	syncs atomic.Int64 // syncs that reached the gate while it was held
}

func (g *walGate) String() string { return "walGate" }

func (g *walGate) MaybeError(op errorfs.Op) error {
	if !strings.HasSuffix(op.Path, ".log") {
		return nil
	}
	switch op.Kind {
	case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
	default:
		return nil
	}
	if g.fail.Load() {
		return errorfs.ErrInjected
	}
	g.mu.Lock()
	held := g.held
	g.mu.Unlock()
	if held != nil {
		g.syncs.Add(1)
		<-held
	}
	return nil
}

func (g *walGate) hold() {
	g.mu.Lock()
	g.held = make(chan struct{})
	g.mu.Unlock()
}

func (g *walGate) release() {
	g.mu.Lock()
	close(g.held)
	g.held = nil
	g.mu.Unlock()
}

func gatedConfig(t testing.TB) (Config, *walGate) {
	c := testConfig(t)
	g := &walGate{}
	c.FS = errorfs.Wrap(vfs.Default, g)
	return c, g
}

// TestConcurrentAppends runs async and durable appenders at once on a small
// ring: async ones may be dropped, durable ones never are, and the counters
// add up.
func TestConcurrentAppends(t *testing.T) {
	c := testConfig(t)
	c.RingSize = 64
	l := openLog(t, c)
	const async, durable, each = 6, 3, 1500
	var wg sync.WaitGroup
	var asyncOK, asyncDropped atomic.Uint64
	durableIDs := make([][]string, durable)
	for w := 0; w < async+durable; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := newDemoGen(uint64(100 + w))
			n := each
			if w >= async {
				n = each / 10
			}
			for i := 0; i < n; i++ {
				r := g.next()
				if w >= async {
					if err := l.AppendDurable(r); err != nil {
						t.Errorf("AppendDurable: %v", err)
						return
					}
					durableIDs[w-async] = append(durableIDs[w-async], r.RequestID)
					continue
				}
				switch err := l.Append(r); {
				case err == nil:
					asyncOK.Add(1)
				case errors.Is(err, ErrDropped):
					asyncDropped.Add(1)
				default:
					t.Errorf("Append: %v", err)
					return
				}
			}
		}()
	}
	within(t, "the appenders", wg.Wait)
	if err := closeLog(t, l); err != nil {
		t.Fatal(err)
	}
	s := l.Stats()
	total := uint64(async*each + durable*(each/10))
	if s.Appended != total || s.Appended != s.Committed+s.Dropped || s.Failed != 0 || s.Pending != 0 {
		t.Fatalf("counters do not add up: %+v (offered %d)", s, total)
	}
	if s.Dropped != asyncDropped.Load() || s.Committed != asyncOK.Load()+uint64(durable*(each/10)) {
		t.Fatalf("stats %+v, callers saw %d queued and %d dropped", s, asyncOK.Load(), asyncDropped.Load())
	}
	var sizes uint64
	for _, n := range s.BatchHist {
		sizes += n
	}
	if sizes != s.Batches || s.MaxBatch == 0 || s.MaxBatch > uint64(c.RingSize) {
		t.Fatalf("batch stats %+v", s)
	}
	t.Logf("%d committed in %d group commits (max %d), %d dropped, %d syncs", s.Committed, s.Batches, s.MaxBatch, s.Dropped, s.Syncs)
	l = openLog(t, c)
	for _, ids := range durableIDs {
		for _, id := range ids {
			if _, err := l.Get(id); err != nil {
				t.Fatalf("durable record %s: %v", id, err)
			}
		}
	}
}

// TestRingFullDropsAsyncOnly holds the committer in a WAL fsync, fills the
// ring, and checks that async appends are dropped and counted while a
// durable append waits for room instead.
func TestRingFullDropsAsyncOnly(t *testing.T) {
	c, gate := gatedConfig(t)
	c.RingSize = 10
	l := openLog(t, c)
	g := newDemoGen(5)
	gate.hold()
	first := make(chan error, 1)
	go func() { first <- l.AppendDurable(g.next()) }()
	waitFor(t, "the committer to reach the fsync", func() bool { return gate.syncs.Load() > 0 })

	g2 := newDemoGen(6)
	for i := 0; i < c.RingSize; i++ {
		if err := l.Append(g2.next()); err != nil {
			t.Fatalf("append %d into a ring with room: %v", i, err)
		}
	}
	for i := 0; i < 5; i++ {
		if err := l.Append(g2.next()); !errors.Is(err, ErrDropped) {
			t.Fatalf("append into a full ring = %v, want ErrDropped", err)
		}
	}
	waiting := make(chan error, 1)
	late := cloneRecord(g2.next())
	go func() { waiting <- l.AppendDurable(&late) }()
	select {
	case err := <-waiting:
		t.Fatalf("durable append into a full ring returned %v before there was room", err)
	case <-time.After(50 * time.Millisecond):
	}
	gate.release()
	if err := recv(t, "the first durable append", first); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, "the durable append that waited for room", waiting); err != nil {
		t.Fatal(err)
	}
	if err := closeLog(t, l); err != nil {
		t.Fatal(err)
	}
	s := l.Stats()
	if s.Dropped != 5 || s.Committed != uint64(c.RingSize)+2 || s.Appended != s.Committed+s.Dropped {
		t.Fatalf("stats %+v", s)
	}
}

// TestAsyncSyncInterval checks that async commits are synced within
// SyncInterval when the log goes idle.
func TestAsyncSyncInterval(t *testing.T) {
	c := testConfig(t)
	c.SyncInterval = 20 * time.Millisecond
	l := openLog(t, c)
	if err := l.Append(newDemoGen(8).next()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the periodic sync", func() bool { return l.Stats().Syncs >= 1 })
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCommitFailureIsSticky fails the WAL fsync under a durable append: the
// append fails rather than acknowledge, Healthy reports it, and every later
// write is refused.
func TestCommitFailureIsSticky(t *testing.T) {
	c, gate := gatedConfig(t)
	l := openLog(t, c)
	g := newDemoGen(9)
	if err := l.AppendDurable(g.next()); err != nil {
		t.Fatal(err)
	}
	if err := l.Healthy(); err != nil {
		t.Fatal(err)
	}
	gate.fail.Store(true)
	err := l.AppendDurable(g.next())
	if !errors.Is(err, ErrUnhealthy) {
		t.Fatalf("durable append over a failing fsync = %v, want ErrUnhealthy", err)
	}
	if h := l.Healthy(); !errors.Is(h, ErrUnhealthy) {
		t.Fatalf("Healthy = %v", h)
	}
	gate.fail.Store(false) // the disk comes back: the log stays unhealthy
	if err := l.AppendDurable(g.next()); !errors.Is(err, ErrUnhealthy) {
		t.Fatalf("durable append after a failure = %v", err)
	}
	if err := l.Append(g.next()); !errors.Is(err, ErrUnhealthy) {
		t.Fatalf("async append after a failure = %v", err)
	}
	if _, err := l.PutLabels("fraud", []Label{{ID: "x", Value: 1}}); !errors.Is(err, ErrUnhealthy) {
		t.Fatalf("PutLabels after a failure = %v", err)
	}
	s := l.Stats()
	if s.CommitErrors == 0 || s.Failed != 1 || s.Dropped != 2 || s.Appended != s.Committed+s.Failed+s.Dropped {
		t.Fatalf("stats %+v", s)
	}
	if err := closeLog(t, l); !errors.Is(err, ErrUnhealthy) {
		t.Fatalf("Close = %v, want the sticky error", err)
	}
	t.Log("sticky error:", l.Healthy())
}

// TestRingBytesBound fills the ring by bytes, not records: big records are
// dropped once RingBytes is reached.
func TestRingBytesBound(t *testing.T) {
	c, gate := gatedConfig(t)
	c.MaxRecordBytes = 256 << 10
	c.RingBytes = 310 << 10
	l := openLog(t, c)
	gate.hold()
	first := make(chan error, 1)
	go func() { first <- l.AppendDurable(newDemoGen(13).next()) }()
	waitFor(t, "the committer to reach the fsync", func() bool { return gate.syncs.Load() > 0 })
	big := mixedRecord("big", RoleChampion)
	big.Inputs[4].Data = make([]byte, 100<<10)
	for i := 0; i < 3; i++ {
		big.RequestID = fmt.Sprint("big-", i)
		if err := l.Append(big); err != nil {
			t.Fatalf("record %d of 100 KiB into a 310 KiB ring: %v", i, err)
		}
	}
	if err := l.Append(big); !errors.Is(err, ErrDropped) {
		t.Fatalf("fourth 100 KiB record = %v, want ErrDropped", err)
	}
	if err := l.Append(newDemoGen(14).next()); err != nil {
		t.Fatalf("a small record that still fits: %v", err)
	}
	gate.release()
	if err := recv(t, "the first durable append", first); err != nil {
		t.Fatal(err)
	}
}

// TestAppendDoesNotAllocate pins the hot path: an async Append of a demo
// record allocates nothing on the caller's side (the committer's per-batch
// allocations are amortised over its batch, well under one per record).
func TestAppendDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	l := openLog(t, testConfig(t))
	recs := make([]Record, 256)
	g := newDemoGen(15)
	for i := range recs {
		recs[i] = cloneRecord(g.next())
	}
	for i := range recs { // warm the buffer pool and the ring's buffers
		_ = l.Append(&recs[i])
	}
	i := 0
	allocs := testing.AllocsPerRun(2000, func() {
		_ = l.Append(&recs[i%len(recs)])
		i++
	})
	if allocs >= 1 {
		t.Fatalf("Append allocates %.1f times per record", allocs)
	}
}

// TestShardedRingKeepsOrder: one goroutine's records are committed in the
// order it appended them, though they land in different shards of the ring
// and the committer swaps while they arrive.
func TestShardedRingKeepsOrder(t *testing.T) {
	c := testConfig(t)
	l := openLog(t, c)
	if len(l.shards) < 2 {
		t.Fatalf("the default ring has %d shards: the test wants several", len(l.shards))
	}
	g := newDemoGen(41)
	recs := make([]Record, 50000)
	for i := range recs {
		recs[i] = cloneRecord(g.next())
	}
	var ids []string
	start := time.Now()
	for i := 0; i < len(recs); {
		// As fast as Append goes, so appends land while a swap is going
		// through the shards.
		if err := l.Append(&recs[i]); err != nil {
			time.Sleep(time.Millisecond) // ring full
			continue
		}
		ids = append(ids, recs[i].RequestID)
		i++
	}
	waitFor(t, "the ring to drain", func() bool { return l.Stats().Pending == 0 })
	i := 0
	err := l.Scan("fraud", "", start.Add(-time.Second), time.Now().Add(time.Second), func(r *Record) error {
		if i >= len(ids) || r.RequestID != ids[i] {
			return fmt.Errorf("record %d is %s, want %s", i, r.RequestID, ids[min(i, len(ids)-1)])
		}
		i++
		return nil
	})
	if err != nil || i != len(ids) {
		t.Fatalf("after %d records in order: %v", i, err)
	}
}

// TestShardedRingKeepsEachCallersOrder: several goroutines append at once,
// each stamping its records with the time it appends them (as the gateway
// stamps a request with its start), and each one's records are committed in
// the order it appended them, whatever shards they land in and however the
// committer merges the shards.
func TestShardedRingKeepsEachCallersOrder(t *testing.T) {
	c := testConfig(t)
	l := openLog(t, c)
	const callers, each = 4, 20000
	start := time.Now()
	var wg sync.WaitGroup
	for w := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := newDemoGen(uint64(100 + w))
			for i := 0; i < each; {
				r := g.next()
				r.RequestID = fmt.Sprintf("w%d-%d", w, i)
				r.Time = time.Now().UnixNano()
				if err := l.Append(r); err != nil {
					time.Sleep(time.Millisecond) // ring full
					continue
				}
				i++
			}
		}()
	}
	within(t, "the appenders", wg.Wait)
	waitFor(t, "the ring to drain", func() bool { return l.Stats().Pending == 0 })
	var next [callers]int
	n := 0
	err := l.Scan("fraud", "", start.Add(-time.Second), time.Now().Add(time.Second), func(r *Record) error {
		var w, i int
		if _, err := fmt.Sscanf(r.RequestID, "w%d-%d", &w, &i); err != nil || w < 0 || w >= callers {
			return fmt.Errorf("unexpected id %q", r.RequestID)
		}
		if i != next[w] {
			return fmt.Errorf("caller %d: record %d committed where %d was due", w, i, next[w])
		}
		next[w]++
		n++
		return nil
	})
	if err != nil || n != callers*each {
		t.Fatalf("after %d records in order: %v", n, err)
	}
}
