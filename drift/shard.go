package drift

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// maxShards bounds the shards of one recorder: each holds a full copy of
// the counters.
const maxShards = 256

// shard is one copy of a sketch's counters, owned by whoever holds mu. Its
// counters are allocated on their own (never next to another shard's), and
// the struct is padded to two cache lines so two shards' mutexes never
// share one.
type shard struct {
	mu     sync.Mutex
	counts []uint32
	sums   []float64
	_      [128 - 8 - 24 - 24]byte
}

// recorder is the sharded, allocation-free front of a sketch: Observe takes
// one shard's mutex, uncontended in the common case, and increments plain
// uint32 counters. A goroutine finds its shard through a sync.Pool of hints:
// the pool is per P, so the goroutines of one P keep using one shard and
// its counters stay in that core's cache; a hint whose shard is busy moves
// on to the next free one (TryLock), so two Ps that picked the same shard
// drift apart instead of queueing.
type recorder struct {
	lay    *layout
	shards []*shard
	hints  sync.Pool
	next   atomic.Uint32 // round-robin start for new hints (rare: pool misses)
}

// hint is a goroutine's (in practice a P's) preferred shard.
type hint struct{ i int }

func newRecorder(lay *layout, n int) *recorder {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	n = min(n, maxShards)
	r := &recorder{lay: lay, shards: make([]*shard, n)}
	for i := range r.shards {
		r.shards[i] = &shard{counts: make([]uint32, lay.nCounts), sums: make([]float64, lay.nSums)}
	}
	r.hints.New = func() any { return &hint{i: int(r.next.Add(1)-1) % len(r.shards)} }
	return r
}

// observe records one row. The caller has checked the row's width.
func (r *recorder) observe(row []float32, score float32) {
	h := r.hints.Get().(*hint)
	sh := r.acquire(h)
	r.lay.observe(sh.counts, sh.sums, row, score)
	sh.mu.Unlock()
	r.hints.Put(h)
}

// acquire locks the hint's shard, or the next free one (remembering it in
// the hint), or, when every shard is busy, waits for the hint's own.
func (r *recorder) acquire(h *hint) *shard {
	sh := r.shards[h.i]
	if sh.mu.TryLock() {
		return sh
	}
	n := len(r.shards)
	for k := 1; k < n; k++ {
		i := (h.i + k) % n
		if s := r.shards[i]; s.mu.TryLock() {
			h.i = i
			return s
		}
	}
	sh.mu.Lock()
	return sh
}

// addTo adds every shard into dst, and zeroes the shards when reset is set
// (so each row is counted exactly once across a rotation). Shards are
// locked one at a time: writers on other shards go on.
func (r *recorder) addTo(dst *state, reset bool) {
	for _, sh := range r.shards {
		sh.mu.Lock()
		addCounts(dst.counts, sh.counts)
		addSums(dst.sums, sh.sums)
		if reset {
			clear(sh.counts)
			clear(sh.sums)
		}
		sh.mu.Unlock()
	}
}

// addTo32 is addTo into a ring window's 32-bit counters.
func (r *recorder) addTo32(dst *frozen, reset bool) {
	for _, sh := range r.shards {
		sh.mu.Lock()
		addCounts32(dst.counts, sh.counts)
		addSums(dst.sums, sh.sums)
		if reset {
			clear(sh.counts)
			clear(sh.sums)
		}
		sh.mu.Unlock()
	}
}

// state is a sketch's merged counters: 64-bit, so merging a cluster's day
// cannot overflow.
type state struct {
	counts []uint64
	sums   []float64
}

func newState(l *layout) state {
	return state{counts: make([]uint64, l.nCounts), sums: make([]float64, l.nSums)}
}

func (s *state) add(o *state) {
	for i, c := range o.counts {
		s.counts[i] += c
	}
	addSums(s.sums, o.sums)
}

func (s *state) clone() state {
	return state{counts: append([]uint64(nil), s.counts...), sums: append([]float64(nil), s.sums...)}
}

// frozen is a closed window kept in a ring, in 32-bit counters to halve the
// ring's memory (a cell would need more than 4·10⁹ rows in one rollup
// bucket to saturate, which addCounts32 turns into a saturated count rather
// than a wrap).
type frozen struct {
	id     int64 // window (or bucket) number; counts are valid only for it
	counts []uint32
	sums   []float64
}

func newFrozen(l *layout) frozen {
	return frozen{id: -1 << 62, counts: make([]uint32, l.nCounts), sums: make([]float64, l.nSums)}
}

func (f *frozen) reset(id int64) {
	f.id = id
	clear(f.counts)
	clear(f.sums)
}

func (f *frozen) addInto(dst *state) {
	addCounts(dst.counts, f.counts)
	addSums(dst.sums, f.sums)
}

func addCounts(dst []uint64, src []uint32) {
	dst = dst[:len(src)]
	for i, c := range src {
		dst[i] += uint64(c)
	}
}

func addCounts32(dst, src []uint32) {
	dst = dst[:len(src)]
	for i, c := range src {
		s := dst[i] + c
		if s < c {
			s = ^uint32(0)
		}
		dst[i] = s
	}
}

func addSums(dst, src []float64) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] += v
	}
}
