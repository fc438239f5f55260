package cluster

import (
	"encoding/binary"
	"math"
	"time"

	"github.com/hashicorp/raft"
)

// The stored form of a raft.Log (format 1), all integers varints:
//
//	byte    format (1)
//	byte    type (raft.LogType)
//	uvarint index
//	uvarint term
//	byte    flags: 1 AppendedAt set, 2 Data non-nil, 4 Extensions non-nil
//	[varint seconds, uvarint nanoseconds]   AppendedAt in UTC, when flag 1
//	[uvarint length, bytes]                 Data, when flag 2
//	[uvarint length, bytes]                 Extensions, when flag 4
//
// Every field round-trips exactly, including nil versus empty slices and the
// zero AppendedAt (AppendedAt comes back in UTC and without a monotonic
// reading, as with any stored time). The index is stored although the key
// holds it too, so a value found under the wrong key is detected. Pebble
// checksums its blocks and WAL records, so there is no checksum here.
const logFormat = 1

const (
	flagAppendedAt = 1 << iota
	flagData
	flagExtensions
)

// appendLog appends l's encoding to dst.
func appendLog(dst []byte, l *raft.Log) []byte {
	var flags byte
	if !l.AppendedAt.IsZero() {
		flags |= flagAppendedAt
	}
	if l.Data != nil {
		flags |= flagData
	}
	if l.Extensions != nil {
		flags |= flagExtensions
	}
	dst = append(dst, logFormat, byte(l.Type))
	dst = binary.AppendUvarint(dst, l.Index)
	dst = binary.AppendUvarint(dst, l.Term)
	dst = append(dst, flags)
	if flags&flagAppendedAt != 0 {
		dst = binary.AppendVarint(dst, l.AppendedAt.Unix())
		dst = binary.AppendUvarint(dst, uint64(l.AppendedAt.Nanosecond()))
	}
	if flags&flagData != 0 {
		dst = binary.AppendUvarint(dst, uint64(len(l.Data)))
		dst = append(dst, l.Data...)
	}
	if flags&flagExtensions != 0 {
		dst = binary.AppendUvarint(dst, uint64(len(l.Extensions)))
		dst = append(dst, l.Extensions...)
	}
	return dst
}

// decodeLog decodes b into l, overwriting every field. Data and Extensions
// are copied (into one allocation), so b may be reused afterwards.
func decodeLog(b []byte, l *raft.Log) error {
	d := decoder{b: b}
	if f := d.byte(); f != logFormat {
		if d.err {
			return corrupt("log entry of %d bytes is truncated", len(b))
		}
		return corrupt("log entry format %d (this node reads format %d)", f, logFormat)
	}
	typ := d.byte()
	index := d.uvarint()
	term := d.uvarint()
	flags := d.byte()
	var at time.Time
	if flags&flagAppendedAt != 0 {
		sec := d.varint()
		nsec := d.uvarint()
		if nsec >= 1e9 {
			return corrupt("log entry %d has %d nanoseconds", index, nsec)
		}
		at = time.Unix(sec, int64(nsec)).UTC()
		if at.IsZero() { // the zero time is stored as no flag
			d.err = true
		}
	}
	var dataLen, extLen uint64
	var data, ext []byte
	if flags&flagData != 0 {
		dataLen = d.uvarint()
		data = d.bytes(dataLen)
	}
	if flags&flagExtensions != 0 {
		extLen = d.uvarint()
		ext = d.bytes(extLen)
	}
	switch {
	case d.err:
		return corrupt("log entry of %d bytes is truncated", len(b))
	case flags&^(flagAppendedAt|flagData|flagExtensions) != 0:
		return corrupt("log entry %d has unknown flags %#x", index, flags)
	case len(d.b) != 0:
		return corrupt("log entry %d has %d trailing bytes", index, len(d.b))
	}
	*l = raft.Log{Index: index, Term: term, Type: raft.LogType(typ), AppendedAt: at}
	if data != nil || ext != nil {
		buf := make([]byte, 0, len(data)+len(ext))
		if data != nil {
			buf = append(buf, data...)
			l.Data = buf[:len(data):len(data)]
		}
		if ext != nil {
			buf = append(buf, ext...)
			l.Extensions = buf[len(buf)-len(ext):]
		}
	}
	return nil
}

// decoder reads from b; after the first short or malformed read err is set
// and every read returns zero. Varints must be minimal (as the encoder writes
// them), so an entry has exactly one encoding.
type decoder struct {
	b       []byte
	err     bool
	scratch [binary.MaxVarintLen64]byte
}

func (d *decoder) byte() byte {
	if d.err || len(d.b) == 0 {
		d.err = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || n != len(binary.AppendUvarint(d.scratch[:0], v)) { // overlong: not ours
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 || n != len(binary.AppendVarint(d.scratch[:0], v)) {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns the next n bytes (a non-nil slice, possibly empty) without
// copying them.
func (d *decoder) bytes(n uint64) []byte {
	if d.err || n > uint64(len(d.b)) || n > math.MaxInt {
		d.err = true
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}
