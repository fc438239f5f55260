package onnxpb_test

import (
	"testing"

	"github.com/modelgate/modelgate/internal/onnxpb"
	"google.golang.org/protobuf/proto"
)

// TestSchema pins what regeneration must keep: the proto package "onnx"
// (message names as ONNX tools know them) and the ONNX-ML types.
func TestSchema(t *testing.T) {
	f := func(m proto.Message, want string) {
		t.Helper()
		if got := string(m.ProtoReflect().Descriptor().FullName()); got != want {
			t.Errorf("full name %q, want %q", got, want)
		}
	}
	f(&onnxpb.ModelProto{}, "onnx.ModelProto")
	f(&onnxpb.TypeProto_Map{}, "onnx.TypeProto.Map")
	f(&onnxpb.TypeProto_Sequence{}, "onnx.TypeProto.Sequence")

	in := &onnxpb.ModelProto{IrVersion: proto.Int64(8), ProducerName: proto.String("modelgate")}
	b, err := proto.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out onnxpb.ModelProto
	if err := proto.Unmarshal(b, &out); err != nil || !proto.Equal(in, &out) {
		t.Fatalf("round trip: %v, %v", err, &out)
	}
}
