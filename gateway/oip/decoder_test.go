package oip

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/modelgate/modelgate/runtime"
)

// decodeOne decodes a request with one input of the given datatype, shape
// and data, and returns the input or the error message.
func decodeOne(t *testing.T, dt, shape, data string) (*runtime.Tensor, string) {
	t.Helper()
	body := `{"inputs":[{"name":"x","shape":` + shape + `,"datatype":"` + dt + `","data":` + data + `}]}`
	req := new(InferRequest)
	if err := new(Decoder).Decode([]byte(body), -1, req); err != nil {
		var e *Error
		if !errors.As(err, &e) || e.Status != 400 {
			t.Fatalf("%s: error %v is not a 400 *Error", body, err)
		}
		return nil, e.Msg
	}
	return &req.Inputs[0], ""
}

func le16(v ...uint16) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint16(b, x)
	}
	return b
}

func le32(v ...uint32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, x)
	}
	return b
}

func le64(v ...uint64) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint64(b, x)
	}
	return b
}

func f32(v ...float32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func f64(v ...float64) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
	}
	return b
}

func TestDecodeNumbers(t *testing.T) {
	ok := func(dt, data string, want []byte) {
		t.Helper()
		n := strings.Count(data, ",") + 1
		in, msg := decodeOne(t, dt, "["+strconv.Itoa(n)+"]", data)
		if msg != "" {
			t.Errorf("%s %s: %s", dt, data, msg)
			return
		}
		if !bytes.Equal(in.Data, want) {
			t.Errorf("%s %s: got % x, want % x", dt, data, in.Data, want)
		}
	}
	bad := func(dt, data, wantMsg string) {
		t.Helper()
		n := strings.Count(data, ",") + 1
		if _, msg := decodeOne(t, dt, "["+strconv.Itoa(n)+"]", data); !strings.Contains(msg, wantMsg) {
			t.Errorf("%s %s: got %q, want it to contain %q", dt, data, msg, wantMsg)
		}
	}
	ok("BOOL", "[true,false]", []byte{1, 0})
	bad("BOOL", "[1,0]", "expected true or false for BOOL, got a number")
	bad("BOOL", `["true"]`, "got a string")

	ok("UINT8", "[0,255,-0,1.0,2e2]", []byte{0, 255, 0, 1, 200})
	bad("UINT8", "[256]", "256 is out of range for UINT8")
	bad("UINT8", "[-1]", "-1 is out of range for UINT8")
	bad("UINT8", "[0.5]", "expected an integer for UINT8, got 0.5")
	ok("UINT16", "[65535]", le16(65535))
	bad("UINT16", "[65536]", "out of range for UINT16")
	ok("UINT32", "[4294967295]", le32(math.MaxUint32))
	bad("UINT32", "[4294967296]", "out of range for UINT32")
	ok("UINT64", "[18446744073709551615,0]", le64(math.MaxUint64, 0))
	bad("UINT64", "[18446744073709551616]", "out of range for UINT64")
	bad("UINT64", "[99999999999999999999999]", "out of range for UINT64")
	ok("INT8", "[-128,127]", []byte{0x80, 0x7f})
	bad("INT8", "[128]", "128 is out of range for INT8")
	bad("INT8", "[-129]", "-129 is out of range for INT8")
	ok("INT16", "[-32768,32767]", le16(0x8000, 0x7fff))
	bad("INT16", "[-32769]", "out of range for INT16")
	ok("INT32", "[-2147483648,2147483647,1e3,-2.0]", le32(0x80000000, 0x7fffffff, 1000, uint32(0xfffffffe)))
	bad("INT32", "[2147483648]", "out of range for INT32")
	ok("INT64", "[-9223372036854775808,9223372036854775807]", le64(1<<63, 1<<63-1))
	bad("INT64", "[9223372036854775808]", "out of range for INT64")
	bad("INT64", "[-9223372036854775809]", "out of range for INT64")
	bad("INT64", "[1.5]", "expected an integer for INT64, got 1.5")
	bad("INT64", "[1e300]", "too large to be exact")
	bad("INT64", "[1e400]", "out of range for INT64")
	bad("INT64", `["1"]`, "expected a number, got a string")

	ok("FP32", "[0.1,-0,1,3.4028235e38,1e-50,-2.5E-3]", f32(0.1, float32(math.Copysign(0, -1)), 1, math.MaxFloat32, 0, -2.5e-3))
	ok("FP32", "[0.12345678901234568,16777217,1.00000005960464477539062]", f32(0.12345678901234568, 16777216, 1)) // ties to even
	bad("FP32", "[3.5e38]", "3.5e38 is out of range for FP32")
	bad("FP32", "[-1e39]", "-1e39 is out of range for FP32")
	bad("FP32", "[NaN]", "NaN and Infinity are not JSON numbers")
	bad("FP32", "[nan]", "NaN and Infinity are not JSON numbers")
	bad("FP32", "[-inf]", "NaN and Infinity are not JSON numbers")
	bad("FP32", "[+1]", "expected a number")
	bad("FP32", "[.5]", "expected a number")
	bad("FP32", "[1.]", "a digit after the decimal point")
	bad("FP32", "[1e]", "a digit in the exponent")
	bad("FP32", "[-]", "expected a digit")
	ok("FP64", "[0.1,1.7976931348623157e308,5e-324,-0.0]", f64(0.1, math.MaxFloat64, 5e-324, math.Copysign(0, -1)))
	bad("FP64", "[1e309]", "1e309 is out of range for FP64")
	ok("FP16", "[1,0.1,65504,65519,6e-8,-2]", le16(0x3c00, 0x2e66, 0x7bff, 0x7bff, 0x0001, 0xc000))
	bad("FP16", "[65520]", "65520 is out of range for FP16")
	bad("FP16", "[1e400]", "out of range for FP16")
	bad("FP16", "[true]", "expected a number, got a boolean")

	in, msg := decodeOne(t, "BYTES", "[4]", `["", "plain", "q\"\\\/\b\f\n\r\t", "\u00e9\ud83d\ude00\ud800x"]`)
	if msg != "" {
		t.Fatal(msg)
	}
	want := []string{"", "plain", "q\"\\/\b\f\n\r\t", "é😀\uFFFDx"}
	if !equalStrings(in.Strings, want) || len(in.Data) != 0 {
		t.Errorf("BYTES: got %q, want %q", in.Strings, want)
	}
	bad("BYTES", "[1]", "expected a string for BYTES, got a number")
	bad("BYTES", `["\u12"]`, `invalid \u escape`)
}

