package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// adminCall is one request the stub admin API received.
type adminCall struct {
	at     time.Duration
	method string
	path   string
	auth   string
	body   []byte
	ctype  string
}

// stubAdmin records every request; versions answer {"version":4}.
func stubAdmin(t *testing.T) (*httptest.Server, func() []adminCall) {
	var mu sync.Mutex
	var calls []adminCall
	start := time.Now()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		calls = append(calls, adminCall{time.Since(start), r.Method, r.URL.Path, r.Header.Get("Authorization"), b, r.Header.Get("Content-Type")})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if strings.HasSuffix(r.URL.Path, "/versions") {
			w.Write([]byte(`{"model":"fraud","version":4,"stage":"validated"}`))
			return
		}
		w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(s.Close)
	return s, func() []adminCall {
		mu.Lock()
		defer mu.Unlock()
		return append([]adminCall(nil), calls...)
	}
}

// TestScenarioActions: actions fire at their times against the admin API
// with the wire contract the gateway serves; drift and node actions act
// locally.
func TestScenarioActions(t *testing.T) {
	target := serve(t, func(ctx *fasthttp.RequestCtx) { answer(ctx, "1") })
	admin, calls := stubAdmin(t)
	model := filepath.Join(t.TempDir(), "v2.onnx")
	if err := os.WriteFile(model, []byte("onnx bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	ms := func(n int) Duration { return Duration(time.Duration(n) * time.Millisecond) }
	cfg := Config{
		Target: target, Model: "fraud", Admin: admin.URL, Token: "tok", Ring: 64,
		Scenario: Scenario{
			Name: "canary",
			Phases: []Phase{
				{Name: "warm", Duration: ms(400), Rate: 100},
				{Name: "canary", Duration: ms(800), Connections: 2},
			},
			Actions: []Action{
				{At: ms(100), Do: ActionRegister, File: model},
				{At: ms(300), Do: ActionCanary, Weight: 10},
				{At: ms(500), Do: ActionPromote},
				{At: ms(600), Do: ActionKill, Node: "n1"},
				{At: ms(700), Do: ActionRollback},
				{At: ms(750), Do: ActionDriftOn},
			},
			Nodes: map[string]Node{"n1": {Cmd: []string{sleep, "30"}, Start: true}},
		},
	}
	rep, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := calls()
	want := []struct {
		path string
		at   time.Duration
		body string
	}{
		{"/api/v1/models/fraud/versions", 100 * time.Millisecond, ""},
		{"/api/v1/models/fraud/versions/4/stage", 300 * time.Millisecond, `{"reason":"bench scenario canary","stage":"canary","weight":10}`},
		{"/api/v1/models/fraud/promote", 500 * time.Millisecond, `{"reason":"bench scenario canary","version":4}`},
		{"/api/v1/models/fraud/rollback", 700 * time.Millisecond, `{"reason":"bench scenario canary"}`},
	}
	if len(got) != len(want) {
		t.Fatalf("admin got %d calls, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		c := got[i]
		if c.method != "POST" || c.path != w.path || c.auth != "Bearer tok" {
			t.Errorf("call %d: %s %s (auth %q), want POST %s", i, c.method, c.path, c.auth, w.path)
		}
		// The stub's clock starts before the run: allow for setup.
		if c.at < w.at || c.at > w.at+250*time.Millisecond {
			t.Errorf("call %d (%s) at %s, want about %s", i, c.path, c.at, w.at)
		}
		if w.body != "" && string(c.body) != w.body {
			t.Errorf("call %d body %s, want %s", i, c.body, w.body)
		}
	}
	if !strings.HasPrefix(got[0].ctype, "multipart/form-data") || !bytes.Contains(got[0].body, []byte("onnx bytes")) ||
		!bytes.Contains(got[0].body, []byte(`name="model"; filename="v2.onnx"`)) {
		t.Errorf("register: content type %q body %q", got[0].ctype, got[0].body)
	}
	if len(rep.Actions) != 6 {
		t.Fatalf("report has %d actions: %+v", len(rep.Actions), rep.Actions)
	}
	for _, a := range rep.Actions {
		if a.Error != "" {
			t.Errorf("action %s failed: %s", a.Do, a.Error)
		}
		if a.Fired < a.At || a.Fired > a.At+0.2 {
			t.Errorf("action %s due %.2fs fired %.2fs", a.Do, a.At, a.Fired)
		}
	}
	if len(rep.Phases) != 2 || rep.Phases[1].OK == 0 {
		t.Fatalf("phases %+v", rep.Phases)
	}
}

func TestNodeKillAndRestart(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	cfg := &Config{Scenario: Scenario{Nodes: map[string]Node{"n": {Cmd: []string{sleep, "30"}}}}}
	a := newActor(cfg, func(bool) {}, nil)
	defer a.stopNodes(time.Second)
	if err := a.killNode("n"); !errors.Is(err, ErrAction) {
		t.Fatalf("kill before start: %v", err)
	}
	if _, err := a.fire(context.Background(), Action{Do: ActionStart, Node: "n"}); err != nil {
		t.Fatal(err)
	}
	first := a.nodes["n"]
	if _, err := a.fire(context.Background(), Action{Do: ActionStart, Node: "n"}); !errors.Is(err, ErrAction) {
		t.Fatalf("second start: %v", err)
	}
	if _, err := a.fire(context.Background(), Action{Do: ActionRestart, Node: "n"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-first.done:
	default:
		t.Fatal("restart did not kill the first process")
	}
	if a.nodes["n"] == first {
		t.Fatal("restart did not start a new process")
	}
}

// TestLabels: a fraction of answered requests get their labels POSTed
// after the delay, by the ids the requests carried.
func TestLabels(t *testing.T) {
	var mu sync.Mutex
	ids := map[string]bool{}
	target := serve(t, func(ctx *fasthttp.RequestCtx) {
		var req struct{ ID string }
		json.Unmarshal(ctx.Request.Body(), &req)
		mu.Lock()
		ids[req.ID] = true
		mu.Unlock()
		answer(ctx, "1")
	})
	admin, calls := stubAdmin(t)
	cfg := Config{
		Target: target, Model: "fraud", Admin: admin.URL, Token: "tok", Ring: 32,
		LabelFraction: 0.5, LabelDelay: Duration(100 * time.Millisecond),
		Scenario: Scenario{Phases: []Phase{{Duration: Duration(500 * time.Millisecond), Rate: 200}}},
	}
	rep, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var labels []struct {
		ID    string `json:"id"`
		Label *bool  `json:"label"`
	}
	for _, c := range calls() {
		if c.path != "/api/v1/models/fraud/labels" {
			t.Fatalf("unexpected call %s", c.path)
		}
		var batch []struct {
			ID    string `json:"id"`
			Label *bool  `json:"label"`
		}
		if err := json.Unmarshal(c.body, &batch); err != nil {
			t.Fatal(err)
		}
		labels = append(labels, batch...)
	}
	sent := rep.Phases[0].OK
	if len(ids) != int(sent) {
		t.Fatalf("%d distinct request ids for %d requests", len(ids), sent)
	}
	if n := int64(len(labels)); n < sent/4 || n > sent*3/4 || rep.Labels.Sent != n {
		t.Fatalf("%d labels (report: %+v) for %d requests, want about half", n, rep.Labels, sent)
	}
	for _, l := range labels {
		if !ids[l.ID] || l.Label == nil {
			t.Fatalf("label %+v names no request sent", l)
		}
	}
}

// TestReportFiles: report.json round trips and report.html is well-formed
// (it parses as XML) with inline SVG plots and nothing external.
func TestReportFiles(t *testing.T) {
	target := serve(t, func(ctx *fasthttp.RequestCtx) { answer(ctx, "1") })
	cfg := quickConfig(target,
		Phase{Name: "open <a&b>", Duration: Duration(1200 * time.Millisecond), Rate: 200},
		Phase{Name: "closed", Duration: Duration(300 * time.Millisecond), Connections: 2})
	rep, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep.Actions = []ActionResult{{At: 0.5, Fired: 0.5, Do: "promote", Detail: `promote "x" v2`}}
	dir := t.TempDir()
	if err := rep.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	back, err := ReadReport(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rep, back) {
		a, _ := json.Marshal(rep)
		b, _ := json.Marshal(back)
		t.Fatalf("report.json does not round trip:\n%s\n%s", a, b)
	}

	f, err := os.Open(filepath.Join(dir, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := xml.NewDecoder(f)
	dec.Strict = true
	svgs, polylines := 0, 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("report.html is not well-formed: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			switch se.Name.Local {
			case "svg":
				svgs++
			case "polyline":
				polylines++
			case "script", "link", "img":
				t.Fatalf("report.html has a <%s>", se.Name.Local)
			}
		}
	}
	if svgs != 4 || polylines < 5 {
		t.Fatalf("report.html has %d <svg> and %d <polyline>, want 4 plots with lines", svgs, polylines)
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil || !strings.Contains(text.String(), "closed") {
		t.Fatalf("text report: %v\n%s", err, text.String())
	}
	t.Logf("\n%s", text.String())
}

func TestLoadScenarioFiles(t *testing.T) {
	files, _ := filepath.Glob("scenarios/*.json")
	if len(files) < 3 {
		t.Fatalf("want the shipped scenarios, found %v", files)
	}
	for _, f := range files {
		s, err := LoadScenario(f)
		if err != nil {
			t.Fatal(err)
		}
		cfg := Config{Target: "http://127.0.0.1:8080", Model: "fraud", Admin: "http://127.0.0.1:8081", Scenario: *s}
		cfg.ensureDefaults()
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"phases":[{"name":"x","duration":"1s","rps":5}]}`), 0o644)
	if _, err := LoadScenario(bad); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("unknown field: %v", err)
	}
}
