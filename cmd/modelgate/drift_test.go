package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/fraud"
)

var (
	shiftOnce   sync.Once
	shiftReport *drift.Report
	shiftErr    error
)

// shiftedReport compares 5,000 rows with a covariate shift of distance
// against a profile of 10,000 undrifted rows, computed locally.
func shiftedReport(t *testing.T) *drift.Report {
	t.Helper()
	shiftOnce.Do(func() {
		rows, scores := profileRows(1, 10000, fraud.Drift{})
		b := drift.NewProfileBuilder(drift.ProfileOptions{
			Inputs: []drift.Input{{Name: "features", Width: fraud.NumFeatures}},
			Names:  fraud.FeatureNames[:], Output: "probability",
		})
		for i, r := range rows {
			if shiftErr = b.AddScored(r, scores[i]); shiftErr != nil {
				return
			}
		}
		p, err := b.Build()
		if err != nil {
			shiftErr = err
			return
		}
		s, err := drift.NewSketch(p)
		if err != nil {
			shiftErr = err
			return
		}
		rows, scores = profileRows(7, 5000, fraud.Drift{Kind: fraud.CovariateShift, Field: fraud.FieldDistance})
		for i, r := range rows {
			if shiftErr = s.Observe(r, scores[i]); shiftErr != nil {
				return
			}
		}
		shiftReport, shiftErr = drift.Compare(p, s, drift.DefaultThresholds())
	})
	if shiftErr != nil {
		t.Fatal(shiftErr)
	}
	return shiftReport
}

// tableLines maps each feature label to its line of the table.
func tableLines(t *testing.T, out string) map[string]string {
	t.Helper()
	lines := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			lines[f[0]] = l
		}
	}
	return lines
}

// TestDriftTableNamesTheShiftedFeature: the table flags the shifted feature
// (and only it, among the inputs) as a breach, leaves the statistics that
// do not apply blank, draws histograms, and puts the output last.
func TestDriftTableNamesTheShiftedFeature(t *testing.T) {
	rep := shiftedReport(t)
	var buf bytes.Buffer
	if err := renderDrift(&buf, "fraud v1, window 1h", rep); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	t.Logf("\n%s", out)
	if !strings.HasPrefix(out, "fraud v1, window 1h: 5000 rows against 10000 reference rows — DRIFT") {
		t.Fatalf("title: %q", strings.SplitN(out, "\n", 2)[0])
	}
	lines := tableLines(t, out)
	shifted := fraud.Drift{Kind: fraud.CovariateShift, Field: fraud.FieldDistance}.Features()
	for i, name := range fraud.FeatureNames {
		l, ok := lines[name]
		if !ok {
			t.Fatalf("no line for %s", name)
		}
		if want := slices.Contains(shifted, i); strings.Contains(l, "BREACH") != want {
			t.Errorf("%s: breach shown %v, want %v: %s", name, !want, want, l)
		}
	}
	dist := lines[fraud.FeatureNames[fraud.FeatureDistance]]
	if !strings.Contains(dist, "BREACH") || !strings.Contains(dist, "psi") || strings.Count(dist, "│") != 4 {
		t.Fatalf("shifted feature line: %s", dist)
	}
	// A numeric feature has no chi2_p, a categorical one no ks: their cells
	// are blank under the header (the table is ASCII up to the histograms).
	var header string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "FEATURE") {
			header = l
		}
	}
	blank := func(line, col string) bool {
		i := strings.Index(header, col)
		return i > 0 && len(line) > i+len(col) && strings.TrimSpace(line[i:i+len(col)]) == ""
	}
	weekend := lines[fraud.FeatureNames[fraud.FeatureWeekend]]
	if !blank(dist, "CHI2_P") || blank(dist, "KS") || !blank(weekend, "KS") || blank(weekend, "CHI2_P") {
		t.Fatalf("blank cells wrong:\n%s\n%s\n%s", header, dist, weekend)
	}
	// The output row comes last, after every input feature.
	outLine := lines["probability"]
	if !strings.Contains(outLine, "(output)") {
		t.Fatalf("no output line: %q", outLine)
	}
	if strings.Index(out, outLine) < strings.Index(out, lines[fraud.FeatureNames[fraud.NumFeatures-1]]) {
		t.Fatal("the output is not last")
	}
	if !strings.Contains(out, "positive rate") {
		t.Fatal("no positive rate")
	}
}

func TestDriftSparkPair(t *testing.T) {
	f := func(a, b []float64, wantA, wantB string) {
		t.Helper()
		ga, gb := sparkPair(a, b)
		if ga != wantA || gb != wantB {
			t.Fatalf("sparkPair(%v, %v) = %q %q, want %q %q", a, b, ga, gb, wantA, wantB)
		}
	}
	f([]float64{0, 0.5, 0.25, 0.001}, []float64{0.125, 0.25, 0.5, 0.125}, "│ █▄▁│", "│▂▄█▂│")
	f(nil, []float64{0, 0}, "-", "│  │")
}

// TestDriftCommand runs the command against a stand-in admin API: without
// --version it asks for the model's champion, then for that version's
// drift in the window; --json prints the answer as is.
func TestDriftCommand(t *testing.T) {
	rep := shiftedReport(t)
	body, _ := json.Marshal(gateway.DriftView{Model: "fraud", Version: 3, Status: rep.Status, Summary: "DRIFT: stand-in summary", Window: "24h", Report: rep})
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.RequestURI())
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, `{"error":"unauthorized"}`, 401)
			return
		}
		switch r.URL.Path {
		case "/api/v1/models/fraud":
			w.Write([]byte(`{"name":"fraud","champion":3,"versions":[]}`))
		case "/api/v1/models/fraud/versions/3/drift", "/api/v1/models/fraud/versions/5/drift":
			w.Write(body)
		case "/api/v1/models/new":
			w.Write([]byte(`{"name":"new","champion":0}`))
		default:
			http.Error(w, `{"error":"not found"}`, 404)
		}
	}))
	defer srv.Close()
	cli := []string{"--admin", srv.URL, "--token", "tok"}

	out, _, err := runCmd(t, append([]string{"drift", "fraud", "--window", "24h"}, cli...)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "fraud v3: DRIFT: stand-in summary\n") || !strings.Contains(out, "fraud v3, window 24h: 5000 rows") || !strings.Contains(out, "BREACH") {
		t.Fatalf("output:\n%s", out)
	}
	if want := []string{"/api/v1/models/fraud", "/api/v1/models/fraud/versions/3/drift?window=24h"}; !slices.Equal(paths, want) {
		t.Fatalf("requests %v, want %v", paths, want)
	}

	paths = nil
	out, _, err = runCmd(t, append([]string{"drift", "fraud", "--version", "v5", "--json"}, cli...)...)
	if err != nil {
		t.Fatal(err)
	}
	var back gateway.DriftView
	if err := json.Unmarshal([]byte(out), &back); err != nil || back.Report == nil || back.Rows != rep.Rows {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if want := []string{"/api/v1/models/fraud/versions/5/drift"}; !slices.Equal(paths, want) {
		t.Fatalf("requests %v, want %v", paths, want)
	}

	e := func(want string, args ...string) {
		t.Helper()
		_, _, err := runCmd(t, append(append([]string{"drift"}, args...), cli...)...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("drift %v: err %v, want %q", args, err, want)
		}
	}
	e("want a model")
	e("--window", "fraud", "--window", "hourly")
	e("--version", "fraud", "--version", "x")
	e("no champion", "new")
	e("not found", "other")
}
