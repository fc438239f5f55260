package oip

import (
	"strings"
	"testing"
)

// TestTrimBoundsRetained: after a request with a huge escaped BYTES element
// (scratch and strBuf grow past maxRetained), Trim leaves the decoder
// holding at most maxRetained per buffer, and a small request keeps its
// buffers (so the steady state still allocates nothing).
func TestTrimBoundsRetained(t *testing.T) {
	d := new(Decoder)
	req := new(InferRequest)
	big := strings.Repeat(`a\n`, maxRetained) // 3 MiB escaped, 2 MiB unescaped
	body := `{"inputs":[{"name":"s","shape":[1],"datatype":"BYTES","data":["` + big + `"]}]}`
	if err := d.Decode([]byte(body), -1, req); err != nil {
		t.Fatal(err)
	}
	if d.Retained() <= 2*maxRetained {
		t.Fatalf("the test request grew the decoder's buffers to only %d bytes", d.Retained())
	}
	req.Reset()
	d.Trim()
	if got := d.Retained(); got > maxRetained {
		t.Fatalf("after Trim the decoder keeps %d bytes; want at most %d", got, maxRetained)
	}
	small := `{"inputs":[{"name":"s","shape":[2],"datatype":"BYTES","data":["x\ty","z"]}]}`
	if err := d.Decode([]byte(small), -1, req); err != nil {
		t.Fatal(err)
	}
	kept := d.Retained()
	req.Reset()
	d.Trim()
	if kept == 0 || d.Retained() != kept {
		t.Fatalf("Trim dropped a small request's buffers (%d -> %d bytes)", kept, d.Retained())
	}
}
