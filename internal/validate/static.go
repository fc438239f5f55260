package validate

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/modelgate/modelgate/internal/onnxpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// maxProblems bounds how many problems one check lists in its detail.
const maxProblems = 5

// Static runs the static checks on onnx in this process, without ONNX
// Runtime: size, protobuf parse, header, external data and tensor sizes.
// The Report passes when all of them do; its Signature is read from the
// graph. Memory: the parsed model takes at most about 8 times
// Limits.MaxModelBytes (packed varints widen to 8 bytes), and bytes over
// the limit are refused before parsing.
func Static(onnx []byte, lim Limits) *Report {
	start := time.Now()
	r, _ := static(onnx, lim)
	r.finish()
	r.Timings.Total = time.Since(start)
	return r
}

// static runs the static checks and returns the parsed model when they pass.
func static(onnx []byte, lim Limits) (*Report, *onnxpb.ModelProto) {
	start := time.Now()
	lim.fill()
	sum := sha256.Sum256(onnx)
	r := &Report{Digest: hex.EncodeToString(sum[:]), Size: int64(len(onnx))}
	defer func() { r.Timings.Static = time.Since(start) }()

	switch {
	case len(onnx) == 0:
		r.fail(CheckSize, "the file is empty")
		return r, nil
	case int64(len(onnx)) > lim.MaxModelBytes:
		r.fail(CheckSize, fmt.Sprintf("the file is %s, over the limit of %s", sizeString(int64(len(onnx))), sizeString(lim.MaxModelBytes)))
		return r, nil
	}
	r.pass(CheckSize, fmt.Sprintf("%d bytes (limit %s)", len(onnx), sizeString(lim.MaxModelBytes)))

	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(onnx, m); err != nil {
		r.fail(CheckParse, "the file is not an ONNX model: "+parseProblem(onnx, err))
		return r, nil
	}
	if m.Graph == nil {
		r.fail(CheckParse, "the file is not an ONNX model: it parses as protobuf but holds no graph")
		return r, nil
	}
	r.pass(CheckParse, fmt.Sprintf("ONNX ModelProto, graph %q with %d nodes and %d initializers",
		m.Graph.GetName(), len(m.Graph.Node), len(m.Graph.Initializer)))

	checkHeader(r, m)
	w := walker{lim: lim}
	w.model(m)
	if len(w.external) > 0 {
		r.fail(CheckExternalData, "models that reference external data files are refused: "+w.list(w.external, w.nExternal))
	} else {
		r.pass(CheckExternalData, "every tensor's data is inside the file")
	}
	if w.total > lim.MaxTotalBytes {
		w.problem(fmt.Sprintf("the model's stored tensors declare %s together, over the limit of %s",
			sizeString(w.total), sizeString(lim.MaxTotalBytes)))
	}
	if len(w.tensors) > 0 {
		r.fail(CheckTensors, w.list(w.tensors, w.nTensors))
	} else {
		r.pass(CheckTensors, fmt.Sprintf("%d stored tensors declare %s (limit %s each, %s in all)",
			w.count, sizeString(w.total), sizeString(lim.MaxTensorBytes), sizeString(lim.MaxTotalBytes)))
	}
	r.Signature = graphSignature(m)
	if r.failed() {
		return r, nil
	}
	return r, m
}

// parseProblem explains why onnx does not parse, telling a truncated file
// (a field runs past the end: an interrupted upload or copy) from bytes
// that are not protobuf at all.
func parseProblem(onnx []byte, err error) string {
	b := onnx
	for len(b) > 0 {
		_, _, n := protowire.ConsumeField(b)
		if n < 0 {
			if errors.Is(protowire.ParseError(n), io.ErrUnexpectedEOF) {
				return fmt.Sprintf("it is truncated: a field starting at byte %d runs past the end of the file (%d bytes); was the upload or copy interrupted?",
					len(onnx)-len(b), len(onnx))
			}
			break
		}
		b = b[n:]
	}
	return "it does not parse as an ONNX ModelProto (" + err.Error() + ")"
}

