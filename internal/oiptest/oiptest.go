// Package oiptest holds Open Inference Protocol request bodies for tests:
// valid demo requests and a table of bad ones with the status and message
// the scoring path must answer. It is an ordinary package, not a _test file,
// so the codec's tests, the gateway's handler tests and the bench harness
// share one table. It deliberately does not import gateway/oip, so that
// package's own tests can use it.
//
// Everything here is written against the demo fraud model's signature
// (DemoSignature): one input "features", FP32, shape [-1,30]; one output
// "probability", FP32, shape [-1,1].
package oiptest

import (
	"bytes"
	"encoding/binary"
	"math"
	"strconv"
	"strings"

	"github.com/modelgate/modelgate/runtime"
)

// Features is the number of features of the demo model.
const Features = 30

// DemoSignature returns the demo fraud model's signature, built by hand.
func DemoSignature() *runtime.Signature {
	return &runtime.Signature{
		Inputs:  []runtime.TensorSpec{{Name: "features", DataType: runtime.FP32, Shape: []int64{-1, Features}}},
		Outputs: []runtime.TensorSpec{{Name: "probability", DataType: runtime.FP32, Shape: []int64{-1, 1}}},
	}
}

// Feature is the value GoodRequest sends for feature j of row i: varied,
// deterministic, and exact in FP32.
func Feature(i, j int) float32 {
	return float32((i*Features+j)%97)/8 - 3
}

// GoodRequest returns a valid demo request with id "42" and rows rows of
// features, as flat JSON data.
func GoodRequest(rows int) []byte {
	return request(`{"id":"42","inputs":[{"name":"features","shape":[`+strconv.Itoa(rows)+`,30],"datatype":"FP32","data":[`, rows*Features, "]}]}")
}

// GoodBinaryRequest returns a valid demo request with rows rows of features
// in the binary tensor data extension, and the value of its
// Inference-Header-Content-Length header.
func GoodBinaryRequest(rows int) (body []byte, jsonLen int) {
	body = []byte(`{"id":"42","inputs":[{"name":"features","shape":[` + strconv.Itoa(rows) +
		`,30],"datatype":"FP32","parameters":{"binary_data_size":` + strconv.Itoa(4*rows*Features) + `}}]}`)
	jsonLen = len(body)
	for i := range rows {
		for j := range Features {
			body = binary.LittleEndian.AppendUint32(body, math.Float32bits(Feature(i, j)))
		}
	}
	return body, jsonLen
}

// request is head, n comma-separated demo features, tail.
func request(head string, n int, tail string) []byte {
	b := []byte(head)
	for k := range n {
		if k > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendFloat(b, float64(Feature(k/Features, k%Features)), 'f', -1, 32)
	}
	return append(b, tail...)
}

// numbers is n comma-separated demo features.
func numbers(n int) string {
	b := request("", n, "")
	return string(b)
}

// BadRequest is a request the scoring path must refuse.
type BadRequest struct {
	Name string
	Body []byte
	// Header is the Inference-Header-Content-Length value, -1 for none.
	Header int
	// Status is the HTTP status the whole scoring path answers.
	Status int
	// ErrContains is a piece of the error message.
	ErrContains string
}

// input is a demo-style input object with the given members spliced in.
func input(members string) string { return `{"inputs":[{` + members + `}]}` }

const (
	name  = `"name":"features"`
	shape = `"shape":[1,30]`
	fp32  = `"datatype":"FP32"`
)

var data30 = `"data":[` + numbers(Features) + `]`

// dataWith is 30 demo features with element 5 replaced by v.
func dataWith(v string) string {
	parts := strings.Split(numbers(Features), ",")
	parts[5] = v
	return `"data":[` + strings.Join(parts, ",") + `]`
}

// nested30 is one row of 30 nested as [[…]].
var nested30 = `"data":[[` + numbers(Features) + `]]`

func joinM(m ...string) string { return strings.Join(m, ",") }