// TestExactFastPath checks Clinger's fast path against strconv on numbers
// built to hit it and to miss it narrowly.
func TestExactFastPath(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	d := new(Decoder)
	t32 := &runtime.Tensor{DataType: runtime.FP32}
	t64 := &runtime.Tensor{DataType: runtime.FP64}
	for range 200000 {
		digits := 1 + r.IntN(18)
		ds := []byte{byte('1' + r.IntN(9))}
		for range digits - 1 {
			ds = append(ds, byte('0'+r.IntN(10)))
		}
		var b []byte
		if r.IntN(2) == 0 {
			b = append(b, '-')
		}
		switch p := r.IntN(digits + 3); {
		case p == 0:
			b = append(append(b, "0.000"...), ds...) // leading zeros after the point
		case p < digits:
			b = append(append(append(b, ds[:p]...), '.'), ds[p:]...)
		default:
			b = append(b, ds...)
		}
		if r.IntN(3) == 0 {
			b = append(b, 'e')
			b = strconv.AppendInt(b, int64(r.IntN(50)-25), 10)
		}
		d.buf, d.i = b, 0
		num, err := d.scanNumber()
		if err != nil || d.i != len(b) {
			t.Fatalf("%s: %v", b, err)
		}
		want32, err32 := strconv.ParseFloat(string(b), 32)
		t32.Data = t32.Data[:0]
		if err := appendNumber(t32, &num); (err != nil) != (err32 != nil) || err == nil && t32.Float32(0) != float32(want32) {
			t.Fatalf("FP32 %s: got %v (%v), want %v (%v)", b, t32.Data, err, float32(want32), err32)
		}
		want64, err64 := strconv.ParseFloat(string(b), 64)
		t64.Data = t64.Data[:0]
		if err := appendNumber(t64, &num); (err != nil) != (err64 != nil) || err == nil && binary.LittleEndian.Uint64(t64.Data) != math.Float64bits(want64) {
			t.Fatalf("FP64 %s: got %v (%v), want %v (%v)", b, t64.Data, err, want64, err64)
		}
	}
}

