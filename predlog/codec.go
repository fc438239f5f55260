package predlog

import (
	"encoding/binary"
	"math"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Value encoding, version 1. A value holds everything of a record but its
// model, version and stamp, which are in its key. All fields are in an order
// that puts what repeats from one record to the next (role, node, tensor
// names, types and shapes) in one run, so Pebble's block compression turns it
// into one short back-reference, and the high bytes of the time right after
// it. Integers are unsigned varints unless said otherwise.
//
//	format   1 byte: formatRaw, or formatZstd (the rest is one zstd frame of the body)
//	body:
//	role     1 byte
//	node     1-byte length, bytes
//	nIn nOut 1 byte each
//	headers  per tensor, inputs then outputs:
//	         name (1-byte length, bytes), type code (1 byte; typeOther is
//	         followed by a 1-byte length and the name), ndims (1 byte), dims
//	time     8 bytes big-endian (int64 bits)
//	id       1-byte length, bytes
//	latency  varint nanoseconds
//	data     per tensor: fixed-width types: NumElements(shape) × width raw
//	         bytes, little-endian as given; BYTES: per element length, bytes;
//	         other types: length, bytes
const (
	formatRaw  = 1
	formatZstd = 2

	maxName    = 255 // model, version, node, request id, tensor and type names
	maxTensors = 255
	maxDims    = 32
	typeOther  = 0xff
	typeBytes  = 14
)

// Type codes, as typeNames numbers them.
const (
	tBool = iota + 1
	tUint8
	tUint16
	tUint32
	tUint64
	tInt8
	tInt16
	tInt32
	tInt64
	tFP16
	tFP32
	tFP64
	tBF16
)

// typeNames are the OIP datatypes, numbered as the runtime numbers them.
var typeNames = [...]string{"", "BOOL", "UINT8", "UINT16", "UINT32", "UINT64",
	"INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BF16", "BYTES"}

var typeWidths = [...]int{0, 1, 1, 2, 4, 8, 1, 2, 4, 8, 2, 4, 8, 2, 0}

func typeCode(name string) byte {
	switch name {
	case "FP32":
		return tFP32
	case "INT64":
		return tInt64
	case "BYTES":
		return typeBytes
	}
	for i := 1; i < len(typeNames); i++ {
		if typeNames[i] == name {
			return byte(i)
		}
	}
	return typeOther
}

// numElements is the product of dims, or -1 when a dimension is negative or
// the product exceeds limit.
func numElements(dims []int64, limit int64) int64 {
	n := int64(1)
	for _, d := range dims {
		if d < 0 {
			return -1
		}
		if d != 0 && n > limit/d {
			return -1
		}
		n *= d
	}
	return n
}

// appendBody appends the body of r's value to dst; maxLen bounds what it
// accepts.
func appendBody(dst []byte, r *Record, maxLen int) ([]byte, error) {
	if r.Role < RoleChampion || r.Role > RoleShadow {
		return dst, invalid("role", "%d is not champion, canary or shadow", r.Role)
	}
	if len(r.Node) > maxName {
		return dst, invalid("node", "%d bytes, more than %d", len(r.Node), maxName)
	}
	if len(r.RequestID) == 0 || len(r.RequestID) > maxName {
		return dst, invalid("request_id", "%d bytes, want 1 to %d", len(r.RequestID), maxName)
	}
	if len(r.Inputs) > maxTensors || len(r.Outputs) > maxTensors {
		return dst, invalid("tensors", "%d inputs and %d outputs, at most %d each", len(r.Inputs), len(r.Outputs), maxTensors)
	}
	if r.Latency < 0 {
		return dst, invalid("latency", "%d is negative", r.Latency)
	}
	start := len(dst)
	dst = append(dst, byte(r.Role), byte(len(r.Node)))
	dst = append(dst, r.Node...)
	dst = append(dst, byte(len(r.Inputs)), byte(len(r.Outputs)))
	for i := range r.Inputs {
		var err error
		if dst, err = appendHeader(dst, &r.Inputs[i], "inputs", i); err != nil {
			return dst, err
		}
	}
	for i := range r.Outputs {
		var err error
		if dst, err = appendHeader(dst, &r.Outputs[i], "outputs", i); err != nil {
			return dst, err
		}
	}
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.Time))
	dst = append(dst, byte(len(r.RequestID)))
	dst = append(dst, r.RequestID...)
	dst = binary.AppendUvarint(dst, uint64(r.Latency))
	for i := range r.Inputs {
		var err error
		if dst, err = appendData(dst, &r.Inputs[i], "inputs", i, maxLen-(len(dst)-start)); err != nil {
			return dst, sized(err, r, maxLen)
		}
	}
	for i := range r.Outputs {
		var err error
		if dst, err = appendData(dst, &r.Outputs[i], "outputs", i, maxLen-(len(dst)-start)); err != nil {
			return dst, sized(err, r, maxLen)
		}
	}
	if len(dst)-start > maxLen {
		return dst, tooLarge(r, maxLen)
	}
	return dst, nil
}