// BadRequests are bad demo requests, one per way of getting it wrong.
var BadRequests = []BadRequest{
	// The body as a whole.
	{Name: "empty body", Body: []byte(""), Header: -1, Status: 400, ErrContains: "empty request"},
	{Name: "whitespace only", Body: []byte(" \n\t "), Header: -1, Status: 400, ErrContains: "empty request"},
	{Name: "truncated JSON", Body: GoodRequest(1)[:60], Header: -1, Status: 400, ErrContains: "malformed JSON"},
	{Name: "not an object", Body: []byte(`[1,2,3]`), Header: -1, Status: 400, ErrContains: "must be a JSON object, got an array"},
	{Name: "a bare string", Body: []byte(`"features"`), Header: -1, Status: 400, ErrContains: "must be a JSON object, got a string"},
	{Name: "trailing data", Body: append(GoodRequest(1), " {}"...), Header: -1, Status: 400, ErrContains: "unexpected data after the request object"},
	{Name: "trailing NUL byte", Body: append(GoodRequest(1), 0), Header: -1, Status: 400, ErrContains: "unexpected data after the request object"},
	{Name: "single quotes", Body: []byte(`{'inputs':[]}`), Header: -1, Status: 400, ErrContains: "malformed JSON"},
	{Name: "deep nesting at the top", Body: []byte(strings.Repeat("[", 10000)), Header: -1, Status: 400, ErrContains: "must be a JSON object"},
	{Name: "deep nesting in an unknown field", Body: []byte(`{"extra":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `,` + input(joinM(name, shape, fp32, data30))[1:]), Header: -1, Status: 400, ErrContains: "nested deeper than 64"},
	{Name: "duplicate inputs key", Body: []byte(`{"inputs":[{` + joinM(name, shape, fp32, data30) + `}],"inputs":[]}`), Header: -1, Status: 400, ErrContains: `the request has "inputs" more than once`},
	{Name: "duplicate inputs key, both valid", Body: []byte(`{"inputs":[{` + joinM(name, shape, fp32, data30) + `}],"inputs":[{` + joinM(name, shape, fp32, data30) + `}]}`), Header: -1, Status: 400, ErrContains: `"inputs" more than once`},
	{Name: "control character in a string", Body: []byte("{\"id\":\"4\x012\"," + input(joinM(name, shape, fp32, data30))[1:]), Header: -1, Status: 400, ErrContains: "control character"},
	{Name: "invalid escape", Body: []byte(`{"id":"4\x2",` + input(joinM(name, shape, fp32, data30))[1:]), Header: -1, Status: 400, ErrContains: "invalid escape"},

	// Request members.
	{Name: "missing inputs", Body: []byte(`{"id":"42","outputs":[{"name":"probability"}]}`), Header: -1, Status: 400, ErrContains: `has no "inputs"`},
	{Name: "inputs not an array", Body: []byte(`{"inputs":{` + joinM(name, shape, fp32, data30) + `}}`), Header: -1, Status: 400, ErrContains: `"inputs" must be an array`},
	{Name: "inputs empty", Body: []byte(`{"inputs":[]}`), Header: -1, Status: 400, ErrContains: `"inputs" is empty`},
	{Name: "input not an object", Body: []byte(`{"inputs":[[1,2,3]]}`), Header: -1, Status: 400, ErrContains: "inputs[0] must be an object, got an array"},
	{Name: "id not a string", Body: []byte(`{"id":42,` + input(joinM(name, shape, fp32, data30))[1:]), Header: -1, Status: 400, ErrContains: `"id" must be a string, got a number`},
	{Name: "routing_key not a string", Body: []byte(`{"parameters":{"routing_key":7},` + input(joinM(name, shape, fp32, data30))[1:]), Header: -1, Status: 400, ErrContains: "routing_key must be a string"},
	{Name: "binary_data_output not a boolean", Body: []byte(`{"parameters":{"binary_data_output":"yes"},` + input(joinM(name, shape, fp32, data30))[1:]), Header: -1, Status: 400, ErrContains: "binary_data_output must be true or false"},

	// Input members.
	{Name: "missing name", Body: []byte(input(joinM(shape, fp32, data30))), Header: -1, Status: 400, ErrContains: `inputs[0]: missing "name"`},
	{Name: "missing shape", Body: []byte(input(joinM(name, fp32, data30))), Header: -1, Status: 400, ErrContains: `input "features": missing "shape"`},
	{Name: "missing datatype", Body: []byte(input(joinM(name, shape, data30))), Header: -1, Status: 400, ErrContains: `input "features": missing "datatype"`},
	{Name: "missing data", Body: []byte(input(joinM(name, shape, fp32))), Header: -1, Status: 400, ErrContains: `input "features": missing "data"`},
	{Name: "name not a string", Body: []byte(input(joinM(`"name":5`, shape, fp32, data30))), Header: -1, Status: 400, ErrContains: `"name" must be a string, got a number`},
	{Name: "empty name", Body: []byte(input(joinM(`"name":""`, shape, fp32, data30))), Header: -1, Status: 400, ErrContains: `"name" is empty`},
	{Name: "name not UTF-8", Body: []byte(input(joinM("\"name\":\"feat\xff\xfeures\"", shape, fp32, data30))), Header: -1, Status: 400, ErrContains: "not valid UTF-8"},
	{Name: "shape not an array", Body: []byte(input(joinM(name, `"shape":"1,30"`, fp32, data30))), Header: -1, Status: 400, ErrContains: `"shape" must be an array of non-negative integers, got a string`},
	{Name: "shape with a fraction", Body: []byte(input(joinM(name, `"shape":[1.5,30]`, fp32, data30))), Header: -1, Status: 400, ErrContains: "non-negative integers, got 1.5"},
	{Name: "shape of strings", Body: []byte(input(joinM(name, `"shape":["1","30"]`, fp32, data30))), Header: -1, Status: 400, ErrContains: "non-negative integers, got a string"},
	{Name: "negative dimension", Body: []byte(input(joinM(name, `"shape":[-1,30]`, fp32, data30))), Header: -1, Status: 400, ErrContains: "negative dimension"},
	{Name: "huge shape", Body: []byte(input(joinM(name, `"shape":[1000000000000,30]`, fp32, data30))), Header: -1, Status: 400, ErrContains: `"shape" has dimension 1000000000000, more than the 268435456 elements`},
	{Name: "shape product too large", Body: []byte(input(joinM(name, `"shape":[65536,65536]`, fp32, data30))), Header: -1, Status: 400, ErrContains: "shape [65536,65536] has more than 268435456 elements"},
	{Name: "huge shape in exponent form", Body: []byte(input(joinM(name, `"shape":[1e12,30]`, fp32, data30))), Header: -1, Status: 400, ErrContains: "non-negative integers, got 1e12"},
	{Name: "dimension overflowing uint64", Body: []byte(input(joinM(name, `"shape":[99999999999999999999999,30]`, fp32, data30))), Header: -1, Status: 400, ErrContains: `"shape" has dimension 99999999999999999999999, more than`},
	{Name: "rank 9", Body: []byte(input(joinM(name, `"shape":[1,1,1,1,1,1,1,1,30]`, fp32, data30))), Header: -1, Status: 400, ErrContains: "more than 8 dimensions"},
	{Name: "datatype not a string", Body: []byte(input(joinM(name, shape, `"datatype":32`, data30))), Header: -1, Status: 400, ErrContains: `"datatype" must be a string`},
	{Name: "unknown datatype", Body: []byte(input(joinM(name, shape, `"datatype":"FP33"`, data30))), Header: -1, Status: 400, ErrContains: `unknown datatype "FP33"`},
	{Name: "lower-case datatype", Body: []byte(input(joinM(name, shape, `"datatype":"fp32"`, data30))), Header: -1, Status: 400, ErrContains: `unknown datatype "fp32"`},
	{Name: "duplicate name member", Body: []byte(input(joinM(name, shape, fp32, data30, `"name":"features"`))), Header: -1, Status: 400, ErrContains: `"name" is given more than once`},

	// Data.
	{Name: "data not an array", Body: []byte(input(joinM(name, shape, fp32, `"data":"0.1"`))), Header: -1, Status: 400, ErrContains: `"data" must be an array, got a string`},
	{Name: "string in FP32 data", Body: []byte(input(joinM(name, shape, fp32, dataWith(`"0.5"`)))), Header: -1, Status: 400, ErrContains: `input "features": element 5 of data: expected a number, got a string`},
	{Name: "boolean in FP32 data", Body: []byte(input(joinM(name, shape, fp32, dataWith(`true`)))), Header: -1, Status: 400, ErrContains: "element 5 of data: expected a number, got a boolean"},
	{Name: "null in FP32 data", Body: []byte(input(joinM(name, shape, fp32, dataWith(`null`)))), Header: -1, Status: 400, ErrContains: "element 5 of data: expected a number, got null"},
	{Name: "NaN literal", Body: []byte(input(joinM(name, shape, fp32, dataWith(`NaN`)))), Header: -1, Status: 400, ErrContains: "element 5 of data: NaN and Infinity are not JSON numbers"},
	{Name: "Infinity literal", Body: []byte(input(joinM(name, shape, fp32, dataWith(`Infinity`)))), Header: -1, Status: 400, ErrContains: "element 5 of data: NaN and Infinity are not JSON numbers"},
	{Name: "-Infinity literal", Body: []byte(input(joinM(name, shape, fp32, dataWith(`-Infinity`)))), Header: -1, Status: 400, ErrContains: "element 5 of data: NaN and Infinity are not JSON numbers"},
	{Name: "1e39 overflows FP32", Body: []byte(input(joinM(name, shape, fp32, dataWith(`1e39`)))), Header: -1, Status: 400, ErrContains: "element 5 of data: 1e39 is out of range for FP32"},
	{Name: "leading zero", Body: []byte(input(joinM(name, shape, fp32, dataWith(`01`)))), Header: -1, Status: 400, ErrContains: "leading zero"},
	{Name: "hex number", Body: []byte(input(joinM(name, shape, fp32, dataWith(`0x10`)))), Header: -1, Status: 400, ErrContains: "malformed JSON"},
	{Name: "data too short", Body: []byte(input(joinM(name, shape, fp32, `"data":[`+numbers(29)+`]`))), Header: -1, Status: 400, ErrContains: `"data" has 29 elements; shape [1,30] needs 30`},
	{Name: "data too long", Body: []byte(input(joinM(name, shape, fp32, `"data":[`+numbers(31)+`]`))), Header: -1, Status: 400, ErrContains: `"data" has more than 30 elements; shape [1,30] needs 30`},
	{Name: "empty data", Body: []byte(input(joinM(name, shape, fp32, `"data":[]`))), Header: -1, Status: 400, ErrContains: `"data" has 0 elements`},
	{Name: "nested rows inconsistent with shape", Body: []byte(input(joinM(name, `"shape":[2,30]`, fp32, `"data":[[`+numbers(30)+`],[`+numbers(29)+`]]`))), Header: -1, Status: 400, ErrContains: `"data" does not follow shape [2,30]: an array at depth 2 has 29 elements, not 30`},
	{Name: "nested rows transposed", Body: []byte(input(joinM(name, shape, fp32, `"data":[[`+numbers(15)+`],[`+numbers(15)+`]]`))), Header: -1, Status: 400, ErrContains: `"data" does not follow shape [1,30]`},
	{Name: "nested one level too deep", Body: []byte(input(joinM(name, shape, fp32, `"data":[[[`+numbers(30)+`]]]`))), Header: -1, Status: 400, ErrContains: "element 0 of data: expected a number, got an array"},
	{Name: "mixed flat and nested", Body: []byte(input(joinM(name, `"shape":[2,15]`, fp32, `"data":[[`+numbers(15)+`],`+numbers(15)+`]`))), Header: -1, Status: 400, ErrContains: "expected an array"},
	{Name: "10,000 levels of nesting in data", Body: []byte(input(joinM(name, shape, fp32, `"data":`+strings.Repeat("[", 10000)))), Header: -1, Status: 400, ErrContains: "element 0 of data: expected a number, got an array"},
	{Name: "10,000 levels of nesting in data before its shape", Body: []byte(input(joinM(`"data":`+strings.Repeat("[", 10000)+strings.Repeat("]", 10000), name, shape, fp32))), Header: -1, Status: 400, ErrContains: "nested deeper than 64"},
	{Name: "10 MB of numbers for one row", Body: tenMB(), Header: -1, Status: 400, ErrContains: `"data" has more than 30 elements`},
	{Name: "non-integer in INT64 data", Body: []byte(input(joinM(name, shape, `"datatype":"INT64"`, `"data":[`+strings.Repeat("1,", 5)+"1.5"+strings.Repeat(",1", 24)+`]`))), Header: -1, Status: 400, ErrContains: "element 5 of data: expected an integer for INT64, got 1.5"},
	{Name: "300 for UINT8", Body: []byte(input(joinM(name, shape, `"datatype":"UINT8"`, `"data":[300`+strings.Repeat(",1", 29)+`]`))), Header: -1, Status: 400, ErrContains: "element 0 of data: 300 is out of range for UINT8"},
	{Name: "-1 for UINT32", Body: []byte(input(joinM(name, shape, `"datatype":"UINT32"`, `"data":[-1`+strings.Repeat(",1", 29)+`]`))), Header: -1, Status: 400, ErrContains: "element 0 of data: -1 is out of range for UINT32"},
	{Name: "number for BOOL", Body: []byte(input(joinM(name, shape, `"datatype":"BOOL"`, `"data":[1`+strings.Repeat(",true", 29)+`]`))), Header: -1, Status: 400, ErrContains: "expected true or false for BOOL, got a number"},

	// Caught by the signature (runtime.Signature.Bind) and CheckOutputs.
	{Name: "datatype mismatch", Body: []byte(input(joinM(name, shape, `"datatype":"INT64"`, `"data":[`+strings.Repeat("1,", 29)+`1]`))), Header: -1, Status: 400, ErrContains: `input "features": datatype INT64 given, the model takes FP32`},
	{Name: "unknown input name", Body: []byte(input(joinM(`"name":"feature"`, shape, fp32, data30))), Header: -1, Status: 400, ErrContains: `input "feature": the model has no such input`},
	{Name: "duplicated input", Body: []byte(`{"inputs":[{` + joinM(name, shape, fp32, data30) + `},{` + joinM(name, shape, fp32, data30) + `}]}`), Header: -1, Status: 400, ErrContains: `input "features": given more than once`},
	{Name: "31 features", Body: []byte(input(joinM(name, `"shape":[1,31]`, fp32, `"data":[`+numbers(31)+`]`))), Header: -1, Status: 400, ErrContains: `shape [1,31] does not match the model's [-1,30]`},
	{Name: "rank 1 features", Body: []byte(input(joinM(name, `"shape":[30]`, fp32, data30))), Header: -1, Status: 400, ErrContains: `shape [30] does not match the model's [-1,30]`},
	{Name: "unknown output name", Body: []byte(`{"inputs":[{` + joinM(name, shape, fp32, data30) + `}],"outputs":[{"name":"score"}]}`), Header: -1, Status: 400, ErrContains: `output "score": the model has no such output`},
	{Name: "output requested twice", Body: []byte(`{"inputs":[{` + joinM(name, shape, fp32, data30) + `}],"outputs":[{"name":"probability"},{"name":"probability"}]}`), Header: -1, Status: 400, ErrContains: `output "probability" is requested more than once`},
	{Name: "output without a name", Body: []byte(`{"inputs":[{` + joinM(name, shape, fp32, data30) + `}],"outputs":[{"parameters":{"binary_data":true}}]}`), Header: -1, Status: 400, ErrContains: `outputs[0]: missing "name"`},
	{Name: "classification asked for", Body: []byte(`{"inputs":[{` + joinM(name, shape, fp32, data30) + `}],"outputs":[{"name":"probability","parameters":{"classification":2}}]}`), Header: -1, Status: 400, ErrContains: "classification is not supported"},

	// The binary tensor data extension.
	{Name: "binary header larger than the body", Body: binaryBody(120, 60), Header: 100000, Status: 400, ErrContains: "Inference-Header-Content-Length is 100000 but the body has only"},
	{Name: "negative binary header", Body: GoodRequest(1), Header: -5, Status: 400, ErrContains: "Inference-Header-Content-Length is -5"},
	{Name: "binary header cutting the JSON", Body: GoodRequest(1), Header: 20, Status: 400, ErrContains: "malformed JSON"},
	{Name: "binary_data_size past the body", Body: binaryBody(120, 60), Header: binaryJSONLen(120), Status: 400, ErrContains: "binary_data_size is 120 but only 60 bytes of binary data are left"},
	{Name: "binary_data_size not matching the shape", Body: binaryBody(100, 100), Header: binaryJSONLen(100), Status: 400, ErrContains: "binary_data_size is 100 bytes; shape [1,30] of FP32 needs 120"},
	{Name: "binary_data_size without the header", Body: binaryBody(120, 0), Header: -1, Status: 400, ErrContains: "needs the Inference-Header-Content-Length header"},
	{Name: "binary bytes nobody claims", Body: append(GoodRequest(1), make([]byte, 8)...), Header: len(GoodRequest(1)), Status: 400, ErrContains: "8 bytes after the JSON header are not claimed"},
	{Name: "binary_data_size and data both", Body: []byte(input(joinM(name, shape, fp32, data30, `"parameters":{"binary_data_size":120}`))), Header: -1, Status: 400, ErrContains: `has both "data" and parameters.binary_data_size`},
	{Name: "binary_data_size negative", Body: []byte(input(joinM(name, shape, fp32, `"parameters":{"binary_data_size":-120}`))), Header: -1, Status: 400, ErrContains: "binary_data_size must be a non-negative integer, got a negative number"},
}

// binaryJSON is a demo request header declaring size bytes of binary features.
func binaryJSON(size int) []byte {
	return []byte(input(joinM(name, shape, fp32, `"parameters":{"binary_data_size":`+strconv.Itoa(size)+`}`)))
}

func binaryJSONLen(size int) int { return len(binaryJSON(size)) }

// binaryBody is binaryJSON(size) followed by have bytes of zeros.
func binaryBody(size, have int) []byte {
	return append(binaryJSON(size), make([]byte, have)...)
}

// tenMB is a demo request whose one row has about 10 MB of numbers.
func tenMB() []byte {
	b := bytes.NewBuffer(make([]byte, 0, 10<<20+64))
	b.WriteString(`{"inputs":[{"name":"features","shape":[1,30],"datatype":"FP32","data":[0.25`)
	for b.Len() < 10<<20 {
		b.WriteString(",0.25")
	}
	b.WriteString("]}]}")
	return b.Bytes()
}