// checkHeader checks what every ONNX model must declare.
func checkHeader(r *Report, m *onnxpb.ModelProto) {
	var bad []string
	if m.GetIrVersion() <= 0 {
		bad = append(bad, "ir_version is missing")
	}
	if len(m.OpsetImport) == 0 {
		bad = append(bad, "opset_import is empty, so the operators' meaning is unknown")
	}
	var opsets []string
	for _, o := range m.OpsetImport {
		d := o.GetDomain()
		if d == "" {
			d = "ai.onnx"
		}
		if o.GetVersion() <= 0 {
			bad = append(bad, fmt.Sprintf("opset_import for domain %s has no version", d))
		}
		opsets = append(opsets, d+" "+strconv.FormatInt(o.GetVersion(), 10))
	}
	if len(m.Graph.Output) == 0 {
		bad = append(bad, "the graph has no outputs")
	}
	if len(bad) > 0 {
		r.fail(CheckHeader, "the model's header is incomplete: "+strings.Join(bad, "; "))
		return
	}
	r.pass(CheckHeader, fmt.Sprintf("ir_version %d, opset %s", m.GetIrVersion(), strings.Join(opsets, ", ")))
}

// walker visits every tensor stored in a model: initializers, sparse
// initializers and tensor attributes, in the main graph, in subgraphs, in
// functions and in training graphs.
type walker struct {
	lim       Limits
	external  []string
	nExternal int
	tensors   []string
	nTensors  int
	total     int64 // declared bytes, saturating
	count     int
}

func (w *walker) problem(s string) {
	w.nTensors++
	if len(w.tensors) < maxProblems {
		w.tensors = append(w.tensors, s)
	}
}

func (w *walker) list(items []string, n int) string {
	s := strings.Join(items, "; ")
	if n > len(items) {
		s += fmt.Sprintf("; and %d more", n-len(items))
	}
	return s
}

func (w *walker) model(m *onnxpb.ModelProto) {
	w.graph(m.Graph, "", 0)
	for _, f := range m.Functions {
		for _, n := range f.Node {
			w.node(n, fmt.Sprintf("function %q: ", f.GetName()), 1)
		}
	}
	for i, t := range m.TrainingInfo {
		w.graph(t.Initialization, fmt.Sprintf("training_info[%d] initialization: ", i), 1)
		w.graph(t.Algorithm, fmt.Sprintf("training_info[%d] algorithm: ", i), 1)
	}
}

func (w *walker) graph(g *onnxpb.GraphProto, path string, depth int) {
	if g == nil {
		return
	}
	if depth > w.lim.MaxDepth {
		w.problem(fmt.Sprintf("%ssubgraphs are nested deeper than %d levels", path, w.lim.MaxDepth))
		return
	}
	for _, t := range g.Initializer {
		w.tensor(t, path+"initializer "+strconv.Quote(t.GetName()))
	}
	for _, s := range g.SparseInitializer {
		w.sparse(s, path+"sparse initializer "+strconv.Quote(s.GetValues().GetName()))
	}
	for _, n := range g.Node {
		w.node(n, path, depth)
	}
}

func (w *walker) node(n *onnxpb.NodeProto, path string, depth int) {
	name := n.GetName()
	if name == "" {
		name = n.GetOpType()
	}
	for _, a := range n.Attribute {
		where := fmt.Sprintf("%snode %q attribute %q", path, name, a.GetName())
		if a.T != nil {
			w.tensor(a.T, where)
		}
		for _, t := range a.Tensors {
			w.tensor(t, where)
		}
		if a.SparseTensor != nil {
			w.sparse(a.SparseTensor, where)
		}
		for _, s := range a.SparseTensors {
			w.sparse(s, where)
		}
		if a.G != nil {
			w.graph(a.G, where+": ", depth+1)
		}
		for _, g := range a.Graphs {
			w.graph(g, where+": ", depth+1)
		}
	}
}

// sparse checks a sparse tensor: its parts as tensors, and its dense shape
// against the size limit, since ONNX Runtime densifies sparse initializers.
func (w *walker) sparse(s *onnxpb.SparseTensorProto, where string) {
	if s.Values != nil {
		w.tensor(s.Values, where+" values")
	}
	if s.Indices != nil {
		w.tensor(s.Indices, where+" indices")
	}
	w.declared(where+" (dense)", s.Dims, s.GetValues().GetDataType())
}

