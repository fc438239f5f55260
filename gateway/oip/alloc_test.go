package oip

import (
	"testing"

	"github.com/modelgate/modelgate/internal/oiptest"
	"github.com/modelgate/modelgate/runtime"
)

// demoResponse is the demo model's answer to one row.
func demoResponse() *Response {
	resp := &Response{Model: "fraud", Version: "3", Outputs: make([]runtime.Tensor, 1)}
	resp.Outputs[0].SetFloat32s("probability", []int64{1, 1}, []float32{0.0731})
	resp.Parameters = []Parameter{{Key: "role", Str: "champion"}, {Key: "request_id", Bytes: []byte("42")}}
	return resp
}

// TestDecodeEncodeAllocs pins the scoring path's codec work to zero
// allocations once the decoder, the request and the buffer are warm: decode
// the demo request, bind it, write the answer.
func TestDecodeEncodeAllocs(t *testing.T) {
	body := oiptest.GoodRequest(1)
	binBody, binLen := oiptest.GoodBinaryRequest(1)
	sig := oiptest.DemoSignature()
	resp := demoResponse()
	order := make([]int, 1)
	d := new(Decoder)
	req := new(InferRequest)
	var buf []byte
	run := func(body []byte, jsonLen int) func() {
		return func() {
			if err := d.Decode(body, jsonLen, req); err != nil {
				t.Fatal(err)
			}
			if err := sig.Bind(req.Inputs, order); err != nil {
				t.Fatal(err)
			}
			if err := CheckOutputs(req, sig); err != nil {
				t.Fatal(err)
			}
			resp.ID = req.ID
			buf, _ = AppendInferResponse(buf[:0], resp, req)
		}
	}
	for name, f := range map[string]func(){
		"json":   run(body, -1),
		"binary": run(binBody, binLen),
		"json with outputs": run([]byte(`{"id":"42","parameters":{"routing_key":"acct-9","binary_data_output":true},`+
			`"inputs":[{"name":"features","shape":[1,30],"datatype":"FP32","data":[[`+string(body[len(`{"id":"42","inputs":[{"name":"features","shape":[1,30],"datatype":"FP32","data":[`):len(body)-4])+`]]}],`+
			`"outputs":[{"name":"probability","parameters":{"binary_data":false}}]}`), -1),
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocations per request, want 0", name, n)
		}
	}
	if want := `{"model_name":"fraud","model_version":"3","id":"42","parameters":{"role":"champion","request_id":"42"},"outputs":[{"name":"probability","datatype":"FP32","shape":[1,1],"data":[0.0731]}]}`; string(buf) != want {
		t.Errorf("response\n%s\nwant\n%s", buf, want)
	}
}

// TestPooledAllocs checks the gateway's way of reusing a decoder and a
// request (Trim and Reset between requests) allocates nothing in steady
// state.
func TestPooledAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items")
	}
	body := oiptest.GoodRequest(1)
	resp := demoResponse()
	buf := make([]byte, 0, 1024)
	var d Decoder
	var req InferRequest
	f := func() {
		if err := d.Decode(body, -1, &req); err != nil {
			t.Fatal(err)
		}
		buf, _ = AppendInferResponse(buf[:0], resp, &req)
		d.Trim()
		req.Reset()
	}
	if n := testing.AllocsPerRun(100, f); n > 0.1 {
		t.Errorf("%v allocations per request, want 0", n)
	}
}
