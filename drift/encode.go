package drift

import (
	"encoding/binary"
	"math"
)

// The export format, version 1 (all integers little-endian or uvarint):
//
//	"MGDS" 0x01                  magic and version
//	fingerprint    8 bytes       the profile's Fingerprint
//	counters       uvarint       the layout's counter count
//	sums           uvarint       the layout's sum count
//	nonzero        uvarint       how many counters are not zero, then per one:
//	  gap          uvarint       index − previous index − 1 (the first: index)
//	  value        uvarint       the count (> 0)
//	nonzero sums   uvarint       how many sums are not zero, then per one:
//	  gap          uvarint
//	  value        8 bytes       float64 bits
//
// Zero counters are skipped, so a sparse minute costs little; a dense one
// costs about 2 bytes a counter. Decoding checks every length and index and
// that the counts agree (each feature's block adds up to the row count):
// an export is a message from another node, not trusted memory.
const (
	exportMagic   = "MGDS"
	exportVersion = 1
	// maxRows bounds an imported row count (2^53, exact in float64), so
	// merged sketches cannot overflow.
	maxRows = 1 << 53
)

// Export returns the sketch's counts in the compact binary form Import
// reads.
func (s *Sketch) Export() []byte { return s.AppendExport(nil) }

// AppendExport appends the export of the sketch to dst.
func (s *Sketch) AppendExport(dst []byte) []byte {
	st := s.read()
	dst = append(dst, exportMagic...)
	dst = append(dst, exportVersion)
	dst = binary.LittleEndian.AppendUint64(dst, s.lay.fp)
	dst = binary.AppendUvarint(dst, uint64(len(st.counts)))
	dst = binary.AppendUvarint(dst, uint64(len(st.sums)))
	nz := 0
	for _, c := range st.counts {
		if c != 0 {
			nz++
		}
	}
	dst = binary.AppendUvarint(dst, uint64(nz))
	prev := -1
	for i, c := range st.counts {
		if c != 0 {
			dst = binary.AppendUvarint(dst, uint64(i-prev-1))
			dst = binary.AppendUvarint(dst, c)
			prev = i
		}
	}
	nz = 0
	for _, v := range st.sums {
		if v != 0 {
			nz++
		}
	}
	dst = binary.AppendUvarint(dst, uint64(nz))
	prev = -1
	for i, v := range st.sums {
		if v != 0 {
			dst = binary.AppendUvarint(dst, uint64(i-prev-1))
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
			prev = i
		}
	}
	return dst
}

// Import decodes an exported sketch of profile p into a new sketch. It
// returns ErrLayoutMismatch for a sketch of another profile and
// ErrCorruptSketch for anything else that is not a valid export; it never
// panics on bad input.
func Import(p *Profile, data []byte) (*Sketch, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	l := compile(p)
	st, err := decode(l, data)
	if err != nil {
		return nil, err
	}
	s := newSketch(l, 0)
	s.st = st
	return s, nil
}