// tensor checks one stored tensor: no external data, a declared size within
// the limit, and stored data that fills its dims.
func (w *walker) tensor(t *onnxpb.TensorProto, where string) {
	w.count++
	if t.GetDataLocation() == onnxpb.TensorProto_EXTERNAL || len(t.ExternalData) > 0 {
		loc := ""
		for _, kv := range t.ExternalData {
			if kv.GetKey() == "location" {
				loc = kv.GetValue()
			}
		}
		msg := where + " keeps its data in an external file"
		if loc != "" {
			msg = fmt.Sprintf("%s keeps its data in external file %q", where, loc)
		}
		w.nExternal++
		if len(w.external) < maxProblems {
			w.external = append(w.external, msg)
		}
		return // its size is the external file's; there is nothing here to check
	}
	n, ok := w.declared(where, t.Dims, t.GetDataType())
	if !ok {
		return
	}
	if have, known := stored(t); known && have != n {
		w.problem(fmt.Sprintf("%s declares %s %s (%d elements) but holds %d", where, dimsString(t.Dims), typeName(t.GetDataType()), n, have))
	}
}

// declared checks dims and the size they declare, adds it to the total and
// returns the element count; ok is false when a problem was recorded.
func (w *walker) declared(where string, dims []int64, dt int32) (int64, bool) {
	if dt == int32(onnxpb.TensorProto_UNDEFINED) {
		w.problem(where + " has no data type")
		return 0, false
	}
	for _, d := range dims {
		if d < 0 {
			w.problem(fmt.Sprintf("%s has a negative dimension in %s", where, dimsString(dims)))
			return 0, false
		}
	}
	n := int64(1)
	if slices.Contains(dims, 0) {
		n = 0
	}
	for _, d := range dims {
		n = satMul(n, d)
	}
	bytes := satMul(n, elemSize(dt))
	w.total = satAdd(w.total, bytes)
	if bytes > w.lim.MaxTensorBytes {
		size := sizeString(bytes)
		if bytes == math.MaxInt64 {
			size = "more than 8 EiB"
		}
		if bytes < math.MaxInt64 {
			size = fmt.Sprintf("%s (%d bytes)", size, bytes)
		}
		w.problem(fmt.Sprintf("%s declares %s %s, %s, over the limit of %s: refused before ONNX Runtime would allocate it",
			where, dimsString(dims), typeName(dt), size, sizeString(w.lim.MaxTensorBytes)))
		return 0, false
	}
	return n, true
}

// stored counts the elements a tensor holds; known is false for types whose
// storage the check does not know (newer 8- and 4-bit types).
func stored(t *onnxpb.TensorProto) (n int64, known bool) {
	dt := onnxpb.TensorProto_DataType(t.GetDataType())
	size := elemSize(t.GetDataType())
	if len(t.RawData) > 0 {
		if dt == onnxpb.TensorProto_STRING || dt > onnxpb.TensorProto_BFLOAT16 {
			return 0, false
		}
		if int64(len(t.RawData))%size != 0 {
			return -1, true
		}
		return int64(len(t.RawData)) / size, true
	}
	switch dt {
	case onnxpb.TensorProto_FLOAT:
		return int64(len(t.FloatData)), true
	case onnxpb.TensorProto_COMPLEX64:
		return int64(len(t.FloatData)) / 2, true
	case onnxpb.TensorProto_DOUBLE:
		return int64(len(t.DoubleData)), true
	case onnxpb.TensorProto_COMPLEX128:
		return int64(len(t.DoubleData)) / 2, true
	case onnxpb.TensorProto_INT64:
		return int64(len(t.Int64Data)), true
	case onnxpb.TensorProto_UINT32, onnxpb.TensorProto_UINT64:
		return int64(len(t.Uint64Data)), true
	case onnxpb.TensorProto_STRING:
		return int64(len(t.StringData)), true
	case onnxpb.TensorProto_INT32, onnxpb.TensorProto_INT16, onnxpb.TensorProto_INT8,
		onnxpb.TensorProto_UINT16, onnxpb.TensorProto_UINT8, onnxpb.TensorProto_BOOL,
		onnxpb.TensorProto_FLOAT16, onnxpb.TensorProto_BFLOAT16:
		return int64(len(t.Int32Data)), true
	}
	return 0, false
}

