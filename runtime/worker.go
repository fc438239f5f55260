package runtime

import (
	"errors"
	"fmt"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"
)

// worker is one ORT session and the tensors bound to it. It is used by one
// goroutine at a time.
//
// The steady-state path allocates nothing: for each distinct set of input
// shapes the worker keeps an entry of input and output tensors backed by Go
// byte slices and bound to the session through an IoBinding, so a call is a
// copy in, RunWithBinding, and a copy out. A new shape costs one extra run to
// learn its output shapes. Models with BYTES tensors, zero-sized tensors or
// outputs whose shape depends on the data take the general path instead,
// which lets ORT allocate the outputs.
type worker struct {
	m       *Model
	sess    *ort.DynamicAdvancedSession
	binding *ort.IoBinding
	entries []*entry // most recently used first
	bound   *entry
	general bool // every call takes the general path
}

type entry struct {
	shapes  [][]int64 // input shapes, signature order
	in      []*ort.CustomDataTensor
	inBuf   [][]byte
	out     []*ort.CustomDataTensor
	outBuf  [][]byte
	outDims [][]int64
	general bool // output shapes depend on the data: take the general path
}

func newWorker(m *Model, onnx []byte) (*worker, error) {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	defer opts.Destroy()
	if err := opts.SetIntraOpNumThreads(m.cfg.IntraOpThreads); err != nil {
		return nil, err
	}
	if err := opts.SetInterOpNumThreads(m.cfg.InterOpThreads); err != nil {
		return nil, err
	}
	level := ort.GraphOptimizationLevel(ort.GraphOptimizationLevelEnableAll)
	switch m.cfg.Optimization {
	case OptimizeDisable:
		level = ort.GraphOptimizationLevelDisableAll
	case OptimizeBasic:
		level = ort.GraphOptimizationLevelEnableBasic
	case OptimizeExtended:
		level = ort.GraphOptimizationLevelEnableExtended
	}
	if err := opts.SetGraphOptimizationLevel(level); err != nil {
		return nil, err
	}
	in := make([]string, len(m.sig.Inputs))
	for i, s := range m.sig.Inputs {
		in[i] = s.Name
	}
	out := make([]string, len(m.sig.Outputs))
	for i, s := range m.sig.Outputs {
		out[i] = s.Name
	}
	if ortModelHook != nil {
		ortModelHook(onnx)
	}
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(onnx, in, out, opts)
	if err != nil {
		return nil, err
	}
	sessionsAlive.Add(1)
	w := &worker{m: m, sess: sess}
	for _, set := range [][]TensorSpec{m.sig.Inputs, m.sig.Outputs} {
		for _, s := range set {
			if s.DataType == Bytes {
				w.general = true
			}
		}
	}
	if !w.general {
		if w.binding, err = sess.CreateIoBinding(); err != nil {
			w.destroy()
			return nil, err
		}
	}
	return w, nil
}

func (w *worker) destroy() {
	for _, e := range w.entries {
		e.destroy()
	}
	w.entries = nil
	if w.binding != nil {
		w.binding.Destroy()
		w.binding = nil
	}
	if w.sess != nil {
		w.sess.Destroy()
		w.sess = nil
		sessionsAlive.Add(-1)
	}
}

// warm runs the model once on zeros, every dynamic dimension set to 1, so the
// first real call finds the session initialised and its batch-1 entry built.
// Zeros are not a valid input for every model (shapes, scales, divisors,
// steps): the caller treats its error as a note, not a load failure.
func (w *worker) warm() error {
	sig := &w.m.sig
	inputs := make([]Tensor, len(sig.Inputs))
	order := make([]int, len(sig.Inputs))
	for i, s := range sig.Inputs {
		t := &inputs[i]
		t.Name, t.DataType = s.Name, s.DataType
		for _, d := range s.Shape {
			if d < 0 {
				d = 1
			}
			t.Shape = append(t.Shape, d)
		}
		n := NumElements(t.Shape)
		if s.DataType == Bytes {
			t.Strings = make([]string, n)
		} else {
			t.Data = make([]byte, n*int64(s.DataType.Size()))
		}
		order[i] = i
	}
	return w.run(inputs, order, make([]Tensor, len(sig.Outputs)))
}

