package validate

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/modelgate/modelgate/internal/onnxpb"
	"google.golang.org/protobuf/proto"
)

func TestStaticDemoPasses(t *testing.T) {
	r := Static(demoModel(t), Limits{})
	if !r.Passed || r.Reason != "" {
		t.Fatalf("demo model failed the static checks: %+v", r)
	}
	for _, name := range []string{CheckSize, CheckParse, CheckHeader, CheckExternalData, CheckTensors} {
		if c, ok := r.Check(name); !ok || !c.OK {
			t.Fatalf("check %s = %+v, %v", name, c, ok)
		}
	}
	s := r.Signature
	if s == nil || s.Source != "graph" || len(s.Inputs) != 1 || s.Inputs[0].Name != "features" ||
		s.Inputs[0].Datatype != "FP32" || len(s.Inputs[0].Shape) != 2 || s.Inputs[0].Shape[0] != -1 || s.Inputs[0].Shape[1] != 30 {
		t.Fatalf("signature = %+v", s)
	}
	if s.Metadata["feature_names"] == "" {
		t.Fatalf("metadata lost: %v", s.Metadata)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Fatal(err)
	}
}

// TestStaticRejects: each bad model fails the named check, and the reason
// says why in words an operator understands.
func TestStaticRejects(t *testing.T) {
	f := func(name string, onnx []byte, lim Limits, check string, want ...string) {
		t.Helper()
		r := Static(onnx, lim)
		if r.Passed {
			t.Fatalf("%s: passed", name)
		}
		c, ok := r.Check(check)
		if !ok || c.OK {
			t.Fatalf("%s: check %s = %+v, %v; checks %+v", name, check, c, ok, r.Checks)
		}
		for _, w := range want {
			if !strings.Contains(r.Reason, w) {
				t.Fatalf("%s: reason %q does not say %q", name, r.Reason, w)
			}
		}
	}
	good := demoModel(t)
	f("empty", nil, Limits{}, CheckSize, "empty")
	f("over the size limit", good, Limits{MaxModelBytes: 1000}, CheckSize, "over the limit of 1000 bytes")
	f("malformed", []byte("this is not an ONNX model\n"), Limits{}, CheckParse, "not an ONNX model")
	f("truncated", good[:len(good)/2], Limits{}, CheckParse, "not an ONNX model", "truncated")
	f("random bytes", randomBytes(4096), Limits{}, CheckParse, "not an ONNX model")
	f("no graph", marshal(t, &onnxpb.ModelProto{IrVersion: proto.Int64(8)}), Limits{}, CheckParse, "no graph")
	f("100 GB initializer", hugeInitModel(t), Limits{}, CheckTensors,
		`initializer "huge" declares [100000, 250000] FLOAT`, "93.1 GiB (100000000000 bytes)", "over the limit of 1 GiB")
	f("external data", externalModel(t), Limits{}, CheckExternalData,
		"models that reference external data files are refused", `"feature_mean"`, "../../etc/weights.bin")
	f("no opset", editDemo(t, func(m *onnxpb.ModelProto) { m.OpsetImport = nil }), Limits{}, CheckHeader, "opset_import is empty")
	f("no ir_version", editDemo(t, func(m *onnxpb.ModelProto) { m.IrVersion = nil }), Limits{}, CheckHeader, "ir_version is missing")
	f("no outputs", editDemo(t, func(m *onnxpb.ModelProto) { m.Graph.Output = nil }), Limits{}, CheckHeader, "no outputs")
	f("data does not fill dims", editDemo(t, func(m *onnxpb.ModelProto) {
		m.Graph.Initializer[0].Dims = []int64{31}
	}), Limits{}, CheckTensors, `declares [31] FLOAT (31 elements) but holds 30`)
	f("negative dim", editDemo(t, func(m *onnxpb.ModelProto) {
		m.Graph.Initializer[0].Dims = []int64{-1, 30}
	}), Limits{}, CheckTensors, "negative dimension")
	f("dims overflow", editDemo(t, func(m *onnxpb.ModelProto) {
		m.Graph.Initializer[0].Dims = []int64{1 << 40, 1 << 40, 1 << 40}
	}), Limits{}, CheckTensors, "more than 8 EiB")
	f("total over the limit", good, Limits{MaxTotalBytes: 100}, CheckTensors, "together, over the limit of 100 bytes")
	f("no data type", editDemo(t, func(m *onnxpb.ModelProto) {
		m.Graph.Initializer[0].DataType = nil
	}), Limits{}, CheckTensors, "has no data type")

	// Tensors hidden in attributes, subgraphs, sparse initializers and
	// functions are found too.
	hugeConst := &onnxpb.TensorProto{Name: proto.String("c"), Dims: []int64{1 << 20, 1 << 20}, DataType: proto.Int32(int32(onnxpb.TensorProto_DOUBLE))}
	extTensor := &onnxpb.TensorProto{Name: proto.String("e"), Dims: []int64{2}, DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)),
		DataLocation: onnxpb.TensorProto_EXTERNAL.Enum()}
	constant := func(tp *onnxpb.TensorProto) *onnxpb.NodeProto {
		return &onnxpb.NodeProto{OpType: proto.String("Constant"), Name: proto.String("k"), Output: []string{"k"},
			Attribute: []*onnxpb.AttributeProto{{Name: proto.String("value"), T: tp}}}
	}
	f("huge Constant attribute", editDemo(t, func(m *onnxpb.ModelProto) {
		m.Graph.Node = append(m.Graph.Node, constant(hugeConst))
	}), Limits{}, CheckTensors, `node "k" attribute "value" declares [1048576, 1048576] DOUBLE`)
	f("external data in a subgraph", editDemo(t, func(m *onnxpb.ModelProto) {
		sub := &onnxpb.GraphProto{Name: proto.String("then"), Node: []*onnxpb.NodeProto{constant(extTensor)}}
		m.Graph.Node = append(m.Graph.Node, &onnxpb.NodeProto{OpType: proto.String("If"), Name: proto.String("if"),
			Attribute: []*onnxpb.AttributeProto{{Name: proto.String("then_branch"), G: sub}}})
	}), Limits{}, CheckExternalData, `node "if" attribute "then_branch": node "k" attribute "value" keeps its data in an external file`)
	f("huge sparse initializer", editDemo(t, func(m *onnxpb.ModelProto) {
		m.Graph.SparseInitializer = append(m.Graph.SparseInitializer, &onnxpb.SparseTensorProto{
			Values:  floatInit("sp", []int64{1}, []float32{1}),
			Indices: &onnxpb.TensorProto{Name: proto.String("spi"), Dims: []int64{1}, DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Int64Data: []int64{0}},
			Dims:    []int64{1 << 30, 1 << 10},
		})
	}), Limits{}, CheckTensors, `sparse initializer "sp" (dense) declares [1073741824, 1024] FLOAT`)
	f("external data in a function", editDemo(t, func(m *onnxpb.ModelProto) {
		m.Functions = append(m.Functions, &onnxpb.FunctionProto{Name: proto.String("fn"), Node: []*onnxpb.NodeProto{constant(extTensor)}})
	}), Limits{}, CheckExternalData, `function "fn": node "k"`)
	deep := &onnxpb.GraphProto{Name: proto.String("g")}
	for range 5 {
		deep = &onnxpb.GraphProto{Name: proto.String("g"), Node: []*onnxpb.NodeProto{{OpType: proto.String("If"), Name: proto.String("if"),
			Attribute: []*onnxpb.AttributeProto{{Name: proto.String("then_branch"), G: deep}}}}}
	}
	f("nested too deep", editDemo(t, func(m *onnxpb.ModelProto) {
		m.Graph.Node = append(m.Graph.Node, deep.Node...)
	}), Limits{MaxDepth: 3}, CheckTensors, "nested deeper than 3 levels")
}

