package drift

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultBootstrapRows is how many scored rows become the reference of a
// version registered without a profile (the registry policy's default
// reference_sample_size).
const DefaultBootstrapRows = 10000

// BootstrapConfig says how a version registered without a reference
// profile gets one from its traffic. Zero values mean the defaults.
type BootstrapConfig struct {
	// Rows is the size of the reference sample (DefaultBootstrapRows).
	Rows int
	// Period is how long the sample is drawn for: a uniform reservoir
	// sample of every row scored from the first one until Period has passed
	// (and at least Rows rows were seen), so a day's period gives a
	// reference of the whole day rather than of the hour the version
	// happened to be deployed in. 0 takes the first Rows rows, at once.
	Period time.Duration
	// Seed seeds the reservoir's random choices.
	Seed uint64
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Profile says how the sample becomes a profile; Profile.Inputs must
	// be set.
	Profile ProfileOptions
}

// Bootstrap collects a sample of a version's scored rows, then builds its
// reference profile from them. Observe is safe for concurrent use and does
// not allocate. Without a period, until the sample is full each call claims
// a slot with one atomic add (a cost the bootstrap phase pays, not steady
// state), and after it a single load; with one, each call takes a mutex and
// reads the clock until the period is over, then a single load.
type Bootstrap struct {
	opts    ProfileOptions
	n       int64
	width   int
	period  time.Duration
	now     func() time.Time
	rows    []float32
	scores  []float32
	claimed atomic.Int64
	done    atomic.Int64 // rows in the sample
	seen    atomic.Int64 // rows observed
	full    atomic.Bool

	mu    sync.Mutex // with a period: the reservoir, rng and start
	rng   *rand.Rand
	start time.Time
}

// NewBootstrap returns a bootstrap of the first n rows (0:
// DefaultBootstrapRows) for rows shaped by opts.Inputs, which must be set;
// the profile is built with opts.
func NewBootstrap(n int, opts ProfileOptions) (*Bootstrap, error) {
	return NewBootstrapConfig(BootstrapConfig{Rows: n, Profile: opts})
}