// run executes one call: inputs[order[i]] feeds signature input i; outputs
// receives one tensor per signature output.
func (w *worker) run(inputs []Tensor, order []int, outputs []Tensor) error {
	if w.general {
		return w.runGeneral(inputs, order, outputs)
	}
	e := w.lookup(inputs, order)
	if e == nil {
		var err error
		if e, err = w.newEntry(inputs, order); err != nil {
			return err
		}
	}
	if e.general {
		return w.runGeneral(inputs, order, outputs)
	}
	if w.bound != e {
		if err := w.bind(e); err != nil {
			return err
		}
	}
	for i, j := range order {
		copy(e.inBuf[i], inputs[j].Data)
	}
	if err := w.sess.RunWithBinding(w.binding); err != nil {
		return w.rerun(e, inputs, order, outputs)
	}
	sig := &w.m.sig
	for j := range outputs {
		o := &outputs[j]
		o.Name, o.DataType = sig.Outputs[j].Name, sig.Outputs[j].DataType
		o.Shape = append(o.Shape[:0], e.outDims[j]...)
		o.Data = append(o.Data[:0], e.outBuf[j]...)
		o.Strings = o.Strings[:0]
	}
	return nil
}

// rerun answers a call whose bound run failed through the general path. ORT
// refuses a run whose computed output shape differs from a bound output's
// ("the output OrtValue provided ... has shape {2,2} but the computed
// output shape for this run is {0,2}"): the entry's shapes were learned
// from one call, and for NonZero, Compress, TopK with a k input, Unique,
// NonMaxSuppression or shape-driven Reshape/Expand/Slice/Pad/Resize they
// depend on the input values, not only their shapes. When the general run
// succeeds with other output shapes, the entry is marked general so its
// later calls let ORT allocate outputs, at one wasted partial run per
// entry. The error is ORT's message, so it is judged by the outcome rather
// than by matching its text. A genuine failure (bad input values) fails the
// general run too and is returned; it costs that one run more.
func (w *worker) rerun(e *entry, inputs []Tensor, order []int, outputs []Tensor) error {
	if err := w.runGeneral(inputs, order, outputs); err != nil {
		return err
	}
	for j := range outputs {
		if !sameShape(outputs[j].Shape, e.outDims[j]) {
			e.general = true
			w.m.dynamicShapes.Store(true)
			break
		}
	}
	return nil
}

func sameShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (w *worker) lookup(inputs []Tensor, order []int) *entry {
	for k, e := range w.entries {
		if e.matches(inputs, order) {
			if k > 0 { // move to front: the LRU end is evicted
				copy(w.entries[1:k+1], w.entries[:k])
				w.entries[0] = e
			}
			return e
		}
	}
	return nil
}

func (e *entry) matches(inputs []Tensor, order []int) bool {
	for i, j := range order {
		s := inputs[j].Shape
		if len(s) != len(e.shapes[i]) {
			return false
		}
		for k := range s {
			if s[k] != e.shapes[i][k] {
				return false
			}
		}
	}
	return true
}

// newEntry builds bound tensors for a new set of input shapes. It runs the
// model once through the general path to learn the output shapes.
func (w *worker) newEntry(inputs []Tensor, order []int) (*entry, error) {
	sig := &w.m.sig
	e := &entry{}
	for _, j := range order {
		e.shapes = append(e.shapes, append([]int64(nil), inputs[j].Shape...))
		if NumElements(inputs[j].Shape) == 0 {
			e.general = true
		}
	}
	// Once a call has shown output shapes that follow the values, new
	// input shapes go straight to the general path: binding them would
	// cost a probe run and, at the next change of values, a refused run
	// that ORT also logs as an error.
	if w.m.dynamicShapes.Load() {
		e.general = true
	}
	var probe []Tensor
	if !e.general {
		var err error
		if probe, err = w.outputShapes(inputs, order); err != nil {
			return nil, err
		}
		for j := range probe {
			if NumElements(probe[j].Shape) == 0 {
				e.general = true
			}
		}
	}
	if !e.general {
		for i, s := range e.shapes {
			buf := make([]byte, NumElements(s)*int64(sig.Inputs[i].DataType.Size()))
			t, err := ort.NewCustomDataTensor(ort.NewShape(s...), buf, toORT(sig.Inputs[i].DataType))
			if err != nil {
				e.destroy()
				return nil, fmt.Errorf("runtime: cannot allocate input %q: %w", sig.Inputs[i].Name, err)
			}
			e.in, e.inBuf = append(e.in, t), append(e.inBuf, buf)
		}
		for j, o := range probe {
			buf := make([]byte, NumElements(o.Shape)*int64(sig.Outputs[j].DataType.Size()))
			t, err := ort.NewCustomDataTensor(ort.NewShape(o.Shape...), buf, toORT(sig.Outputs[j].DataType))
			if err != nil {
				e.destroy()
				return nil, fmt.Errorf("runtime: cannot allocate output %q: %w", sig.Outputs[j].Name, err)
			}
			e.out, e.outBuf = append(e.out, t), append(e.outBuf, buf)
			e.outDims = append(e.outDims, append([]int64(nil), o.Shape...))
		}
	}
	if len(w.entries) >= w.m.cfg.ShapeCache {
		last := w.entries[len(w.entries)-1]
		if w.bound == last {
			w.binding.ClearBoundInputs()
			w.binding.ClearBoundOutputs()
			w.bound = nil
		}
		last.destroy()
		w.entries = w.entries[:len(w.entries)-1]
	}
	w.entries = append([]*entry{e}, w.entries...)
	return e, nil
}

