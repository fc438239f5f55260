package oip

import (
	"encoding/binary"
	"math"
	"strconv"

	"github.com/modelgate/modelgate/internal/float16"
	"github.com/modelgate/modelgate/runtime"
)

// data decodes an input's "data" (at d.i) into t, whose shape and datatype
// are known: flat, or nested exactly as the shape says.
func (d *Decoder) data(t *runtime.Tensor, idx int) error {
	if d.buf[d.i] != '[' {
		return badRequest(inputName(t, idx) + `: "data" must be an array, got ` + d.describe())
	}
	n := runtime.NumElements(t.Shape) // shape() has bounded it by MaxElements
	t.Data = t.Data[:0]
	clear(t.Strings)
	t.Strings = t.Strings[:0]
	d.strBuf, d.strEnds = d.strBuf[:0], d.strEnds[:0]
	d.count = 0
	if size := int64(t.DataType.Size()); size > 0 {
		// Size Data once. Every element takes at least two bytes of JSON,
		// so the body, not the shape a client claims, bounds this.
		m := min(n, int64(len(d.buf)-d.i)/2+1)
		if need := int(m * size); cap(t.Data) < need {
			t.Data = make([]byte, 0, need)
		}
	}
	// Nested data starts with '[' '['; a rank-1 tensor is flat either way.
	j := d.i + 1
	for j < len(d.buf) && isSpace(d.buf[j]) {
		j++
	}
	var err error
	if len(t.Shape) >= 2 && j < len(d.buf) && d.buf[j] == '[' {
		err = d.nested(t, idx, 0)
	} else {
		err = d.flat(t, idx, n)
	}
	if err != nil {
		return err
	}
	if d.count != n {
		return badRequest(inputName(t, idx) + `: "data" has ` + strconv.FormatInt(d.count, 10) + " elements; shape " + dims(t.Shape) + " needs " + strconv.FormatInt(n, 10))
	}
	if t.DataType == runtime.Bytes && len(d.strEnds) > 0 {
		all := string(d.strBuf) // one allocation for the whole tensor
		start := 0
		for _, end := range d.strEnds {
			t.Strings = append(t.Strings, all[start:end])
			start = end
		}
	}
	return nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

// flat decodes a flat data array of at most n elements.
func (d *Decoder) flat(t *runtime.Tensor, idx int, n int64) error {
	if d.openArray() {
		return nil
	}
	for {
		if d.count == n {
			return badRequest(inputName(t, idx) + `: "data" has more than ` + strconv.FormatInt(n, 10) + " elements; shape " + dims(t.Shape) + " needs " + strconv.FormatInt(n, 10))
		}
		if err := d.element(t, idx); err != nil {
			return err
		}
		more, err := d.arrayNext()
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
	}
}

// nested decodes the data array at d.i as dimension level of the shape.
// Recursion is bounded by MaxRank.
func (d *Decoder) nested(t *runtime.Tensor, idx int, level int) error {
	want := t.Shape[level]
	inner := level+1 < len(t.Shape)
	count := int64(0)
	for more := !d.openArray(); more; {
		if count == want {
			return d.nestErr(t, idx, level, "more than "+strconv.FormatInt(want, 10))
		}
		if inner {
			if d.skipWS() != '[' {
				return d.elemErr(t, idx, "expected an array (the data is nested, so it must follow shape "+dims(t.Shape)+"), got "+d.describe())
			}
			if err := d.nested(t, idx, level+1); err != nil {
				return err
			}
		} else if err := d.element(t, idx); err != nil {
			return err
		}
		count++
		var err error
		if more, err = d.arrayNext(); err != nil {
			return err
		}
	}
	if count != want {
		return d.nestErr(t, idx, level, strconv.FormatInt(count, 10))
	}
	return nil
}

func (d *Decoder) nestErr(t *runtime.Tensor, idx, level int, got string) error {
	return badRequest(inputName(t, idx) + `: "data" does not follow shape ` + dims(t.Shape) + ": an array at depth " + strconv.Itoa(level+1) + " has " + got + " elements, not " + strconv.FormatInt(t.Shape[level], 10))
}

// elemErr reports a problem with the element of t's data being decoded.
func (d *Decoder) elemErr(t *runtime.Tensor, idx int, msg string) error {
	return badRequest(inputName(t, idx) + ": element " + strconv.FormatInt(d.count, 10) + " of data: " + msg)
}

// element decodes one scalar of t's data at d.i and appends it to t.
func (d *Decoder) element(t *runtime.Tensor, idx int) error {
	c := d.skipWS()
	switch t.DataType {
	case runtime.Bool:
		switch c {
		case 't':
			if err := d.literal("true"); err != nil {
				return err
			}
			t.Data = append(t.Data, 1)
		case 'f':
			if err := d.literal("false"); err != nil {
				return err
			}
			t.Data = append(t.Data, 0)
		default:
			return d.elemErr(t, idx, "expected true or false for BOOL, got "+d.describe())
		}
	case runtime.Bytes:
		if c != '"' {
			return d.elemErr(t, idx, "expected a string for BYTES, got "+d.describe())
		}
		s, err := d.parseString()
		if err != nil {
			return err
		}
		d.strBuf = append(d.strBuf, s...)
		d.strEnds = append(d.strEnds, len(d.strBuf))
	default:
		if c != '-' && (c < '0' || c > '9') || c == '-' && d.nonFinite() {
			if d.i < len(d.buf) && d.nonFinite() {
				return d.elemErr(t, idx, "NaN and Infinity are not JSON numbers (send them in the binary tensor data extension)")
			}
			return d.elemErr(t, idx, "expected a number, got "+d.describe())
		}
		num, err := d.scanNumber()
		if err != nil {
			return err
		}
		if err := appendNumber(t, &num); err != nil {
			return d.elemErr(t, idx, err.Error())
		}
	}
	d.count++
	return nil
}

// numError is the message of a number that does not fit its datatype;
// element wraps it with the input and position.
type numError string

func (e numError) Error() string { return string(e) }

func outOfRange(num []byte, dt runtime.DataType) error {
	return numError(quoteNum(num) + " is out of range for " + dt.String())
}

// quoteNum shows a number from the request in a message.
func quoteNum(num []byte) string {
	if len(num) > 40 {
		return string(num[:40]) + "…"
	}
	return string(num)
}

// appendNumber converts the JSON number num to t's datatype and appends it.
func appendNumber(t *runtime.Tensor, num *number) error {
	dt := t.DataType
	switch dt {
	case runtime.FP32:
		if f, ok := exactFloat32(num); ok {
			t.Data = binary.LittleEndian.AppendUint32(t.Data, math.Float32bits(f))
			return nil
		}
		f, err := strconv.ParseFloat(b2s(num.text), 32)
		if err != nil {
			return outOfRange(num.text, dt)
		}
		t.Data = binary.LittleEndian.AppendUint32(t.Data, math.Float32bits(float32(f)))
		return nil
	case runtime.FP64, runtime.FP16, runtime.BF16:
		f, ok := exactFloat64(num)
		if !ok {
			var err error
			if f, err = strconv.ParseFloat(b2s(num.text), 64); err != nil {
				return outOfRange(num.text, dt)
			}
		}
		if dt == runtime.FP64 {
			t.Data = binary.LittleEndian.AppendUint64(t.Data, math.Float64bits(f))
			return nil
		}
		var h uint16
		if dt == runtime.BF16 {
			if h = round16(num, f, float16.BFloat16FromFloat64); h&0x7fff == 0x7f80 {
				return outOfRange(num.text, dt)
			}
		} else if h = round16(num, f, float16.FromFloat64); h&0x7fff == 0x7c00 {
			return outOfRange(num.text, dt)
		}
		t.Data = binary.LittleEndian.AppendUint16(t.Data, h)
		return nil
	}

	// An integer type.
	var mag uint64
	neg := num.neg
	switch {
	case num.isInt && num.digits <= 19:
		mag = num.mantissa()
	case num.isInt:
		digits := num.text
		if neg {
			digits = digits[1:]
		}
		var ok bool
		if mag, ok = parseUint(digits); !ok {
			return outOfRange(num.text, dt)
		}
	default:
		// 1.0 or 1e3: accepted when the value is an integer that a float64
		// holds exactly.
		f, err := strconv.ParseFloat(b2s(num.text), 64)
		if err != nil {
			return outOfRange(num.text, dt)
		}
		if f != math.Trunc(f) {
			return numError("expected an integer for " + dt.String() + ", got " + quoteNum(num.text))
		}
		if math.Abs(f) > 1<<53 {
			return numError(quoteNum(num.text) + " is too large to be exact: write integers above 2^53 without a fraction or exponent")
		}
		mag = uint64(math.Abs(f))
	}
	if mag == 0 {
		neg = false // -0
	}
	var max uint64 // the largest magnitude allowed with this sign
	switch dt {
	case runtime.Uint8:
		max = math.MaxUint8
	case runtime.Uint16:
		max = math.MaxUint16
	case runtime.Uint32:
		max = math.MaxUint32
	case runtime.Uint64:
		max = math.MaxUint64
	case runtime.Int8:
		max = math.MaxInt8
	case runtime.Int16:
		max = math.MaxInt16
	case runtime.Int32:
		max = math.MaxInt32
	case runtime.Int64:
		max = math.MaxInt64
	}
	signed := dt >= runtime.Int8 && dt <= runtime.Int64
	switch {
	case neg && !signed:
		return outOfRange(num.text, dt)
	case neg:
		max++ // two's complement reaches one further down
	}
	if mag > max {
		return outOfRange(num.text, dt)
	}
	v := mag
	if neg {
		v = -mag // two's complement; the truncating appends below keep the low bytes
	}
	switch dt.Size() {
	case 1:
		t.Data = append(t.Data, byte(v))
	case 2:
		t.Data = binary.LittleEndian.AppendUint16(t.Data, uint16(v))
	case 4:
		t.Data = binary.LittleEndian.AppendUint32(t.Data, uint32(v))
	default:
		t.Data = binary.LittleEndian.AppendUint64(t.Data, v)
	}
	return nil
}

// binaryData takes t's size bytes from the binary section after the JSON.
func (d *Decoder) binaryData(t *runtime.Tensor, idx int, size int64) error {
	if !d.hasBin {
		return badRequest(inputName(t, idx) + ": parameters.binary_data_size needs the Inference-Header-Content-Length header (binary tensor data extension)")
	}
	if rem := int64(len(d.bin) - d.binOff); size > rem {
		return badRequest(inputName(t, idx) + ": binary_data_size is " + strconv.FormatInt(size, 10) + " but only " + strconv.FormatInt(rem, 10) + " bytes of binary data are left after the JSON header")
	}
	chunk := d.bin[d.binOff : d.binOff+int(size)]
	d.binOff += int(size)
	n := runtime.NumElements(t.Shape)
	t.Data = t.Data[:0]
	clear(t.Strings)
	t.Strings = t.Strings[:0]

	if t.DataType == runtime.Bytes {
		// Each element: a 4-byte little-endian length, then the bytes.
		if len(chunk) == 0 {
			if n != 0 {
				return badRequest(inputName(t, idx) + ": binary data has 0 BYTES elements; shape " + dims(t.Shape) + " needs " + strconv.FormatInt(n, 10))
			}
			return nil
		}
		all := string(chunk) // one allocation for the whole tensor
		count := int64(0)
		for off := 0; off < len(all); count++ {
			if count == n {
				return badRequest(inputName(t, idx) + ": binary data has more than " + strconv.FormatInt(n, 10) + " BYTES elements; shape " + dims(t.Shape) + " needs " + strconv.FormatInt(n, 10))
			}
			if len(all)-off < 4 {
				return badRequest(inputName(t, idx) + ": binary data ends inside the length of BYTES element " + strconv.FormatInt(count, 10))
			}
			l := uint64(binary.LittleEndian.Uint32(chunk[off:]))
			off += 4
			if l > uint64(len(all)-off) {
				return badRequest(inputName(t, idx) + ": BYTES element " + strconv.FormatInt(count, 10) + " is " + strconv.FormatUint(l, 10) + " bytes long, past the end of binary_data_size")
			}
			t.Strings = append(t.Strings, all[off:off+int(l)])
			off += int(l)
		}
		if count != n {
			return badRequest(inputName(t, idx) + ": binary data has " + strconv.FormatInt(count, 10) + " BYTES elements; shape " + dims(t.Shape) + " needs " + strconv.FormatInt(n, 10))
		}
		return nil
	}

	if want := n * int64(t.DataType.Size()); size != want {
		return badRequest(inputName(t, idx) + ": binary_data_size is " + strconv.FormatInt(size, 10) + " bytes; shape " + dims(t.Shape) + " of " + t.DataType.String() + " needs " + strconv.FormatInt(want, 10))
	}
	if t.DataType == runtime.Bool {
		for i, b := range chunk {
			if b > 1 {
				return badRequest(inputName(t, idx) + ": element " + strconv.Itoa(i) + " of binary data: a BOOL byte must be 0 or 1, got " + strconv.Itoa(int(b)))
			}
		}
	}
	t.Data = append(t.Data, chunk...)
	return nil
}

// Clinger's fast path, as strconv's own atof32exact/atof64exact: when a
// decimal's significant digits m and exponent e are small enough that m and
// 10^|e| are exact in the float type, m×10^e or m÷10^-e is one correctly
// rounded IEEE operation. Short decimals (amounts, counts, flags, rounded
// features) take it and skip strconv's second pass over the text; 17-digit
// float64 renderings do not qualify and go to strconv.ParseFloat. scanNumber
// has already split the number, so the check costs nothing.

var (
	pow10f32 = [...]float32{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10}
	pow10f64 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
		1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}
)

// exactFloat32 is num as a float32 when Clinger's fast path applies. It
// decides on the digit count and exponent before reading any digit, so a
// long number costs two comparisons here.
func exactFloat32(num *number) (float32, bool) {
	e := num.exp
	if num.digits > 8 || e < -10 || e > 10 {
		return 0, false
	}
	m := num.mantissa()
	if m > 1<<24 {
		return 0, false
	}
	f := float32(m)
	if e < 0 {
		f /= pow10f32[-e]
	} else {
		f *= pow10f32[e]
	}
	if num.neg {
		f = -f
	}
	return f, true
}

// exactFloat64 is exactFloat32 for float64.
func exactFloat64(num *number) (float64, bool) {
	e := num.exp
	if num.digits > 16 || e < -22 || e > 22 {
		return 0, false
	}
	m := num.mantissa()
	if m > 1<<53 {
		return 0, false
	}
	f := float64(m)
	if e < 0 {
		f /= pow10f64[-e]
	} else {
		f *= pow10f64[e]
	}
	if num.neg {
		f = -f
	}
	return f, true
}
