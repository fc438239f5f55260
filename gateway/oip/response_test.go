package oip

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"

	"github.com/modelgate/modelgate/internal/jsonw"
	"github.com/modelgate/modelgate/runtime"
)

func tensor(name string, dt runtime.DataType, shape []int64, data []byte, strs ...string) runtime.Tensor {
	return runtime.Tensor{Name: name, DataType: dt, Shape: shape, Data: data, Strings: strs}
}

func TestAppendInferResponse(t *testing.T) {
	resp := &Response{
		Model: "fraud", Version: "3", ID: []byte("42"),
		Outputs: []runtime.Tensor{
			tensor("probability", runtime.FP32, []int64{2, 1}, f32(0.1, 1e-7)),
			tensor("label", runtime.Int64, []int64{2}, le64(1, uint64(1<<64-1))),
			tensor("odd", runtime.FP64, []int64{3}, f64(math.NaN(), math.Inf(-1), 1e21)),
		},
	}
	f := func(req *InferRequest, want string) {
		t.Helper()
		body, jsonLen := AppendInferResponse([]byte("prefix"), resp, req)
		if !bytes.HasPrefix(body, []byte("prefix")) || jsonLen != len(body)-6 {
			t.Fatalf("jsonLen %d for %d bytes after the prefix", jsonLen, len(body)-6)
		}
		if got := string(body[6:]); got != want {
			t.Errorf("got\n%s\nwant\n%s", got, want)
		}
		if !json.Valid(body[6:]) {
			t.Errorf("not valid JSON: %s", body[6:])
		}
	}
	const head = `{"model_name":"fraud","model_version":"3","id":"42","outputs":[`
	const prob = `{"name":"probability","datatype":"FP32","shape":[2,1],"data":[0.1,1e-7]}`
	const label = `{"name":"label","datatype":"INT64","shape":[2],"data":[1,-1]}`
	const odd = `{"name":"odd","datatype":"FP64","shape":[3],"data":[null,null,1e+21]}`
	f(nil, head+prob+","+label+","+odd+"]}")
	f(&InferRequest{}, head+prob+","+label+","+odd+"]}")
	f(&InferRequest{Outputs: []RequestedOutput{{Name: "label"}, {Name: "probability"}}}, head+label+","+prob+"]}")
	f(&InferRequest{Outputs: []RequestedOutput{{Name: "missing"}, {Name: "odd"}}}, head+odd+"]}")

	resp.ID = nil
	resp.Parameters = []Parameter{{Key: "role", Str: "canary"}, {Key: "request_id", Bytes: []byte("r-\x01")}, {Key: "empty", Bytes: []byte{}}}
	f(&InferRequest{Outputs: []RequestedOutput{{Name: "probability"}}},
		`{"model_name":"fraud","model_version":"3","parameters":{"role":"canary","request_id":"r-\u0001","empty":""},"outputs":[`+prob+"]}")
}

func TestAppendInferResponseBinary(t *testing.T) {
	resp := &Response{
		Model: "m", Version: "1",
		Outputs: []runtime.Tensor{
			tensor("a", runtime.FP32, []int64{2}, f32(1, float32(math.NaN()))),
			tensor("s", runtime.Bytes, []int64{2}, nil, "hi", ""),
			tensor("c", runtime.Uint8, []int64{1}, []byte{7}),
		},
	}
	req := &InferRequest{Outputs: []RequestedOutput{{Name: "s", Binary: true}, {Name: "c"}, {Name: "a", Binary: true}}}
	body, jsonLen := AppendInferResponse(nil, resp, req)
	wantJSON := `{"model_name":"m","model_version":"1","outputs":[` +
		`{"name":"s","datatype":"BYTES","shape":[2],"parameters":{"binary_data_size":10}},` +
		`{"name":"c","datatype":"UINT8","shape":[1],"data":[7]},` +
		`{"name":"a","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":8}}]}`
	if string(body[:jsonLen]) != wantJSON {
		t.Errorf("got\n%s\nwant\n%s", body[:jsonLen], wantJSON)
	}
	wantBin := append([]byte{2, 0, 0, 0, 'h', 'i', 0, 0, 0, 0}, f32(1, float32(math.NaN()))...)
	if !bytes.Equal(body[jsonLen:], wantBin) {
		t.Errorf("binary part % x, want % x", body[jsonLen:], wantBin)
	}

	// binary_data_output applies to every output when none is named.
	body, jsonLen = AppendInferResponse(body[:0], resp, &InferRequest{BinaryDataOutput: true})
	if n := len(body) - jsonLen; n != 8+10+1 {
		t.Errorf("%d binary bytes, want 19", n)
	}
}

