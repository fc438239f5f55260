package oip

import (
	"strconv"

	"github.com/modelgate/modelgate/internal/jsonw"
	"github.com/modelgate/modelgate/runtime"
)

// HeaderInferenceContentLength is the binary tensor data extension's header:
// the byte length of the JSON at the start of a body. Requests that carry it
// are decoded with Decode(body, n, req); responses with binary outputs must
// carry it.
const HeaderInferenceContentLength = "Inference-Header-Content-Length"

// Response is what an inference response says besides the request's output
// selection.
type Response struct {
	Model   string
	Version string
	// ID echoes the request's id; "id" is left out when it is empty.
	ID []byte
	// Parameters are written into the response's "parameters", in order,
	// as string values (request_id, the answering version's role, …); left
	// out when empty.
	Parameters []Parameter
	// Outputs are the tensors the model computed. Which of them are written,
	// and how, is the request's choice.
	Outputs []runtime.Tensor
}

// Parameter is one string-valued response parameter. Bytes is written when
// it is non-nil, else Str: constants need no conversion and a value built per
// request in a reused buffer needs no allocation.
type Parameter struct {
	Key   string
	Str   string
	Bytes []byte
}

// AppendInferResponse appends the inference response for resp to dst and
// returns the extended buffer and the length of the JSON part.
//
// With req (which may be nil) the outputs written are the requested ones in
// request order, or all of resp.Outputs when the request names none; a
// requested output missing from resp.Outputs is left out (check names with
// CheckOutputs before running the model). Outputs the request wants in the
// binary extension carry parameters.binary_data_size and their bytes follow
// the JSON in the order of the JSON: then jsonLen < len(body)-len(dst) and the
// caller must send HeaderInferenceContentLength: jsonLen.
//
// Numbers are written in the shortest form that reads back exactly (FP16 and
// FP32 as float32); NaN and infinities are written as null, since JSON has
// no way to say them; ask for binary outputs to get them.
func AppendInferResponse(dst []byte, resp *Response, req *InferRequest) (body []byte, jsonLen int) {
	start := len(dst)
	dst = append(dst, `{"model_name":`...)
	dst = jsonw.AppendString(dst, resp.Model)
	dst = append(dst, `,"model_version":`...)
	dst = jsonw.AppendString(dst, resp.Version)
	if len(resp.ID) > 0 {
		dst = append(dst, `,"id":`...)
		dst = jsonw.AppendString(dst, b2s(resp.ID))
	}
	if len(resp.Parameters) > 0 {
		dst = append(dst, `,"parameters":{`...)
		for i := range resp.Parameters {
			p := &resp.Parameters[i]
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = jsonw.AppendString(dst, p.Key)
			dst = append(dst, ':')
			if p.Bytes != nil {
				dst = jsonw.AppendString(dst, b2s(p.Bytes))
			} else {
				dst = jsonw.AppendString(dst, p.Str)
			}
		}
		dst = append(dst, '}')
	}
	dst = append(dst, `,"outputs":[`...)
	n := selectedCount(resp, req)
	anyBinary, first := false, true
	for k := range n {
		t, bin := selectOutput(resp, req, k)
		if t == nil {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, `{"name":`...)
		dst = jsonw.AppendString(dst, t.Name)
		dst = append(dst, `,"datatype":"`...)
		dst = append(dst, t.DataType.String()...)
		dst = append(dst, `","shape":`...)
		dst = appendShape(dst, t.Shape)
		if bin {
			anyBinary = true
			dst = append(dst, `,"parameters":{"binary_data_size":`...)
			dst = strconv.AppendInt(dst, int64(binarySize(t)), 10)
			dst = append(dst, "}}"...)
		} else {
			dst = append(dst, `,"data":`...)
			dst = appendData(dst, t)
			dst = append(dst, '}')
		}
	}
	dst = append(dst, "]}"...)
	jsonLen = len(dst) - start
	if anyBinary {
		for k := range n {
			if t, bin := selectOutput(resp, req, k); t != nil && bin {
				dst = appendBinary(dst, t)
			}
		}
	}
	return dst, jsonLen
}

