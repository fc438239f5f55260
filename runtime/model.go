package runtime

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	ort "github.com/yalue/onnxruntime_go"
)

// Model is one loaded model version: a signature and a pool of warmed ORT
// sessions. Infer is safe for concurrent use. Close frees the sessions; it
// must only be called once no Infer is running (Slot guarantees that).
type Model struct {
	sig    Signature
	cfg    Config
	free   chan *worker // idle sessions, batching off
	all    []*worker
	waitN  atomic.Int64 // calls waiting for a session or in the batch queue
	batch  *batcher     // nil when batching is off
	closed atomic.Bool
	once   sync.Once

	warmErr error // the warm-up run's error, if any: see WarmupError
	// dynamicShapes is set once a call has shown an output whose shape
	// depends on the input values (see worker.rerun).
	dynamicShapes atomic.Bool
}

// sessionsAlive counts ORT sessions created and not yet destroyed, process
// wide: the hot-swap tests use it to prove that drained versions free theirs.
var sessionsAlive atomic.Int64

// SessionsAlive returns how many ORT sessions exist in this process.
func SessionsAlive() int64 { return sessionsAlive.Load() }

// Load parses onnx, introspects its signature, creates cfg.Sessions sessions
// and warms each with one run on zero inputs, so the model is ready to serve
// when Load returns. ORT copies what it needs, so onnx may be reused.
//
// A model that cannot be loaded or whose sessions cannot be created is an
// error. A warm-up run that ONNX Runtime refuses is not: zeros are no valid
// input for a model whose inputs are shapes, scales, split sizes, divisors,
// steps or axes, and such a model still serves real inputs. WarmupError
// tells the caller, who should log it; that model's first real call pays
// the initialisation the warm-up would have done.
func Load(onnx []byte, cfg Config) (*Model, error) {
	if !initialized() {
		return nil, ErrNotInitialized
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.fill()
	if len(onnx) == 0 {
		return nil, errors.New("runtime: cannot load model: empty file")
	}
	mb := prepareModel(onnx)
	sig, err := introspect(mb)
	if err != nil {
		return nil, err
	}
	m := &Model{sig: *sig, cfg: cfg}
	if cfg.MaxBatch > 1 && !m.sig.Batchable() {
		return nil, fmt.Errorf("runtime: cannot batch this model: batching needs a dynamic first dimension on every input and output")
	}
	for i := 0; i < cfg.Sessions; i++ {
		w, err := newWorker(m, mb.forORT)
		if err != nil {
			m.destroy()
			return nil, fmt.Errorf("runtime: cannot create session %d: %w", i, err)
		}
		m.all = append(m.all, w)
		if err := w.warm(); err != nil && m.warmErr == nil {
			m.warmErr = fmt.Errorf("runtime: warm-up run on zero inputs failed: %w", err)
		}
	}
	if cfg.MaxBatch > 1 {
		m.batch = newBatcher(m)
	} else {
		m.free = make(chan *worker, len(m.all))
		for _, w := range m.all {
			m.free <- w
		}
	}
	return m, nil
}

// WarmupError returns why the warm-up run on zero inputs failed, or nil.
// The model is loaded and serves either way (see Load).
func (m *Model) WarmupError() error { return m.warmErr }

// DynamicShapes reports whether a call has shown an output whose shape
// depends on the input values rather than only on their shapes: such
// outputs are allocated by ONNX Runtime per call instead of bound once.
func (m *Model) DynamicShapes() bool { return m.dynamicShapes.Load() }

// Signature returns the model's interface. The caller must not modify it.
func (m *Model) Signature() *Signature { return &m.sig }

// Config returns the effective configuration (defaults filled in).
func (m *Model) Config() Config { return m.cfg }

// QueueDepth is the number of calls waiting for a session right now.
func (m *Model) QueueDepth() int64 { return m.waitN.Load() }

// Call is one inference: the caller fills Inputs (any order; Bind maps them
// to the signature) and Infer fills Outputs, one per signature output in
// signature order. Calls are meant to be pooled: Reset keeps every buffer.
type Call struct {
	Inputs  []Tensor
	Outputs []Tensor

	order []int // signature input i is Inputs[order[i]]
	rows  int64 // first dimension, for the batcher
	enq   time.Time
	err   error
	done  chan struct{}
	timer *time.Timer // reused for queue timeouts, so waiting does not allocate
}

// NewCall returns an empty Call.
func NewCall() *Call { return &Call{done: make(chan struct{}, 1)} }

// Reset empties c for reuse, keeping its buffers.
func (c *Call) Reset() {
	for i := range c.Inputs {
		c.Inputs[i].Reset()
	}
	c.Inputs = c.Inputs[:0]
	for i := range c.Outputs {
		c.Outputs[i].Reset()
	}
	c.Outputs = c.Outputs[:0]
	c.err = nil
}

// InputOrder returns the index in c.Inputs of the tensor that fed
// signature input i in the last Infer.
func (c *Call) InputOrder(i int) int { return c.order[i] }

// AddInput appends an empty input tensor, reusing a previous one's buffers.
func (c *Call) AddInput() *Tensor {
	if len(c.Inputs) < cap(c.Inputs) {
		c.Inputs = c.Inputs[:len(c.Inputs)+1]
	} else {
		c.Inputs = append(c.Inputs, Tensor{})
	}
	t := &c.Inputs[len(c.Inputs)-1]
	t.Reset()
	return t
}

// Infer checks c's inputs against the signature, runs the model and fills
// c.Outputs. Errors: *InputError or *ShapeError for bad inputs (the caller's
// fault), ErrQueueFull or ErrTimeout under overload, ErrClosed after Close,
// or an error from ONNX Runtime.
func (m *Model) Infer(c *Call) error {
	if m.closed.Load() {
		return ErrClosed
	}
	if cap(c.order) < len(m.sig.Inputs) {
		c.order = make([]int, len(m.sig.Inputs))
	}
	c.order = c.order[:len(m.sig.Inputs)]
	if err := m.sig.Bind(c.Inputs, c.order); err != nil {
		return err
	}
	if cap(c.Outputs) < len(m.sig.Outputs) {
		c.Outputs = append(c.Outputs[:cap(c.Outputs)], make([]Tensor, len(m.sig.Outputs)-cap(c.Outputs))...)
	}
	c.Outputs = c.Outputs[:len(m.sig.Outputs)]
	if m.batch != nil {
		return m.batch.submit(c)
	}
	w, err := m.acquire(c)
	if err != nil {
		return err
	}
	err = w.run(c.Inputs, c.order, c.Outputs)
	m.free <- w
	return err
}

// acquire takes an idle session, waiting at most QueueTimeout and refusing
// at once when MaxQueue calls already wait.
func (m *Model) acquire(c *Call) (*worker, error) {
	select {
	case w := <-m.free:
		return w, nil
	default:
	}
	if m.waitN.Add(1) > int64(m.cfg.MaxQueue) {
		m.waitN.Add(-1)
		return nil, ErrQueueFull
	}
	defer m.waitN.Add(-1)
	if c.timer == nil {
		c.timer = time.NewTimer(m.cfg.QueueTimeout)
	} else {
		c.timer.Reset(m.cfg.QueueTimeout)
	}
	defer c.timer.Stop()
	select {
	case w := <-m.free:
		return w, nil
	case <-c.timer.C:
		return nil, ErrTimeout
	}
}

// Close frees the sessions. It must be called only once no Infer is running
// or will start; Slot's refcount is what guarantees that in the server.
func (m *Model) Close() error {
	m.once.Do(func() {
		m.closed.Store(true)
		if m.batch != nil {
			m.batch.stop()
		}
		m.destroy()
	})
	return nil
}

func (m *Model) destroy() {
	for _, w := range m.all {
		w.destroy()
	}
	m.all = nil
}

// Introspect reads a model's signature and metadata through ONNX Runtime
// without keeping a session. Its time is linear in the number of metadata
// entries (see prepareModel).
func Introspect(onnx []byte) (*Signature, error) {
	if !initialized() {
		return nil, ErrNotInitialized
	}
	return introspect(prepareModel(onnx))
}

func introspect(mb modelBytes) (*Signature, error) {
	onnx := mb.forORT
	if ortModelHook != nil {
		ortModelHook(onnx)
	}
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(onnx)
	if err != nil {
		return nil, fmt.Errorf("runtime: cannot load model: %w", err)
	}
	sig := &Signature{}
	for _, in := range ins {
		spec, err := specOf(in)
		if err != nil {
			return nil, fmt.Errorf("runtime: input %q: %w", in.Name, err)
		}
		sig.Inputs = append(sig.Inputs, spec)
	}
	for _, out := range outs {
		if out.OrtValueType != ort.ONNXTypeTensor {
			sig.Skipped = append(sig.Skipped, out.Name)
			continue
		}
		spec, err := specOf(out)
		if err != nil {
			return nil, fmt.Errorf("runtime: output %q: %w", out.Name, err)
		}
		sig.Outputs = append(sig.Outputs, spec)
	}
	if len(sig.Outputs) == 0 {
		return nil, errors.New("runtime: the model has no tensor outputs to serve")
	}
	md, err := ort.GetModelMetadataWithONNXData(onnx)
	if err != nil {
		return nil, fmt.Errorf("runtime: cannot read model metadata: %w", err)
	}
	defer md.Destroy()
	sig.Metadata.Producer, _ = md.GetProducerName()
	sig.Metadata.GraphName, _ = md.GetGraphName()
	sig.Metadata.Domain, _ = md.GetDomain()
	sig.Metadata.Description, _ = md.GetDescription()
	sig.Metadata.Version, _ = md.GetVersion()
	sig.Metadata.Custom = mb.custom
	return sig, nil
}

func specOf(info ort.InputOutputInfo) (TensorSpec, error) {
	if info.OrtValueType != ort.ONNXTypeTensor {
		return TensorSpec{}, fmt.Errorf("%s values are not supported: modelgate serves tensors", info.OrtValueType)
	}
	dt := fromORT(info.DataType)
	if dt == Invalid {
		return TensorSpec{}, fmt.Errorf("element type %s is not supported", info.DataType)
	}
	shape := make([]int64, len(info.Dimensions))
	for i, d := range info.Dimensions {
		if d < 0 {
			d = -1
		}
		shape[i] = d
	}
	return TensorSpec{Name: info.Name, DataType: dt, Shape: shape}, nil
}

func fromORT(t ort.TensorElementDataType) DataType {
	switch t {
	case ort.TensorElementDataTypeBool:
		return Bool
	case ort.TensorElementDataTypeUint8:
		return Uint8
	case ort.TensorElementDataTypeUint16:
		return Uint16
	case ort.TensorElementDataTypeUint32:
		return Uint32
	case ort.TensorElementDataTypeUint64:
		return Uint64
	case ort.TensorElementDataTypeInt8:
		return Int8
	case ort.TensorElementDataTypeInt16:
		return Int16
	case ort.TensorElementDataTypeInt32:
		return Int32
	case ort.TensorElementDataTypeInt64:
		return Int64
	case ort.TensorElementDataTypeFloat16:
		return FP16
	case ort.TensorElementDataTypeFloat:
		return FP32
	case ort.TensorElementDataTypeDouble:
		return FP64
	case ort.TensorElementDataTypeBFloat16:
		return BF16
	case ort.TensorElementDataTypeString:
		return Bytes
	}
	return Invalid
}

func toORT(d DataType) ort.TensorElementDataType {
	switch d {
	case Bool:
		return ort.TensorElementDataTypeBool
	case Uint8:
		return ort.TensorElementDataTypeUint8
	case Uint16:
		return ort.TensorElementDataTypeUint16
	case Uint32:
		return ort.TensorElementDataTypeUint32
	case Uint64:
		return ort.TensorElementDataTypeUint64
	case Int8:
		return ort.TensorElementDataTypeInt8
	case Int16:
		return ort.TensorElementDataTypeInt16
	case Int32:
		return ort.TensorElementDataTypeInt32
	case Int64:
		return ort.TensorElementDataTypeInt64
	case FP16:
		return ort.TensorElementDataTypeFloat16
	case FP32:
		return ort.TensorElementDataTypeFloat
	case FP64:
		return ort.TensorElementDataTypeDouble
	case BF16:
		return ort.TensorElementDataTypeBFloat16
	case Bytes:
		return ort.TensorElementDataTypeString
	}
	return ort.TensorElementDataTypeUndefined
}
