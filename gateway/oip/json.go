package oip

import (
	"encoding/binary"
	"math"
	"strconv"

	"github.com/modelgate/modelgate/internal/float16"
	"github.com/modelgate/modelgate/internal/jsonw"
	"github.com/modelgate/modelgate/runtime"
)

// JSON writing primitives shared by the response, request and metadata
// writers. They append and never allocate beyond growing dst.

// appendFloat appends f, a float64 or (bits 32) a float32 value, as a JSON
// number in the shortest form that reads back to the same value: 0.1 for
// float32(0.1). Like encoding/json it uses exponents only below 1e-6 and
// from 1e21 up. NaN and infinities, which JSON cannot carry, are null.
func appendFloat(dst []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	dst = strconv.AppendFloat(dst, f, format, -1, bits)
	if format == 'e' {
		// 1e-07 → 1e-7
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

// appendHalf appends the binary16 value h as the shortest decimal that
// reads back to h (0.1, not 0.099975586, as numpy prints float16). Five
// significant digits always suffice; the search stops earlier for most
// values. NaN and infinities are null.
func appendHalf(dst []byte, h uint16) []byte {
	f := float64(float16.ToFloat32(h))
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	var tmp [32]byte
	for prec := range 5 { // digits after the first
		s := strconv.AppendFloat(tmp[:0], f, 'e', prec, 64)
		if v, err := strconv.ParseFloat(b2s(s), 64); err == nil && float16.FromFloat64(v) == h {
			return appendFloat(dst, v, 64)
		}
	}
	return appendFloat(dst, f, 32)
}

// appendShape appends dims as a JSON array.
func appendShape(dst []byte, shape []int64) []byte {
	dst = append(dst, '[')
	for i, x := range shape {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendInt(dst, x, 10)
	}
	return append(dst, ']')
}

// appendData appends t's elements as a flat JSON array, row-major. A trailing
// partial element of a malformed Data is ignored.
func appendData(dst []byte, t *runtime.Tensor) []byte {
	dst = append(dst, '[')
	data := t.Data
	le := binary.LittleEndian
	switch t.DataType {
	case runtime.Bool:
		for i, b := range data {
			if i > 0 {
				dst = append(dst, ',')
			}
			if b != 0 {
				dst = append(dst, "true"...)
			} else {
				dst = append(dst, "false"...)
			}
		}
	case runtime.Uint8:
		for i, b := range data {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = strconv.AppendUint(dst, uint64(b), 10)
		}
	case runtime.Int8:
		for i, b := range data {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = strconv.AppendInt(dst, int64(int8(b)), 10)
		}
	case runtime.Uint16, runtime.Int16, runtime.FP16, runtime.BF16:
		for i := 0; i+2 <= len(data); i += 2 {
			if i > 0 {
				dst = append(dst, ',')
			}
			v := le.Uint16(data[i:])
			switch t.DataType {
			case runtime.Uint16:
				dst = strconv.AppendUint(dst, uint64(v), 10)
			case runtime.Int16:
				dst = strconv.AppendInt(dst, int64(int16(v)), 10)
			case runtime.BF16:
				dst = appendFloat(dst, float64(float16.BFloat16ToFloat32(v)), 32)
			default:
				dst = appendHalf(dst, v)
			}
		}
	case runtime.Uint32, runtime.Int32, runtime.FP32:
		for i := 0; i+4 <= len(data); i += 4 {
			if i > 0 {
				dst = append(dst, ',')
			}
			v := le.Uint32(data[i:])
			switch t.DataType {
			case runtime.FP32:
				dst = appendFloat(dst, float64(math.Float32frombits(v)), 32)
			case runtime.Uint32:
				dst = strconv.AppendUint(dst, uint64(v), 10)
			default:
				dst = strconv.AppendInt(dst, int64(int32(v)), 10)
			}
		}
	case runtime.Uint64, runtime.Int64, runtime.FP64:
		for i := 0; i+8 <= len(data); i += 8 {
			if i > 0 {
				dst = append(dst, ',')
			}
			v := le.Uint64(data[i:])
			switch t.DataType {
			case runtime.FP64:
				dst = appendFloat(dst, math.Float64frombits(v), 64)
			case runtime.Uint64:
				dst = strconv.AppendUint(dst, v, 10)
			default:
				dst = strconv.AppendInt(dst, int64(v), 10)
			}
		}
	case runtime.Bytes:
		for i, s := range t.Strings {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = jsonw.AppendString(dst, s)
		}
	}
	return append(dst, ']')
}

// binarySize is the byte length of t in the binary tensor data extension.
func binarySize(t *runtime.Tensor) int {
	if t.DataType != runtime.Bytes {
		return len(t.Data)
	}
	n := 0
	for _, s := range t.Strings {
		n += 4 + len(s)
	}
	return n
}

// appendBinary appends t's bytes in the binary tensor data extension.
func appendBinary(dst []byte, t *runtime.Tensor) []byte {
	if t.DataType != runtime.Bytes {
		return append(dst, t.Data...)
	}
	for _, s := range t.Strings {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(s)))
		dst = append(dst, s...)
	}
	return dst
}
