package oiptest

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"testing"
)

func TestGoodRequest(t *testing.T) {
	for _, rows := range []int{0, 1, 7} {
		var req struct {
			ID     string `json:"id"`
			Inputs []struct {
				Name     string    `json:"name"`
				Shape    []int     `json:"shape"`
				Datatype string    `json:"datatype"`
				Data     []float32 `json:"data"`
			} `json:"inputs"`
		}
		if err := json.Unmarshal(GoodRequest(rows), &req); err != nil {
			t.Fatal(err)
		}
		in := req.Inputs[0]
		if req.ID != "42" || in.Name != "features" || in.Datatype != "FP32" || in.Shape[0] != rows || in.Shape[1] != Features || len(in.Data) != rows*Features {
			t.Fatalf("rows %d: %+v", rows, req)
		}
		for k, v := range in.Data {
			if v != Feature(k/Features, k%Features) {
				t.Fatalf("element %d: %v", k, v)
			}
		}
		body, jsonLen := GoodBinaryRequest(rows)
		if !json.Valid(body[:jsonLen]) || len(body)-jsonLen != 4*rows*Features {
			t.Fatalf("binary rows %d: %d bytes after %q", rows, len(body)-jsonLen, body[:jsonLen])
		}
		if rows > 0 && math.Float32frombits(binary.LittleEndian.Uint32(body[jsonLen+4:])) != Feature(0, 1) {
			t.Fatal("binary data")
		}
	}
}

func TestBadRequestsTable(t *testing.T) {
	names := map[string]bool{}
	for _, bc := range BadRequests {
		if names[bc.Name] || bc.Name == "" || bc.Status < 400 || bc.Status > 499 || bc.ErrContains == "" || bc.Header < -1 && bc.Name != "negative binary header" {
			t.Errorf("bad case %q", bc.Name)
		}
		names[bc.Name] = true
	}
	if len(BadRequests) < 30 {
		t.Errorf("%d cases", len(BadRequests))
	}
}
