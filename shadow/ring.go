package shadow

import "time"

// Defaults of WindowConfig's zero values.
const (
	DefaultWindow  = time.Minute
	DefaultWindows = 60
	// maxWindows bounds the ring: each window of a pair holds two latency
	// histograms (about 20 KB each), so a ring is capped near 100 MB.
	maxWindows = 2048
	// maxWindow keeps window arithmetic (length × count) inside int64.
	maxWindow = 30 * 24 * time.Hour
)

// WindowConfig says how statistics are cut into tumbling windows. Zero
// values mean the defaults.
type WindowConfig struct {
	// Window is the length of a window (1 minute). Windows are aligned on
	// multiples of it since the Unix epoch, so every node's window n covers
	// the same time and their exports merge.
	Window time.Duration
	// Windows is how many windows are kept, the live one included (60).
	// A sample older than that is counted as late and dropped.
	Windows int
	// Now is the clock (time.Now when nil). Tests pass a fake one.
	Now func() time.Time
}

func (c WindowConfig) withDefaults() WindowConfig {
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.Windows == 0 {
		c.Windows = DefaultWindows
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate returns an ErrInvalidConfig error naming the first bad field.
func (c WindowConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Window < time.Millisecond || c.Window > maxWindow:
		return configErr("window", c.Window, "must be in [1ms, 720h]")
	case c.Windows < 1 || c.Windows > maxWindows:
		return configErr("windows", c.Windows, "must be in [1, 2048]")
	}
	return nil
}

// ring keeps the last n windows of one statistic, by window number mod n.
// Its owner serialises access. A slot is allocated on the first sample of
// its window and reused (reset) when a later window takes its place, so a
// quiet pair costs nothing and a busy one allocates once per slot.
type ring[T any] struct {
	win   int64 // window length in ns
	now   func() time.Time
	slots []ringSlot[T]
	make  func() *T
	reset func(*T)
}

type ringSlot[T any] struct {
	id int64
	v  *T // nil until the slot's first sample
}

func newRing[T any](cfg WindowConfig, mk func() *T, reset func(*T)) *ring[T] {
	return &ring[T]{
		win: int64(cfg.Window), now: cfg.Now,
		slots: make([]ringSlot[T], cfg.Windows),
		make:  mk, reset: reset,
	}
}

func (r *ring[T]) number(t time.Time) int64 { return floorDiv(t.UnixNano(), r.win) }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func mod(a, n int64) int64 { return ((a % n) + n) % n }

// at returns the window statistic that time t falls in, or nil when t is
// older than the ring reaches. A time ahead of the clock (another node's
// skew) counts in the current window rather than pushing a future window
// over a kept one.
func (r *ring[T]) at(t time.Time) *T {
	cur := r.number(r.now())
	k := min(r.number(t), cur)
	if k <= cur-int64(len(r.slots)) {
		return nil
	}
	s := &r.slots[mod(k, int64(len(r.slots)))]
	switch {
	case s.v == nil:
		s.v, s.id = r.make(), k
	case s.id < k:
		r.reset(s.v)
		s.id = k
	case s.id > k:
		// The slot already holds a newer window: k has left the ring.
		return nil
	}
	return s.v
}

// each calls f on every kept window of the last horizon (the live window
// and those that started within horizon of now), oldest first; a horizon
// of at most one window is the live window alone.
func (r *ring[T]) each(horizon time.Duration, f func(id int64, v *T)) {
	cur := r.number(r.now())
	n := int64(len(r.slots))
	if h := int64(horizon); h < r.win*n {
		n = max(1, (h+r.win-1)/r.win)
	}
	for k := cur - n + 1; k <= cur; k++ {
		if s := &r.slots[mod(k, int64(len(r.slots)))]; s.v != nil && s.id == k {
			f(k, s.v)
		}
	}
}

// get returns window k if it is kept.
func (r *ring[T]) get(k int64) *T {
	cur := r.number(r.now())
	if k > cur || k <= cur-int64(len(r.slots)) {
		return nil
	}
	if s := &r.slots[mod(k, int64(len(r.slots)))]; s.v != nil && s.id == k {
		return s.v
	}
	return nil
}
