package runtime

// DataType is a tensor element type, named as the Open Inference Protocol
// names it. The zero value is Invalid, so a forgotten field never passes for
// a real type.
type DataType uint8

// The element types modelgate carries. Every one that ONNX Runtime runs on the
// CPU is here; complex and 8-bit float types are not, since OIP cannot name
// them.
const (
	Invalid DataType = iota
	Bool
	Uint8
	Uint16
	Uint32
	Uint64
	Int8
	Int16
	Int32
	Int64
	FP16
	FP32
	FP64
	BF16
	Bytes
)

var dataTypeNames = [...]string{
	Invalid: "INVALID",
	Bool:    "BOOL",
	Uint8:   "UINT8",
	Uint16:  "UINT16",
	Uint32:  "UINT32",
	Uint64:  "UINT64",
	Int8:    "INT8",
	Int16:   "INT16",
	Int32:   "INT32",
	Int64:   "INT64",
	FP16:    "FP16",
	FP32:    "FP32",
	FP64:    "FP64",
	BF16:    "BF16",
	Bytes:   "BYTES",
}

var dataTypeSizes = [...]int{
	Bool: 1, Uint8: 1, Uint16: 2, Uint32: 4, Uint64: 8,
	Int8: 1, Int16: 2, Int32: 4, Int64: 8,
	FP16: 2, FP32: 4, FP64: 8, BF16: 2,
}

// String returns the OIP name ("FP32", "INT64", …).
func (d DataType) String() string {
	if int(d) < len(dataTypeNames) {
		return dataTypeNames[d]
	}
	return "INVALID"
}

// Size is the width of one element in bytes; 0 for Bytes (variable) and Invalid.
func (d DataType) Size() int {
	if int(d) < len(dataTypeSizes) {
		return dataTypeSizes[d]
	}
	return 0
}

// ParseDataType maps an OIP datatype name to a DataType; Invalid when unknown.
// It takes a []byte so the request parser can call it without allocating.
func ParseDataType(name []byte) DataType {
	for d := Bool; d <= Bytes; d++ {
		if string(name) == dataTypeNames[d] {
			return d
		}
	}
	return Invalid
}
