package drift

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// Sketch is the streaming state of one model version over one stretch of
// traffic: for every feature of its profile, counts over the profile's fine
// grid (numeric: PSI and JS through the coarse bins, KS and Wasserstein
// through the cells) or over its declared values (categorical: PSI, JS, χ²),
// and the same for the output score with the count of positive decisions.
//
// Observe is safe for concurrent use, allocation-free and sharded: see
// recorder. Sketches of the same profile add up exactly (Merge), so nodes'
// sketches combine into a cluster's and windows into a horizon; Export and
// Import carry one between nodes. Compare turns a sketch into a Report.
type Sketch struct {
	lay    *layout
	shards int

	mu  sync.Mutex // guards st
	st  state      // merged and imported counts
	rec atomic.Pointer[recorder]
}

// NewSketch returns an empty sketch for p, with one shard per P
// (GOMAXPROCS). p must be valid (parsed or built by this package).
func NewSketch(p *Profile) (*Sketch, error) {
	return NewSketchShards(p, 0)
}

// NewSketchShards is NewSketch with n shards (0: GOMAXPROCS; at most 256).
// One shard suits a sketch fed by one goroutine; each shard costs one copy
// of the counters.
func NewSketchShards(p *Profile, n int) (*Sketch, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return newSketch(compile(p), n), nil
}

func newSketch(l *layout, shards int) *Sketch {
	return &Sketch{lay: l, shards: shards, st: newState(l)}
}

// recorder returns the sketch's shards, creating them on first use so that
// sketches that are only read (snapshots, imports) never pay for them.
func (s *Sketch) recorder() *recorder {
	if r := s.rec.Load(); r != nil {
		return r
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rec.Load()
	if r == nil {
		r = newRecorder(s.lay, s.shards)
		s.rec.Store(r)
	}
	return r
}

// Observe counts one scored row: row holds the model's input columns (all
// inputs concatenated in the profile's order, Profile.RowWidth of them) and
// score the output score (ignored when the profile has no output). NaN and
// ±Inf count as missing; values outside the reference range land in the
// tails. It returns ErrRowWidth, without counting, when len(row) is wrong.
// It does not allocate.
func (s *Sketch) Observe(row []float32, score float32) error {
	if len(row) != s.lay.width {
		return ErrRowWidth
	}
	s.recorder().observe(row, score)
	return nil
}

// read returns a copy of everything the sketch has counted.
func (s *Sketch) read() state {
	s.mu.Lock()
	st := s.st.clone()
	s.mu.Unlock()
	if r := s.rec.Load(); r != nil {
		r.addTo(&st, false)
	}
	return st
}

// Rows returns the number of rows counted.
func (s *Sketch) Rows() int64 {
	s.mu.Lock()
	n := s.st.counts[0]
	s.mu.Unlock()
	if r := s.rec.Load(); r != nil {
		for _, sh := range r.shards {
			sh.mu.Lock()
			n += uint64(sh.counts[0])
			sh.mu.Unlock()
		}
	}
	return int64(n)
}

// Fingerprint is the fingerprint of the profile the sketch was made for.
func (s *Sketch) Fingerprint() uint64 { return s.lay.fp }

// Merge adds o's counts into s. Both must come from profiles with the same
// fingerprint (ErrLayoutMismatch otherwise). o may be observed
// concurrently; what it counted by the time each of its shards is read is
// merged. s.Merge(s) doubles s.
func (s *Sketch) Merge(o *Sketch) error {
	if s.lay.fp != o.lay.fp {
		return fmt.Errorf("%w: cannot merge sketches of profiles %016x and %016x", ErrLayoutMismatch, o.lay.fp, s.lay.fp)
	}
	st := o.read()
	s.mu.Lock()
	s.st.add(&st)
	s.mu.Unlock()
	return nil
}

// Reset zeroes the sketch. Rows observed concurrently with Reset may
// survive it.
func (s *Sketch) Reset() {
	s.mu.Lock()
	clear(s.st.counts)
	clear(s.st.sums)
	s.mu.Unlock()
	if r := s.rec.Load(); r != nil {
		for _, sh := range r.shards {
			sh.mu.Lock()
			clear(sh.counts)
			clear(sh.sums)
			sh.mu.Unlock()
		}
	}
}

// Clone returns an unsharded copy of what s has counted so far.
func (s *Sketch) Clone() *Sketch {
	c := newSketch(s.lay, s.shards)
	c.st = s.read()
	return c
}

// MemoryBytes is the approximate memory of the sketch's counters: the
// merged state plus every shard.
func (s *Sketch) MemoryBytes() int {
	n := 8*s.lay.nCounts + 8*s.lay.nSums
	if r := s.rec.Load(); r != nil {
		n += len(r.shards) * (128 + 4*s.lay.nCounts + 8*s.lay.nSums)
	}
	return n
}
