package oip

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/modelgate/modelgate/internal/oiptest"
	"github.com/modelgate/modelgate/runtime"
)

// FuzzParseInfer decodes arbitrary bodies. Properties: Decode never panics;
// every error is an *Error with a 4xx status and leaves the request empty;
// on success every tensor holds exactly the elements its shape needs, and
// re-encoding the request (AppendInferRequest) and decoding it again gives
// the same request. The response writer, fed the decoded tensors, writes
// valid JSON.
func FuzzParseInfer(f *testing.F) {
	for _, bc := range oiptest.BadRequests {
		if len(bc.Body) <= 64<<10 { // the 10 MB case would slow every iteration down
			f.Add(bc.Body, bc.Header)
		}
	}
	f.Add(oiptest.GoodRequest(2), -1)
	body, jsonLen := oiptest.GoodBinaryRequest(2)
	f.Add(body, jsonLen)

	d, d2 := new(Decoder), new(Decoder)
	req, req2 := new(InferRequest), new(InferRequest)
	f.Fuzz(func(t *testing.T, body []byte, jsonLen int) {
		err := d.Decode(body, jsonLen, req)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Status < 400 || e.Status > 499 || e.Msg == "" {
				t.Fatalf("error %#v is not an *oip.Error with a 4xx status", err)
			}
			if len(req.Inputs) != 0 || len(req.Outputs) != 0 || len(req.ID) != 0 {
				t.Fatal("a failed Decode left content in the request")
			}
			return
		}
		checkTensors(t, req)

		binary := needsBinary(req)
		enc, encLen := AppendInferRequest(nil, req, binary)
		if !binary {
			encLen = -1
		}
		if err := d2.Decode(enc, encLen, req2); err != nil {
			t.Fatalf("re-encoded request does not decode: %v\n%q", err, enc)
		}
		if msg := sameRequest(req, req2); msg != "" {
			t.Fatalf("round trip changed the request: %s\nfirst:  %q\nsecond: %q", msg, body, enc)
		}

		resp := &Response{Model: "m", Version: "1", ID: req.ID, Outputs: req.Inputs}
		out, outLen := AppendInferResponse(nil, resp, nil)
		if !json.Valid(out[:outLen]) {
			t.Fatalf("response is not valid JSON: %q", out[:outLen])
		}
	})
}

// checkTensors checks that every input is whole: named, typed, and holding
// exactly the elements its shape needs.
func checkTensors(t *testing.T, req *InferRequest) {
	t.Helper()
	if len(req.Inputs) == 0 {
		t.Fatal("decoded a request without inputs")
	}
	for i := range req.Inputs {
		in := &req.Inputs[i]
		n := in.NumElements()
		switch {
		case in.Name == "" || !utf8.ValidString(in.Name):
			t.Fatalf("input %d: bad name %q", i, in.Name)
		case in.DataType == runtime.Invalid:
			t.Fatalf("input %q: invalid datatype", in.Name)
		case len(in.Shape) > MaxRank || n < 0 || n > MaxElements:
			t.Fatalf("input %q: shape %v", in.Name, in.Shape)
		case int64(in.Len()) != n:
			t.Fatalf("input %q: %d elements for shape %v", in.Name, in.Len(), in.Shape)
		case in.DataType != runtime.Bytes && len(in.Data) != int(n)*in.DataType.Size():
			t.Fatalf("input %q: %d bytes for shape %v of %v", in.Name, len(in.Data), in.Shape, in.DataType)
		case in.DataType == runtime.Bytes && len(in.Data) != 0:
			t.Fatalf("input %q: BYTES tensor with numeric data", in.Name)
		}
	}
}

// needsBinary reports whether req holds values JSON cannot carry (NaN,
// infinities, invalid UTF-8 in BYTES), so the round trip must use the binary
// extension.
func needsBinary(req *InferRequest) bool {
	for i := range req.Inputs {
		in := &req.Inputs[i]
		switch in.DataType {
		case runtime.FP16:
			for k := 0; k < len(in.Data); k += 2 {
				if in.Data[k+1]&0x7c == 0x7c {
					return true
				}
			}
		case runtime.FP32:
			for k := range in.Len() {
				if f := float64(in.Float32(k)); math.IsNaN(f) || math.IsInf(f, 0) {
					return true
				}
			}
		case runtime.FP64:
			for k := 0; k < len(in.Data); k += 8 {
				if in.Data[k+7]&0x7f == 0x7f && in.Data[k+6]&0xf0 == 0xf0 {
					return true
				}
			}
		case runtime.Bytes:
			for _, s := range in.Strings {
				if !utf8.ValidString(s) {
					return true
				}
			}
		}
	}
	return false
}

// sameRequest compares two requests; "" when they are the same. ID and
// routing key go through JSON strings either way, so invalid UTF-8 in them
// becomes U+FFFD.
func sameRequest(a, b *InferRequest) string {
	switch {
	case !bytes.Equal(validUTF8(a.ID), b.ID):
		return "id"
	case !bytes.Equal(validUTF8(a.RoutingKey), b.RoutingKey):
		return "routing key"
	case a.BinaryDataOutput != b.BinaryDataOutput:
		return "binary_data_output"
	case len(a.Inputs) != len(b.Inputs):
		return "number of inputs"
	case len(a.Outputs) != len(b.Outputs):
		return "number of outputs"
	}
	for i := range a.Inputs {
		x, y := &a.Inputs[i], &b.Inputs[i]
		switch {
		case x.Name != y.Name:
			return "input name"
		case x.DataType != y.DataType:
			return "datatype of " + x.Name
		case !equalInts(x.Shape, y.Shape):
			return "shape of " + x.Name
		case !bytes.Equal(x.Data, y.Data):
			return "data of " + x.Name
		case !equalStrings(x.Strings, y.Strings):
			return "strings of " + x.Name
		}
	}
	for i := range a.Outputs {
		if a.Outputs[i].Name != b.Outputs[i].Name || a.Outputs[i].Binary != b.Outputs[i].Binary {
			return "output " + a.Outputs[i].Name
		}
	}
	return ""
}

// validUTF8 replaces each invalid byte of b with U+FFFD, as appendString does.
func validUTF8(b []byte) []byte {
	var out []byte
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		out = utf8.AppendRune(out, r)
		b = b[n:]
	}
	return out
}

func equalInts(a, b []int64) bool {
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

func equalStrings(a, b []string) bool {
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

// TestSeedCorpus: the valid seeds of the fuzz corpus decode, the bad ones
// do not, so the corpus keeps covering both sides.
func TestSeedCorpus(t *testing.T) {
	dir := "testdata/fuzz/FuzzParseInfer"
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 12 {
		t.Errorf("only %d seeds", len(entries))
	}
	d := new(Decoder)
	req := new(InferRequest)
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
		if len(lines) != 3 || lines[0] != "go test fuzz v1" {
			t.Fatalf("%s: not a corpus file", e.Name())
		}
		body, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		jsonLen, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(lines[2], "int("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		err = d.Decode([]byte(body), jsonLen, req)
		if bad := strings.HasPrefix(e.Name(), "bad_"); bad != (err != nil) {
			t.Errorf("%s: error %v", e.Name(), err)
		}
	}
}