// errTooLarge is appendData's "no room": appendBody turns it into a
// *TooLargeError with the record's size (sized).
var errTooLarge = &TooLargeError{}

func sized(err error, r *Record, maxLen int) error {
	if err == errTooLarge {
		return tooLarge(r, maxLen)
	}
	return err
}

// tooLarge is the error for a record over maxLen bytes.
func tooLarge(r *Record, maxLen int) error {
	return &TooLargeError{Size: recordSize(r), Limit: maxLen}
}

// recordSize is about the size of r's encoding: its tensors' bytes and the
// names, without the few bytes of lengths and shapes.
func recordSize(r *Record) int {
	n := len(r.RequestID) + len(r.Node)
	for _, ts := range [2][]Tensor{r.Inputs, r.Outputs} {
		for i := range ts {
			t := &ts[i]
			n += len(t.Name) + len(t.Data)
			for _, s := range t.Strings {
				n += len(s) + 1
			}
		}
	}
	return n
}

func appendHeader(dst []byte, t *Tensor, side string, i int) ([]byte, error) {
	if len(t.Name) > maxName {
		return dst, invalid(side, "tensor %d: name of %d bytes, more than %d", i, len(t.Name), maxName)
	}
	if len(t.Shape) > maxDims {
		return dst, invalid(side, "tensor %q: %d dimensions, more than %d", t.Name, len(t.Shape), maxDims)
	}
	dst = append(dst, byte(len(t.Name)))
	dst = append(dst, t.Name...)
	code := typeCode(t.DataType)
	dst = append(dst, code)
	if code == typeOther {
		if len(t.DataType) == 0 || len(t.DataType) > maxName {
			return dst, invalid(side, "tensor %q: datatype name of %d bytes", t.Name, len(t.DataType))
		}
		dst = append(dst, byte(len(t.DataType)))
		dst = append(dst, t.DataType...)
	}
	dst = append(dst, byte(len(t.Shape)))
	for _, d := range t.Shape {
		if d < 0 {
			return dst, invalid(side, "tensor %q: dimension %d is negative", t.Name, d)
		}
		dst = binary.AppendUvarint(dst, uint64(d))
	}
	return dst, nil
}

func appendData(dst []byte, t *Tensor, side string, i int, room int) ([]byte, error) {
	code := typeCode(t.DataType)
	n := numElements(t.Shape, math.MaxInt32)
	if n < 0 {
		return dst, invalid(side, "tensor %q: shape %v has too many elements", t.Name, t.Shape)
	}
	switch {
	case code == typeBytes:
		if int64(len(t.Strings)) != n {
			return dst, invalid(side, "tensor %q: %d strings for shape %v", t.Name, len(t.Strings), t.Shape)
		}
		for _, s := range t.Strings {
			if room -= len(s) + 1; room < 0 {
				return dst, errTooLarge
			}
			dst = binary.AppendUvarint(dst, uint64(len(s)))
			dst = append(dst, s...)
		}
	case code == typeOther:
		if len(t.Data) > room {
			return dst, errTooLarge
		}
		dst = binary.AppendUvarint(dst, uint64(len(t.Data)))
		dst = append(dst, t.Data...)
	default:
		if int64(len(t.Data)) != n*int64(typeWidths[code]) {
			return dst, invalid(side, "tensor %q: %d data bytes for %d %s elements", t.Name, len(t.Data), n, t.DataType)
		}
		if len(t.Data) > room {
			return dst, errTooLarge
		}
		dst = append(dst, t.Data...)
	}
	return dst, nil
}

var (
	zstdOnce sync.Once
	zstdEnc  *zstd.Encoder
	zstdDec  *zstd.Decoder
)

// zstdCodec returns the shared encoder and decoder. Both are safe for
// concurrent EncodeAll / DecodeAll calls.
func zstdCodec() (*zstd.Encoder, *zstd.Decoder) {
	zstdOnce.Do(func() {
		var err error
		zstdEnc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderCRC(false), zstd.WithSingleSegment(true))
		if err != nil {
			panic("predlog: zstd encoder: " + err.Error())
		}
		zstdDec, err = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(64<<20),
			zstd.WithDecoderConcurrency(0))
		if err != nil {
			panic("predlog: zstd decoder: " + err.Error())
		}
	})
	return zstdEnc, zstdDec
}

