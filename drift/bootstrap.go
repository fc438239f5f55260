package drift

import (
	"fmt"
	"sync/atomic"
)

// DefaultBootstrapRows is how many scored rows become the reference of a
// version registered without a profile (the registry policy's default
// reference_sample_size).
const DefaultBootstrapRows = 10000

// Bootstrap collects the first N scored rows of a version that has no
// reference profile, then builds one from them. Observe is safe for
// concurrent use and does not allocate; until the sample is full each call
// claims a slot with one atomic add on a shared counter (a cost the
// bootstrap phase pays, not steady state), and after it a single load.
type Bootstrap struct {
	opts    ProfileOptions
	n       int64
	width   int
	rows    []float32
	scores  []float32
	claimed atomic.Int64
	done    atomic.Int64
}

// NewBootstrap returns a bootstrap of n rows (0: DefaultBootstrapRows) for
// rows shaped by opts.Inputs, which must be set; the profile is built with
// opts.
func NewBootstrap(n int, opts ProfileOptions) (*Bootstrap, error) {
	if n == 0 {
		n = DefaultBootstrapRows
	}
	if n < MinProfileRows || n > 10_000_000 {
		return nil, fieldErr(ErrInvalidConfig, "rows", n, fmt.Sprintf("must be in [%d, 10000000]", MinProfileRows))
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if len(opts.Inputs) == 0 {
		return nil, fieldErr(ErrInvalidConfig, "inputs", nil, "must list the model's inputs so rows have a known width")
	}
	b := &Bootstrap{opts: opts, n: int64(n)}
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

// Observe keeps the row and its score if the sample is not full yet. It
// returns true to exactly one caller: the one whose row completed the
// sample, which should then call Profile (off the request path) and record
// the new reference. A row of the wrong width is ErrRowWidth.
func (b *Bootstrap) Observe(row []float32, score float32) (full bool, err error) {
	if len(row) != b.width {
		return false, ErrRowWidth
	}
	if b.claimed.Load() >= b.n {
		return false, nil
	}
	i := b.claimed.Add(1) - 1
	if i >= b.n {
		return false, nil
	}
	copy(b.rows[i*int64(b.width):(i+1)*int64(b.width)], row)
	b.scores[i] = score
	return b.done.Add(1) == b.n, nil
}

// Rows returns how many rows have been collected.
func (b *Bootstrap) Rows() int64 { return min(b.done.Load(), b.n) }

// Full reports whether the sample is complete.
func (b *Bootstrap) Full() bool { return b.done.Load() >= b.n }

// Profile builds the reference from the collected rows. It returns
// ErrNotEnoughRows until the sample is full.
func (b *Bootstrap) Profile() (*Profile, error) {
	if !b.Full() {
		return nil, fmt.Errorf("%w: bootstrap has %d of %d rows", ErrNotEnoughRows, b.Rows(), b.n)
	}
	o := b.opts
	o.MaxRows = max(o.MaxRows, int(b.n))
	pb := NewProfileBuilder(o)
	for i := range b.n {
		if err := pb.AddScored(b.rows[i*int64(b.width):(i+1)*int64(b.width)], b.scores[i]); err != nil {
			return nil, err
		}
	}
	return pb.Build()
}
