package gateway_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/oiptest"
	"github.com/modelgate/modelgate/predlog"
	"github.com/modelgate/modelgate/routing"
	"github.com/modelgate/modelgate/runtime"
	"github.com/modelgate/modelgate/shadow"
)

var (
	demoOnce sync.Once
	demoONNX []byte
)

// demoModel is the demo fraud model, trained once per test binary.
func demoModel(t testing.TB) []byte {
	demoOnce.Do(func() {
		b, err := demo.FraudModel(demo.DefaultSeed)
		if err != nil {
			t.Fatal(err)
		}
		demoONNX = b
	})
	return demoONNX
}

func startDemo(t testing.TB, cfg gateway.Config) *gateway.Server {
	srv := startServer(t, cfg)
	serveModel(t, srv, "fraud", "1", demoModel(t), runtime.Config{})
	return srv
}

func TestScoreDemo(t *testing.T) {
	srv := startDemo(t, gateway.Config{})
	code, b := post(t, srv, "/v2/models/fraud/infer", oiptest.GoodRequest(3))
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, b)
	}
	r := decodeResponse(t, b)
	if r.ModelName != "fraud" || r.ModelVersion != "1" || r.ID == "" {
		t.Fatalf("response names %q %q id %q", r.ModelName, r.ModelVersion, r.ID)
	}
	if len(r.Outputs) != 1 || r.Outputs[0].Name != "probability" || fmt.Sprint(r.Outputs[0].Shape) != "[3 1]" {
		t.Fatalf("outputs %+v", r.Outputs)
	}
	var p []float64
	if err := json.Unmarshal(r.Outputs[0].Data, &p); err != nil || len(p) != 3 {
		t.Fatalf("data %s: %v", r.Outputs[0].Data, err)
	}
	for _, v := range p {
		if !(v > 0 && v < 1) {
			t.Fatalf("probability %v outside (0,1)", v)
		}
	}
	// The id is echoed when given, and unversioned and versioned calls agree.
	body := bytes.Replace(oiptest.GoodRequest(3), []byte(`"id":"42"`), []byte(`"id":"tx-42"`), 1)
	code, b2 := post(t, srv, "/v2/models/fraud/versions/1/infer", body)
	r2 := decodeResponse(t, b2)
	if code != 200 || r2.ID != "tx-42" || string(r2.Outputs[0].Data) != string(r.Outputs[0].Data) {
		t.Fatalf("versioned call: %d %s", code, b2)
	}
	// Binary extension in and out.
	req, n := oiptest.GoodBinaryRequest(3)
	code, b3 := post(t, srv, "/v2/models/fraud/infer", req, "Inference-Header-Content-Length", strconv.Itoa(n))
	if code != 200 {
		t.Fatalf("binary request: %d %s", code, b3)
	}
}

// TestBadRequests sends every malformed request of oiptest.BadRequests over
// HTTP: each gets its status and a JSON error naming the problem, and the
// node keeps serving good requests between them.
func TestBadRequests(t *testing.T) {
	srv := startDemo(t, gateway.Config{MaxBodyBytes: 16 << 20})
	if len(oiptest.BadRequests) < 25 {
		t.Fatalf("only %d bad requests", len(oiptest.BadRequests))
	}
	for _, c := range oiptest.BadRequests {
		var hdr []string
		if c.Header != -1 {
			hdr = []string{"Inference-Header-Content-Length", strconv.Itoa(c.Header)}
		}
		code, b := post(t, srv, "/v2/models/fraud/infer", c.Body, hdr...)
		if code != c.Status {
			t.Errorf("%s: status %d, want %d: %.300s", c.Name, code, c.Status, b)
			continue
		}
		var e struct{ Error string }
		if err := json.Unmarshal(b, &e); err != nil || e.Error == "" {
			t.Errorf("%s: body is not {\"error\":…}: %.300s", c.Name, b)
		} else if !strings.Contains(e.Error, c.ErrContains) {
			t.Errorf("%s: error %q does not mention %q", c.Name, e.Error, c.ErrContains)
		}
		if code, b := post(t, srv, "/v2/models/fraud/infer", oiptest.GoodRequest(1)); code != 200 {
			t.Fatalf("after %s the node stopped serving: %d %s", c.Name, code, b)
		}
	}
}

