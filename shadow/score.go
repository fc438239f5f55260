package shadow

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/modelgate/modelgate/runtime"
)

// ScoreSpec says where a model's score is in its outputs: the output named
// Output (the first output when empty), and in each row of it the element
// Column (0). A classifier answering probabilities [n, 2] is scored with
// Column 1, the positive class; one answering [n] or [n, 1] with Column 0.
type ScoreSpec struct {
	Output string
	Column int
}

// AppendScores appends one score per row of outputs to dst. The first
// dimension is the row count (a scalar output is one row). Numeric types
// FP32, FP64, INT32 and INT64 are read; others are an ErrScore error. It
// does not allocate when dst has room.
func (s ScoreSpec) AppendScores(dst []float64, outputs []runtime.Tensor) ([]float64, error) {
	var t *runtime.Tensor
	for i := range outputs {
		if s.Output == "" || outputs[i].Name == s.Output {
			t = &outputs[i]
			break
		}
	}
	if t == nil {
		return dst, fmt.Errorf("%w: no output %q", ErrScore, s.Output)
	}
	size := t.DataType.Size()
	switch t.DataType {
	case runtime.FP32, runtime.FP64, runtime.Int32, runtime.Int64:
	default:
		return dst, fmt.Errorf("%w: output %q is %s, not a numeric score", ErrScore, t.Name, t.DataType)
	}
	n := t.Len()
	rows := 1
	if len(t.Shape) > 0 {
		rows = int(t.Shape[0])
	}
	if rows <= 0 || n%rows != 0 || n != int(t.NumElements()) {
		return dst, fmt.Errorf("%w: output %q has shape %v and %d elements", ErrScore, t.Name, t.Shape, n)
	}
	per := n / rows
	if s.Column < 0 || s.Column >= per {
		return dst, fmt.Errorf("%w: output %q has %d values a row, no column %d", ErrScore, t.Name, per, s.Column)
	}
	for r := 0; r < rows; r++ {
		off := (r*per + s.Column) * size
		b := t.Data[off : off+size]
		var v float64
		switch t.DataType {
		case runtime.FP32:
			v = float64(math.Float32frombits(binary.LittleEndian.Uint32(b)))
		case runtime.FP64:
			v = math.Float64frombits(binary.LittleEndian.Uint64(b))
		case runtime.Int32:
			v = float64(int32(binary.LittleEndian.Uint32(b)))
		case runtime.Int64:
			v = float64(int64(binary.LittleEndian.Uint64(b)))
		}
		dst = append(dst, v)
	}
	return dst, nil
}
