package gateway_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/oiptest"
	"github.com/modelgate/modelgate/predlog"
	"github.com/modelgate/modelgate/runtime"
)

const testSecret = "test-admin-secret-0123456789"

func adminCall(t *testing.T, srv *gateway.Server, method, path string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+srv.AdminAddr()+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testSecret)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// TestPredictionLogRoundTrip scores requests, sends labels for a third of
// them (one twice), and exports the labelled rows in small pages resumed by
// cursor: every labelled row comes out exactly once. Then one request in
// durable mode is found the moment its answer arrives.
func TestPredictionLogRoundTrip(t *testing.T) {
	plog, err := predlog.Open(predlog.DefaultConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer plog.Close()
	srv := startServer(t, gateway.Config{PredLog: plog, Node: "node-a",
		Auth: gateway.NewAuth(gateway.NewToken("tester", testSecret, gateway.ScopeAdmin))})
	serveModel(t, srv, "fraud", "1", demoModel(t), runtime.Config{})

	const n = 300
	body := oiptest.GoodRequest(1)
	for i := 0; i < n; i++ {
		b := bytes.Replace(body, []byte(`"id":"42"`), []byte(fmt.Sprintf(`"id":"r-%d"`, i)), 1)
		if code, out := post(t, srv, "/v2/models/fraud/infer", b); code != 200 {
			t.Fatalf("%d %s", code, out)
		}
	}
	deadline := time.Now().Add(time.Minute) // only a hang: commits take milliseconds
	for plog.Stats().Committed < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := plog.Stats(); st.Committed != n || st.Dropped != 0 {
		t.Fatalf("log stats %+v, want %d committed and none dropped", st, n)
	}

	var labels []string
	want := map[string]bool{}
	for i := 0; i < n; i += 3 {
		labels = append(labels, fmt.Sprintf(`{"id":"r-%d","label":%d,"time":"2026-11-27T10:00:00Z"}`, i, i%2))
		want[fmt.Sprintf("r-%d", i)] = true
	}
	labels = append(labels, `{"id":"r-0","label":0}`) // a repeat: changes nothing
	if code, _, b := adminCall(t, srv, "POST", "/api/v1/models/fraud/labels", []byte("["+strings.Join(labels, ",")+"]")); code != 200 {
		t.Fatalf("labels: %d %s", code, b)
	}
	if code, _, b := adminCall(t, srv, "POST", "/api/v1/models/fraud/labels", []byte(`[{"id":"r-1","label":"yes"}]`)); code != 400 {
		t.Fatalf("a non-numeric label: %d %s", code, b)
	}

	got := map[string]int{}
	cursor := ""
	for page := 0; page < 100; page++ {
		code, h, b := adminCall(t, srv, "GET", "/api/v1/models/fraud/export?labelled=true&limit=7&since="+cursor, nil)
		if code != 200 {
			t.Fatalf("export: %d %s", code, b)
		}
		rows := 0
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var row struct {
				ID      string          `json:"id"`
				Label   *float64        `json:"label"`
				Inputs  json.RawMessage `json:"inputs"`
				Version string          `json:"version"`
				Node    string          `json:"node"`
			}
			if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
				t.Fatalf("export line: %v: %s", err, sc.Bytes())
			}
			if row.Label == nil || row.Version != "1" || row.Node != "node-a" || !bytes.Contains(row.Inputs, []byte(`"shape":[1,30]`)) {
				t.Fatalf("export row lacks its label, version, node or inputs: %s", sc.Bytes())
			}
			got[row.ID]++
			rows++
		}
		cursor = h.Get("Modelgate-Next-Cursor")
		if rows == 0 {
			break
		}
	}
	if len(got) != len(want) {
		t.Fatalf("exported %d labelled rows, want %d", len(got), len(want))
	}
	for id, c := range got {
		if !want[id] || c != 1 {
			t.Fatalf("row %s exported %d times (labelled: %v)", id, c, want[id])
		}
	}

	code, _, b := adminCall(t, srv, "GET", "/api/v1/predictions/r-6", nil)
	if code != 200 || !bytes.Contains(b, []byte(`"id":"r-6"`)) || !bytes.Contains(b, []byte(`"probability"`)) {
		t.Fatalf("lookup: %d %s", code, b)
	}
	if code, _, _ := adminCall(t, srv, "GET", "/api/v1/predictions/nope", nil); code != 404 {
		t.Fatalf("lookup of an unknown id: %d", code)
	}

	srv.Catalog.SetLogMode("fraud", "durable")
	b2 := bytes.Replace(body, []byte(`"id":"42"`), []byte(`"id":"durable-1"`), 1)
	if code, out := post(t, srv, "/v2/models/fraud/infer", b2); code != 200 {
		t.Fatalf("%d %s", code, out)
	}
	if _, err := plog.Get("durable-1"); err != nil {
		t.Fatalf("a durable prediction was answered before it was logged: %v", err)
	}

	code, metrics := get(t, srv.AdminAddr(), "/metrics")
	for _, m := range []string{"modelgate_predlog_committed_total ", "modelgate_predlog_index_runs 0", "modelgate_predlog_index_pending ", "modelgate_predlog_healthy 1"} {
		if code != 200 || !bytes.Contains(metrics, []byte(m)) {
			t.Fatalf("metrics lack %q: %d\n%s", m, code, metrics)
		}
	}

	// A log that can no longer write: the durable prediction is not
	// answered, and the error replaces the whole response.
	if err := plog.Close(); err != nil {
		t.Fatal(err)
	}
	b3 := bytes.Replace(body, []byte(`"id":"42"`), []byte(`"id":"durable-2"`), 1)
	code, out := post(t, srv, "/v2/models/fraud/infer", b3)
	if code != 503 || !bytes.Contains(out, []byte(`"error":"the prediction could not be logged durably`)) || bytes.Contains(out, []byte(`"outputs"`)) {
		t.Fatalf("durable append on a closed log: %d %s", code, out)
	}
}