func TestHTTPErrors(t *testing.T) {
	srv := startDemo(t, gateway.Config{MaxBodyBytes: 1 << 20})
	f := func(method, path string, body []byte, want int, contains string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+srv.Addr()+path, bytes.NewReader(body))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&e)
		if resp.StatusCode != want || !strings.Contains(e.Error, contains) {
			t.Fatalf("%s %s: %d %q, want %d containing %q", method, path, resp.StatusCode, e.Error, want, contains)
		}
	}
	good := oiptest.GoodRequest(1)
	f("POST", "/v2/models/nope/infer", good, 404, `model "nope" not found`)
	f("POST", "/v2/models/fraud/versions/9/infer", good, 404, `no version "9"`)
	f("GET", "/v2/models/fraud/infer", nil, 405, "use POST")
	f("POST", "/v2/health/live", nil, 405, "use GET")
	f("GET", "/v3/x", nil, 404, "no such endpoint")
	f("GET", "/v2/models/fraud/versions/", nil, 404, "version is missing")
	f("GET", "/v2/models/fraud/explain", nil, 404, "no such endpoint")
	f("GET", "/v2/models/nope", nil, 404, "not found")
	f("POST", "/v2/models/fraud/infer", bytes.Repeat([]byte(" "), 2<<20), 413, "too large")
	f("POST", "/v2/models/fraud/infer", []byte(`{"inputs":[{"name":"features","shape":[1,30],"datatype":"FP32","data":[1]}],"outputs":[{"name":"nope"}]}`), 400, "")
	// Still serving.
	if code, b := post(t, srv, "/v2/models/fraud/infer", good); code != 200 {
		t.Fatalf("%d %s", code, b)
	}
}

func TestHealthAndMetadata(t *testing.T) {
	srv := startServer(t, gateway.Config{})
	if code, _ := get(t, srv.Addr(), "/v2/health/live"); code != 200 {
		t.Fatalf("live: %d", code)
	}
	if code, _ := get(t, srv.Addr(), "/v2/health/ready"); code != 503 {
		t.Fatalf("ready before any model is loaded: %d", code)
	}
	serveModel(t, srv, "fraud", "1", demoModel(t), runtime.Config{})
	for path, want := range map[string]string{
		"/v2/health/ready":                  `"ready":true`,
		"/v2/models/fraud/ready":            `"ready":true`,
		"/v2/models/fraud/versions/1/ready": `"version":"1"`,
		"/v2":                               `"extensions":["binary_tensor_data"]`,
		"/v2/models/fraud":                  `"inputs":[{"name":"features","datatype":"FP32","shape":[-1,30]}]`,
		"/v2/models/fraud/versions/1":       `"platform":"onnxruntime_onnx"`,
	} {
		code, b := get(t, srv.Addr(), path)
		if code != 200 || !strings.Contains(string(b), want) {
			t.Fatalf("GET %s: %d %s, want %s", path, code, b, want)
		}
	}
	code, b := get(t, srv.Addr(), "/v2/models/fraud")
	var md struct{ Parameters map[string]string }
	json.Unmarshal(b, &md)
	if code != 200 || len(strings.Split(md.Parameters["feature_names"], ",")) != 30 {
		t.Fatalf("model metadata lacks the 30 feature names: %s", b)
	}
	if code, _ := get(t, srv.Addr(), "/v2/models/fraud/versions/2/ready"); code != 404 {
		t.Fatalf("ready of a missing version: %d", code)
	}
}