// outputShapes finds the output shapes for these inputs: from the signature
// when every output's shape is fixed, else by one run (of which only the
// shapes are used: reading half data off an ORT-allocated value is what the
// bound path exists to avoid).
func (w *worker) outputShapes(inputs []Tensor, order []int) ([]Tensor, error) {
	sig := &w.m.sig
	probe := make([]Tensor, len(sig.Outputs))
	static := true
	for j, o := range sig.Outputs {
		probe[j].Shape = o.Shape
		static = static && NumElements(o.Shape) >= 0
	}
	if static {
		return probe, nil
	}
	vals, err := w.runValues(inputs, order)
	if err != nil {
		return nil, err
	}
	for j, v := range vals {
		probe[j].Shape = v.GetShape()
		v.Destroy()
	}
	return probe, nil
}

func (w *worker) bind(e *entry) error {
	w.binding.ClearBoundInputs()
	w.binding.ClearBoundOutputs()
	w.bound = nil
	sig := &w.m.sig
	for i, t := range e.in {
		if err := w.binding.BindInput(sig.Inputs[i].Name, t); err != nil {
			return fmt.Errorf("runtime: cannot bind input %q: %w", sig.Inputs[i].Name, err)
		}
	}
	for j, t := range e.out {
		if err := w.binding.BindOutput(sig.Outputs[j].Name, t); err != nil {
			return fmt.Errorf("runtime: cannot bind output %q: %w", sig.Outputs[j].Name, err)
		}
	}
	w.bound = e
	return nil
}

func (e *entry) destroy() {
	for _, t := range e.in {
		t.Destroy()
	}
	for _, t := range e.out {
		t.Destroy()
	}
	e.in, e.out = nil, nil
}

// runGeneral creates ORT values for this call and lets ORT allocate the
// outputs. It allocates, so it is for BYTES tensors, zero-sized tensors and
// data-dependent output shapes, not the common path.
func (w *worker) runGeneral(inputs []Tensor, order []int, outputs []Tensor) error {
	out, err := w.runValues(inputs, order)
	if err != nil {
		return err
	}
	defer func() {
		for _, v := range out {
			v.Destroy()
		}
	}()
	sig := &w.m.sig
	for j, v := range out {
		o := &outputs[j]
		o.Name, o.DataType = sig.Outputs[j].Name, sig.Outputs[j].DataType
		o.Shape = append(o.Shape[:0], v.GetShape()...)
		o.Data, o.Strings = o.Data[:0], o.Strings[:0]
		if err := readValue(v, o); err != nil {
			return fmt.Errorf("runtime: output %q: %w", o.Name, err)
		}
	}
	return nil
}

