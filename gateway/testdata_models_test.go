package gateway_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/float16"
	"github.com/modelgate/modelgate/internal/testmodels"
	"github.com/modelgate/modelgate/runtime"
)

// TestServesEveryTestDataModel serves each model of onnxruntime_go's
// test_data folder over HTTP and checks every output against a direct ORT
// run (through onnxruntime_go, bypassing modelgate's runtime) on the same
// inputs: several inputs and outputs, dynamic axes, zero-sized outputs,
// integer, float, FP16/BF16 and string types.
func TestServesEveryTestDataModel(t *testing.T) {
	dir, err := testmodels.Dir()
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.onnx"))
	if len(files) < 9 {
		t.Fatalf("found only %d models in %s", len(files), dir)
	}
	srv := startServer(t, gateway.Config{MaxBodyBytes: 512 << 20})
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			skipHeavyUnderRace(t, name)
			onnx, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if name == "example_strings.onnx" {
				needLocale(t)
			}
			model := fmt.Sprintf("m%d", len(srv.Catalog.Models()))
			serveModel(t, srv, model, "1", onnx, runtime.Config{Sessions: 1})
			if name == "example_0_dim_output.onnx" {
				// Its output's second dimension is the sum of the first
				// input column: zeros give [2,0,8], ones [2,2,8].
				checkAgainstORT(t, srv, model, onnx, false, 0)
				checkAgainstORT(t, srv, model, onnx, false, 1)
				return
			}
			checkAgainstORT(t, srv, model, onnx, name == "example_big_compute.onnx", -1)
		})
	}
}

// needLocale gives ORT's StringNormalizer the en_US.UTF-8 locale it asks
// for: generated with localedef into a temporary LOCPATH, since this
// machine's image ships only C.UTF-8.
func needLocale(t *testing.T) {
	dir := filepath.Join(os.TempDir(), "modelgate-locale")
	if _, err := os.Stat(filepath.Join(dir, "en_US.UTF-8", "LC_CTYPE")); err != nil {
		os.MkdirAll(dir, 0o755)
		out, err := exec.Command("localedef", "-i", "en_US", "-f", "UTF-8", filepath.Join(dir, "en_US.UTF-8")).CombinedOutput()
		if err != nil {
			t.Skipf("ORT itself rejects this model here: its StringNormalizer needs the en_US.UTF-8 locale, and localedef could not make one (%v: %s)", err, out)
		}
	}
	t.Setenv("LOCPATH", dir)
}

type ioInfo struct {
	name  string
	dt    ort.TensorElementDataType
	shape []int64
}

