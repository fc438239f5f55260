package gateway_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/oiptest"
	"github.com/modelgate/modelgate/predlog"
	"github.com/modelgate/modelgate/runtime"
)

// loggedServer serves the demo model with the prediction log in cfg.
func loggedServer(t *testing.T, cfg predlog.Config) (*gateway.Server, *predlog.Log) {
	t.Helper()
	plog, err := predlog.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = plog.Close() })
	srv := startServer(t, gateway.Config{PredLog: plog, Node: "node-a",
		Auth: gateway.NewAuth(gateway.NewToken("tester", testSecret, gateway.ScopeAdmin))})
	serveModel(t, srv, "fraud", "1", demoModel(t), runtime.Config{})
	return srv, plog
}

func withID(body []byte, id string) []byte {
	q, _ := json.Marshal(id)
	return bytes.Replace(body, []byte(`"id":"42"`), append([]byte(`"id":`), q...), 1)
}

// waitLogged waits until the log holds id: async records are committed
// within milliseconds; only a hang exceeds the deadline.
func waitLogged(t *testing.T, plog *predlog.Log, id string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := plog.Get(id)
		if err == nil {
			return
		}
		if !errors.Is(err, predlog.ErrNotFound) || time.Now().After(deadline) {
			t.Fatalf("prediction %q never logged: %v (stats %+v)", id, err, plog.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lookup fetches GET /api/v1/predictions/{id} with the id escaped as one
// path segment, and returns the logged record's id and input shape.
func lookup(t *testing.T, srv *gateway.Server, escaped string) (int, string, []int64, []byte) {
	t.Helper()
	code, _, b := adminCall(t, srv, "GET", "/api/v1/predictions/"+escaped, nil)
	var out struct {
		Prediction struct {
			ID     string `json:"id"`
			Inputs []struct {
				Shape []int64 `json:"shape"`
			} `json:"inputs"`
		} `json:"prediction"`
	}
	if code == 200 {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("lookup answer: %v: %.200s", err, b)
		}
	}
	var shape []int64
	if len(out.Prediction.Inputs) > 0 {
		shape = out.Prediction.Inputs[0].Shape
	}
	return code, out.Prediction.ID, shape, b
}

// TestLargePredictionIsLogged: a 9,000-row request (a 1.1 MB record, over
// the log's old 1 MiB record limit, under the 4 MiB body limit) was
// answered 200 and neither logged nor counted. Now it is logged whole, in
// async and in durable mode, and GET /api/v1/predictions/{id} returns it.
func TestLargePredictionIsLogged(t *testing.T) {
	srv, plog := loggedServer(t, predlog.DefaultConfig(t.TempDir()))
	body := oiptest.GoodRequest(9000)
	if len(body) > 4<<20 {
		t.Fatalf("the request is %d bytes, over the scoring body limit", len(body))
	}
	if code, out := post(t, srv, "/v2/models/fraud/infer", withID(body, "big-async")); code != 200 {
		t.Fatalf("%d %.300s", code, out)
	}
	waitLogged(t, plog, "big-async")
	srv.Catalog.SetLogMode("fraud", "durable")
	if code, out := post(t, srv, "/v2/models/fraud/infer", withID(body, "big-durable")); code != 200 {
		t.Fatalf("durable: %d %.300s", code, out)
	}
	for _, id := range []string{"big-async", "big-durable"} {
		code, got, shape, b := lookup(t, srv, id)
		if code != 200 || got != id || len(shape) != 2 || shape[0] != 9000 || shape[1] != 30 {
			t.Fatalf("lookup %s: %d id %q shape %v: %.300s", id, code, got, shape, b)
		}
	}
	if s := plog.Stats(); s.Dropped != 0 || s.Oversize != 0 {
		t.Fatalf("log stats %+v: a large prediction was dropped", s)
	}
}

// TestOversizePrediction: with a record limit below the request's size,
// async mode answers and counts the record (Stats.Oversize and /metrics),
// and durable mode answers 413 naming the limit, not a retryable 503:
// before running the model when the inputs alone are over it, after when
// the outputs push the record over.
func TestOversizePrediction(t *testing.T) {
	const rows = 9000
	inputBytes := rows * 30 * 4
	cfg := predlog.DefaultConfig(t.TempDir())
	cfg.MaxRecordBytes = inputBytes + 1000 // the inputs fit, the outputs do not
	srv, plog := loggedServer(t, cfg)
	body := oiptest.GoodRequest(rows)

	if code, out := post(t, srv, "/v2/models/fraud/infer", withID(body, "over-async")); code != 200 {
		t.Fatalf("async: %d %.300s", code, out)
	}
	if s := plog.Stats(); s.Oversize != 1 || s.Dropped != 1 {
		t.Fatalf("log stats %+v, want the record counted as oversize and dropped", s)
	}
	code, metrics := get(t, srv.AdminAddr(), "/metrics")
	if code != 200 || !bytes.Contains(metrics, []byte("modelgate_predlog_oversize_total 1\n")) {
		t.Fatalf("/metrics lacks modelgate_predlog_oversize_total 1: %d", code)
	}

	srv.Catalog.SetLogMode("fraud", "durable")
	limit := strconv.Itoa(cfg.MaxRecordBytes)
	code, out := post(t, srv, "/v2/models/fraud/infer", withID(body, "over-outputs"))
	if code != 413 || !bytes.Contains(out, []byte(`"error":`)) || !bytes.Contains(out, []byte("record limit of "+limit+" bytes")) ||
		!bytes.Contains(out, []byte("not answered")) || bytes.Contains(out, []byte(`"outputs"`)) {
		t.Fatalf("durable, outputs over the limit: %d %.400s", code, out)
	}

	// Inputs alone over the limit: refused before the model runs.
	small := oiptest.GoodRequest(rows + 100)
	code, out = post(t, srv, "/v2/models/fraud/infer", withID(small, "over-inputs"))
	if code != 413 || !bytes.Contains(out, []byte("record limit of "+limit+" bytes")) || !bytes.Contains(out, []byte("it is not run")) {
		t.Fatalf("durable, inputs over the limit: %d %.400s", code, out)
	}
	for _, id := range []string{"over-outputs", "over-inputs"} {
		if _, err := plog.Get(id); !errors.Is(err, predlog.ErrNotFound) {
			t.Fatalf("Get(%s) = %v, want not found", id, err)
		}
	}
}

// TestEveryAcceptedIDIsRetrievable: ids are opaque client strings. Every id
// the scoring port accepts is logged and found by GET
// /api/v1/predictions/{id} with the id as one escaped path segment ("a/b"
// as a%2Fb, ".." as %2E%2E or literally), and ids the log cannot hold are
// refused at scoring with a 400 naming the limit.
func TestEveryAcceptedIDIsRetrievable(t *testing.T) {
	srv, plog := loggedServer(t, predlog.DefaultConfig(t.TempDir()))
	body := oiptest.GoodRequest(1)
	ids := []string{"a/b", "..", ".", "/", "a/../b", "50%off", "%2F", "100%", "façade-日本-🙂", "tab\there", "sp ace+plus?q=1#frag", strings.Repeat("x", 255)}
	for _, id := range ids {
		code, out := post(t, srv, "/v2/models/fraud/infer", withID(body, id))
		if code != 200 || decodeResponse(t, out).ID != id {
			t.Fatalf("id %q: %d %.300s", id, code, out)
		}
	}
	for _, id := range ids {
		waitLogged(t, plog, id)
		forms := []string{url.PathEscape(id)}
		if id == ".." || id == "." {
			forms = append(forms, strings.Repeat("%2E", len(id)))
		}
		for _, f := range forms {
			code, got, _, b := lookup(t, srv, f)
			if code != 200 || got != id {
				t.Fatalf("GET /api/v1/predictions/%s for id %q: %d id %q: %.300s", f, id, code, got, b)
			}
		}
	}
	// A "%" not followed by two hex digits is taken as it is (sent raw:
	// net/http refuses to build such a URL).
	conn, err := net.Dial("tcp", srv.AdminAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "GET /api/v1/predictions/50%%off HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", testSecret)
	raw, _ := io.ReadAll(conn)
	if !bytes.HasPrefix(raw, []byte("HTTP/1.1 200")) || !bytes.Contains(raw, []byte(`"id":"50%off"`)) {
		t.Fatalf("raw %%: %.400s", raw)
	}

	// The empty id is no id: one is generated, echoed and retrievable.
	code, out := post(t, srv, "/v2/models/fraud/infer", withID(body, ""))
	gen := decodeResponse(t, out).ID
	if code != 200 || gen == "" {
		t.Fatalf("empty id: %d %.300s", code, out)
	}
	waitLogged(t, plog, gen)
	if code, got, _, _ := lookup(t, srv, url.PathEscape(gen)); code != 200 || got != gen {
		t.Fatalf("generated id %q: %d %q", gen, code, got)
	}

	// Over the log's 255 bytes: refused at scoring, naming the limit.
	code, out = post(t, srv, "/v2/models/fraud/infer", withID(body, strings.Repeat("x", 256)))
	if code != 400 || !bytes.Contains(out, []byte(`"id\" is 256 bytes long; the limit is 255`)) {
		t.Fatalf("256-byte id: %d %.300s", code, out)
	}
	if s := plog.Stats(); s.Dropped != 0 {
		t.Fatalf("log stats %+v", s)
	}
}