func TestDecodeShapesAndNesting(t *testing.T) {
	ok := func(shape, data string, want []float32) {
		t.Helper()
		in, msg := decodeOne(t, "FP32", shape, data)
		if msg != "" {
			t.Errorf("%s %s: %s", shape, data, msg)
			return
		}
		if got := in.Float32s(); len(got) != len(want) || len(want) > 0 && !bytes.Equal(f32(got...), f32(want...)) {
			t.Errorf("%s %s: got %v, want %v", shape, data, got, want)
		}
	}
	bad := func(shape, data, wantMsg string) {
		t.Helper()
		if _, msg := decodeOne(t, "FP32", shape, data); !strings.Contains(msg, wantMsg) {
			t.Errorf("%s %s: got %q, want it to contain %q", shape, data, msg, wantMsg)
		}
	}
	ok("[2,3]", "[1,2,3,4,5,6]", []float32{1, 2, 3, 4, 5, 6})
	ok("[2,3]", " [ [1, 2,3] ,[4,5,6 ] ] ", []float32{1, 2, 3, 4, 5, 6})
	ok("[2,1,2]", "[[[1,2]],[[3,4]]]", []float32{1, 2, 3, 4})
	ok("[3]", "[1,2,3]", []float32{1, 2, 3})
	ok("[]", "[7]", []float32{7}) // a scalar
	ok("[0,3]", "[]", nil)
	ok("[2,0]", "[[],[]]", nil)
	ok("[2,0]", "[]", nil) // flat: zero elements either way
	ok("[1,1,1,1,1,1,1,1]", "[[[[[[[[5]]]]]]]]", []float32{5})
	bad("[]", "7", `"data" must be an array, got a number`)
	bad("[]", "[]", `"data" has 0 elements; shape [] needs 1`)
	bad("[3]", "[[1,2,3]]", "expected a number, got an array")
	bad("[2,3]", "[[1,2,3],[4,5]]", "an array at depth 2 has 2 elements, not 3")
	bad("[2,3]", "[[1,2,3],[4,5,6],[7,8,9]]", "an array at depth 1 has more than 2 elements, not 2")
	bad("[2,3]", "[[1,2,3],[4,5,6,7]]", "an array at depth 2 has more than 3 elements, not 3")
	bad("[2,3]", "[[1,2,3],4,5,6]", "element 3 of data: expected an array")
	bad("[2,3]", "[1,2,3,[4,5,6]]", "element 3 of data: expected a number, got an array")
	bad("[2,1,2]", "[[1,2],[3,4]]", "expected an array")
	bad("[2,0]", "[[],[1]]", "an array at depth 2 has more than 0 elements")
	bad("[1,2,3,4,5,6,7,8,9]", "[]", "more than 8 dimensions")
	bad("[16384,16385]", "[]", "has more than 268435456 elements")
	bad("[268435457]", "[]", `"shape" has dimension 268435457`)
	bad("[1,-0]", "[]", "negative dimension")
	bad("[01]", "[]", "leading zero")
	bad("[1e0]", "[]", "got 1e0")
	bad("{}", "[]", `"shape" must be an array of non-negative integers, got an object`)
}

// TestDecodeMemberOrder: members may come in any order, keys may be escaped,
// unknown members are skipped; the result is the same.
func TestDecodeMemberOrder(t *testing.T) {
	bodies := []string{
		`{"inputs":[{"name":"x","shape":[2,2],"datatype":"INT32","data":[[1,2],[3,4]]}],"id":"7"}`,
		`{"id":"7","inputs":[{"data":[[1,2],[3,4]],"shape":[2,2],"datatype":"INT32","name":"x"}]}`,
		`{"id":"7","inputs":[{"datatype":"INT32","data":[1,2,3,4],"extra":{"a":[1,[2,{"b":null}]]},"name":"x","shape":[2,2]}]}`,
		"{ \"i\\u0064\" : \"7\" ,\n\t\"inputs\" : [ { \"na\\u006de\" : \"x\" , \"sha\\u0070e\" : [ 2 , 2 ] , \"datatype\" : \"INT32\" , \"data\" : [ 1 , 2 , 3 , 4 ] } ] }\r\n",
	}
	d := new(Decoder)
	for _, body := range bodies {
		req := new(InferRequest)
		if err := d.Decode([]byte(body), -1, req); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		in := &req.Inputs[0]
		if string(req.ID) != "7" || in.Name != "x" || in.DataType != runtime.Int32 || !equalInts(in.Shape, []int64{2, 2}) || !bytes.Equal(in.Data, le32(1, 2, 3, 4)) {
			t.Errorf("%s: got id %q, %+v", body, req.ID, *in)
		}
	}
}

