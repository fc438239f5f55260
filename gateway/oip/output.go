package oip

import "strconv"

// Decoding the request's "outputs": which outputs to answer, and how.

// outputs decodes the request's "outputs".
func (d *Decoder) outputs(req *InferRequest) error {
	if d.buf[d.i] != '[' {
		return badRequest(`"outputs" must be an array, got ` + d.describe())
	}
	for more := !d.openArray(); more; {
		idx := len(req.Outputs)
		if d.skipWS() != '{' {
			return badRequest("outputs[" + strconv.Itoa(idx) + "] must be an object, got " + d.describe())
		}
		if idx == MaxOutputs {
			return badRequest("the request asks for more than " + strconv.Itoa(MaxOutputs) + " outputs")
		}
		req.Outputs = append(req.Outputs, RequestedOutput{})
		o := &req.Outputs[idx]
		if err := d.output(o, idx); err != nil {
			return err
		}
		for i := range idx {
			if req.Outputs[i].Name == o.Name {
				return badRequest("output " + strconv.Quote(o.Name) + " is requested more than once")
			}
		}
		var err error
		if more, err = d.arrayNext(); err != nil {
			return err
		}
	}
	return nil
}

// output decodes one entry of "outputs".
func (d *Decoder) output(o *RequestedOutput, idx int) error {
	seen := 0
	for more := !d.openObject(); more; {
		key, err := d.objectKey()
		if err != nil {
			return err
		}
		bit := tensorMember(key)
		if seen&bit != 0 {
			return badRequest("outputs[" + strconv.Itoa(idx) + "]: " + quoteShort(key) + " is given more than once")
		}
		seen |= bit
		switch bit {
		case seenName:
			err = d.tensorName(&o.Name, "outputs", idx)
		case seenTensorParams:
			err = d.outputParams(o, idx)
		default:
			// Outputs have no shape, datatype or data in a request.
			err = d.skipValue(3)
		}
		if err != nil {
			return err
		}
		if more, err = d.objectNext(); err != nil {
			return err
		}
	}
	if seen&seenName == 0 {
		return badRequest("outputs[" + strconv.Itoa(idx) + `]: missing "name"`)
	}
	return nil
}

// outputParams decodes a requested output's "parameters".
func (d *Decoder) outputParams(o *RequestedOutput, idx int) error {
	what := func() string { return "outputs[" + strconv.Itoa(idx) + "]" }
	if d.buf[d.i] != '{' {
		return badRequest(what() + `: "parameters" must be an object, got ` + d.describe())
	}
	for more := !d.openObject(); more; {
		key, err := d.objectKey()
		if err != nil {
			return err
		}
		switch string(key) {
		case "binary_data":
			b, err := d.boolParam(what, ": parameters.binary_data")
			if err != nil {
				return err
			}
			o.binary = 1
			if b {
				o.binary = 2
			}
		case "classification":
			// Triton's top-k classification would change what the output
			// means; answering raw scores instead would mislead the client.
			return badRequest(what() + ": parameters.classification is not supported; ask for the raw output")
		default:
			if err := d.skipValue(4); err != nil {
				return err
			}
		}
		if more, err = d.objectNext(); err != nil {
			return err
		}
	}
	return nil
}
