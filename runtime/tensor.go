package runtime

import (
	"encoding/binary"
	"math"
)

// Tensor is one named input or output in transit between the wire and a
// session. Numeric elements live in Data, little-endian and row-major, exactly
// as ONNX Runtime reads them, so a tensor is copied into a session's bound
// buffer with one memmove. BYTES elements live in Strings.
//
// A Tensor is reused across requests: Reset keeps the capacity of Shape, Data
// and Strings, which is what keeps the scoring path free of allocations.
type Tensor struct {
	Name     string
	DataType DataType
	Shape    []int64
	Data     []byte
	Strings  []string
}

// Reset empties t but keeps its buffers.
func (t *Tensor) Reset() {
	t.Name = ""
	t.DataType = Invalid
	t.Shape = t.Shape[:0]
	t.Data = t.Data[:0]
	clear(t.Strings)
	t.Strings = t.Strings[:0]
}

// NumElements is the product of the shape's dimensions (1 for a scalar).
// It returns -1 when a dimension is negative or the product overflows, so a
// hostile shape cannot turn into a huge allocation.
func (t *Tensor) NumElements() int64 { return NumElements(t.Shape) }

// NumElements is the product of dims (1 for a scalar); -1 when a dimension is
// negative or the product exceeds MaxElements.
func NumElements(dims []int64) int64 {
	n := int64(1)
	for _, d := range dims {
		if d < 0 {
			return -1
		}
		if d != 0 && n > MaxElements/d {
			return -1
		}
		n *= d
	}
	if n > MaxElements {
		return -1
	}
	return n
}

// MaxElements bounds the element count of any one tensor (2^31-1). It is far
// above anything a body limit lets through; its job is to keep shape
// arithmetic from overflowing.
const MaxElements = math.MaxInt32

// Len is the number of elements actually held, which the caller compares with
// NumElements.
func (t *Tensor) Len() int {
	if t.DataType == Bytes {
		return len(t.Strings)
	}
	if s := t.DataType.Size(); s > 0 {
		return len(t.Data) / s
	}
	return 0
}

// AppendFloat32 appends one FP32 element.
func (t *Tensor) AppendFloat32(v float32) {
	t.Data = binary.LittleEndian.AppendUint32(t.Data, math.Float32bits(v))
}

// Float32 returns element i of an FP32 tensor.
func (t *Tensor) Float32(i int) float32 {
	return math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
}

// Float32s returns the elements of an FP32 tensor as a new slice (for tests
// and tools; the hot path reads Data).
func (t *Tensor) Float32s() []float32 {
	out := make([]float32, len(t.Data)/4)
	for i := range out {
		out[i] = t.Float32(i)
	}
	return out
}

// SetFloat32s fills t as an FP32 tensor with the given shape and values.
func (t *Tensor) SetFloat32s(name string, shape []int64, v []float32) {
	t.Name, t.DataType = name, FP32
	t.Shape = append(t.Shape[:0], shape...)
	t.Data = t.Data[:0]
	for _, x := range v {
		t.AppendFloat32(x)
	}
}

// CopyFrom makes t a deep copy of src, reusing t's buffers.
func (t *Tensor) CopyFrom(src *Tensor) {
	t.Name, t.DataType = src.Name, src.DataType
	t.Shape = append(t.Shape[:0], src.Shape...)
	t.Data = append(t.Data[:0], src.Data...)
	t.Strings = append(t.Strings[:0], src.Strings...)
}
