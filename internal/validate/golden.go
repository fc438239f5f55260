package validate

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"

	"github.com/modelgate/modelgate/runtime"
)

// GoldenPair is one input the model must answer with the expected outputs,
// in the Open Inference Protocol's tensor form:
//
//	[{"inputs":  [{"name":"features","shape":[1,30],"datatype":"FP32","data":[…]}],
//	  "outputs": [{"name":"probability","shape":[1,1],"datatype":"FP32","data":[0.03]}]}]
//
// Outputs may list a subset of the model's outputs; an output without a
// shape is compared by its data alone.
type GoldenPair struct {
	Inputs  []GoldenTensor `json:"inputs"`
	Outputs []GoldenTensor `json:"outputs"`
}

// GoldenTensor is one tensor of a golden pair. Data is row-major, flat or
// nested: numbers for numeric types, true/false (or 0/1) for BOOL, strings
// for BYTES. FP16 and BF16 are not supported.
type GoldenTensor struct {
	Name     string  `json:"name"`
	Shape    []int64 `json:"shape,omitempty"`
	Datatype string  `json:"datatype"`
	Data     []any   `json:"data"`
}

// GoldenError says a golden pair is malformed, whatever the model (HTTP 400).
type GoldenError struct {
	Pair   int    // index in the list
	Tensor string // "inputs[0]" or "outputs[1] \"name\""
	Reason string
}

func (e *GoldenError) Error() string {
	if e.Tensor == "" {
		return fmt.Sprintf("validate: golden pair %d: %s", e.Pair, e.Reason)
	}
	return fmt.Sprintf("validate: golden pair %d %s: %s", e.Pair, e.Tensor, e.Reason)
}

// DecodeGolden reads a JSON list of golden pairs, keeping integers exact,
// and checks each pair's form (a *GoldenError names the first bad one).
func DecodeGolden(r io.Reader) ([]GoldenPair, error) {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	var pairs []GoldenPair
	if err := dec.Decode(&pairs); err != nil {
		return nil, fmt.Errorf("validate: cannot decode golden pairs (want [{\"inputs\":[…],\"outputs\":[…]}]): %w", err)
	}
	for i := range pairs {
		if err := pairs[i].check(i); err != nil {
			return nil, err
		}
	}
	return pairs, nil
}

// maxGoldenDepth bounds the nesting of a tensor's data arrays.
const maxGoldenDepth = 32

// check converts every tensor once, which is the whole form check.
func (p *GoldenPair) check(i int) error {
	if len(p.Inputs) == 0 || len(p.Outputs) == 0 {
		return &GoldenError{Pair: i, Reason: "needs at least one input and one output"}
	}
	for j := range p.Inputs {
		if _, err := p.Inputs[j].tensor(i, "inputs", j, true); err != nil {
			return err
		}
	}
	for j := range p.Outputs {
		if _, err := p.Outputs[j].tensor(i, "outputs", j, false); err != nil {
			return err
		}
	}
	return nil
}

// tensor converts g to a runtime.Tensor of its datatype. An output without
// a shape gets the shape [len(data)].
func (g *GoldenTensor) tensor(pair int, set string, j int, needShape bool) (*runtime.Tensor, error) {
	bad := func(format string, args ...any) error {
		return &GoldenError{Pair: pair, Tensor: fmt.Sprintf("%s[%d] %q", set, j, g.Name), Reason: fmt.Sprintf(format, args...)}
	}
	if g.Name == "" {
		return nil, bad("has no name")
	}
	dt := runtime.ParseDataType([]byte(g.Datatype))
	switch dt {
	case runtime.Invalid:
		return nil, bad("unknown datatype %q", g.Datatype)
	case runtime.FP16, runtime.BF16:
		return nil, bad("%s golden data is not supported", g.Datatype)
	}
	var flat []any
	if err := flatten(&flat, g.Data, 0); err != nil {
		return nil, bad("%v", err)
	}
	t := &runtime.Tensor{Name: g.Name, DataType: dt, Shape: slices.Clone(g.Shape)}
	if g.Shape == nil {
		if needShape {
			return nil, bad("has no shape")
		}
		t.Shape = []int64{int64(len(flat))}
	}
	n := runtime.NumElements(t.Shape)
	if n < 0 {
		return nil, bad("shape %v is invalid or too large", g.Shape)
	}
	if int64(len(flat)) != n {
		return nil, bad("has %d values, its shape %v needs %d", len(flat), t.Shape, n)
	}
	for k, v := range flat {
		if err := appendValue(t, v); err != nil {
			return nil, bad("value %d: %v", k, err)
		}
	}
	return t, nil
}

func flatten(dst *[]any, data []any, depth int) error {
	if depth > maxGoldenDepth {
		return fmt.Errorf("data nested deeper than %d", maxGoldenDepth)
	}
	for _, v := range data {
		if inner, ok := v.([]any); ok {
			if err := flatten(dst, inner, depth+1); err != nil {
				return err
			}
			continue
		}
		*dst = append(*dst, v)
	}
	return nil
}