func TestDecodeParametersAndOutputs(t *testing.T) {
	body := `{"id":"a\"b","parameters":{"routing_key":"acct-9","binary_data_output":true,"x":{"y":[1]}},` +
		`"inputs":[{"name":"features","shape":[1],"datatype":"FP32","data":[1],"parameters":{"other":"z"}}],` +
		`"outputs":[{"name":"a","parameters":{"binary_data":false}},{"name":"b"},{"name":"c","parameters":{"binary_data":true}}]}`
	req := new(InferRequest)
	if err := new(Decoder).Decode([]byte(body), -1, req); err != nil {
		t.Fatal(err)
	}
	if string(req.ID) != `a"b` || string(req.RoutingKey) != "acct-9" || !req.BinaryDataOutput {
		t.Errorf("got id %q, routing key %q, binary_data_output %v", req.ID, req.RoutingKey, req.BinaryDataOutput)
	}
	want := []RequestedOutput{{Name: "a"}, {Name: "b", Binary: true}, {Name: "c", Binary: true}}
	if len(req.Outputs) != 3 {
		t.Fatalf("outputs %+v", req.Outputs)
	}
	for i, o := range req.Outputs {
		if o.Name != want[i].Name || o.Binary != want[i].Binary {
			t.Errorf("output %d: %+v, want %+v", i, o, want[i])
		}
	}
}

func TestCheckOutputs(t *testing.T) {
	sig := &runtime.Signature{Outputs: []runtime.TensorSpec{{Name: "probability"}, {Name: "label"}}}
	req := &InferRequest{Outputs: []RequestedOutput{{Name: "label"}, {Name: "probability"}}}
	if err := CheckOutputs(req, sig); err != nil {
		t.Fatal(err)
	}
	req.Outputs = append(req.Outputs, RequestedOutput{Name: "score"})
	var oe *runtime.OutputError
	if err := CheckOutputs(req, sig); !errors.As(err, &oe) || oe.Output != "score" {
		t.Fatalf("got %v, want an OutputError for score", err)
	}
}

func TestDecodeBinary(t *testing.T) {
	var strs []byte
	for _, s := range []string{"ab", "", "\x00\xff"} {
		strs = binary.LittleEndian.AppendUint32(strs, uint32(len(s)))
		strs = append(strs, s...)
	}
	header := `{"inputs":[` +
		`{"name":"f","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}},` +
		`{"name":"j","shape":[1],"datatype":"INT8","data":[-3]},` +
		`{"name":"s","shape":[3],"datatype":"BYTES","parameters":{"binary_data_size":` + strconv.Itoa(len(strs)) + `}},` +
		`{"name":"b","shape":[2],"datatype":"BOOL","parameters":{"binary_data_size":2}}]}`
	nan := float32(math.NaN())
	body := append([]byte(header), f32(nan, float32(math.Inf(1)))...)
	body = append(body, strs...)
	body = append(body, 1, 0)
	req := new(InferRequest)
	d := new(Decoder)
	if err := d.Decode(body, len(header), req); err != nil {
		t.Fatal(err)
	}
	if in := &req.Inputs[0]; !bytes.Equal(in.Data, f32(nan, float32(math.Inf(1)))) {
		t.Errorf("f: % x", in.Data)
	}
	if in := &req.Inputs[1]; !bytes.Equal(in.Data, []byte{0xfd}) {
		t.Errorf("j: % x", in.Data)
	}
	if in := &req.Inputs[2]; !equalStrings(in.Strings, []string{"ab", "", "\x00\xff"}) {
		t.Errorf("s: %q", in.Strings)
	}
	if in := &req.Inputs[3]; !bytes.Equal(in.Data, []byte{1, 0}) {
		t.Errorf("b: % x", in.Data)
	}

	bad := func(body []byte, jsonLen int, wantMsg string) {
		t.Helper()
		err := d.Decode(body, jsonLen, req)
		if err == nil || !strings.Contains(err.Error(), wantMsg) {
			t.Errorf("got %v, want %q", err, wantMsg)
		}
	}
	one := func(dt, shape string, size int) string {
		return `{"inputs":[{"name":"x","shape":` + shape + `,"datatype":"` + dt + `","parameters":{"binary_data_size":` + strconv.Itoa(size) + `}}]}`
	}
	h := one("BOOL", "[2]", 2)
	bad(append([]byte(h), 1, 2), len(h), "element 1 of binary data: a BOOL byte must be 0 or 1, got 2")
	h = one("BYTES", "[2]", 6)
	bad(append([]byte(h), 1, 0, 0, 0, 'a', 0), len(h), "ends inside the length of BYTES element 1")
	h = one("BYTES", "[1]", 6)
	bad(append([]byte(h), 9, 0, 0, 0, 'a', 'b'), len(h), "is 9 bytes long, past the end of binary_data_size")
	h = one("BYTES", "[1]", 10)
	bad(append([]byte(h), 1, 0, 0, 0, 'a', 1, 0, 0, 0, 'b'), len(h), "more than 1 BYTES elements")
	h = one("BYTES", "[2]", 0)
	bad([]byte(h), len(h), "binary data has 0 BYTES elements; shape [2] needs 2")
	h = one("FP64", "[2]", 12)
	bad(append([]byte(h), make([]byte, 12)...), len(h), "binary_data_size is 12 bytes; shape [2] of FP64 needs 16")
	if err := d.Decode([]byte(one("BYTES", "[0]", 0)), len(one("BYTES", "[0]", 0)), req); err != nil {
		t.Errorf("empty BYTES tensor: %v", err)
	}
}

