package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelgate/modelgate/bench"
)

func TestBenchCommand(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != "/v2/models/fraud/infer" {
			http.Error(w, `{"error":"not found"}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"model_name":"fraud","model_version":"1","outputs":[]}`))
	}))
	defer srv.Close()
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run([]string{"bench", "--target", srv.URL, "--model", "fraud", "--rate", "100", "--duration", "1200ms", "--out", out}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	rep, err := bench.ReadReport(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Phases) != 1 || rep.Phases[0].OK == 0 || rep.Phases[0].Versions["1"].Count == 0 {
		t.Fatalf("report phases %+v", rep.Phases)
	}
	if !strings.Contains(stdout.String(), "report.html") || !strings.Contains(stderr.String(), "rps") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
}

func TestBenchUsage(t *testing.T) {
	f := func(want string, args ...string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run(append([]string{"bench"}, args...), &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), want) {
			t.Fatalf("bench %v: exit %d, stderr %q, want 2 and %q", args, code, stderr.String(), want)
		}
	}
	f("want --connections C")
	f("--poisson needs --rate", "--connections", "2", "--poisson")
	f("--scenario sets the phases", "--scenario", "x.json", "--rate", "5")
}