// selectedCount is how many outputs selectOutput chooses among.
func selectedCount(resp *Response, req *InferRequest) int {
	if req != nil && len(req.Outputs) > 0 {
		return len(req.Outputs)
	}
	return len(resp.Outputs)
}

// selectOutput returns the k-th output to write (nil when the model did not
// produce it) and whether it goes in the binary extension.
func selectOutput(resp *Response, req *InferRequest, k int) (*runtime.Tensor, bool) {
	if req == nil || len(req.Outputs) == 0 {
		return &resp.Outputs[k], req != nil && req.BinaryDataOutput
	}
	o := &req.Outputs[k]
	for i := range resp.Outputs {
		if resp.Outputs[i].Name == o.Name {
			return &resp.Outputs[i], o.Binary
		}
	}
	return nil, false
}

// AppendInferRequest appends req as an inference request body: the inverse
// of Decode, for clients, tools and tests. With binary, every input's data
// goes in the binary tensor data extension after the JSON, and the request
// must be sent with HeaderInferenceContentLength: jsonLen. Without it, data
// is written as JSON arrays (flat), so NaN and infinities, written as null,
// do not survive; use binary for them.
func AppendInferRequest(dst []byte, req *InferRequest, binary bool) (body []byte, jsonLen int) {
	start := len(dst)
	dst = append(dst, '{')
	if len(req.ID) > 0 {
		dst = append(dst, `"id":`...)
		dst = jsonw.AppendString(dst, b2s(req.ID))
		dst = append(dst, ',')
	}
	if len(req.RoutingKey) > 0 || req.BinaryDataOutput {
		dst = append(dst, `"parameters":{`...)
		if len(req.RoutingKey) > 0 {
			dst = append(dst, `"routing_key":`...)
			dst = jsonw.AppendString(dst, b2s(req.RoutingKey))
			if req.BinaryDataOutput {
				dst = append(dst, ',')
			}
		}
		if req.BinaryDataOutput {
			dst = append(dst, `"binary_data_output":true`...)
		}
		dst = append(dst, "},"...)
	}
	dst = append(dst, `"inputs":[`...)
	for i := range req.Inputs {
		t := &req.Inputs[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"name":`...)
		dst = jsonw.AppendString(dst, t.Name)
		dst = append(dst, `,"shape":`...)
		dst = appendShape(dst, t.Shape)
		dst = append(dst, `,"datatype":"`...)
		dst = append(dst, t.DataType.String()...)
		if binary {
			dst = append(dst, `","parameters":{"binary_data_size":`...)
			dst = strconv.AppendInt(dst, int64(binarySize(t)), 10)
			dst = append(dst, "}}"...)
		} else {
			dst = append(dst, `","data":`...)
			dst = appendData(dst, t)
			dst = append(dst, '}')
		}
	}
	dst = append(dst, ']')
	if len(req.Outputs) > 0 {
		dst = append(dst, `,"outputs":[`...)
		for i := range req.Outputs {
			o := &req.Outputs[i]
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"name":`...)
			dst = jsonw.AppendString(dst, o.Name)
			if o.Binary {
				dst = append(dst, `,"parameters":{"binary_data":true}}`...)
			} else {
				dst = append(dst, `,"parameters":{"binary_data":false}}`...)
			}
		}
		dst = append(dst, ']')
	}
	dst = append(dst, '}')
	jsonLen = len(dst) - start
	if binary {
		for i := range req.Inputs {
			dst = appendBinary(dst, &req.Inputs[i])
		}
	}
	return dst, jsonLen
}

// ParseJSONLength parses the value of HeaderInferenceContentLength for
// Decode: -1 when the header is absent (empty value).
func ParseJSONLength(v []byte) (int, error) {
	if len(v) == 0 {
		return -1, nil
	}
	n, ok := uint64(0), len(v) <= 10
	for _, c := range v {
		if c < '0' || c > '9' {
			ok = false
			break
		}
		n = n*10 + uint64(c-'0')
	}
	if !ok || n > 1<<31-1 {
		return 0, badRequest(HeaderInferenceContentLength + " must be the byte length of the JSON header, got " + quoteShort(v))
	}
	return int(n), nil
}