// MergeExport adds an exported sketch (of the same profile) into s: the
// leader's way of summing nodes' sketches.
func (s *Sketch) MergeExport(data []byte) error {
	st, err := decode(s.lay, data)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.st.add(&st)
	s.mu.Unlock()
	return nil
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = corrupt("truncated or overlong %s", what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) u64(what string) uint64 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 8 {
		r.err = corrupt("truncated %s", what)
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func decode(l *layout, data []byte) (state, error) {
	var st state
	if len(data) < len(exportMagic)+1+8 || string(data[:4]) != exportMagic {
		return st, corrupt("not an exported sketch (bad magic)")
	}
	if data[4] != exportVersion {
		return st, corrupt("export version %d; this build reads %d", data[4], exportVersion)
	}
	r := &reader{b: data[5:]}
	if fp := r.u64("fingerprint"); fp != l.fp {
		return st, ErrLayoutMismatch
	}
	if n := r.uvarint("counter count"); r.err == nil && n != uint64(l.nCounts) {
		return st, corrupt("%d counters, the profile has %d", n, l.nCounts)
	}
	if n := r.uvarint("sum count"); r.err == nil && n != uint64(l.nSums) {
		return st, corrupt("%d sums, the profile has %d", n, l.nSums)
	}
	if r.err != nil {
		return st, r.err
	}
	st = newState(l)
	nz := r.uvarint("nonzero counters")
	if nz > uint64(l.nCounts) {
		return st, corrupt("%d nonzero counters of %d", nz, l.nCounts)
	}
	idx := -1
	for range nz {
		gap := r.uvarint("counter index")
		v := r.uvarint("counter value")
		if r.err != nil {
			return st, r.err
		}
		if gap >= uint64(l.nCounts) || idx+1+int(gap) >= l.nCounts {
			return st, corrupt("counter index out of range")
		}
		idx += 1 + int(gap)
		if v == 0 || v > maxRows {
			return st, corrupt("counter %d is %d", idx, v)
		}
		st.counts[idx] = v
	}
	nz = r.uvarint("nonzero sums")
	if r.err == nil && nz > uint64(l.nSums) {
		return st, corrupt("%d nonzero sums of %d", nz, l.nSums)
	}
	idx = -1
	for range nz {
		gap := r.uvarint("sum index")
		bits := r.u64("sum value")
		if r.err != nil {
			return st, r.err
		}
		if gap >= uint64(l.nSums) || idx+1+int(gap) >= l.nSums {
			return st, corrupt("sum index out of range")
		}
		idx += 1 + int(gap)
		v := math.Float64frombits(bits)
		if v == 0 || !finite(v) {
			return st, corrupt("sum %d is %v", idx, v)
		}
		st.sums[idx] = v
	}
	if r.err != nil {
		return st, r.err
	}
	if len(r.b) != 0 {
		return st, corrupt("%d trailing bytes", len(r.b))
	}
	return st, l.check(&st)
}

// check verifies that a state's counts agree: every feature's block adds
// up to the row count and the positives do not exceed the scored rows.
// Tail sums must be what float32 values can add up to (their mean within
// float32 range), not that they be non-zero: values below a positive lo may
// sum to zero.
func (l *layout) check(st *state) error {
	rows := st.counts[0]
	block := func(what int, b []uint64) error {
		var sum uint64
		for _, c := range b {
			sum += c // each c ≤ maxRows and len(b) ≤ 2^17: no overflow
		}
		if sum != rows {
			return corrupt("feature %d counts %d rows, the sketch %d", what, sum, rows)
		}
		return nil
	}
	num := func(what int, c *numCol) error {
		if err := block(what, st.counts[c.off:c.off+c.cells+3]); err != nil {
			return err
		}
		for t, cell := range [2]int{0, c.cells + 1} {
			if !tailSumOK(st.sums[c.sum+t], float64(st.counts[c.off+cell])) {
				return corrupt("feature %d: tail sum %v of %d values out of float32 range", what, st.sums[c.sum+t], st.counts[c.off+cell])
			}
		}
		return nil
	}
	for i, f := range l.feats {
		var err error
		if f.kind == Categorical {
			c := &l.cat[f.i]
			err = block(i, st.counts[c.off:c.off+c.k+2])
		} else {
			err = num(i, &l.num[f.i])
		}
		if err != nil {
			return err
		}
	}
	if c := l.out; c != nil {
		if err := num(len(l.feats), c); err != nil {
			return err
		}
		if st.counts[l.outPos] > rows-st.counts[c.off+c.cells+2] {
			return corrupt("more positive decisions than scored rows")
		}
	} else if len(l.feats) == 0 && rows != 0 {
		return corrupt("rows without features")
	}
	if st.counts[l.affected] > rows {
		return corrupt("%d rows with data-quality problems of %d rows", st.counts[l.affected], rows)
	}
	return nil
}

// tailSumOK reports whether sum can be the sum of n float32 values.
func tailSumOK(sum, n float64) bool {
	return finite(sum) && math.Abs(sum) <= n*math.MaxFloat32
}
