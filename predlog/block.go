package predlog

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/klauspost/compress/s2"
)

// A block is the value of a primary key: records of one model committed in
// one batch, in commit order, under consecutive stamps. Its key holds the last
// stamp (see doc.go), so a block of n records holds stamps last-n+1 to last,
// and the blocks of a model never overlap in stamps.
//
//	count    uvarint, at least 1
//	records  count × (version: 1-byte length, bytes; value: shared, the
//	         length of the prefix it shares with the previous record's value
//	         (uvarint, 0 for the first), then the rest: uvarint length, bytes)
//
// Packing records into blocks makes the committer insert one primary key per
// block into the memtable instead of one per record, and leaves Pebble fewer
// keys to flush and compact. Sharing prefixes drops what repeats from record
// to record (role, node, tensor names, types and shapes, the high bytes of
// the time: about 50 of a demo record's 194 bytes) before the bytes are
// copied into the WAL, the memtable and the flushed tables.
//
// A block whose records compress by an eighth or more is stored compressed
// with S2 (github.com/klauspost/compress/s2): a 0 byte (no plain block
// starts with one: its count is at least 1), the codec (blockS2), the count
// (uvarint), then the S2 block of the records. The committer compresses, so
// the WAL, the memtable and the flushed tables carry half the bytes, and
// Pebble does not compress the upper levels again (pebble.go).
var maxBlockBytes = 32 << 10 // a var for benchmarks

// Block codecs.
const blockS2 = 1

// appendBlock appends the block of records (count, then the entries raw)
// to dst: compressed when that saves an eighth. scratch holds the
// compressed bytes between calls.
func appendBlock(dst []byte, count int, raw []byte, scratch *[]byte) []byte {
	c := s2.Encode((*scratch)[:cap(*scratch)], raw)
	*scratch = c
	if len(c) <= len(raw)-len(raw)/8 {
		dst = append(dst, 0, blockS2)
		dst = binary.AppendUvarint(dst, uint64(count))
		return append(dst, c...)
	}
	dst = binary.AppendUvarint(dst, uint64(count))
	return append(dst, raw...)
}

// blockReader walks the records of a block.
type blockReader struct {
	packed []byte // the compressed records, until the first entry is read
	plain  []byte // where they are decompressed
	rest   []byte
	prev   []byte    // the previous record's value
	bufs   [2][]byte // where values are rebuilt, in turn
	t      int       // the buffer of the next rebuilt value
	first  int64     // stamp of the first record
	last   int64
	next   int64 // stamp of the record Next returns
}

// openBlock checks a block's count and positions r before its first record.
// A compressed block is decompressed when its first record is read, so
// counting records costs no decompression.
func (r *blockReader) open(v []byte, last int64) error {
	packed := len(v) > 0 && v[0] == 0
	if packed {
		if len(v) < 2 || v[1] != blockS2 {
			return ErrCorrupt
		}
		v = v[2:]
	}
	n, k := binary.Uvarint(v)
	if k <= 0 || n == 0 || int64(n) > last {
		return ErrCorrupt
	}
	r.packed, r.rest = nil, v[k:]
	if packed {
		r.packed, r.rest = r.rest, nil
	} else if n > uint64(len(r.rest)) {
		return ErrCorrupt
	}
	r.prev = nil
	r.last = last
	r.first = last - int64(n) + 1
	r.next = r.first
	return nil
}

// maxPlainBlock bounds a decompressed block: 32 KiB of records, or one
// record of up to 64 MiB (MaxRecordBytes' limit) and its framing.
const maxPlainBlock = 64<<20 + 1<<10

// unpack decompresses the block's records into r.plain.
func (r *blockReader) unpack() error {
	n, err := s2.DecodedLen(r.packed)
	if err != nil || n > maxPlainBlock {
		return ErrCorrupt
	}
	if cap(r.plain) < n {
		r.plain = make([]byte, n)
	}
	plain, err := s2.Decode(r.plain[:n], r.packed)
	if err != nil {
		return ErrCorrupt
	}
	r.rest, r.packed = plain, nil
	return nil
}

// Next returns the next record's stamp, version and value; false at the
// end. The value is valid until the second next call of Next.
func (r *blockReader) Next() (stamp int64, version, value []byte, ok bool, err error) {
	if r.next > r.last {
		if len(r.rest) != 0 {
			return 0, nil, nil, false, ErrCorrupt
		}
		return 0, nil, nil, false, nil
	}
	version, value, err = r.entry()
	if err != nil {
		return 0, nil, nil, false, err
	}
	s := r.next
	r.next++
	return s, version, value, true, nil
}

// entry reads the next entry and rebuilds its value from the previous one.
func (r *blockReader) entry() (version, value []byte, err error) {
	if r.packed != nil {
		if err := r.unpack(); err != nil {
			return nil, nil, err
		}
	}
	b := r.rest
	if len(b) < 1 || int(b[0]) >= len(b) || b[0] == 0 {
		return nil, nil, ErrCorrupt
	}
	vl := 1 + int(b[0]) // in int: 1+b[0] wraps to 0 for a length of 255
	version = b[1:vl]
	b = b[vl:]
	shared, k := binary.Uvarint(b)
	if k <= 0 || shared > uint64(len(r.prev)) {
		return nil, nil, ErrCorrupt
	}
	b = b[k:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, nil, ErrCorrupt
	}
	suffix := b[k : k+int(n)]
	r.rest = b[k+int(n):]
	if shared == 0 {
		value = suffix // the block's own bytes: no copy
	} else {
		// Build it in the buffer prev is not in.
		buf := append(append(r.bufs[r.t][:0], r.prev[:shared]...), suffix...)
		r.bufs[r.t] = buf
		r.t ^= 1
		value = buf
	}
	r.prev = value
	return version, value, nil
}

// skipTo skips the records stamped before s.
func (r *blockReader) skipTo(s int64) error {
	for r.next < s && r.next <= r.last {
		if _, _, err := r.entry(); err != nil {
			return err
		}
		r.next++
	}
	return nil
}

// sharedPrefix is the length of the common prefix of a and b. It compares
// eight bytes at a time: it runs over every record of every commit, and
// byte by byte it was most of the committer's own CPU in a profile under
// load (0.28 s of 17 s sampled, against 0.06 s now).
func sharedPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for ; i+8 <= n; i += 8 {
		if x := binary.LittleEndian.Uint64(a[i:]) ^ binary.LittleEndian.Uint64(b[i:]); x != 0 {
			return i + bits.TrailingZeros64(x)/8
		}
	}
	for ; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// entrySize is the size of a record in a block, sharing shared bytes with
// the previous record's value.
func entrySize(e *ent, shared int) int {
	return 1 + len(e.version) + uvarintLen(uint64(shared)) + uvarintLen(uint64(len(e.value)-shared)) + len(e.value) - shared
}

func corruptKey(err error, key []byte) error {
	return fmt.Errorf("%w: key %q", err, key)
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}