// NewBootstrapConfig returns a bootstrap as cfg says.
func NewBootstrapConfig(cfg BootstrapConfig) (*Bootstrap, error) {
	n, opts := cfg.Rows, cfg.Profile
	if n == 0 {
		n = DefaultBootstrapRows
	}
	if n < MinProfileRows || n > 10_000_000 {
		return nil, fieldErr(ErrInvalidConfig, "rows", n, fmt.Sprintf("must be in [%d, 10000000]", MinProfileRows))
	}
	if cfg.Period < 0 {
		return nil, fieldErr(ErrInvalidConfig, "period", cfg.Period, "must be >= 0 (0: the first rows)")
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if len(opts.Inputs) == 0 {
		return nil, fieldErr(ErrInvalidConfig, "inputs", nil, "must list the model's inputs so rows have a known width")
	}
	b := &Bootstrap{opts: opts, n: int64(n), period: cfg.Period, now: cfg.Now,
		rng: rand.New(rand.NewPCG(cfg.Seed, 0x626f6f74737472))}
	if b.now == nil {
		b.now = time.Now
	}
	for _, in := range opts.Inputs {
		b.width += in.Width
	}
	if int64(b.width)*b.n > 1<<28 {
		return nil, fieldErr(ErrInvalidConfig, "rows", n, fmt.Sprintf("times the row width (%d) must be at most 2^28 values", b.width))
	}
	b.rows = make([]float32, b.n*int64(b.width))
	b.scores = make([]float32, b.n)
	return b, nil
}

// Observe offers the row and its score to the sample. It returns true to
// exactly one caller: the one whose row completed the sample (with a
// period, the first row after the period once Rows rows were seen), which
// should then call Profile (off the request path) and record the new
// reference. A row of the wrong width is ErrRowWidth.
func (b *Bootstrap) Observe(row []float32, score float32) (full bool, err error) {
	if len(row) != b.width {
		return false, ErrRowWidth
	}
	if b.period > 0 {
		return b.observeReservoir(row, score), nil
	}
	if b.claimed.Load() >= b.n {
		return false, nil
	}
	i := b.claimed.Add(1) - 1
	if i >= b.n {
		return false, nil
	}
	b.seen.Add(1)
	b.put(i, row, score)
	if b.done.Add(1) == b.n {
		b.full.Store(true)
		return true, nil
	}
	return false, nil
}

func (b *Bootstrap) put(i int64, row []float32, score float32) {
	copy(b.rows[i*int64(b.width):(i+1)*int64(b.width)], row)
	b.scores[i] = score
}

// observeReservoir is Algorithm R: row k (from 1) replaces a random slot
// with probability n/k, so at any time the sample is uniform over every
// row seen.
func (b *Bootstrap) observeReservoir(row []float32, score float32) bool {
	if b.full.Load() {
		return false
	}
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.full.Load() {
		return false
	}
	k := b.seen.Add(1)
	if k == 1 {
		b.start = now
	}
	switch {
	case k <= b.n:
		b.put(k-1, row, score)
		b.done.Store(k)
	default:
		if j := b.rng.Int64N(k); j < b.n {
			b.put(j, row, score)
		}
	}
	if k >= b.n && now.Sub(b.start) >= b.period {
		b.full.Store(true)
		return true
	}
	return false
}

// Rows returns how many rows are in the sample so far.
func (b *Bootstrap) Rows() int64 { return min(b.done.Load(), b.n) }

// Full reports whether the sample is complete (and frozen).
func (b *Bootstrap) Full() bool { return b.full.Load() }

// Progress is how far a bootstrap is: what a drift report shows instead of
// statistics until the reference exists.
type Progress struct {
	// Rows are the rows in the sample and Target the rows it needs.
	Rows   int64 `json:"rows"`
	Target int64 `json:"target"`
	// Seen is every row observed (more than Rows once a reservoir replaces).
	Seen int64 `json:"seen"`
	// Until is when the sampling period ends (zero without a period, or
	// before the first row).
	Until time.Time `json:"until,omitzero"`
	// Done is set once the sample is complete.
	Done bool `json:"done"`
}

// Progress reports the bootstrap's progress.
func (b *Bootstrap) Progress() Progress {
	p := Progress{Rows: b.Rows(), Target: b.n, Seen: b.seen.Load(), Done: b.Full()}
	if b.period > 0 {
		b.mu.Lock()
		if !b.start.IsZero() {
			p.Until = b.start.Add(b.period)
		}
		b.mu.Unlock()
	}
	return p
}

// String says it for a person: "3,120 of 10,000 reference rows", and with
// a period "10,000 of 10,000 reference rows, sampled from 48,200 rows
// scored so far, until 2026-03-02T12:00:00Z".
func (p Progress) String() string {
	s := thousands(p.Rows) + " of " + thousands(p.Target) + " reference rows"
	if !p.Until.IsZero() {
		s += ", sampled from " + thousands(p.Seen) + " rows scored so far, until " + p.Until.UTC().Format(time.RFC3339)
	}
	return s
}

// thousands formats n with commas between groups of three digits.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	out := make([]byte, 0, len(s)+len(s)/3+1)
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// Profile builds the reference from the sample. It returns
// ErrNotEnoughRows, with the progress, until the sample is complete.
func (b *Bootstrap) Profile() (*Profile, error) {
	if !b.Full() {
		return nil, fmt.Errorf("%w: the bootstrap has %s", ErrNotEnoughRows, b.Progress())
	}
	b.mu.Lock() // a reservoir is frozen once full; this orders the reads after its last write
	defer b.mu.Unlock()
	o := b.opts
	o.MaxRows = max(o.MaxRows, int(b.n))
	pb := NewProfileBuilder(o)
	for i := range b.Rows() {
		if err := pb.AddScored(b.rows[i*int64(b.width):(i+1)*int64(b.width)], b.scores[i]); err != nil {
			return nil, err
		}
	}
	return pb.Build()
}
