package oip

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/modelgate/modelgate/internal/oiptest"
	"github.com/modelgate/modelgate/runtime"
)

// score runs what the scoring path runs before the model: Decode, then the
// signature's checks. It returns the status and message it would answer.
func score(d *Decoder, req *InferRequest, sig *runtime.Signature, body []byte, jsonLen int) (int, string) {
	if err := d.Decode(body, jsonLen, req); err != nil {
		var e *Error
		if !errors.As(err, &e) {
			return http.StatusInternalServerError, "not an *oip.Error: " + err.Error()
		}
		return e.Status, e.Msg
	}
	order := make([]int, len(sig.Inputs))
	err := sig.Bind(req.Inputs, order)
	if err == nil {
		err = CheckOutputs(req, sig)
	}
	if err != nil {
		if runtime.IsCallerError(err) {
			return http.StatusBadRequest, err.Error()
		}
		return http.StatusInternalServerError, err.Error()
	}
	return http.StatusOK, ""
}

func TestBadRequests(t *testing.T) {
	if len(oiptest.BadRequests) < 30 {
		t.Fatalf("only %d bad requests", len(oiptest.BadRequests))
	}
	sig := oiptest.DemoSignature()
	d := new(Decoder)
	req := new(InferRequest)
	seen := map[string]bool{}
	for _, bc := range oiptest.BadRequests {
		if seen[bc.Name] {
			t.Errorf("two cases named %q", bc.Name)
		}
		seen[bc.Name] = true
		status, msg := score(d, req, sig, bc.Body, bc.Header)
		if status != bc.Status || !strings.Contains(msg, bc.ErrContains) {
			t.Errorf("%s: got %d %q, want %d containing %q", bc.Name, status, msg, bc.Status, bc.ErrContains)
		}
		if len(msg) > 400 {
			t.Errorf("%s: message of %d bytes is too long for a person: %.100q…", bc.Name, len(msg), msg)
		}
	}
}

func TestGoodRequests(t *testing.T) {
	sig := oiptest.DemoSignature()
	d := new(Decoder)
	req := new(InferRequest)
	check := func(name string, body []byte, jsonLen, rows int) {
		t.Helper()
		if status, msg := score(d, req, sig, body, jsonLen); status != http.StatusOK {
			t.Fatalf("%s: %d %s", name, status, msg)
		}
		if string(req.ID) != "42" || len(req.Inputs) != 1 {
			t.Fatalf("%s: id %q, %d inputs", name, req.ID, len(req.Inputs))
		}
		in := &req.Inputs[0]
		if in.Name != "features" || in.DataType != runtime.FP32 || len(in.Shape) != 2 || in.Shape[0] != int64(rows) || in.Shape[1] != 30 {
			t.Fatalf("%s: got %s %v %v", name, in.Name, in.DataType, in.Shape)
		}
		for k, v := range in.Float32s() {
			if want := oiptest.Feature(k/30, k%30); v != want {
				t.Fatalf("%s: element %d is %v, want %v", name, k, v, want)
			}
		}
	}
	for _, rows := range []int{0, 1, 3, 100} {
		check("json", oiptest.GoodRequest(rows), -1, rows)
		body, jsonLen := oiptest.GoodBinaryRequest(rows)
		check("binary", body, jsonLen, rows)
	}
}
