package runtime_test

import (
	"fmt"
	"sync"
	"testing"

	ort "github.com/yalue/onnxruntime_go"
	"google.golang.org/protobuf/proto"

	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/onnxpb"
	"github.com/modelgate/modelgate/runtime"
)

// withMetadata returns the demo model with n more metadata_props entries,
// key_i = value_i.
func withMetadata(t *testing.T, n int) []byte {
	t.Helper()
	base, err := demo.FraudModel(demo.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(base, m); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		m.MetadataProps = append(m.MetadataProps, &onnxpb.StringStringEntryProto{
			Key: proto.String(fmt.Sprintf("key_%d", i)), Value: proto.String(fmt.Sprintf("value_%d", i))})
	}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// metadataCount counts the metadata_props entries of a model's bytes.
func metadataCount(t *testing.T, b []byte) int {
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(b, m); err != nil {
		t.Errorf("ONNX Runtime was handed bytes that do not parse: %v", err)
	}
	return len(m.MetadataProps)
}

// TestManyMetadataEntriesLoadInLinearWork: ONNX Runtime's model parse is
// quadratic in metadata_props (20,000 entries took 42 s to load). The
// runtime reads them itself in one pass and hands ORT the model without
// them, so ORT's work no longer grows with them: asserted by counting the
// entries every ORT parse is given, not by timing.
func TestManyMetadataEntriesLoadInLinearWork(t *testing.T) {
	const n = 20000
	onnx := withMetadata(t, n)
	var mu sync.Mutex
	parses, most := 0, 0
	runtime.SetORTModelHook(func(b []byte) {
		c := metadataCount(t, b)
		mu.Lock()
		parses++
		most = max(most, c)
		mu.Unlock()
	})
	defer runtime.SetORTModelHook(nil)

	sig, err := runtime.Introspect(onnx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := runtime.Load(onnx, runtime.Config{Sessions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if parses < 3 {
		t.Fatalf("the hook saw %d ORT parses, want one per Introspect and per session", parses)
	}
	if most > runtime.StripMetadataAbove {
		t.Fatalf("ONNX Runtime was handed a model with %d metadata entries, want at most %d", most, runtime.StripMetadataAbove)
	}
	for _, s := range []*runtime.Signature{sig, m.Signature()} {
		custom := s.Metadata.Custom
		if got, want := len(custom), n+len(demoKeys(t)); got != want {
			t.Fatalf("%d custom metadata entries read, want %d", got, want)
		}
		for _, i := range []int{0, 1, n / 2, n - 1} {
			if v := custom[fmt.Sprintf("key_%d", i)]; v != fmt.Sprintf("value_%d", i) {
				t.Fatalf("key_%d = %q, want value_%d", i, v, i)
			}
		}
	}
	if s := m.Signature(); s.Metadata.Producer != "modelgate" || len(s.Inputs) != 1 || s.Inputs[0].Name != "features" {
		t.Fatalf("the signature lost what ORT reads besides the metadata: %+v", s)
	}
}

// demoKeys is the demo model's own metadata, as ONNX Runtime reads it.
func demoKeys(t *testing.T) []string {
	t.Helper()
	base, err := demo.FraudModel(demo.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	md, err := ort.GetModelMetadataWithONNXData(base)
	if err != nil {
		t.Fatal(err)
	}
	defer md.Destroy()
	keys, err := md.GetCustomMetadataMapKeys()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestMetadataMatchesORT: below the stripping threshold ORT still parses
// the entries, and the runtime's own reading must agree with ORT's custom
// metadata map, a key given twice included (the last value wins in both).
func TestMetadataMatchesORT(t *testing.T) {
	onnx := withMetadata(t, 5)
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(onnx, m); err != nil {
		t.Fatal(err)
	}
	m.MetadataProps = append(m.MetadataProps, &onnxpb.StringStringEntryProto{Key: proto.String("key_2"), Value: proto.String("again")},
		&onnxpb.StringStringEntryProto{Key: proto.String("empty"), Value: proto.String("")})
	onnx, _ = proto.Marshal(m)
	sig, err := runtime.Introspect(onnx)
	if err != nil {
		t.Fatal(err)
	}
	md, err := ort.GetModelMetadataWithONNXData(onnx)
	if err != nil {
		t.Fatal(err)
	}
	defer md.Destroy()
	keys, err := md.GetCustomMetadataMapKeys()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != len(sig.Metadata.Custom) {
		t.Fatalf("ORT reads %d keys, the runtime %d: %v", len(keys), len(sig.Metadata.Custom), sig.Metadata.Custom)
	}
	for _, k := range keys {
		v, _, err := md.LookupCustomMetadataMap(k)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := sig.Metadata.Custom[k]; !ok || got != v {
			t.Fatalf("key %q: runtime reads %q (present %v), ORT %q", k, got, ok, v)
		}
	}
	if sig.Metadata.Custom["key_2"] != "again" {
		t.Fatalf("key_2 = %q, want the last value", sig.Metadata.Custom["key_2"])
	}
}
