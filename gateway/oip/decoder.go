package oip

import (
	"strconv"
	"unicode/utf8"
)

// Decoder decodes OIP inference requests. It is not safe for concurrent use;
// keep one per goroutine or in a pooled per-request state (calling Trim
// before pooling it). Its buffers and its table of interned tensor names survive
// between requests, which is what makes steady-state decoding allocation-free.
type Decoder struct {
	buf []byte // the JSON being decoded; nil between calls
	i   int    // read position in buf

	bin    []byte // the binary section after the JSON header
	binOff int    // how much of bin the inputs so far have claimed
	hasBin bool   // the request came with Inference-Header-Content-Length

	scratch []byte // unescaped strings
	strBuf  []byte // BYTES elements of the tensor being decoded, back to back
	strEnds []int  // end offset in strBuf of each of those elements
	count   int64  // elements of the tensor's data decoded so far

	// names interns tensor names: a request names the same few tensors as
	// the last one, and m[string(b)] does not allocate.
	names map[string]string
}

// maxInterned bounds the intern table; when it is full it starts over, so a
// client sending random names costs allocations, not memory.
const maxInterned = 256

// Trim drops the scratch buffers that grew past what a pooled Decoder
// keeps: a caller that pools its Decoders (the gateway keeps one in its
// per-request state) calls it before pooling one.
func (d *Decoder) Trim() {
	d.scratch = trim(d.scratch)
	d.strBuf = trim(d.strBuf)
	if cap(d.strEnds) > maxRetained/8 {
		d.strEnds = nil
	}
}

// Retained is the capacity, in bytes, of the buffers d keeps between
// requests (its intern table aside, which maxInterned bounds).
func (d *Decoder) Retained() int {
	return cap(d.scratch) + cap(d.strBuf) + 8*cap(d.strEnds)
}

// Decode decodes an inference request into req, which it resets first.
//
// jsonLen is the value of the Inference-Header-Content-Length header, or -1
// when the header is absent: then the whole body is JSON. With the header,
// body[:jsonLen] is JSON and the rest is binary tensor data.
//
// req keeps no reference to body. Every error is an *Error (status 400);
// on error req is reset.
func (d *Decoder) Decode(body []byte, jsonLen int, req *InferRequest) error {
	req.Reset()
	d.hasBin = jsonLen >= 0
	switch {
	case jsonLen == -1:
		d.buf, d.bin = body, nil
	case jsonLen < -1:
		return badRequest("Inference-Header-Content-Length is " + strconv.Itoa(jsonLen) + ": it must be the byte length of the JSON header")
	case jsonLen > len(body):
		return badRequest("Inference-Header-Content-Length is " + strconv.Itoa(jsonLen) + " but the body has only " + strconv.Itoa(len(body)) + " bytes")
	default:
		d.buf, d.bin = body[:jsonLen], body[jsonLen:]
	}
	d.i, d.binOff = 0, 0
	err := d.request(req)
	d.buf, d.bin = nil, nil
	if err != nil {
		req.Reset()
		return err
	}
	return nil
}

// Request members, as bits of a "seen" mask that catches duplicates.
const (
	seenID = 1 << iota
	seenParams
	seenInputs
	seenOutputs
)

// requestMember classifies a request key; 0 for keys the decoder skips.
func requestMember(key []byte) int {
	switch string(key) {
	case "id":
		return seenID
	case "parameters":
		return seenParams
	case "inputs":
		return seenInputs
	case "outputs":
		return seenOutputs
	}
	return 0
}

