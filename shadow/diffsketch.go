package shadow

import (
	"math"
)

// The difference sketch's geometry, fixed so every node's sketches merge by
// adding counts. Bucket i of each sign holds magnitudes in
// (diffMin·γ^(i-1), diffMin·γ^i] with γ = (1+α)/(1-α), the DDSketch
// construction: every quantile is within α (1%) of the true value
// (relatively) for magnitudes in [diffMin, diffMax]. Smaller magnitudes
// count as zero: float32 scores near 1 are only resolved to about 6e-8, so
// differences below 1e-6 are rounding, not disagreement. Larger ones land
// in the top bucket; Min and Max stay exact.
const (
	diffAlpha = 0.01
	diffMin   = 1e-6
	diffMax   = 1e6
)

var (
	diffLnGamma = math.Log((1 + diffAlpha) / (1 - diffAlpha))
	// diffSide is the bucket count of one sign.
	diffSide = int(math.Ceil(math.Log(diffMax/diffMin)/diffLnGamma)) + 1
	// diffBuckets: negatives (by magnitude index), zero, positives.
	diffBuckets = 2*diffSide + 1
)

// DiffSketch is a mergeable distribution of score differences (shadow minus
// champion): exact count, mean, standard deviation, min and max, and
// quantiles within 1% relative error (see the constants above). The zero
// value is not usable; use NewDiffSketch. It is not safe for concurrent use.
type DiffSketch struct {
	counts   []uint64
	n        uint64
	sum      float64
	sumSq    float64
	min, max float64
}

// NewDiffSketch returns an empty sketch (about 22 KB).
func NewDiffSketch() *DiffSketch {
	return &DiffSketch{counts: make([]uint64, diffBuckets)}
}

// Reset empties the sketch, keeping its memory.
func (s *DiffSketch) Reset() {
	clear(s.counts)
	s.n, s.sum, s.sumSq, s.min, s.max = 0, 0, 0, 0, 0
}

// bucket maps a difference to its counter.
func bucket(v float64) int {
	a := math.Abs(v)
	if a < diffMin {
		return diffSide
	}
	i := 0
	if a > diffMin {
		i = int(math.Ceil(math.Log(a/diffMin) / diffLnGamma))
	}
	i = min(i, diffSide-1)
	if v < 0 {
		return diffSide - 1 - i
	}
	return diffSide + 1 + i
}

// value is a bucket's representative: the point of least relative error.
func value(b int) float64 {
	switch {
	case b == diffSide:
		return 0
	case b < diffSide:
		return -value(2*diffSide - b)
	}
	i := b - diffSide - 1
	return diffMin * 2 * math.Exp(float64(i)*diffLnGamma) / (1 + math.Exp(diffLnGamma))
}

// Record counts one difference. NaN and infinities are refused with
// ErrOutOfRange; nothing is counted then. It does not allocate.
func (s *DiffSketch) Record(v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return ErrOutOfRange
	}
	if s.n == 0 || v < s.min {
		s.min = v
	}
	if s.n == 0 || v > s.max {
		s.max = v
	}
	s.counts[bucket(v)]++
	s.n++
	s.sum += v
	s.sumSq += v * v
	return nil
}

// Count is the number of differences recorded.
func (s *DiffSketch) Count() uint64 { return s.n }

// Mean is the exact mean difference (0 when empty).
func (s *DiffSketch) Mean() float64 {
	if s.n == 0 {
		return 0
	}
	return s.sum / float64(s.n)
}

// StdDev is the population standard deviation of the differences.
func (s *DiffSketch) StdDev() float64 {
	if s.n == 0 {
		return 0
	}
	m := s.Mean()
	return math.Sqrt(max(0, s.sumSq/float64(s.n)-m*m))
}

// Min and Max are the exact extremes (0 when empty).
func (s *DiffSketch) Min() float64 { return s.min }

// Max is the largest difference recorded (0 when empty).
func (s *DiffSketch) Max() float64 { return s.max }

// Quantile returns the q-quantile (q in [0, 1]; the value of rank
// ⌊q·(n−1)⌋ in sorted order), within 1% of it relatively, or 0 for an
// empty sketch.
func (s *DiffSketch) Quantile(q float64) float64 {
	if s.n == 0 || math.IsNaN(q) {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := uint64(q * float64(s.n-1))
	var seen uint64
	for b, c := range s.counts {
		seen += c
		if seen > rank {
			return min(max(value(b), s.min), s.max)
		}
	}
	return s.max
}

// Merge adds o into s.
func (s *DiffSketch) Merge(o *DiffSketch) {
	if o.n == 0 {
		return
	}
	if s.n == 0 || o.min < s.min {
		s.min = o.min
	}
	if s.n == 0 || o.max > s.max {
		s.max = o.max
	}
	for i, c := range o.counts {
		s.counts[i] += c
	}
	s.n += o.n
	s.sum += o.sum
	s.sumSq += o.sumSq
}

func (s *DiffSketch) appendTo(dst []byte) []byte {
	dst = appendF64(dst, s.sum)
	dst = appendF64(dst, s.sumSq)
	dst = appendF64(dst, s.min)
	dst = appendF64(dst, s.max)
	return appendSparse(dst, s.counts)
}

func (s *DiffSketch) readFrom(r *reader) {
	s.sum = r.f64("difference sum")
	s.sumSq = r.f64("difference sum of squares")
	s.min = r.f64("difference min")
	s.max = r.f64("difference max")
	s.n = r.sparse("difference buckets", s.counts)
	if r.err != nil {
		return
	}
	switch {
	case s.n == 0 && (s.sum != 0 || s.sumSq != 0 || s.min != 0 || s.max != 0):
		r.err = corrupt("an empty difference sketch has non-zero moments")
	case s.min > s.max:
		r.err = corrupt("difference min %v above max %v", s.min, s.max)
	case s.sumSq < 0:
		r.err = corrupt("negative difference sum of squares %v", s.sumSq)
	case s.n > 0 && (bucket(s.min) != firstBucket(s.counts) || bucket(s.max) != lastBucket(s.counts)):
		r.err = corrupt("difference min/max (%v, %v) outside the counted buckets", s.min, s.max)
	}
}

func firstBucket(c []uint64) int {
	for i, v := range c {
		if v != 0 {
			return i
		}
	}
	return -1
}

func lastBucket(c []uint64) int {
	for i := len(c) - 1; i >= 0; i-- {
		if c[i] != 0 {
			return i
		}
	}
	return -1
}
