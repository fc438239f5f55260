package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/ortlib"
	"github.com/modelgate/modelgate/runtime"
)

func TestMain(m *testing.M) {
	if err := runtime.Init(ortlib.Path()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// startServer runs a real node on loopback ports chosen by the kernel and
// shuts it down (draining every version) when the test ends.
func startServer(t testing.TB, cfg gateway.Config) *gateway.Server {
	t.Helper()
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	srv := gateway.New(cfg)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return srv
}

// serveModel loads onnx as name@version, publishes it as champion and marks
// the node ready.
func serveModel(t testing.TB, srv *gateway.Server, name, version string, onnx []byte, cfg runtime.Config) *runtime.Slot {
	t.Helper()
	slot, err := srv.Catalog.Load(name, version, onnx, cfg)
	if err != nil {
		t.Fatalf("load %s@%s: %v", name, version, err)
	}
	srv.Catalog.Publish(slot, true)
	srv.SetReady(true)
	return slot
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}

// post sends body to the node's path and returns the status and body.
func post(t testing.TB, srv *gateway.Server, path string, body []byte, header ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+srv.Addr()+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func get(t testing.TB, addr, path string) (int, []byte) {
	t.Helper()
	resp, err := client.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// inferResponse is the OIP response, decoded with encoding/json on purpose:
// the tests check the server's hand-written encoder against the standard one.
type inferResponse struct {
	ModelName    string          `json:"model_name"`
	ModelVersion string          `json:"model_version"`
	ID           string          `json:"id"`
	Parameters   json.RawMessage `json:"parameters"`
	Outputs      []struct {
		Name     string          `json:"name"`
		DataType string          `json:"datatype"`
		Shape    []int64         `json:"shape"`
		Data     json.RawMessage `json:"data"`
	} `json:"outputs"`
}

func decodeResponse(t testing.TB, b []byte) inferResponse {
	t.Helper()
	var r inferResponse
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("response is not valid JSON (%v): %.300s", err, b)
	}
	return r
}