func (d *Decoder) request(req *InferRequest) error {
	switch c := d.skipWS(); {
	case c == '{':
	case d.i == len(d.buf):
		return badRequest(`empty request: the body must be a JSON object with "inputs"`)
	default:
		return badRequest("the request must be a JSON object, got " + d.describe())
	}
	seen := 0
	for more := !d.openObject(); more; {
		key, err := d.objectKey()
		if err != nil {
			return err
		}
		bit := requestMember(key)
		if seen&bit != 0 {
			return badRequest("the request has " + quoteShort(key) + " more than once")
		}
		seen |= bit
		switch bit {
		case seenID:
			if d.buf[d.i] != '"' {
				return badRequest(`"id" must be a string, got ` + d.describe())
			}
			s, err := d.parseString()
			if err != nil {
				return err
			}
			if len(s) > MaxIDLen {
				return badRequest(`"id" is ` + strconv.Itoa(len(s)) + " bytes long; the limit is " + strconv.Itoa(MaxIDLen))
			}
			req.ID = append(req.ID[:0], s...)
		case seenParams:
			err = d.requestParams(req)
		case seenInputs:
			err = d.inputs(req)
		case seenOutputs:
			err = d.outputs(req)
		default:
			err = d.skipValue(1)
		}
		if err != nil {
			return err
		}
		if more, err = d.objectNext(); err != nil {
			return err
		}
	}
	if d.skipWS(); d.i != len(d.buf) {
		return d.syntaxErr("unexpected data after the request object")
	}
	if seen&seenInputs == 0 {
		return badRequest(`the request has no "inputs": send {"inputs":[{"name":…,"shape":[…],"datatype":…,"data":[…]}]}`)
	}
	for i := range req.Outputs {
		o := &req.Outputs[i]
		o.Binary = o.binary == 2 || o.binary == 0 && req.BinaryDataOutput
	}
	if d.binOff != len(d.bin) {
		return badRequest(strconv.Itoa(len(d.bin)-d.binOff) + " bytes after the JSON header are not claimed by any input's binary_data_size (is Inference-Header-Content-Length right?)")
	}
	return nil
}

// requestParams decodes the request's "parameters".
func (d *Decoder) requestParams(req *InferRequest) error {
	if d.buf[d.i] != '{' {
		return badRequest(`"parameters" must be an object, got ` + d.describe())
	}
	for more := !d.openObject(); more; {
		key, err := d.objectKey()
		if err != nil {
			return err
		}
		switch string(key) {
		case "routing_key":
			if d.buf[d.i] != '"' {
				return badRequest(`parameters.routing_key must be a string, got ` + d.describe())
			}
			s, err := d.parseString()
			if err != nil {
				return err
			}
			if len(s) > MaxIDLen {
				return badRequest("parameters.routing_key is " + strconv.Itoa(len(s)) + " bytes long; the limit is " + strconv.Itoa(MaxIDLen))
			}
			req.RoutingKey = append(req.RoutingKey[:0], s...)
		case "binary_data_output":
			b, err := d.boolParam(nil, "parameters.binary_data_output")
			if err != nil {
				return err
			}
			req.BinaryDataOutput = b
		default:
			if err := d.skipValue(2); err != nil {
				return err
			}
		}
		if more, err = d.objectNext(); err != nil {
			return err
		}
	}
	return nil
}

// boolParam decodes a boolean parameter; prefix (may be nil) and name say
// which one in messages.
func (d *Decoder) boolParam(prefix func() string, name string) (bool, error) {
	switch d.buf[d.i] {
	case 't':
		return true, d.literal("true")
	case 'f':
		return false, d.literal("false")
	}
	if prefix != nil {
		name = prefix() + name
	}
	return false, badRequest(name + " must be true or false, got " + d.describe())
}

// tensorName decodes a tensor name into *dst, interned; list and idx name
// the tensor in messages ("inputs", 0).
func (d *Decoder) tensorName(dst *string, list string, idx int) error {
	what := func() string { return list + "[" + strconv.Itoa(idx) + "]" }
	if d.buf[d.i] != '"' {
		return badRequest(what() + `: "name" must be a string, got ` + d.describe())
	}
	s, err := d.parseString()
	if err != nil {
		return err
	}
	switch {
	case len(s) == 0:
		return badRequest(what() + `: "name" is empty`)
	case len(s) > MaxNameLen:
		return badRequest(what() + `: "name" is ` + strconv.Itoa(len(s)) + " bytes long; the limit is " + strconv.Itoa(MaxNameLen))
	case !utf8.Valid(s):
		return badRequest(what() + `: "name" is not valid UTF-8`)
	}
	*dst = d.intern(s)
	return nil
}

func (d *Decoder) intern(b []byte) string {
	if s, ok := d.names[string(b)]; ok {
		return s
	}
	if d.names == nil {
		d.names = make(map[string]string, 8)
	} else if len(d.names) >= maxInterned {
		clear(d.names)
	}
	s := string(b)
	d.names[s] = s
	return s
}