func TestMetrics(t *testing.T) {
	srv := startDemo(t, gateway.Config{})
	for i := 0; i < 5; i++ {
		post(t, srv, "/v2/models/fraud/infer", oiptest.GoodRequest(1))
	}
	post(t, srv, "/v2/models/fraud/infer", []byte(`{`))
	code, b := get(t, srv.AdminAddr(), "/metrics")
	if code != 200 {
		t.Fatal(code)
	}
	for _, want := range []string{
		`modelgate_requests_total{model="fraud",version="1"} 5`,
		`modelgate_request_errors_total{model="fraud",code="400"} 1`,
		`modelgate_request_duration_seconds_count{model="fraud",version="1"} 5`,
		`modelgate_queue_depth{model="fraud",version="1"} 0`,
		`modelgate_http_panics_total 0`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestHundredModels serves 100 small models from one process.
func TestHundredModels(t *testing.T) {
	srv := startServer(t, gateway.Config{})
	for i := 0; i < 100; i++ {
		serveModel(t, srv, "fraud-"+strconv.Itoa(i), "1", demoModel(t), runtime.Config{Sessions: 1})
	}
	if code, _ := get(t, srv.Addr(), "/v2/health/ready"); code != 200 {
		t.Fatalf("ready: %d", code)
	}
	for i := 0; i < 100; i += 7 {
		if code, b := post(t, srv, "/v2/models/fraud-"+strconv.Itoa(i)+"/infer", oiptest.GoodRequest(1)); code != 200 {
			t.Fatalf("model %d: %d %s", i, code, b)
		}
	}
}

// TestHandlerAllocations pins the scoring handler's steady state to zero
// allocations per request, as fasthttp's allocation_test.go does for its own.
func TestHandlerAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items: allocation counts are meaningless under -race")
	}
	plog, err := predlog.Open(predlog.DefaultConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer plog.Close()
	for _, c := range []struct {
		name   string
		cfg    gateway.Config
		canary bool
		shadow bool
	}{{"plain", gateway.Config{}, false, false}, {"async prediction log", gateway.Config{PredLog: plog}, false, false},
		{"canary at 50%, logged", gateway.Config{PredLog: plog}, true, false},
		{"shadow v3, logged", gateway.Config{PredLog: plog}, false, true}} {
		srv := startServer(t, c.cfg)
		serveModel(t, srv, "fraud", "1", demoModel(t), runtime.Config{Sessions: 1})
		bodies := [][]byte{oiptest.GoodRequest(1)}
		want := []string{`"model_version":"1"`}
		if c.shadow {
			slot, err := srv.Catalog.Load("fraud", "3", demoModel(t), runtime.Config{Sessions: 1})
			if err != nil {
				t.Fatal(err)
			}
			srv.Catalog.Publish(slot, false)
			if !srv.Catalog.SetShadows("fraud", "3") {
				t.Fatal("SetShadows refused a loaded model")
			}
			warmMirror(t, srv, bodies[0])
		}
		if c.canary {
			slot, err := srv.Catalog.Load("fraud", "2", demoModel(t), runtime.Config{Sessions: 1})
			if err != nil {
				t.Fatal(err)
			}
			srv.Catalog.Publish(slot, false)
			if !srv.Catalog.SetCanary("fraud", "2", 5000) {
				t.Fatal("SetCanary refused a loaded version")
			}
			bodies, want = nil, nil
			for _, key := range []string{keyRoutedTo(t, 5000, false), keyRoutedTo(t, 5000, true)} {
				bodies = append(bodies, bytes.Replace(oiptest.GoodRequest(1), []byte(`"id":"42",`), []byte(`"id":"42","parameters":{"routing_key":"`+key+`"},`), 1))
			}
			want = []string{`"model_version":"1"`, `"model_version":"2"`}
		}
		// Every version's score histogram on: the scoring path reads the
		// answer's scores as well as its latency.
		srv.SyncShadows()
		for i, body := range bodies {
			var ctx fasthttp.RequestCtx
			run := func() {
				ctx.Request.Reset()
				ctx.Response.Reset()
				ctx.Request.Header.SetMethod("POST")
				ctx.Request.SetRequestURI("/v2/models/fraud/infer")
				ctx.Request.SetBody(body)
				srv.HandleScoring(&ctx)
			}
			run()
			if ctx.Response.StatusCode() != 200 || !bytes.Contains(ctx.Response.Body(), []byte(want[i])) {
				t.Fatalf("%s: status %d: %s, want %s", c.name, ctx.Response.StatusCode(), ctx.Response.Body(), want[i])
			}
			if n := testing.AllocsPerRun(200, run); n != 0 {
				t.Fatalf("%s: scoring handler allocates %v times per request (%s)", c.name, n, want[i])
			}
		}
	}
}

// keyRoutedTo returns a routing key the split sends to the canary (or not)
// at weightBP.
func keyRoutedTo(t *testing.T, weightBP uint32, canary bool) string {
	for i := 0; ; i++ {
		k := "key-" + strconv.Itoa(i)
		if routing.ToCanary([]byte(k), weightBP) == canary {
			return k
		}
	}
}

// warmMirror scores body until the shadow mirror has run more copies than
// it pools (shadow.DefaultQueueSize): each pooled copy grows its buffers
// on its first use, after which mirroring allocates nothing. The deadline
// is one only a hang reaches.
func warmMirror(t *testing.T, srv *gateway.Server, body []byte) {
	t.Helper()
	var ctx fasthttp.RequestCtx
	deadline := time.Now().Add(2 * time.Minute)
	for mirrored := 0.0; mirrored <= shadow.DefaultQueueSize+64; mirrored = promValue(t, srv, `modelgate_shadow_mirrored_total{model="fraud"}`) {
		if time.Now().After(deadline) {
			t.Fatalf("the mirror ran only %v copies in 2 minutes", mirrored)
		}
		for range 256 {
			ctx.Request.Reset()
			ctx.Response.Reset()
			ctx.Request.Header.SetMethod("POST")
			ctx.Request.SetRequestURI("/v2/models/fraud/infer")
			ctx.Request.SetBody(body)
			srv.HandleScoring(&ctx)
		}
	}
}

// promValue reads one sample from the node's Prometheus text (0 when the
// series is absent).
func promValue(t testing.TB, srv *gateway.Server, series string) float64 {
	t.Helper()
	var buf bytes.Buffer
	srv.Metrics.WritePrometheus(&buf)
	for _, line := range strings.Split(buf.String(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return 0
}
