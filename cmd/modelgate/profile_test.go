package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/internal/fraud"
)

// profileRows draws n rows from the fraud generator with a stand-in score.
func profileRows(seed int64, n int, d fraud.Drift) (rows [][]float32, scores []float32) {
	g := fraud.NewGenerator(seed, fraud.WithDrift(d))
	for range n {
		r := make([]float32, fraud.NumFeatures)
		g.Next(r)
		z := -3.5 + 0.9*r[fraud.FeatureAmountRatio] + 0.4*r[fraud.FeatureDistance] + 0.8*(1-r[fraud.FeatureCardPresent])
		rows = append(rows, r)
		scores = append(scores, float32(1/(1+math.Exp(-float64(z)))))
	}
	return rows, scores
}

func runCmd(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := commands[args[0]].run(args[1:], &out, &errOut)
	return out.String(), errOut.String(), err
}

// TestProfileCommandCSV: a CSV with a header and a score column gives a
// profile whose features carry the header's names and whose output is the
// score; it parses back.
func TestProfileCommandCSV(t *testing.T) {
	dir := t.TempDir()
	rows, scores := profileRows(1, 600, fraud.Drift{})
	var b strings.Builder
	b.WriteString(strings.Join(fraud.FeatureNames[:], ",") + ",score\n")
	for i, r := range rows {
		for _, v := range r {
			b.WriteString(strconv.FormatFloat(float64(v), 'g', -1, 32) + ",")
		}
		b.WriteString(strconv.FormatFloat(float64(scores[i]), 'g', -1, 32) + "\n")
	}
	in := filepath.Join(dir, "train.csv")
	out := filepath.Join(dir, "profile.json")
	os.WriteFile(in, []byte(b.String()), 0o644)
	_, msg, err := runCmd(t, "profile", "--in", in, "--out", out, "--score-column", "score",
		"--output", "probability", "--input", "features", "--numeric", "features[13]")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "600 rows") || !strings.Contains(msg, out) {
		t.Fatalf("summary: %q", msg)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	p, err := drift.ParseProfile(data)
	if err != nil {
		t.Fatal(err)
	}
	if p.Rows != 600 || len(p.Features) != fraud.NumFeatures || p.Inputs[0].Name != "features" || p.Inputs[0].Width != fraud.NumFeatures {
		t.Fatalf("profile: rows %d, %d features, inputs %+v", p.Rows, len(p.Features), p.Inputs)
	}
	for i, f := range p.Features {
		if f.Name != fraud.FeatureNames[i] || f.Input != "features" || f.Index != i {
			t.Fatalf("feature %d: %s %s[%d]", i, f.Name, f.Input, f.Index)
		}
	}
	// card_present (0/1) is forced numeric by its label under --input's name.
	if p.Features[fraud.FeatureCardPresent].Kind() != drift.Numeric || p.Features[fraud.FeatureWeekend].Kind() != drift.Categorical {
		t.Fatalf("kinds: card_present %s, weekend %s", p.Features[fraud.FeatureCardPresent].Kind(), p.Features[fraud.FeatureWeekend].Kind())
	}
	if p.Output == nil || p.Output.Input != "probability" {
		t.Fatalf("output: %+v", p.Output)
	}
}

// TestProfileCommandNDJSON: NDJSON arrays named by --feature-names, the
// profile on stdout.
func TestProfileCommandNDJSON(t *testing.T) {
	dir := t.TempDir()
	rows, _ := profileRows(2, 300, fraud.Drift{})
	var b bytes.Buffer
	for _, r := range rows {
		line, _ := json.Marshal(r)
		b.Write(line)
		b.WriteByte('\n')
	}
	in := filepath.Join(dir, "train.ndjson")
	os.WriteFile(in, b.Bytes(), 0o644)
	stdout, _, err := runCmd(t, "profile", "--in", in, "--format", "ndjson", "--feature-names", strings.Join(fraud.FeatureNames[:], ","))
	if err != nil {
		t.Fatal(err)
	}
	p, err := drift.ParseProfile([]byte(stdout))
	if err != nil {
		t.Fatal(err)
	}
	if p.Rows != 300 || p.Features[3].Name != fraud.FeatureNames[3] || p.Output != nil || p.Inputs[0].Name != "input" {
		t.Fatalf("profile: rows %d, feature 3 %q, output %v, inputs %+v", p.Rows, p.Features[3].Name, p.Output, p.Inputs)
	}
}

func TestProfileCommandErrors(t *testing.T) {
	dir := t.TempDir()
	few := filepath.Join(dir, "few.csv")
	os.WriteFile(few, []byte("a,b\n1,2\n3,4\n"), 0o644)
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("a,b\n1,2\n3,x\n"), 0o644)
	f := func(want string, args ...string) {
		t.Helper()
		_, _, err := runCmd(t, append([]string{"profile"}, args...)...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("profile %v: err %v, want %q", args, err, want)
		}
	}
	f("--in FILE is required")
	f("--format", "--in", few, "--format", "xml")
	f("no such file", "--in", filepath.Join(dir, "nope.csv"))
	f("not enough rows", "--in", few)
	f(`"x" is not a number`, "--in", bad)
	f("score_column", "--in", few, "--score-column", "nope")
}