// TestInterning: the decoder hands out one string per name, and its table
// stays bounded whatever names clients send.
func TestInterning(t *testing.T) {
	d := new(Decoder)
	req := new(InferRequest)
	body := []byte(`{"inputs":[{"name":"features","shape":[1],"datatype":"FP32","data":[1]}]}`)
	if err := d.Decode(body, -1, req); err != nil {
		t.Fatal(err)
	}
	first := req.Inputs[0].Name
	if err := d.Decode(body, -1, req); err != nil {
		t.Fatal(err)
	}
	if second := req.Inputs[0].Name; second != "features" || unsafeData(first) != unsafeData(second) {
		t.Error("the same name was not interned")
	}
	for i := range 3 * maxInterned {
		b := []byte(`{"inputs":[{"name":"n` + strconv.Itoa(i) + `","shape":[1],"datatype":"FP32","data":[1]}]}`)
		if err := d.Decode(b, -1, req); err != nil {
			t.Fatal(err)
		}
		if len(d.names) > maxInterned {
			t.Fatalf("intern table grew to %d", len(d.names))
		}
	}
}

func unsafeData(s string) *byte { return &[]byte(s[:1])[0] }

// TestResetDropsHugeBuffers: a pooled request does not keep a huge request's
// memory.
func TestResetDropsHugeBuffers(t *testing.T) {
	req := new(InferRequest)
	n := maxRetained/4 + 1
	body := `{"inputs":[{"name":"x","shape":[` + strconv.Itoa(n) + `],"datatype":"FP32","data":[` + strings.Repeat("0,", n-1) + `0]}]}`
	if err := new(Decoder).Decode([]byte(body), -1, req); err != nil {
		t.Fatal(err)
	}
	in := &req.Inputs[0]
	if cap(in.Data) <= maxRetained {
		t.Fatalf("cap %d", cap(in.Data))
	}
	req.Reset()
	if c := cap(req.Inputs[:1][0].Data); c != 0 {
		t.Errorf("Reset kept %d bytes", c)
	}
}

// TestDecodeResetsOnError: a failed Decode leaves nothing behind, even
// after a successful one.
func TestDecodeResetsOnError(t *testing.T) {
	d := new(Decoder)
	req := new(InferRequest)
	if err := d.Decode([]byte(`{"id":"1","inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"outputs":[{"name":"y"}]}`), -1, req); err != nil {
		t.Fatal(err)
	}
	if err := d.Decode([]byte(`{"id":"2","inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[NaN]}]}`), -1, req); err == nil {
		t.Fatal("no error")
	}
	if len(req.ID) != 0 || len(req.Inputs) != 0 || len(req.Outputs) != 0 {
		t.Errorf("request not reset: %+v", req)
	}
}

func TestParseJSONLength(t *testing.T) {
	f := func(v string, want int, wantErr bool) {
		t.Helper()
		got, err := ParseJSONLength([]byte(v))
		if got != want && !wantErr || (err != nil) != wantErr {
			t.Errorf("ParseJSONLength(%q) = %d, %v", v, got, err)
		}
	}
	f("", -1, false)
	f("0", 0, false)
	f("123", 123, false)
	f("2147483647", 2147483647, false)
	f("2147483648", 0, true)
	f("-1", 0, true)
	f("12a", 0, true)
	f(" 12", 0, true)
	f("99999999999", 0, true)
}
