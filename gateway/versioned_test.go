package gateway_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/testmodels"
	"github.com/modelgate/modelgate/runtime"
)

// TestVersionedCallsReachTheirVersion: with version 1 champion and version
// 2 loaded beside it, an explicit-version call is answered by that version
// (named in model_version), an unversioned call by the champion, and a
// version not loaded here is a 404 that names it. SetChampion moves only the
// unversioned calls.
func TestVersionedCallsReachTheirVersion(t *testing.T) {
	onnx := testmodels.Read(t, "example_dynamic_axes.onnx")
	srv := startServer(t, gateway.Config{})
	serveModel(t, srv, "dyn", "1", onnx, runtime.Config{Sessions: 1})
	slot2, err := srv.Catalog.Load("dyn", "2", onnx, runtime.Config{Sessions: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv.Catalog.Publish(slot2, false)
	body := []byte(`{"inputs":[{"name":"input_vectors","shape":[1,10],"datatype":"FP32","data":[1,2,3,4,5,6,7,8,9,10]}]}`)
	f := func(path string, wantCode int, wantVersion string) {
		t.Helper()
		code, b := post(t, srv, path, body)
		if code != wantCode {
			t.Fatalf("POST %s: %d %s, want %d", path, code, b, wantCode)
		}
		if wantCode != http.StatusOK {
			if !bytes.Contains(b, []byte(`has no version \"`+wantVersion+`\"`)) {
				t.Fatalf("POST %s: %d %s, want it to name version %s", path, code, b, wantVersion)
			}
			return
		}
		if r := decodeResponse(t, b); r.ModelVersion != wantVersion {
			t.Fatalf("POST %s answered by version %q, want %q", path, r.ModelVersion, wantVersion)
		}
	}
	f("/v2/models/dyn/infer", http.StatusOK, "1")
	f("/v2/models/dyn/versions/1/infer", http.StatusOK, "1")
	f("/v2/models/dyn/versions/2/infer", http.StatusOK, "2")
	f("/v2/models/dyn/versions/3/infer", http.StatusNotFound, "3")
	if !srv.Catalog.SetChampion("dyn", "2") {
		t.Fatal("SetChampion: version 2 not loaded")
	}
	f("/v2/models/dyn/infer", http.StatusOK, "2")
	f("/v2/models/dyn/versions/1/infer", http.StatusOK, "1")
	if v, ok := srv.Catalog.Champion("dyn"); !ok || v != "2" {
		t.Fatalf("Champion = %q %v, want 2", v, ok)
	}
}
