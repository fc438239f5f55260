package oip

import "github.com/modelgate/modelgate/runtime"

// Limits on what one request may carry. They keep a hostile request from
// turning into a large allocation or a long loop before any model sees it;
// the HTTP layer's body limit bounds everything else.
const (
	// MaxRank is the largest number of dimensions of a tensor.
	MaxRank = 8
	// MaxElements is the largest element count of one tensor (the product of
	// its shape): 256 Mi elements, 1 GiB of FP32. It keeps shape arithmetic
	// small; what a request may really carry is bounded by the body limit,
	// and buffers are sized from the body, never from the claimed shape.
	MaxElements = 1 << 28
	// MaxInputs and MaxOutputs bound the tensors one request may name.
	MaxInputs  = 64
	MaxOutputs = 64
	// MaxNameLen bounds a tensor name, in bytes.
	MaxNameLen = 256
	// MaxIDLen bounds the request id, in bytes: it is echoed in the response
	// and becomes a key of the prediction log, which stores ids of up to 255
	// bytes (one length byte): a 256-byte id was answered but never logged.
	MaxIDLen = 255
)

// maxRetained is the largest buffer a pooled InferRequest or Decoder keeps
// between requests. A rare huge request should not pin its buffers in the
// pool; re-allocating for requests this large costs little next to parsing
// them. 1 MiB keeps every buffer of a 1,000-row demo batch (~300 KB of
// JSON, 120 KB of features) and drops those of bodies near the 4 MiB
// limit: 64 connections sending 4 MB bodies otherwise left ~2 MB of
// decoded features pinned per pooled request.
const maxRetained = 1 << 20

// InferRequest is a decoded inference request. It owns all its memory (it
// never points into the body it was decoded from) and is reused: Reset keeps
// the buffers, so a warm InferRequest decodes without allocating.
//
// ID and RoutingKey are byte slices rather than strings for the same reason:
// they are overwritten by the next Decode, so anything that keeps them past
// Reset (the prediction log, the shadow queue) must copy them.
type InferRequest struct {
	// ID is the request's "id", unescaped; empty when absent.
	ID []byte
	// RoutingKey is parameters.routing_key, unescaped; empty when absent.
	// The canary split hashes it (or ID when it is empty).
	RoutingKey []byte
	// BinaryDataOutput is parameters.binary_data_output: answer every output
	// in the binary extension unless the output says otherwise.
	BinaryDataOutput bool
	// Inputs are the request's tensors in request order. Names are interned
	// by the Decoder: they stay valid after Reset.
	Inputs []runtime.Tensor
	// Outputs are the outputs asked for, in request order; empty means all.
	Outputs []RequestedOutput
}

// RequestedOutput is one entry of the request's "outputs".
type RequestedOutput struct {
	Name string
	// Binary is true when the output is to be answered in the binary
	// extension: its parameters.binary_data, else the request's
	// binary_data_output.
	Binary bool
	// binary is parameters.binary_data as given: 0 absent, 1 false, 2 true.
	binary uint8
}

// Reset empties r but keeps its buffers (except very large ones).
func (r *InferRequest) Reset() {
	r.ID = trim(r.ID)
	r.RoutingKey = trim(r.RoutingKey)
	r.BinaryDataOutput = false
	for i := range r.Inputs {
		t := &r.Inputs[i]
		t.Reset()
		t.Data = trim(t.Data)
		if cap(t.Strings) > maxRetained/16 {
			t.Strings = nil
		}
	}
	r.Inputs = r.Inputs[:0]
	clear(r.Outputs)
	r.Outputs = r.Outputs[:0]
}

// trim empties b, dropping it when it has grown past maxRetained.
func trim(b []byte) []byte {
	if cap(b) > maxRetained {
		return nil
	}
	return b[:0]
}

// addInput appends an empty tensor to r.Inputs, reusing an old one's buffers.
func (r *InferRequest) addInput() *runtime.Tensor {
	if n := len(r.Inputs); n < cap(r.Inputs) {
		r.Inputs = r.Inputs[:n+1]
	} else {
		r.Inputs = append(r.Inputs, runtime.Tensor{})
	}
	t := &r.Inputs[len(r.Inputs)-1]
	t.Reset()
	return t
}

// CheckOutputs checks the requested outputs against the model's signature and
// returns a *runtime.OutputError naming the first one the model does not
// have. Outputs the model skips (non-tensor outputs) count as unknown: OIP
// cannot carry them.
func CheckOutputs(req *InferRequest, sig *runtime.Signature) error {
	for i := range req.Outputs {
		if sig.OutputIndex(req.Outputs[i].Name) < 0 {
			return &runtime.OutputError{Output: req.Outputs[i].Name}
		}
	}
	return nil
}