func TestStaticListsEveryProblemBounded(t *testing.T) {
	onnx := editDemo(t, func(m *onnxpb.ModelProto) {
		for i := range 8 {
			m.Graph.Initializer = append(m.Graph.Initializer, &onnxpb.TensorProto{
				Name: proto.String("ext" + string(rune('a'+i))), Dims: []int64{1}, DataType: proto.Int32(1),
				DataLocation: onnxpb.TensorProto_EXTERNAL.Enum(),
			})
		}
	})
	r := Static(onnx, Limits{})
	if !strings.Contains(r.Reason, "and 3 more") || strings.Count(r.Reason, "keeps its data") != maxProblems {
		t.Fatalf("reason = %q", r.Reason)
	}
}

func TestSizeString(t *testing.T) {
	f := func(n int64, want string) {
		t.Helper()
		if got := sizeString(n); got != want {
			t.Fatalf("sizeString(%d) = %q, want %q", n, got, want)
		}
	}
	f(0, "0 bytes")
	f(1023, "1023 bytes")
	f(1024, "1 KiB")
	f(256<<20, "256 MiB")
	f(100e9, "93.1 GiB")
	f(1<<62, "4 EiB")
}

// FuzzStatic: the static checks never panic, whatever the bytes.
func FuzzStatic(f *testing.F) {
	// Seeds built by hand: training the demo model in every fuzz worker
	// would cost more than the fuzzing.
	small := smokeFailModel(f)
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(small, m); err != nil {
		f.Fatal(err)
	}
	m.Graph.Initializer = append(m.Graph.Initializer, &onnxpb.TensorProto{Name: proto.String("huge"),
		Dims: []int64{100000, 250000}, DataType: proto.Int32(1)})
	m.Graph.Initializer[0].DataLocation = onnxpb.TensorProto_EXTERNAL.Enum()
	f.Add(small)
	f.Add(marshal(f, m))
	f.Add([]byte{})
	f.Add(randomBytes(64))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := Static(b, Limits{MaxModelBytes: 1 << 20})
		if r.Passed == (r.Reason != "") {
			t.Fatalf("passed %v with reason %q", r.Passed, r.Reason)
		}
	})
}