// decodeValue decodes a value into r (all but Model, Version and Stamp).
// scratch receives the decompressed body of a zstd value. Unless own is set,
// r's Data slices alias v or *scratch. It reuses r's slices and keeps r's
// strings when they are equal to the decoded ones, so decoding a run of
// similar records does not allocate.
func decodeValue(r *Record, v []byte, scratch *[]byte, own bool) error {
	if len(v) == 0 {
		return ErrCorrupt
	}
	body := v[1:]
	switch v[0] {
	case formatRaw:
	case formatZstd:
		_, dec := zstdCodec()
		out, err := dec.DecodeAll(body, (*scratch)[:0])
		if err != nil {
			return ErrCorrupt
		}
		*scratch = out
		body = out
	default:
		return ErrCorrupt
	}
	d := decoder{b: body, own: own}
	r.Role = Role(d.byte())
	d.str(&r.Node)
	nIn, nOut := int(d.byte()), int(d.byte())
	r.Inputs = resize(r.Inputs, nIn)
	r.Outputs = resize(r.Outputs, nOut)
	for i := range r.Inputs {
		d.header(&r.Inputs[i])
	}
	for i := range r.Outputs {
		d.header(&r.Outputs[i])
	}
	r.Time = int64(d.uint64())
	d.str(&r.RequestID)
	r.Latency = int64(d.uvarint())
	for i := range r.Inputs {
		d.data(&r.Inputs[i])
	}
	for i := range r.Outputs {
		d.data(&r.Outputs[i])
	}
	if d.bad || len(d.b) != 0 || r.Role < RoleChampion || r.Role > RoleShadow || r.Latency < 0 || r.RequestID == "" {
		return ErrCorrupt
	}
	return nil
}

func resize(ts []Tensor, n int) []Tensor {
	if cap(ts) < n {
		ts = append(ts[:cap(ts)], make([]Tensor, n-cap(ts))...)
	}
	return ts[:n]
}

// decoder reads a body; after the first short read it returns zeros and
// sets bad, so callers check once at the end.
type decoder struct {
	b   []byte
	bad bool
	own bool
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.bad = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uint64() uint64 {
	if len(d.b) < 8 {
		d.bad = true
		d.b = nil
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.bad = true
		d.b = nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n int) []byte {
	if n < 0 || n > len(d.b) {
		d.bad = true
		d.b = nil
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

// str decodes a 1-byte-length string into *s, keeping *s when equal.
func (d *decoder) str(s *string) {
	p := d.bytes(int(d.byte()))
	if *s != string(p) {
		*s = string(p)
	}
}

func (d *decoder) header(t *Tensor) {
	d.str(&t.Name)
	code := d.byte()
	switch {
	case code == typeOther:
		d.str(&t.DataType)
		if t.DataType == "" || typeCode(t.DataType) != typeOther {
			d.bad = true
		}
	case code >= 1 && int(code) < len(typeNames):
		t.DataType = typeNames[code]
	default:
		d.bad = true
	}
	n := int(d.byte())
	if n > maxDims {
		d.bad = true
		n = 0
	}
	t.Shape = t.Shape[:0]
	for range n {
		v := d.uvarint()
		if v > math.MaxInt32 {
			d.bad = true
		}
		t.Shape = append(t.Shape, int64(v))
	}
	// The encoder refuses a shape of more than MaxInt32 elements, whatever
	// the type: a value holding one is corrupt (data bounds the known types
	// tighter, by the bytes left; not those stored by byte length).
	if numElements(t.Shape, math.MaxInt32) < 0 {
		d.bad = true
	}
}

func (d *decoder) data(t *Tensor) {
	t.Data, t.Strings = t.Data[:0], t.Strings[:0]
	if d.bad {
		return
	}
	code := typeCode(t.DataType)
	// Every element takes at least one byte (BYTES) or its width, so a shape
	// larger than what is left is corrupt: this bounds every allocation by
	// the input's length.
	n := numElements(t.Shape, int64(len(d.b)))
	switch {
	case code == typeOther:
		d.take(t, int(min(d.uvarint(), uint64(len(d.b)+1))))
	case n < 0:
		d.bad = true
	case code == typeBytes:
		for range n {
			p := d.bytes(int(min(d.uvarint(), uint64(len(d.b)+1))))
			if d.bad {
				return
			}
			t.Strings = append(t.Strings, string(p))
		}
	default:
		w := int64(typeWidths[code])
		if n*w > int64(len(d.b)) {
			d.bad = true
			return
		}
		d.take(t, int(n*w))
	}
}

func (d *decoder) take(t *Tensor, n int) {
	p := d.bytes(n)
	if d.own {
		t.Data = append([]byte(nil), p...)
	} else {
		t.Data = p
	}
}

// encodeValue appends the full value (format byte and body) to dst. scratch
// is a buffer for the uncompressed body when compressing.
func encodeValue(dst []byte, r *Record, comp ValueCompression, maxLen int, scratch *[]byte) ([]byte, error) {
	if comp != CompressZstd {
		dst = append(dst, formatRaw)
		return appendBody(dst, r, maxLen)
	}
	body, err := appendBody((*scratch)[:0], r, maxLen)
	*scratch = body
	if err != nil {
		return dst, err
	}
	enc, _ := zstdCodec()
	dst = append(dst, formatZstd)
	return enc.EncodeAll(body, dst), nil
}