// TestAppendDataAllTypes writes every datatype and reads it back with
// encoding/json.
func TestAppendDataAllTypes(t *testing.T) {
	cases := []struct {
		t    runtime.Tensor
		want string
	}{
		{tensor("", runtime.Bool, nil, []byte{1, 0, 2}), "[true,false,true]"},
		{tensor("", runtime.Uint8, nil, []byte{0, 255}), "[0,255]"},
		{tensor("", runtime.Int8, nil, []byte{0x80, 0x7f}), "[-128,127]"},
		{tensor("", runtime.Uint16, nil, le16(65535)), "[65535]"},
		{tensor("", runtime.Int16, nil, le16(0x8000)), "[-32768]"},
		{tensor("", runtime.Uint32, nil, le32(math.MaxUint32)), "[4294967295]"},
		{tensor("", runtime.Int32, nil, le32(0x80000000)), "[-2147483648]"},
		{tensor("", runtime.Uint64, nil, le64(math.MaxUint64)), "[18446744073709551615]"},
		{tensor("", runtime.Int64, nil, le64(1<<63)), "[-9223372036854775808]"},
		{tensor("", runtime.FP16, nil, le16(0x3c00, 0x2e66, 0x7bff, 0x0001, 0x7c00, 0x7e00, 0x8000)), "[1,0.1,65500,6e-8,null,null,-0]"},
		{tensor("", runtime.FP32, nil, f32(0.1, 3.4028235e38, 1e-45, 123456.79, -0.5)), "[0.1,3.4028235e+38,1e-45,123456.79,-0.5]"},
		{tensor("", runtime.FP64, nil, f64(0.1, 5e-324, 1e20, 1e21, 123456789.125)), "[0.1,5e-324,100000000000000000000,1e+21,123456789.125]"},
		{tensor("", runtime.Bytes, nil, nil, "a\"b\\c\n\t\x00\x1f", "é😀", "\xff", "\u2028"), `["a\"b\\c\n\t\u0000\u001f","é😀","\ufffd","\u2028"]`},
		{tensor("", runtime.FP32, nil, []byte{1, 2, 3}), "[]"}, // a partial element is ignored
		{tensor("", runtime.Invalid, nil, []byte{1}), "[]"},
	}
	for _, c := range cases {
		got := string(appendData(nil, &c.t))
		if got != c.want {
			t.Errorf("%v: got %s, want %s", c.t.DataType, got, c.want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("%v: not valid JSON: %s", c.t.DataType, got)
		}
	}
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "quote\" back\\ slash/", "\x00\x01\x1f\x7f", "\b\f\n\r\t", "é😀", "\xff\xfe", "a\xc3", "\u2028\u2029", "<>&", "\ufffd"} {
		got := jsonw.AppendString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%q → %s: %v", s, got, err)
		}
		want := s
		if !validString(s) {
			want = string(validUTF8([]byte(s)))
		}
		if back != want {
			t.Errorf("%q → %s → %q", s, got, back)
		}
	}
}

func validString(s string) bool { return string(validUTF8([]byte(s))) == s }

func TestAppendError(t *testing.T) {
	got := string(AppendError(nil, `input "features": bad`+"\n"))
	if want := `{"error":"input \"features\": bad\n"}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestRequestRoundTrip: AppendInferRequest writes what Decode reads, for
// every datatype, as JSON and in the binary extension.
func TestRequestRoundTrip(t *testing.T) {
	req := &InferRequest{
		ID: []byte("id-1"), RoutingKey: []byte("acct"), BinaryDataOutput: true,
		Inputs: []runtime.Tensor{
			tensor("b", runtime.Bool, []int64{2}, []byte{1, 0}),
			tensor("u8", runtime.Uint8, []int64{1, 2}, []byte{0, 255}),
			tensor("i16", runtime.Int16, []int64{1}, le16(0x8000)),
			tensor("u32", runtime.Uint32, []int64{1}, le32(math.MaxUint32)),
			tensor("i64", runtime.Int64, []int64{2}, le64(1<<63, 1<<63-1)),
			tensor("u64", runtime.Uint64, []int64{1}, le64(math.MaxUint64)),
			tensor("h", runtime.FP16, []int64{4}, le16(0x3c00, 0x0001, 0x7bff, 0x8000)),
			tensor("f", runtime.FP32, []int64{2, 2}, f32(0.1, -0, 1e-45, 3.4028235e38)),
			tensor("d", runtime.FP64, []int64{2}, f64(0.1, 5e-324)),
			tensor("s", runtime.Bytes, []int64{3}, nil, "", "é", "x\"y"),
			tensor("z", runtime.FP32, []int64{0, 3}, nil),
			tensor("scalar", runtime.Int8, []int64{}, []byte{0xff}),
		},
		Outputs: []RequestedOutput{{Name: "p", Binary: true}, {Name: "q"}},
	}
	for _, bin := range []bool{false, true} {
		body, jsonLen := AppendInferRequest(nil, req, bin)
		if !bin {
			jsonLen = -1
		}
		got := new(InferRequest)
		if err := new(Decoder).Decode(body, jsonLen, got); err != nil {
			t.Fatalf("binary %v: %v\n%s", bin, err, body)
		}
		if msg := sameRequest(req, got); msg != "" {
			t.Errorf("binary %v: %s differs\n%s", bin, msg, body)
		}
	}
}