// checkAgainstORT scores the same inputs through the server and through ORT
// directly and compares every output. Inputs are random, or all equal to
// fill when fill >= 0; useBinary sends them in the binary extension.
func checkAgainstORT(t *testing.T, srv *gateway.Server, model string, onnx []byte, useBinary bool, fill int) {
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(onnx)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var inVals []ort.Value
	var inNames, outNames []string
	var reqInputs []string
	var binBody []byte
	for _, in := range ins {
		shape := make([]int64, len(in.Dimensions))
		for i, d := range in.Dimensions {
			if d < 0 {
				d = 3
			}
			shape[i] = d
		}
		v, jsonData, raw := makeInput(t, rng, in.DataType, shape, fill)
		defer v.Destroy()
		inVals = append(inVals, v)
		inNames = append(inNames, in.Name)
		dt := dtName(in.DataType)
		shapeJSON, _ := json.Marshal(shape)
		nameJSON, _ := json.Marshal(in.Name)
		if useBinary {
			reqInputs = append(reqInputs, fmt.Sprintf(`{"name":%s,"shape":%s,"datatype":%q,"parameters":{"binary_data_size":%d}}`, nameJSON, shapeJSON, dt, len(raw)))
			binBody = append(binBody, raw...)
		} else {
			reqInputs = append(reqInputs, fmt.Sprintf(`{"name":%s,"shape":%s,"datatype":%q,"data":%s}`, nameJSON, shapeJSON, dt, jsonData))
		}
	}
	var outVals []ort.Value
	for _, o := range outs {
		if o.OrtValueType != ort.ONNXTypeTensor {
			t.Logf("output %q is a %s: OIP cannot carry it, so it is not served", o.Name, o.OrtValueType)
			continue
		}
		outNames = append(outNames, o.Name)
		var pre ort.Value
		if o.DataType == ort.TensorElementDataTypeFloat16 || o.DataType == ort.TensorElementDataTypeBFloat16 {
			// onnxruntime_go copies ORT-allocated half tensors short, so
			// the reference run writes them into a tensor of its own.
			n := runtime.NumElements(o.Dimensions)
			if n < 0 {
				t.Fatalf("output %q: a half output with dynamic shape %v", o.Name, o.Dimensions)
			}
			pre, err = ort.NewCustomDataTensor(o.Dimensions, make([]byte, 2*n), o.DataType)
			if err != nil {
				t.Fatal(err)
			}
		}
		outVals = append(outVals, pre)
	}
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(onnx, inNames, outNames, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Destroy()
	if err := sess.Run(inVals, outVals); err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, v := range outVals {
			v.Destroy()
		}
	}()

	var code int
	var body []byte
	if useBinary {
		header := `{"id":"x","parameters":{"binary_data_output":true},"inputs":[` + strings.Join(reqInputs, ",") + `]}`
		code, body = postHeavy(t, srv.Addr(), "/v2/models/"+model+"/infer", append([]byte(header), binBody...),
			"Inference-Header-Content-Length", strconv.Itoa(len(header)))
	} else {
		code, body = post(t, srv, "/v2/models/"+model+"/infer", []byte(`{"id":"x","inputs":[`+strings.Join(reqInputs, ",")+`]}`))
	}
	if code != http.StatusOK {
		t.Fatalf("status %d: %.500s", code, body)
	}
	got := parseOutputs(t, body)
	if len(got) != len(outNames) {
		t.Fatalf("%d outputs served, ORT gives %d", len(got), len(outNames))
	}
	for i, name := range outNames {
		g, ok := got[name]
		if !ok {
			t.Fatalf("output %q missing from the response", name)
		}
		want := outVals[i]
		if fmt.Sprint(g.shape) != fmt.Sprint([]int64(want.GetShape())) {
			t.Fatalf("output %q: shape %v, ORT gives %v", name, g.shape, want.GetShape())
		}
		compareValue(t, name, g, want)
	}
}

// output is one served output, decoded from JSON or from binary data.
type output struct {
	dt      string
	shape   []int64
	numbers []float64 // nil for null (non-finite) entries: NaN here
	strs    []string
	bools   []bool
	raw     []byte // binary extension
}

