package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelgate/modelgate/cluster"
	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/artifact"
	"github.com/modelgate/modelgate/internal/ortlib"
	"github.com/modelgate/modelgate/internal/validate"
	"github.com/modelgate/modelgate/registry"
)

// startRegistryNode runs a node with a real one-voter Raft registry, a real
// artifact store, and the validation gate run in process (the demo model
// is trusted; the child process is tested in cmd/modelgate).
func startRegistryNode(t *testing.T, maxModel int64) (*gateway.Server, *artifact.Store) {
	t.Helper()
	dir := t.TempDir()
	ccfg := cluster.DefaultConfig()
	ccfg.NodeID, ccfg.DataDir, ccfg.BindAddr = "upload-test", dir, "127.0.0.1:0"
	ccfg.Logger = slog.New(slog.DiscardHandler)
	node, err := cluster.Open(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := node.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	store, err := artifact.Open(t.TempDir(), artifact.Config{MaxBytes: maxModel})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	val := func(_ context.Context, onnx []byte, _ json.RawMessage, _ float64) (gateway.Validation, error) {
		rep, err := validate.Local(onnx, validate.Options{LatencyRuns: 1, ORTLib: ortlib.Path()})
		if err != nil {
			return gateway.Validation{}, err
		}
		v := gateway.Validation{Passed: rep.Passed, Reason: rep.Reason}
		if rep.Signature != nil {
			for _, in := range rep.Signature.Inputs {
				v.Signature.Inputs = append(v.Signature.Inputs, registry.TensorSpec{Name: in.Name, DataType: in.Datatype, Shape: in.Shape})
			}
			for _, out := range rep.Signature.Outputs {
				v.Signature.Outputs = append(v.Signature.Outputs, registry.TensorSpec{Name: out.Name, DataType: out.Datatype, Shape: out.Shape})
			}
		}
		return v, nil
	}
	srv := startServer(t, gateway.Config{Control: node, Artifacts: store, Validator: val, MaxModelBytes: maxModel,
		Auth: gateway.NewAuth(gateway.NewToken("ci", testSecret, gateway.ScopeAdmin))})
	return srv, store
}

// register uploads a registration through an io.Pipe, so the client sends
// it chunked, with no Content-Length: the node cannot check its size from
// the headers and must bound it while streaming.
func register(t *testing.T, srv *gateway.Server, model string, onnx []byte, metadata string) (int, string) {
	t.Helper()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		if metadata != "" {
			mw.WriteField("metadata", metadata)
		}
		part, _ := mw.CreateFormFile("model", "model.onnx")
		_, err := part.Write(onnx)
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	req, _ := http.NewRequest("POST", "http://"+srv.AdminAddr()+"/api/v1/models/"+model+"/versions", pr)
	req.Header.Set("Authorization", "Bearer "+testSecret)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("register %s: %v", model, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRegisterStreamsModel: a real model uploaded chunked is streamed into
// the artifact store, registered, validated and stored byte for byte.
func TestRegisterStreamsModel(t *testing.T) {
	onnx := demoModel(t)
	srv, store := startRegistryNode(t, 64<<20)
	code, body := register(t, srv, "fraud", onnx, `{"lineage":{"notes":"streamed"}}`)
	if code != http.StatusCreated {
		t.Fatalf("register: %d %s", code, body)
	}
	var out struct {
		Version    int    `json:"version"`
		Digest     string `json:"digest"`
		Validation struct {
			Passed bool `json:"passed"`
		} `json:"validation"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil || out.Version != 1 || !out.Validation.Passed {
		t.Fatalf("register answered %s (%v), want v1 validated", body, err)
	}
	got, err := store.Get(out.Digest)
	if err != nil || !bytes.Equal(got, onnx) {
		t.Fatalf("the stored artifact differs from the upload (%d vs %d bytes, %v)", len(got), len(onnx), err)
	}
	code, b, _ := adminGet(t, srv, "/api/v1/models/fraud/versions/1")
	if code != 200 || !strings.Contains(string(b), `"notes":"streamed"`) {
		t.Fatalf("the version lost its metadata: %d %s", code, b)
	}
}

// TestRegisterOverModelLimit: a model larger than --max-model-bytes sent
// with no Content-Length gets 413 naming that limit, and nothing is kept.
func TestRegisterOverModelLimit(t *testing.T) {
	const limit = 256 << 10
	srv, _ := startRegistryNode(t, limit)
	big := bytes.Repeat([]byte{7}, limit+1)
	code, body := register(t, srv, "fraud", big, "")
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "262144 bytes (serve --max-model-bytes)") {
		t.Fatalf("register %d bytes over a %d-byte limit: %d %s, want 413 naming the limit", len(big), limit, code, body)
	}
	if code, b, _ := adminGet(t, srv, "/api/v1/models/fraud"); code != http.StatusNotFound {
		t.Fatalf("a refused upload left a model behind: %d %s", code, b)
	}
}

func adminGet(t *testing.T, srv *gateway.Server, path string) (int, []byte, http.Header) {
	code, h, b := adminCall(t, srv, "GET", path, nil)
	return code, b, h
}