// appendValue appends one JSON value to t as t's datatype, refusing values
// the type cannot hold.
func appendValue(t *runtime.Tensor, v any) error {
	switch t.DataType {
	case runtime.Bytes:
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("%v is not a string", v)
		}
		t.Strings = append(t.Strings, s)
		return nil
	case runtime.Bool:
		switch b := v.(type) {
		case bool:
			t.Data = append(t.Data, boolByte(b))
			return nil
		default:
			f, err := number(v)
			if err != nil || (f != 0 && f != 1) {
				return fmt.Errorf("%v is not a boolean", v)
			}
			t.Data = append(t.Data, boolByte(f == 1))
			return nil
		}
	case runtime.FP32:
		f, err := number(v)
		if err != nil {
			return err
		}
		t.Data = binary.LittleEndian.AppendUint32(t.Data, math.Float32bits(float32(f)))
		return nil
	case runtime.FP64:
		f, err := number(v)
		if err != nil {
			return err
		}
		t.Data = binary.LittleEndian.AppendUint64(t.Data, math.Float64bits(f))
		return nil
	case runtime.Uint64:
		u, err := unsigned(v)
		if err != nil {
			return err
		}
		t.Data = binary.LittleEndian.AppendUint64(t.Data, u)
		return nil
	}
	i, err := integer(v)
	if err != nil {
		return err
	}
	lo, hi := intRange(t.DataType)
	if i < lo || i > hi {
		return fmt.Errorf("%d is out of range for %s", i, t.DataType)
	}
	switch t.DataType.Size() {
	case 1:
		t.Data = append(t.Data, byte(i))
	case 2:
		t.Data = binary.LittleEndian.AppendUint16(t.Data, uint16(i))
	case 4:
		t.Data = binary.LittleEndian.AppendUint32(t.Data, uint32(i))
	default:
		t.Data = binary.LittleEndian.AppendUint64(t.Data, uint64(i))
	}
	return nil
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func intRange(d runtime.DataType) (lo, hi int64) {
	switch d {
	case runtime.Int8:
		return math.MinInt8, math.MaxInt8
	case runtime.Int16:
		return math.MinInt16, math.MaxInt16
	case runtime.Int32:
		return math.MinInt32, math.MaxInt32
	case runtime.Uint8:
		return 0, math.MaxUint8
	case runtime.Uint16:
		return 0, math.MaxUint16
	case runtime.Uint32:
		return 0, math.MaxUint32
	}
	return math.MinInt64, math.MaxInt64
}

// number reads a JSON number (json.Number or a Go number) as float64. The
// strings "NaN", "Infinity" and "-Infinity" stand for what JSON cannot write.
func number(v any) (float64, error) {
	switch x := v.(type) {
	case json.Number:
		return strconv.ParseFloat(string(x), 64)
	case float64:
		return x, nil
	case float32:
		return float64(x), nil
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case string:
		switch x {
		case "NaN":
			return math.NaN(), nil
		case "Infinity", "+Infinity", "inf":
			return math.Inf(1), nil
		case "-Infinity", "-inf":
			return math.Inf(-1), nil
		}
	}
	return 0, fmt.Errorf("%v is not a number", v)
}

// integer reads a JSON number that must be a whole number, exactly.
func integer(v any) (int64, error) {
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i, nil
		}
	case int:
		return int64(x), nil
	case int64:
		return x, nil
	}
	f, err := number(v)
	if err != nil {
		return 0, err
	}
	if f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, fmt.Errorf("%v is not an integer", v)
	}
	return int64(f), nil
}

func unsigned(v any) (uint64, error) {
	if x, ok := v.(json.Number); ok {
		if u, err := strconv.ParseUint(string(x), 10, 64); err == nil {
			return u, nil
		}
	}
	i, err := integer(v)
	if err != nil {
		return 0, err
	}
	if i < 0 {
		return 0, fmt.Errorf("%d is out of range for UINT64", i)
	}
	return uint64(i), nil
}

// compareOutput checks got against the expected tensor want (both of the
// same datatype after the caller's check) and returns the largest absolute
// difference seen in floating-point elements.
func compareOutput(got, want *runtime.Tensor, shapeGiven bool, tol float64) (float64, error) {
	if got.DataType != want.DataType {
		return 0, fmt.Errorf("datatype is %s, the golden output says %s", got.DataType, want.DataType)
	}
	if shapeGiven && !slices.Equal(got.Shape, want.Shape) {
		return 0, fmt.Errorf("shape is %v, the golden output says %v", got.Shape, want.Shape)
	}
	if got.Len() != want.Len() {
		return 0, fmt.Errorf("has %d values, the golden output has %d", got.Len(), want.Len())
	}
	var worst float64
	for i := 0; i < got.Len(); i++ {
		switch got.DataType {
		case runtime.Bytes:
			if got.Strings[i] != want.Strings[i] {
				return 0, fmt.Errorf("[%d] is %q, want %q", i, got.Strings[i], want.Strings[i])
			}
		case runtime.FP32, runtime.FP64:
			g, w := floatAt(got, i), floatAt(want, i)
			if math.IsNaN(w) && math.IsNaN(g) || g == w {
				continue
			}
			d := math.Abs(g - w)
			if math.IsNaN(d) || d > tol*math.Max(1, math.Abs(w)) {
				return worst, fmt.Errorf("[%d] is %v, want %v (difference %.3g, tolerance %g)", i, g, w, d, tol)
			}
			worst = math.Max(worst, d)
		case runtime.Bool:
			if (got.Data[i] != 0) != (want.Data[i] != 0) {
				return 0, fmt.Errorf("[%d] is %v, want %v", i, got.Data[i] != 0, want.Data[i] != 0)
			}
		default:
			s := got.DataType.Size()
			if string(got.Data[i*s:(i+1)*s]) != string(want.Data[i*s:(i+1)*s]) {
				return 0, fmt.Errorf("[%d] differs from the golden output (integers must match exactly)", i)
			}
		}
	}
	return worst, nil
}

func floatAt(t *runtime.Tensor, i int) float64 {
	if t.DataType == runtime.FP64 {
		return math.Float64frombits(binary.LittleEndian.Uint64(t.Data[8*i:]))
	}
	return float64(t.Float32(i))
}
