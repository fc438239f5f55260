package predlog

import (
	"bytes"
	"encoding/binary"
	"math"
	"strconv"
	"strings"
	"time"
)

// Key tags: the first byte of every key. See doc.go for the layout.
const (
	tagLabelLog = 'L' // L model 0x00 stamp            -> request id
	tagIndex    = 'i' // the per-record index of earlier versions: deleted at Open
	tagLabel    = 'l' // l model 0x00 request id       -> stamp, time, value
	tagPred     = 'p' // p model 0x00 last stamp       -> block of records
)

func appendStamp(dst []byte, stamp int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(stamp))
}

// appendModelPrefix appends tag model 0x00: the prefix of every key of one
// model in the tag's keyspace. Model names hold no NUL byte, so no model's
// prefix is a prefix of another's.
func appendModelPrefix(dst []byte, tag byte, model string) []byte {
	dst = append(dst, tag)
	dst = append(dst, model...)
	return append(dst, 0)
}

// modelEnd returns the first key after every key of the model in the tag's
// keyspace.
func modelEnd(dst []byte, tag byte, model string) []byte {
	dst = append(dst, tag)
	dst = append(dst, model...)
	return append(dst, 1)
}

// appendPredKey appends the key of a block of the model whose last record
// is stamped stamp.
func appendPredKey(dst []byte, model string, stamp int64) []byte {
	return appendStamp(appendModelPrefix(dst, tagPred, model), stamp)
}

// splitModelKey splits tag model 0x00 rest into model and rest.
func splitModelKey(k []byte) (model, rest []byte, ok bool) {
	if len(k) < 2 {
		return nil, nil, false
	}
	i := bytes.IndexByte(k[1:], 0)
	if i < 1 {
		return nil, nil, false
	}
	return k[1 : 1+i], k[2+i:], true
}

// parsePredKey splits a primary key into its model and the stamp of the
// block's last record.
func parsePredKey(k []byte) (model []byte, last int64, ok bool) {
	if len(k) == 0 || k[0] != tagPred {
		return nil, 0, false
	}
	model, rest, ok := splitModelKey(k)
	if !ok || len(rest) != 8 {
		return nil, 0, false
	}
	return model, int64(binary.BigEndian.Uint64(rest)), true
}

// idHash is 64-bit FNV-1a; the index keeps its top indexHashLen bytes, not
// the id, to stay small. Two ids with the same hash coexist (entries are
// hash and stamp) and lookups compare the stored id,
// so a collision costs one extra read, never a wrong answer: with N records
// in the log, a lookup meets one with probability about N/2^48 (4e-6 for a
// billion records).
func idHash(id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	return h
}

// indexHashLen is how many bytes of the id hash the index keeps.
const indexHashLen = 6

func appendHash(dst []byte, hash uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], hash)
	return append(dst, b[:indexHashLen]...)
}

func appendLabelKey(dst []byte, model, id string) []byte {
	dst = appendModelPrefix(dst, tagLabel, model)
	return append(dst, id...)
}

func appendLabelLogKey(dst []byte, model string, stamp int64) []byte {
	dst = appendModelPrefix(dst, tagLabelLog, model)
	return appendStamp(dst, stamp)
}

// Label values: stamp (8 bytes BE), time (8 bytes BE), value (float64 bits,
// 8 bytes BE).
const labelValueLen = 24

func appendLabelValue(dst []byte, lb *Label) []byte {
	dst = appendStamp(dst, lb.Stamp)
	dst = appendStamp(dst, lb.Time)
	return binary.BigEndian.AppendUint64(dst, math.Float64bits(lb.Value))
}

func decodeLabelValue(lb *Label, v []byte) error {
	if len(v) != labelValueLen {
		return ErrCorrupt
	}
	lb.Stamp = int64(binary.BigEndian.Uint64(v))
	lb.Time = int64(binary.BigEndian.Uint64(v[8:]))
	lb.Value = math.Float64frombits(binary.BigEndian.Uint64(v[16:]))
	return nil
}

// Cursor is an opaque, resumable export position. The empty Cursor is the
// start of the log. A cursor is a commit stamp, so it stays valid across
// restarts, retention (rows pruned since are simply gone) and models; it
// belongs to one export mode, all rows or labelled rows only.
type Cursor string

const (
	cursorRows     = 'p'
	cursorLabelled = 'l'
)

func makeCursor(labelled bool, stamp int64) Cursor {
	var b [17]byte
	b[0] = cursorRows
	if labelled {
		b[0] = cursorLabelled
	}
	const hex = "0123456789abcdef"
	for i := 0; i < 16; i++ {
		b[16-i] = hex[uint64(stamp)>>(4*i)&0xf]
	}
	return Cursor(b[:])
}

// CursorAt returns the cursor of an export that starts with the rows
// committed (labelled: the labels received) at or after t.
func CursorAt(t time.Time, labelled bool) Cursor {
	return makeCursor(labelled, t.UnixNano()-1)
}

// stamp returns the stamp a cursor stands after.
func (c Cursor) stamp(labelled bool) (int64, error) {
	if c == "" {
		return 0, nil
	}
	want := byte(cursorRows)
	if labelled {
		want = cursorLabelled
	}
	if len(c) != 17 || c[0] != want {
		return 0, ErrBadCursor
	}
	v, err := strconv.ParseUint(string(c[1:]), 16, 64)
	if err != nil || int64(v) < 0 {
		return 0, ErrBadCursor
	}
	return int64(v), nil
}

// validName checks a model name: 1 to 255 bytes, no NUL (it separates the
// model from the rest of a key).
func validName(field, s string) error {
	if len(s) == 0 || len(s) > maxName {
		return invalid(field, "%d bytes, want 1 to %d", len(s), maxName)
	}
	if field == "model" && strings.IndexByte(s, 0) >= 0 {
		return invalid(field, "%q contains a NUL byte", s)
	}
	return nil
}
