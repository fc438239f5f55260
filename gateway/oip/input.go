package oip

import (
	"strconv"

	"github.com/modelgate/modelgate/runtime"
)

// Decoding the request's "inputs": one tensor each.

// inputs decodes the request's "inputs".
func (d *Decoder) inputs(req *InferRequest) error {
	if d.buf[d.i] != '[' {
		return badRequest(`"inputs" must be an array of tensors, got ` + d.describe())
	}
	if d.openArray() {
		return badRequest(`"inputs" is empty: the request must carry at least one input`)
	}
	for more := true; more; {
		if d.skipWS() != '{' {
			return badRequest("inputs[" + strconv.Itoa(len(req.Inputs)) + "] must be an object, got " + d.describe())
		}
		if len(req.Inputs) == MaxInputs {
			return badRequest("the request has more than " + strconv.Itoa(MaxInputs) + " inputs")
		}
		if err := d.input(req.addInput(), len(req.Inputs)-1); err != nil {
			return err
		}
		var err error
		if more, err = d.arrayNext(); err != nil {
			return err
		}
	}
	return nil
}

// Members of inputs and requested outputs.
const (
	seenName = 1 << iota
	seenShape
	seenDatatype
	seenData
	seenTensorParams
)

// tensorMember classifies a key of an input or output object; 0 for keys
// the decoder skips.
func tensorMember(key []byte) int {
	switch string(key) {
	case "name":
		return seenName
	case "shape":
		return seenShape
	case "datatype":
		return seenDatatype
	case "data":
		return seenData
	case "parameters":
		return seenTensorParams
	}
	return 0
}

// input decodes one input object into t; idx is its position, for messages.
func (d *Decoder) input(t *runtime.Tensor, idx int) error {
	seen := 0
	dataAt := -1         // offset of "data" when it came before name/shape/datatype
	binSize := int64(-1) // parameters.binary_data_size
	for more := !d.openObject(); more; {
		key, err := d.objectKey()
		if err != nil {
			return err
		}
		bit := tensorMember(key)
		if seen&bit != 0 {
			return badRequest(inputName(t, idx) + ": " + quoteShort(key) + " is given more than once")
		}
		seen |= bit
		switch bit {
		case seenName:
			err = d.tensorName(&t.Name, "inputs", idx)
		case seenShape:
			err = d.shape(t, idx)
		case seenDatatype:
			err = d.datatype(t, idx)
		case seenData:
			if seen&(seenName|seenShape|seenDatatype) == seenName|seenShape|seenDatatype {
				err = d.data(t, idx)
			} else {
				// Converting numbers needs the datatype and checking nesting
				// needs the shape: come back when the object is read.
				dataAt = d.i
				err = d.skipValue(3)
			}
		case seenTensorParams:
			binSize, err = d.inputParams(t, idx)
		default:
			err = d.skipValue(3)
		}
		if err != nil {
			return err
		}
		if more, err = d.objectNext(); err != nil {
			return err
		}
	}
	for _, m := range [...]struct {
		bit  int
		name string
	}{{seenName, "name"}, {seenShape, "shape"}, {seenDatatype, "datatype"}} {
		if seen&m.bit == 0 {
			return badRequest(inputName(t, idx) + `: missing "` + m.name + `"`)
		}
	}
	switch {
	case seen&seenData != 0 && binSize >= 0:
		return badRequest(inputName(t, idx) + `: has both "data" and parameters.binary_data_size; send one`)
	case dataAt >= 0:
		end := d.i
		d.i = dataAt
		if err := d.data(t, idx); err != nil {
			return err
		}
		d.i = end
	case binSize >= 0:
		return d.binaryData(t, idx, binSize)
	case seen&seenData == 0:
		return badRequest(inputName(t, idx) + `: missing "data" (or parameters.binary_data_size with the binary tensor data extension)`)
	}
	return nil
}

// inputName names input idx in messages: by name when it is known.
func inputName(t *runtime.Tensor, idx int) string {
	if t.Name != "" {
		return "input " + strconv.Quote(t.Name)
	}
	return "inputs[" + strconv.Itoa(idx) + "]"
}

