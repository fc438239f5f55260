package shadow

import (
	"encoding/binary"
	"math"
)

// The exports of this package share one framing, version 1 (integers
// uvarint, floats 8 bytes little-endian):
//
//	magic          4 bytes      "MGSC" (comparison) or "MGSE" (evaluation)
//	version        1 byte       1
//	body                        see Comparison.AppendExport, Evaluation.AppendExport
//
// Histogram-like arrays are written sparse (count of non-zero entries, then
// gap and value per entry), so a quiet window costs a few bytes. Decoding
// checks every length, index and sum: an export is a message from another
// node, not trusted memory.
const exportVersion = 1

// maxCount bounds any imported count (2^53, exact in float64), so merged
// statistics cannot overflow.
const maxCount = 1 << 53

func appendF64(dst []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
}

// appendSparse writes the non-zero entries of counts.
func appendSparse(dst []byte, counts []uint64) []byte {
	nz := 0
	for _, c := range counts {
		if c != 0 {
			nz++
		}
	}
	dst = binary.AppendUvarint(dst, uint64(nz))
	prev := -1
	for i, c := range counts {
		if c != 0 {
			dst = binary.AppendUvarint(dst, uint64(i-prev-1))
			dst = binary.AppendUvarint(dst, c)
			prev = i
		}
	}
	return dst
}

// reader decodes an export; the first error sticks and later reads return
// zero values, so decoders check r.err once per section.
type reader struct {
	b   []byte
	err error
}

func (r *reader) header(magic string) {
	if len(r.b) < len(magic)+1 || string(r.b[:len(magic)]) != magic {
		r.err = corrupt("not a %s export (bad magic)", magic)
		return
	}
	if v := r.b[len(magic)]; v != exportVersion {
		r.err = corrupt("%s export version %d, this build reads %d", magic, v, exportVersion)
		return
	}
	r.b = r.b[len(magic)+1:]
}

func (r *reader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || n > 1 && r.b[n-1] == 0 {
		// A last byte of 0 means a longer encoding than the value needs:
		// accepted, it would import bytes that export differently.
		r.err = corrupt("truncated or overlong %s", what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a uvarint that must not exceed maxCount.
func (r *reader) count(what string) uint64 {
	v := r.uvarint(what)
	if r.err == nil && v > maxCount {
		r.err = corrupt("%s %d is beyond 2^53", what, v)
		return 0
	}
	return v
}

// varint reads a signed (zig-zag) varint.
func (r *reader) varint(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 || n > 1 && r.b[n-1] == 0 {
		r.err = corrupt("truncated or overlong %s", what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// f64 reads a float that must be finite.
func (r *reader) f64(what string) float64 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 8 {
		r.err = corrupt("truncated %s", what)
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	if math.IsNaN(v) || math.IsInf(v, 0) {
		r.err = corrupt("%s is %v", what, v)
		return 0
	}
	return v
}

// sparse reads counts written by appendSparse into dst (zeroed first) and
// returns their sum.
func (r *reader) sparse(what string, dst []uint64) uint64 {
	clear(dst)
	nz := r.uvarint(what + " entries")
	if r.err != nil {
		return 0
	}
	if nz > uint64(len(dst)) {
		r.err = corrupt("%s: %d entries for %d slots", what, nz, len(dst))
		return 0
	}
	var sum uint64
	idx := -1
	for range nz {
		gap := r.uvarint(what + " index")
		c := r.count(what + " count")
		if r.err != nil {
			return 0
		}
		if gap >= uint64(len(dst)-idx-1) {
			r.err = corrupt("%s: index past %d slots", what, len(dst))
			return 0
		}
		idx += int(gap) + 1
		if c == 0 {
			r.err = corrupt("%s: a written entry is zero", what)
			return 0
		}
		dst[idx] = c
		sum += c
		if sum > maxCount {
			r.err = corrupt("%s: counts sum beyond 2^53", what)
			return 0
		}
	}
	return sum
}

func (r *reader) end() {
	if r.err == nil && len(r.b) != 0 {
		r.err = corrupt("%d bytes after the end", len(r.b))
	}
}
