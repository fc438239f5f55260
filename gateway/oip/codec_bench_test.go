package oip

import (
	"strconv"
	"testing"

	"github.com/modelgate/modelgate/internal/oiptest"
)

var (
	sinkBytes []byte
	sinkInt   int
)

func benchDecode(b *testing.B, body []byte, jsonLen int) {
	d := new(Decoder)
	req := new(InferRequest)
	if err := d.Decode(body, jsonLen, req); err != nil { // warm up: size buffers, intern names
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Decode(body, jsonLen, req); err != nil {
			b.Fatal(err)
		}
	}
	sinkInt = len(req.Inputs[0].Data)
}

// BenchmarkDecode is the demo request: one row of 30 FP32 features.
func BenchmarkDecode(b *testing.B) { benchDecode(b, oiptest.GoodRequest(1), -1) }

// BenchmarkDecodeBatch100 is a hundred rows in one request.
func BenchmarkDecodeBatch100(b *testing.B) { benchDecode(b, oiptest.GoodRequest(100), -1) }

// BenchmarkDecodeBinary is the demo request in the binary extension.
func BenchmarkDecodeBinary(b *testing.B) {
	body, jsonLen := oiptest.GoodBinaryRequest(1)
	benchDecode(b, body, jsonLen)
}

// BenchmarkDecodeParallel decodes the demo request on every core, a decoder
// and a request per goroutine.
func BenchmarkDecodeParallel(b *testing.B) {
	body := oiptest.GoodRequest(1)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var d Decoder
		var req InferRequest
		for pb.Next() {
			if err := d.Decode(body, -1, &req); err != nil {
				b.Error(err)
				return
			}
			d.Trim()
			req.Reset()
		}
	})
}

// BenchmarkEncode writes the demo answer: one FP32 [1,1] output.
func BenchmarkEncode(b *testing.B) {
	resp := demoResponse()
	resp.ID = []byte("42")
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf, sinkInt = AppendInferResponse(buf[:0], resp, nil)
	}
	sinkBytes = buf
}

// BenchmarkEncodeBatch100 writes a hundred rows of FP32 output.
func BenchmarkEncodeBatch100(b *testing.B) {
	resp := demoResponse()
	v := make([]float32, 100)
	for i := range v {
		v[i] = float32(i) / 101
	}
	resp.Outputs[0].SetFloat32s("probability", []int64{100, 1}, v)
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf, sinkInt = AppendInferResponse(buf[:0], resp, nil)
	}
	sinkBytes = buf
}

// BenchmarkDecodeBatch100Long is BenchmarkDecodeBatch100 with numbers as
// Python writes float64s: 17 significant digits, which no exact fast path
// takes.
func BenchmarkDecodeBatch100Long(b *testing.B) { benchDecode(b, longBody, -1) }

var longBody = func() []byte {
	body := []byte(`{"id":"42","inputs":[{"name":"features","shape":[100,30],"datatype":"FP32","data":[`)
	for k := range 3000 {
		if k > 0 {
			body = append(body, ',')
		}
		body = strconv.AppendFloat(body, float64(k)*0.123456789012345+1e-9, 'g', 17, 64)
	}
	return append(body, "]}]}"...)
}()