// runValues runs the session on fresh ORT values and returns the outputs ORT
// allocated; the caller destroys them.
func (w *worker) runValues(inputs []Tensor, order []int) ([]ort.Value, error) {
	sig := &w.m.sig
	in := make([]ort.Value, len(order))
	defer func() {
		for _, v := range in {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	for i, j := range order {
		v, err := newValue(&inputs[j])
		if err != nil {
			return nil, fmt.Errorf("runtime: input %q: %w", sig.Inputs[i].Name, err)
		}
		in[i] = v
	}
	out := make([]ort.Value, len(sig.Outputs))
	for j, o := range sig.Outputs {
		if o.DataType != FP16 && o.DataType != BF16 {
			continue
		}
		// onnxruntime_go cannot read back an ORT-allocated half tensor (it
		// copies one byte per element), so half outputs are preallocated,
		// which needs their shape in advance.
		n := NumElements(o.Shape)
		if n <= 0 {
			destroyAll(out)
			return nil, fmt.Errorf("runtime: output %q: %s outputs need a fixed shape, the model gives %s", o.Name, o.DataType, dimString(o.Shape))
		}
		v, err := ort.NewCustomDataTensor(ort.NewShape(o.Shape...), make([]byte, n*2), toORT(o.DataType))
		if err != nil {
			destroyAll(out)
			return nil, fmt.Errorf("runtime: output %q: %w", o.Name, err)
		}
		out[j] = v
	}
	if err := w.sess.Run(in, out); err != nil {
		destroyAll(out)
		return nil, &RunError{Err: err}
	}
	return out, nil
}

// newValue wraps t's data in an ORT value without copying numeric data.
func newValue(t *Tensor) (ort.Value, error) {
	shape := ort.NewShape(t.Shape...)
	if t.DataType == Bytes {
		v, err := ort.NewStringTensor(shape)
		if err != nil {
			return nil, err
		}
		if err := v.SetContents(t.Strings); err != nil {
			v.Destroy()
			return nil, err
		}
		return v, nil
	}
	if len(t.Data) == 0 { // CustomDataTensor refuses empty data
		return newEmpty(t.DataType, shape)
	}
	return ort.NewCustomDataTensor(shape, t.Data, toORT(t.DataType))
}

func newEmpty(d DataType, s ort.Shape) (ort.Value, error) {
	switch d {
	case Bool:
		return ort.NewTensor[bool](s, nil)
	case Uint8:
		return ort.NewTensor[uint8](s, nil)
	case Uint16:
		return ort.NewTensor[uint16](s, nil)
	case Uint32:
		return ort.NewTensor[uint32](s, nil)
	case Uint64:
		return ort.NewTensor[uint64](s, nil)
	case Int8:
		return ort.NewTensor[int8](s, nil)
	case Int16:
		return ort.NewTensor[int16](s, nil)
	case Int32:
		return ort.NewTensor[int32](s, nil)
	case Int64:
		return ort.NewTensor[int64](s, nil)
	case FP32:
		return ort.NewTensor[float32](s, nil)
	case FP64:
		return ort.NewTensor[float64](s, nil)
	}
	return nil, fmt.Errorf("cannot make an empty %s tensor", d)
}

// readValue copies an ORT-allocated output into o.
func readValue(v ort.Value, o *Tensor) error {
	switch t := v.(type) {
	case *ort.StringTensor:
		s, err := t.GetContents()
		if err != nil {
			return err
		}
		o.Strings = append(o.Strings, s...)
		return nil
	case *ort.Tensor[bool]:
		o.Data = append(o.Data, sliceBytes(t.GetData())...)
	case *ort.Tensor[uint8]:
		o.Data = append(o.Data, sliceBytes(t.GetData())...)
	case *ort.Tensor[uint16]:
		o.Data = append(o.Data, sliceBytes(t.GetData())...)
	case *ort.Tensor[uint32]:
		o.Data = append(o.Data, sliceBytes(t.GetData())...)
	case *ort.Tensor[uint64]:
		o.Data = append(o.Data, sliceBytes(t.GetData())...)
	case *ort.Tensor[int8]:
		o.Data = append(o.Data, sliceBytes(t.GetData())...)
	case *ort.Tensor[int16]:
		o.Data = append(o.Data, sliceBytes(t.GetData())...)
	case *ort.Tensor[int32]:
		o.Data = append(o.Data, sliceBytes(t.GetData())...)
	case *ort.Tensor[int64]:
		o.Data = append(o.Data, sliceBytes(t.GetData())...)
	case *ort.Tensor[float32]:
		o.Data = append(o.Data, sliceBytes(t.GetData())...)
	case *ort.Tensor[float64]:
		o.Data = append(o.Data, sliceBytes(t.GetData())...)
	case *ort.CustomDataTensor:
		// onnxruntime_go copies one byte per element for types it has no Go
		// type for (FP16, BF16), so its copy is short: refuse rather than
		// serve half a tensor. Fixed-shape ones take the bound path.
		if want := NumElements(o.Shape) * int64(o.DataType.Size()); int64(len(t.GetData())) != want {
			return errors.New("FP16 and BF16 outputs whose shape depends on the data are not supported")
		}
		o.Data = append(o.Data, t.GetData()...)
	default:
		return fmt.Errorf("unsupported output value %T", v)
	}
	return nil
}

func sliceBytes[T any](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	var z T
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(z)))
}

func destroyAll(vs []ort.Value) {
	for _, v := range vs {
		if v != nil {
			v.Destroy()
		}
	}
}