// elemSize is the width of one element of an ONNX data type in bytes, for
// the declared-size bound: 1 for the sub-byte and 8-bit types newer than
// this proto, and for STRING (whose bytes are all stored in the file).
func elemSize(dt int32) int64 {
	switch onnxpb.TensorProto_DataType(dt) {
	case onnxpb.TensorProto_UINT16, onnxpb.TensorProto_INT16, onnxpb.TensorProto_FLOAT16, onnxpb.TensorProto_BFLOAT16:
		return 2
	case onnxpb.TensorProto_FLOAT, onnxpb.TensorProto_INT32, onnxpb.TensorProto_UINT32:
		return 4
	case onnxpb.TensorProto_INT64, onnxpb.TensorProto_DOUBLE, onnxpb.TensorProto_UINT64, onnxpb.TensorProto_COMPLEX64:
		return 8
	case onnxpb.TensorProto_COMPLEX128:
		return 16
	}
	return 1
}

// oipNames maps ONNX element types to Open Inference Protocol datatypes.
var oipNames = map[onnxpb.TensorProto_DataType]string{
	onnxpb.TensorProto_FLOAT: "FP32", onnxpb.TensorProto_UINT8: "UINT8", onnxpb.TensorProto_INT8: "INT8",
	onnxpb.TensorProto_UINT16: "UINT16", onnxpb.TensorProto_INT16: "INT16", onnxpb.TensorProto_INT32: "INT32",
	onnxpb.TensorProto_INT64: "INT64", onnxpb.TensorProto_STRING: "BYTES", onnxpb.TensorProto_BOOL: "BOOL",
	onnxpb.TensorProto_FLOAT16: "FP16", onnxpb.TensorProto_DOUBLE: "FP64", onnxpb.TensorProto_UINT32: "UINT32",
	onnxpb.TensorProto_UINT64: "UINT64", onnxpb.TensorProto_BFLOAT16: "BF16",
}

// typeName names an ONNX element type the way ONNX does (FLOAT, INT64, …).
func typeName(dt int32) string {
	if s, ok := onnxpb.TensorProto_DataType_name[dt]; ok {
		return s
	}
	return "type " + strconv.Itoa(int(dt))
}

func dimsString(d []int64) string {
	parts := make([]string, len(d))
	for i, x := range d {
		parts[i] = strconv.FormatInt(x, 10)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// satMul multiplies non-negative numbers, saturating at MaxInt64.
func satMul(a, b int64) int64 {
	if a != 0 && b > math.MaxInt64/a {
		return math.MaxInt64
	}
	return a * b
}

func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// graphSignature reads the model's interface from the graph: inputs that
// are not initializers, and outputs.
func graphSignature(m *onnxpb.ModelProto) *Signature {
	g := m.Graph
	inits := make(map[string]bool, len(g.Initializer))
	for _, t := range g.Initializer {
		inits[t.GetName()] = true
	}
	s := &Signature{Source: "graph", Producer: m.GetProducerName(), GraphName: g.GetName(), Inputs: []TensorInfo{}, Outputs: []TensorInfo{}}
	for _, v := range g.Input {
		if !inits[v.GetName()] {
			s.Inputs = append(s.Inputs, valueInfo(v))
		}
	}
	for _, v := range g.Output {
		s.Outputs = append(s.Outputs, valueInfo(v))
	}
	for _, kv := range m.MetadataProps {
		s.addMetadata(kv.GetKey(), kv.GetValue())
	}
	return s
}

func valueInfo(v *onnxpb.ValueInfoProto) TensorInfo {
	ti := TensorInfo{Name: v.GetName(), Datatype: "INVALID"}
	tt := v.GetType().GetTensorType()
	if tt == nil {
		return ti
	}
	if s, ok := oipNames[onnxpb.TensorProto_DataType(tt.GetElemType())]; ok {
		ti.Datatype = s
	}
	if tt.Shape == nil {
		return ti
	}
	ti.Shape = make([]int64, len(tt.Shape.Dim))
	for i, d := range tt.Shape.Dim {
		ti.Shape[i] = -1
		if v, ok := d.Value.(*onnxpb.TensorShapeProto_Dimension_DimValue); ok && v.DimValue >= 0 {
			ti.Shape[i] = v.DimValue
		}
	}
	return ti
}

// Bounds on the metadata a Signature keeps.
const (
	maxMetadataKeys  = 64
	maxMetadataValue = 1 << 10
)

func (s *Signature) addMetadata(k, v string) {
	if s.Metadata == nil {
		s.Metadata = map[string]string{}
	}
	if len(s.Metadata) >= maxMetadataKeys || len(k) > maxMetadataValue {
		return
	}
	if len(v) > maxMetadataValue {
		v = v[:maxMetadataValue] + "…"
	}
	s.Metadata[k] = v
}