// shape decodes an input's "shape" into t.Shape.
func (d *Decoder) shape(t *runtime.Tensor, idx int) error {
	if d.buf[d.i] != '[' {
		return badRequest(inputName(t, idx) + `: "shape" must be an array of non-negative integers, got ` + d.describe())
	}
	t.Shape = t.Shape[:0]
	if d.openArray() {
		return nil // a scalar
	}
	n := uint64(1)
	for more := true; more; {
		c := d.skipWS()
		if c < '0' || c > '9' {
			if c == '-' {
				return badRequest(inputName(t, idx) + `: "shape" has a negative dimension`)
			}
			return badRequest(inputName(t, idx) + `: "shape" must be an array of non-negative integers, got ` + d.describe())
		}
		num, err := d.scanNumber()
		if err != nil {
			return err
		}
		if !num.isInt {
			return badRequest(inputName(t, idx) + `: "shape" must be an array of non-negative integers, got ` + quoteNum(num.text))
		}
		if len(t.Shape) == MaxRank {
			return badRequest(inputName(t, idx) + `: "shape" has more than ` + strconv.Itoa(MaxRank) + " dimensions")
		}
		if num.digits > 9 || num.mantissa() > MaxElements { // 2^28 has 9 digits
			return badRequest(inputName(t, idx) + `: "shape" has dimension ` + quoteNum(num.text) + ", more than the " + strconv.Itoa(MaxElements) + " elements one tensor may have")
		}
		v := num.mantissa()
		t.Shape = append(t.Shape, int64(v))
		n = min(n*v, MaxElements+1) // both factors ≤ 2^28+1: no overflow
		if more, err = d.arrayNext(); err != nil {
			return err
		}
	}
	if n > MaxElements {
		return badRequest(inputName(t, idx) + ": shape " + dims(t.Shape) + " has more than " + strconv.Itoa(MaxElements) + " elements, the limit for one tensor")
	}
	return nil
}

// dims formats a shape for messages ("[1,30]").
func dims(shape []int64) string {
	b := []byte{'['}
	for i, x := range shape {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, x, 10)
	}
	return string(append(b, ']'))
}

// datatype decodes an input's "datatype" into t.DataType.
func (d *Decoder) datatype(t *runtime.Tensor, idx int) error {
	if d.buf[d.i] != '"' {
		return badRequest(inputName(t, idx) + `: "datatype" must be a string, got ` + d.describe())
	}
	s, err := d.parseString()
	if err != nil {
		return err
	}
	if t.DataType = runtime.ParseDataType(s); t.DataType == runtime.Invalid {
		return badRequest(inputName(t, idx) + ": unknown datatype " + quoteShort(s) + " (want one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, BF16, FP32, FP64, BYTES)")
	}
	return nil
}

// quoteShort quotes a client-supplied string for a message, cut to a
// readable length.
func quoteShort(s []byte) string {
	if len(s) > 40 {
		return strconv.Quote(string(s[:40])) + "…"
	}
	return strconv.Quote(string(s))
}

// inputParams decodes an input's "parameters" and returns binary_data_size,
// -1 when absent.
func (d *Decoder) inputParams(t *runtime.Tensor, idx int) (int64, error) {
	if d.buf[d.i] != '{' {
		return -1, badRequest(inputName(t, idx) + `: "parameters" must be an object, got ` + d.describe())
	}
	size := int64(-1)
	for more := !d.openObject(); more; {
		key, err := d.objectKey()
		if err != nil {
			return -1, err
		}
		if string(key) == "binary_data_size" {
			c := d.buf[d.i]
			if c < '0' || c > '9' {
				if c == '-' {
					return -1, badRequest(inputName(t, idx) + ": parameters.binary_data_size must be a non-negative integer, got a negative number")
				}
				return -1, badRequest(inputName(t, idx) + ": parameters.binary_data_size must be a non-negative integer, got " + d.describe())
			}
			num, err := d.scanNumber()
			if err != nil {
				return -1, err
			}
			if !num.isInt || num.digits > 15 { // JSON integers have no leading zeros
				return -1, badRequest(inputName(t, idx) + ": parameters.binary_data_size must be a non-negative integer below 10^15, got " + quoteNum(num.text))
			}
			size = int64(num.mantissa())
		} else if err := d.skipValue(4); err != nil {
			return -1, err
		}
		if more, err = d.objectNext(); err != nil {
			return -1, err
		}
	}
	return size, nil
}
