package baseline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	ort "github.com/yalue/onnxruntime_go"

	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/ortlib"
	"github.com/modelgate/modelgate/runtime"
)

var demoModel []byte

func TestMain(m *testing.M) {
	if err := runtime.Init(ortlib.Path()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var err error
	if demoModel, err = demo.FraudModel(demo.DefaultSeed); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func start(t testing.TB, k Kind) *Server {
	t.Helper()
	s, err := k.Start(Config{Listen: "127.0.0.1:0", Model: demoModel, Sessions: 2, ORTLib: ortlib.Path()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Idle keep-alive connections hold fasthttp's graceful shutdown
		// until they close; on a busy machine that outlasted Close's 5 s.
		client.CloseIdleConnections()
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// body is a demo OIP request of rows (flat data), with id when non-empty.
func body(id string, rows ...[]float32) []byte {
	b := []byte(`{`)
	if id != "" {
		b = append(b, `"id":`...)
		b = strconv.AppendQuote(b, id)
		b = append(b, ',')
	}
	b = fmt.Appendf(b, `"inputs":[{"name":"features","shape":[%d,30],"datatype":"FP32","data":[`, len(rows))
	for r, row := range rows {
		for i, v := range row {
			if r > 0 || i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendFloat(b, float64(v), 'g', -1, 32)
		}
	}
	return append(b, "]}]}"...)
}

func row(seed int64) []float32 {
	r := demo.SampleRequestRow(seed)
	return r[:]
}

// direct scores one row with ONNX Runtime, no server in between.
func direct(t *testing.T, x []float32) float32 {
	t.Helper()
	in, err := ort.NewTensor(ort.NewShape(1, 30), append([]float32(nil), x...))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Destroy()
	out, err := ort.NewEmptyTensor[float32](ort.NewShape(1, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Destroy()
	opts, err := sessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer opts.Destroy()
	s, err := ort.NewAdvancedSessionWithONNXData(demoModel, []string{"features"}, []string{"probability"}, []ort.Value{in}, []ort.Value{out}, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	if err := s.Run(); err != nil {
		t.Fatal(err)
	}
	return out.GetData()[0]
}

type answer struct {
	ModelName    string `json:"model_name"`
	ModelVersion string `json:"model_version"`
	ID           string `json:"id"`
	Outputs      []struct {
		Name     string    `json:"name"`
		Datatype string    `json:"datatype"`
		Shape    []int64   `json:"shape"`
		Data     []float32 `json:"data"`
	} `json:"outputs"`
	Error string `json:"error"`
}

var client = &http.Client{Timeout: 10 * time.Second}

func post(t *testing.T, s *Server, path string, b []byte) (int, answer) {
	t.Helper()
	resp, err := client.Post("http://"+s.Addr()+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var a answer
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatalf("%s %s: %d, body %q is not JSON: %v", s.Kind(), path, resp.StatusCode, raw, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", s.Kind(), ct)
	}
	return resp.StatusCode, a
}

func TestBaselinesAnswerLikeDirectORT(t *testing.T) {
	x := row(3)
	want := direct(t, x)
	for _, k := range Kinds {
		s := start(t, k)
		for _, path := range []string{"/v2/models/fraud/infer", "/v2/models/fraud/versions/7/infer"} {
			code, a := post(t, s, path, body("req-1", x))
			if code != http.StatusOK {
				t.Fatalf("%s %s: status %d: %s", k, path, code, a.Error)
			}
			if a.ModelName != "fraud" || a.ModelVersion != Version || a.ID != "req-1" || len(a.Outputs) != 1 {
				t.Fatalf("%s: answer %+v", k, a)
			}
			o := a.Outputs[0]
			if o.Name != "probability" || o.Datatype != "FP32" || fmt.Sprint(o.Shape) != "[1 1]" || len(o.Data) != 1 {
				t.Fatalf("%s: output %+v", k, o)
			}
			if o.Data[0] != want {
				t.Errorf("%s: probability %v, direct ORT run %v", k, o.Data[0], want)
			}
		}
		// No id: one is generated, different each time.
		_, a1 := post(t, s, "/v2/models/fraud/infer", body("", x))
		_, a2 := post(t, s, "/v2/models/fraud/infer", body("", x))
		if a1.ID == "" || a1.ID == a2.ID {
			t.Errorf("%s: generated ids %q, %q", k, a1.ID, a2.ID)
		}
		resp, err := client.Get("http://" + s.Addr() + "/v2/health/ready")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: ready: %d", k, resp.StatusCode)
		}
	}
}

func TestNetHTTPTakesManyRows(t *testing.T) {
	s := start(t, NetHTTP)
	rows := [][]float32{row(1), row(2), row(3)}
	code, a := post(t, s, "/v2/models/fraud/infer", body("", rows...))
	if code != http.StatusOK || len(a.Outputs) != 1 || fmt.Sprint(a.Outputs[0].Shape) != "[3 1]" {
		t.Fatalf("status %d, answer %+v", code, a)
	}
	for i, r := range rows {
		if got, want := a.Outputs[0].Data[i], direct(t, r); got != want {
			t.Errorf("row %d: %v, direct ORT run %v", i, got, want)
		}
	}
}

func TestBaselinesRefuseBadRequests(t *testing.T) {
	bad := map[string]string{
		"malformed JSON":   `{"inputs":[`,
		"not JSON":         `hello`,
		"unknown input":    strings.Replace(string(body("", row(1))), `"features"`, `"x"`, 1),
		"wrong datatype":   strings.Replace(string(body("", row(1))), `"FP32"`, `"FP64"`, 1),
		"wrong width":      `{"inputs":[{"name":"features","shape":[1,2],"datatype":"FP32","data":[1,2]}]}`,
		"short data":       `{"inputs":[{"name":"features","shape":[1,30],"datatype":"FP32","data":[1,2]}]}`,
		"two inputs":       `{"inputs":[{"name":"features","shape":[1,1],"datatype":"FP32","data":[1]},{"name":"features","shape":[1,1],"datatype":"FP32","data":[1]}]}`,
		"unknown output":   strings.Replace(string(body("", row(1))), `"inputs"`, `"outputs":[{"name":"nope"}],"inputs"`, 1),
		"no inputs at all": `{}`,
	}
	for _, k := range Kinds {
		s := start(t, k)
		for name, b := range bad {
			code, a := post(t, s, "/v2/models/fraud/infer", []byte(b))
			if code != http.StatusBadRequest || a.Error == "" {
				t.Errorf("%s, %s: status %d, error %q; want 400 with an error", k, name, code, a.Error)
			}
		}
	}
	// The bare baseline takes one row per request.
	code, a := post(t, start(t, Bare), "/v2/models/fraud/infer", body("", row(1), row(2)))
	if code != http.StatusBadRequest || !strings.Contains(a.Error, "[1,30]") {
		t.Errorf("bare, 2 rows: status %d, error %q", code, a.Error)
	}
}

func TestStartErrors(t *testing.T) {
	cases := map[string]struct {
		k   Kind
		cfg Config
	}{
		"unknown kind":  {"grpc", Config{Listen: "127.0.0.1:0", Model: demoModel}},
		"no model":      {Bare, Config{Listen: "127.0.0.1:0"}},
		"bad model":     {Bare, Config{Listen: "127.0.0.1:0", Model: []byte("not onnx")}},
		"no such input": {NetHTTP, Config{Listen: "127.0.0.1:0", Model: demoModel, InputName: "x"}},
		"no listen":     {Bare, Config{Model: demoModel}},
		"bad listen":    {Bare, Config{Listen: "256.0.0.1:0", Model: demoModel, Sessions: 1}},
	}
	for name, c := range cases {
		s, err := c.k.Start(c.cfg)
		if err == nil {
			s.Close()
			t.Errorf("%s: no error", name)
			continue
		}
		if !strings.HasPrefix(err.Error(), "baseline: ") {
			t.Errorf("%s: error %q lacks the baseline: prefix", name, err)
		}
	}
	if _, err := ParseKind("bare"); err != nil {
		t.Error(err)
	}
	if _, err := ParseKind("x"); err == nil {
		t.Error("ParseKind(x): no error")
	}
}

func BenchmarkBareHandler(b *testing.B) {
	s := start(b, Bare)
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(fasthttp.MethodPost)
	ctx.Request.SetRequestURI("/v2/models/fraud/infer")
	ctx.Request.SetBody(body("bench", row(1)))
	b.ReportAllocs()
	for b.Loop() {
		ctx.Response.Reset()
		s.bare.handle(&ctx)
		if ctx.Response.StatusCode() != http.StatusOK {
			b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}

func BenchmarkNetHTTPHandler(b *testing.B) {
	s := start(b, NetHTTP)
	h := s.nett.mux()
	req := body("bench", row(1))
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v2/models/fraud/infer", bytes.NewReader(req)))
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

// TestBaselinesConcurrent scores from more goroutines than there are
// sessions: every answer must be the one its row gets alone.
func TestBaselinesConcurrent(t *testing.T) {
	rows := [][]float32{row(1), row(2), row(3), row(4)}
	want := make([]float32, len(rows))
	for i, r := range rows {
		want[i] = direct(t, r)
	}
	for _, k := range Kinds {
		s := start(t, k)
		errs := make(chan error, len(rows))
		for i, r := range rows {
			go func() {
				for range 25 {
					resp, err := client.Post("http://"+s.Addr()+"/v2/models/fraud/infer", "application/json", bytes.NewReader(body("", r)))
					if err != nil {
						errs <- err
						return
					}
					var a answer
					err = json.NewDecoder(resp.Body).Decode(&a)
					resp.Body.Close()
					if err != nil || len(a.Outputs) != 1 || len(a.Outputs[0].Data) != 1 || a.Outputs[0].Data[0] != want[i] {
						errs <- fmt.Errorf("%s row %d: %v %+v, want %v", k, i, err, a, want[i])
						return
					}
				}
				errs <- nil
			}()
		}
		for range rows {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	}
}