func parseOutputs(t *testing.T, body []byte) map[string]output {
	jsonLen := len(body)
	var r struct {
		Outputs []struct {
			Name       string          `json:"name"`
			DataType   string          `json:"datatype"`
			Shape      []int64         `json:"shape"`
			Data       json.RawMessage `json:"data"`
			Parameters struct {
				Size int `json:"binary_data_size"`
			} `json:"parameters"`
		} `json:"outputs"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("response JSON: %v: %.300s", err, body)
	}
	jsonLen = int(dec.InputOffset())
	rest := body[jsonLen:]
	out := map[string]output{}
	for _, o := range r.Outputs {
		g := output{dt: o.DataType, shape: o.Shape}
		switch {
		case o.Parameters.Size > 0 || len(o.Data) == 0:
			g.raw, rest = rest[:o.Parameters.Size], rest[o.Parameters.Size:]
		case o.DataType == "BYTES":
			if err := json.Unmarshal(o.Data, &g.strs); err != nil {
				t.Fatal(err)
			}
		case o.DataType == "BOOL":
			if err := json.Unmarshal(o.Data, &g.bools); err != nil {
				t.Fatal(err)
			}
		default:
			var nums []*float64
			if err := json.Unmarshal(flatten(o.Data), &nums); err != nil {
				t.Fatalf("output %q data: %v", o.Name, err)
			}
			for _, p := range nums {
				if p == nil {
					g.numbers = append(g.numbers, math.NaN())
				} else {
					g.numbers = append(g.numbers, *p)
				}
			}
		}
		out[o.Name] = g
	}
	return out
}

// flatten drops inner brackets so nested and flat data decode alike.
func flatten(b []byte) []byte {
	s := strings.NewReplacer("[", "", "]", "").Replace(string(b))
	return []byte("[" + s + "]")
}

func compareValue(t *testing.T, name string, g output, want ort.Value) {
	t.Helper()
	if g.raw != nil {
		if !bytes.Equal(g.raw, valueBytes(t, want)) {
			t.Fatalf("output %q: binary data differs from ORT's", name)
		}
		return
	}
	switch w := want.(type) {
	case *ort.StringTensor:
		s, err := w.GetContents()
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(s) != fmt.Sprint(g.strs) {
			t.Fatalf("output %q: %q, ORT gives %q", name, g.strs, s)
		}
	case *ort.Tensor[bool]:
		if fmt.Sprint(w.GetData()) != fmt.Sprint(g.bools) {
			t.Fatalf("output %q: %v, ORT gives %v", name, g.bools, w.GetData())
		}
	default:
		ref := numbers(t, want)
		if len(ref) != len(g.numbers) {
			t.Fatalf("output %q: %d numbers, ORT gives %d", name, len(g.numbers), len(ref))
		}
		for i := range ref {
			a, b := ref[i], g.numbers[i]
			if math.IsNaN(a) || math.IsInf(a, 0) {
				if !math.IsNaN(b) {
					t.Fatalf("output %q[%d]: ORT gives %v, served %v (want null)", name, i, a, b)
				}
				continue
			}
			if g.dt == "FP32" || g.dt == "FP16" || g.dt == "BF16" {
				b = float64(float32(b))
			}
			if a != b {
				t.Fatalf("output %q[%d]: served %v, ORT gives %v", name, i, b, a)
			}
		}
	}
}

func numbers(t *testing.T, v ort.Value) []float64 {
	conv := func(n int, at func(i int) float64) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = at(i)
		}
		return out
	}
	switch w := v.(type) {
	case *ort.Tensor[float32]:
		d := w.GetData()
		return conv(len(d), func(i int) float64 { return float64(d[i]) })
	case *ort.Tensor[float64]:
		return w.GetData()
	case *ort.Tensor[int8]:
		d := w.GetData()
		return conv(len(d), func(i int) float64 { return float64(d[i]) })
	case *ort.Tensor[int16]:
		d := w.GetData()
		return conv(len(d), func(i int) float64 { return float64(d[i]) })
	case *ort.Tensor[int32]:
		d := w.GetData()
		return conv(len(d), func(i int) float64 { return float64(d[i]) })
	case *ort.Tensor[int64]:
		d := w.GetData()
		return conv(len(d), func(i int) float64 { return float64(d[i]) })
	case *ort.Tensor[uint8]:
		d := w.GetData()
		return conv(len(d), func(i int) float64 { return float64(d[i]) })
	case *ort.Tensor[uint16]:
		d := w.GetData()
		return conv(len(d), func(i int) float64 { return float64(d[i]) })
	case *ort.Tensor[uint32]:
		d := w.GetData()
		return conv(len(d), func(i int) float64 { return float64(d[i]) })
	case *ort.Tensor[uint64]:
		d := w.GetData()
		return conv(len(d), func(i int) float64 { return float64(d[i]) })
	case *ort.CustomDataTensor:
		d := w.GetData()
		bf16 := ort.TensorElementDataType(w.DataType()) == ort.TensorElementDataTypeBFloat16
		return conv(len(d)/2, func(i int) float64 {
			h := binary.LittleEndian.Uint16(d[2*i:])
			if bf16 {
				return float64(math.Float32frombits(uint32(h) << 16))
			}
			return float64(float16.ToFloat32(h))
		})
	}
	t.Fatalf("unexpected ORT output %T", v)
	return nil
}

func valueBytes(t *testing.T, v ort.Value) []byte {
	var buf bytes.Buffer
	switch w := v.(type) {
	case *ort.Tensor[float32]:
		binary.Write(&buf, binary.LittleEndian, w.GetData())
	default:
		t.Fatalf("binary comparison of %T not written", v)
	}
	return buf.Bytes()
}

func dtName(d ort.TensorElementDataType) string {
	switch d {
	case ort.TensorElementDataTypeFloat:
		return "FP32"
	case ort.TensorElementDataTypeDouble:
		return "FP64"
	case ort.TensorElementDataTypeFloat16:
		return "FP16"
	case ort.TensorElementDataTypeBFloat16:
		return "BF16"
	case ort.TensorElementDataTypeInt8:
		return "INT8"
	case ort.TensorElementDataTypeInt16:
		return "INT16"
	case ort.TensorElementDataTypeInt32:
		return "INT32"
	case ort.TensorElementDataTypeInt64:
		return "INT64"
	case ort.TensorElementDataTypeUint8:
		return "UINT8"
	case ort.TensorElementDataTypeUint16:
		return "UINT16"
	case ort.TensorElementDataTypeUint32:
		return "UINT32"
	case ort.TensorElementDataTypeUint64:
		return "UINT64"
	case ort.TensorElementDataTypeBool:
		return "BOOL"
	case ort.TensorElementDataTypeString:
		return "BYTES"
	}
	return "?"
}

// makeInput returns an ORT value, the same data as JSON, and as raw
// little-endian bytes. Float values are multiples of 1/4 in a small range,
// so FP16 and BF16 hold them exactly and the JSON round trip is exact.
func makeInput(t *testing.T, rng *rand.Rand, dt ort.TensorElementDataType, shape []int64, fill int) (ort.Value, string, []byte) {
	n := int(runtime.NumElements(shape))
	s := ort.NewShape(shape...)
	quarter := func() float64 { return float64(rng.IntN(64)-32) / 4 }
	if fill >= 0 {
		quarter = func() float64 { return float64(fill) }
	}
	var raw bytes.Buffer
	if n > 1<<20 { // the big-compute model: binary only, no JSON
		d := make([]float32, n)
		for i := range d {
			d[i] = float32(i%7) / 4
		}
		v, err := ort.NewTensor(s, d)
		if err != nil {
			t.Fatal(err)
		}
		binary.Write(&raw, binary.LittleEndian, d)
		return v, "", raw.Bytes()
	}
	var vals []any
	var v ort.Value
	var err error
	switch dt {
	case ort.TensorElementDataTypeFloat:
		d := make([]float32, n)
		for i := range d {
			d[i] = float32(quarter())
			vals = append(vals, d[i])
		}
		binary.Write(&raw, binary.LittleEndian, d)
		v, err = ort.NewTensor(s, d)
	case ort.TensorElementDataTypeDouble:
		d := make([]float64, n)
		for i := range d {
			d[i] = quarter()
			vals = append(vals, d[i])
		}
		binary.Write(&raw, binary.LittleEndian, d)
		v, err = ort.NewTensor(s, d)
	case ort.TensorElementDataTypeFloat16, ort.TensorElementDataTypeBFloat16:
		b := make([]byte, 2*n)
		for i := 0; i < n; i++ {
			f := quarter()
			vals = append(vals, f)
			var h uint16
			if dt == ort.TensorElementDataTypeBFloat16 {
				h = uint16(math.Float32bits(float32(f)) >> 16) // exact for quarters
			} else {
				h = float16.FromFloat32(float32(f)) // exact for quarters
			}
			binary.LittleEndian.PutUint16(b[2*i:], h)
		}
		raw.Write(b)
		v, err = ort.NewCustomDataTensor(s, b, dt)
	case ort.TensorElementDataTypeInt32:
		d := make([]int32, n)
		for i := range d {
			d[i] = int32(rng.IntN(200) - 100)
			vals = append(vals, d[i])
		}
		binary.Write(&raw, binary.LittleEndian, d)
		v, err = ort.NewTensor(s, d)
	case ort.TensorElementDataTypeInt64:
		d := make([]int64, n)
		for i := range d {
			d[i] = int64(rng.IntN(200) - 100)
			vals = append(vals, d[i])
		}
		binary.Write(&raw, binary.LittleEndian, d)
		v, err = ort.NewTensor(s, d)
	case ort.TensorElementDataTypeUint8:
		d := make([]uint8, n)
		for i := range d {
			d[i] = uint8(rng.IntN(256))
			vals = append(vals, d[i])
		}
		raw.Write(d)
		v, err = ort.NewTensor(s, d)
	case ort.TensorElementDataTypeString:
		d := make([]string, n)
		for i := range d {
			d[i] = []string{"Hello", "WORLD", "ünïcode", "", "go Go GO"}[rng.IntN(5)]
			vals = append(vals, d[i])
		}
		st, err2 := ort.NewStringTensor(s)
		if err2 != nil {
			t.Fatal(err2)
		}
		if err := st.SetContents(d); err != nil {
			t.Fatal(err)
		}
		v = st
	default:
		t.Fatalf("test does not generate %s inputs yet", dtName(dt))
	}
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(vals)
	return v, string(js), raw.Bytes()
}
