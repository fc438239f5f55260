package runtime

// TensorSpec describes one input or output of a model.
type TensorSpec struct {
	Name     string
	DataType DataType
	// Shape has -1 for a dynamic dimension. A nil Shape with Rank < 0 never
	// occurs: ONNX Runtime always reports a rank for tensors.
	Shape []int64
}

// Metadata is what the ONNX file says about itself.
type Metadata struct {
	Producer    string
	GraphName   string
	Domain      string
	Description string
	Version     int64
	// Custom is the model's metadata_props (for the demo model, among others,
	// "feature_names").
	Custom map[string]string
}

// Signature is a model's interface as ONNX Runtime reports it. It is
// immutable once a Model is loaded.
type Signature struct {
	Inputs  []TensorSpec
	Outputs []TensorSpec
	// Skipped names outputs that are not tensors (sequences, maps): the Open
	// Inference Protocol has no way to carry them, so they are not computed.
	Skipped  []string
	Metadata Metadata
}

// InputIndex returns the position of the named input, or -1.
func (s *Signature) InputIndex(name string) int {
	for i := range s.Inputs {
		if s.Inputs[i].Name == name {
			return i
		}
	}
	return -1
}

// OutputIndex returns the position of the named output, or -1.
func (s *Signature) OutputIndex(name string) int {
	for i := range s.Outputs {
		if s.Outputs[i].Name == name {
			return i
		}
	}
	return -1
}

// Batchable reports whether every input and output has a dynamic first
// dimension, which is what lets the batcher stack requests along it.
func (s *Signature) Batchable() bool {
	if len(s.Inputs) == 0 || len(s.Outputs) == 0 {
		return false
	}
	for _, set := range [][]TensorSpec{s.Inputs, s.Outputs} {
		for _, t := range set {
			if len(t.Shape) == 0 || t.Shape[0] != -1 {
				return false
			}
		}
	}
	return true
}

// Bind checks inputs against the signature and writes into order, for each
// signature input in turn, the index of the tensor in inputs that feeds it.
// order must have len(s.Inputs). It returns an *InputError or *ShapeError
// naming the first problem: an unknown, duplicated or missing input, a wrong
// data type, a shape that does not match, or data that does not fill the
// shape.
func (s *Signature) Bind(inputs []Tensor, order []int) error {
	for i := range order {
		order[i] = -1
	}
	for i := range inputs {
		in := &inputs[i]
		j := s.InputIndex(in.Name)
		if j < 0 {
			return &InputError{Input: in.Name, Reason: "the model has no such input"}
		}
		if order[j] >= 0 {
			return &InputError{Input: in.Name, Reason: "given more than once"}
		}
		order[j] = i
		spec := &s.Inputs[j]
		if in.DataType != spec.DataType {
			return &InputError{Input: in.Name, Reason: "datatype " + in.DataType.String() + " given, the model takes " + spec.DataType.String()}
		}
		if len(in.Shape) != len(spec.Shape) {
			return &ShapeError{Input: in.Name, Want: spec.Shape, Got: in.Shape}
		}
		for k, d := range spec.Shape {
			if d >= 0 && in.Shape[k] != d {
				return &ShapeError{Input: in.Name, Want: spec.Shape, Got: in.Shape}
			}
		}
		n := in.NumElements()
		if n < 0 {
			return &ShapeError{Input: in.Name, Want: spec.Shape, Got: in.Shape}
		}
		if int64(in.Len()) != n {
			return &InputError{Input: in.Name, Reason: "data has " + itoa(int64(in.Len())) + " elements, the shape needs " + itoa(n)}
		}
	}
	for j, i := range order {
		if i < 0 {
			return &InputError{Input: s.Inputs[j].Name, Reason: "missing: the model needs it"}
		}
	}
	return nil
}

func itoa(v int64) string {
	var b [20]byte
	i := len(b)
	neg := v < 0
	if neg {
		v = -v
	}
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
