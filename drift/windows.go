package drift

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of WindowConfig's zero values.
const (
	DefaultWindow    = time.Minute
	DefaultRollup    = time.Hour
	DefaultRetention = 24 * time.Hour
)

// WindowConfig says how a Windows cuts traffic into windows. Zero values
// mean the defaults.
type WindowConfig struct {
	// Window is the length of a tumbling window (1 minute). Windows are
	// aligned on multiples of it since the Unix epoch, so every node's
	// window n covers the same time and their sketches merge.
	Window time.Duration
	// Rollup is how long windows are kept one by one (1 hour); they are also
	// added into rollup buckets of this length, aligned the same way.
	Rollup time.Duration
	// Retention is how far back rollup buckets reach (24 hours).
	Retention time.Duration
	// Shards is the live window's shard count (0: GOMAXPROCS).
	Shards int
	// Now is the clock (time.Now when nil). Tests pass a fake one.
	Now func() time.Time
}

func (c WindowConfig) withDefaults() WindowConfig {
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.Rollup == 0 {
		c.Rollup = DefaultRollup
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate returns a *FieldError naming the first bad field (after
// defaults).
func (c WindowConfig) Validate() error {
	c = c.withDefaults()
	bad := func(field string, v any, reason string) error { return fieldErr(ErrInvalidConfig, field, v, reason) }
	switch {
	case c.Window < time.Millisecond:
		return bad("window", c.Window, "must be at least 1ms")
	case c.Rollup < c.Window || c.Rollup%c.Window != 0:
		return bad("rollup", c.Rollup, fmt.Sprintf("must be a multiple of the window (%s)", c.Window))
	case c.Rollup/c.Window > 10000:
		return bad("rollup", c.Rollup, fmt.Sprintf("must hold at most 10000 windows of %s", c.Window))
	case c.Retention < c.Rollup || c.Retention%c.Rollup != 0:
		return bad("retention", c.Retention, fmt.Sprintf("must be a multiple of the rollup (%s)", c.Rollup))
	case c.Retention/c.Rollup > 10000:
		return bad("retention", c.Retention, fmt.Sprintf("must hold at most 10000 rollups of %s", c.Rollup))
	case c.Shards < 0 || c.Shards > maxShards:
		return bad("shards", c.Shards, fmt.Sprintf("must be in [0, %d]", maxShards))
	}
	return nil
}

// Windows keeps one model version's drift over time: a live window taking
// Observe, the last Rollup/Window closed windows one by one, and rollup
// buckets (sums of closed windows) back to Retention. The clock drives
// rotation: the first Observe, Rotate or read after a window's end closes
// it. Only the live window is sharded; closed windows are single 32-bit
// copies of the counters.
//
// Memory, with c counters per sketch (see Profile and doc.go) and the
// defaults: (60 windows + 25 buckets) × 4c bytes, plus one 4c-byte shard per
// P for the live window.
type Windows struct {
	lay  *layout
	prof *Profile
	cfg  WindowConfig
	win  int64 // window length in ns
	per  int64 // windows per bucket

	live     *recorder
	cur      atomic.Int64 // the live window's number
	deadline atomic.Int64 // its end, in Unix ns

	mu      sync.Mutex // guards rotation and the rings
	windows []frozen   // closed windows, by number mod len
	buckets []frozen   // rollup buckets, by number mod len

	judged judgedRuns // Evaluate's reports of complete runs
}

// NewWindows returns the windows of a version with profile p, starting
// with the clock's current window.
func NewWindows(p *Profile, cfg WindowConfig) (*Windows, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	l := compile(p)
	w := &Windows{
		lay: l, prof: p, cfg: cfg,
		win:     int64(cfg.Window),
		per:     int64(cfg.Rollup / cfg.Window),
		live:    newRecorder(l, cfg.Shards),
		windows: make([]frozen, cfg.Rollup/cfg.Window),
		buckets: make([]frozen, cfg.Retention/cfg.Rollup+1),
	}
	for i := range w.windows {
		w.windows[i] = newFrozen(l)
	}
	for i := range w.buckets {
		w.buckets[i] = newFrozen(l)
	}
	k := w.number(cfg.Now())
	w.cur.Store(k)
	w.deadline.Store((k + 1) * w.win)
	return w, nil
}

// Profile returns the profile the windows compare against.
func (w *Windows) Profile() *Profile { return w.prof }

// Config returns the configuration, with defaults filled in.
func (w *Windows) Config() WindowConfig { return w.cfg }

// number is the window a time falls in.
func (w *Windows) number(t time.Time) int64 { return floorDiv(t.UnixNano(), w.win) }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func mod(a, n int64) int64 { return ((a % n) + n) % n }

// Observe counts one scored row in the live window (see Sketch.Observe);
// it reads the clock and, at a window's end, closes it first. It does not
// allocate. Rows observed while another goroutine closes a window may land
// in the next one; none is lost or counted twice.
func (w *Windows) Observe(row []float32, score float32) error {
	return w.ObserveAt(w.cfg.Now(), row, score)
}

// ObserveAt is Observe with the time supplied by the caller (saving a clock
// read when it has one, e.g. the request's arrival).
func (w *Windows) ObserveAt(t time.Time, row []float32, score float32) error {
	if len(row) != w.lay.width {
		return ErrRowWidth
	}
	if t.UnixNano() >= w.deadline.Load() && w.mu.TryLock() {
		// Whoever holds mu is rotating (or reading, and rotates first), so
		// the hot path never waits for it.
		w.rotate(w.number(t))
		w.mu.Unlock()
	}
	w.live.observe(row, score)
	return nil
}

// Rotate closes the live window if the clock has passed its end. Observe
// and the reads do it too; a ticker calling Rotate keeps that work off the
// request path.
func (w *Windows) Rotate() {
	w.mu.Lock()
	w.rotate(w.number(w.cfg.Now()))
	w.mu.Unlock()
}

// rotate makes k the live window. Caller holds mu.
func (w *Windows) rotate(k int64) {
	cur := w.cur.Load()
	if k <= cur {
		return
	}
	slot := &w.windows[mod(cur, int64(len(w.windows)))]
	slot.reset(cur)
	w.live.addTo32(slot, true)
	b := floorDiv(cur, w.per)
	bucket := &w.buckets[mod(b, int64(len(w.buckets)))]
	if bucket.id != b {
		bucket.reset(b)
	}
	addCounts32(bucket.counts, slot.counts)
	addSums(bucket.sums, slot.sums)
	w.cur.Store(k)
	w.deadline.Store((k + 1) * w.win)
}

// Snapshot returns the merged sketch of the last horizon: the live window
// and the closed windows that start within horizon of now, so a horizon
// of at most one window is the live window alone. Horizons longer than
// Rollup are served from the rollup buckets and rounded out to whole
// buckets (Snapshot(24h) at 14:37 covers from 14:00 the day before);
// horizons beyond Retention are cut to it.
func (w *Windows) Snapshot(horizon time.Duration) *Sketch {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rotate(w.number(w.cfg.Now()))
	cur := w.cur.Load()
	horizon = min(horizon, w.cfg.Retention+w.cfg.Rollup)      // no overflow below
	n := max(1, int64((horizon+w.cfg.Window-1)/w.cfg.Window)) // windows, the live one included
	s := newSketch(w.lay, w.cfg.Shards)
	if n <= int64(len(w.windows))+1 {
		for k := cur - n + 1; k < cur; k++ {
			if f := &w.windows[mod(k, int64(len(w.windows)))]; f.id == k {
				f.addInto(&s.st)
			}
		}
	} else {
		last := floorDiv(cur, w.per)
		first := max(floorDiv(cur-n+1, w.per), last-int64(len(w.buckets))+1)
		for b := first; b <= last; b++ {
			if f := &w.buckets[mod(b, int64(len(w.buckets)))]; f.id == b {
				f.addInto(&s.st)
			}
		}
	}
	w.live.addTo(&s.st, false)
	return s
}

// Recent returns the last k closed windows, oldest first, as sketches (an
// empty sketch for a window without traffic): what Sustained judges. k is
// capped at Rollup/Window.
func (w *Windows) Recent(k int) []*Sketch {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rotate(w.number(w.cfg.Now()))
	k = max(0, min(k, len(w.windows)))
	cur := w.cur.Load()
	out := make([]*Sketch, 0, k)
	for id := cur - int64(k); id < cur; id++ {
		s := newSketch(w.lay, w.cfg.Shards)
		if f := &w.windows[mod(id, int64(len(w.windows)))]; f.id == id {
			f.addInto(&s.st)
		}
		out = append(out, s)
	}
	return out
}

// Current returns the live window's number and start time.
func (w *Windows) Current() (int64, time.Time) {
	k := w.cur.Load()
	return k, time.Unix(0, k*w.win)
}

// MemoryBytes is the memory of the counters: the rings and the live
// window's shards.
func (w *Windows) MemoryBytes() int {
	per := 4*w.lay.nCounts + 8*w.lay.nSums
	return (len(w.windows)+len(w.buckets))*per + len(w.live.shards)*(128+per)
}
