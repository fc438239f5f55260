package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestPairedRatio(t *testing.T) {
	off := suiteResult{rounds: []float64{100, 50, 80}}
	on := suiteResult{rounds: []float64{90, 48, 60}}
	// Within rounds: 0.90, 0.96, 0.75. The ratio of the medians (80 and
	// 60) would be 0.75: the slow second round of off would pass for the
	// machine's typical one.
	m, all := pairedRatio(on, off)
	if m != 0.90 || len(all) != 3 || all[1] != 0.96 || all[2] != 0.75 {
		t.Fatalf("pairedRatio = %v, %v; want 0.90 and every round's ratio", m, all)
	}
	if i := medianIndex([]float64{3, 1, 2, 5}); i != 0 {
		t.Fatalf("medianIndex picked %d, want 0 (the upper median, 3)", i)
	}
}

func TestShownRatioNeverShowsAMissAsTheTarget(t *testing.T) {
	for _, c := range []struct {
		m, target float64
		format    ratioFormat
		want      string
	}{
		{0.8996, 0.90, pct, "89.96%"}, // a miss by less than rounding
		{0.9004, 0.90, pct, "90%"},
		{0.88, 0.90, pct, "88%"},
		{0.93, 0.90, pct, "93%"},
		{1.98, 2, times, "1.980×"},
		{2.5, 2, times, "2.5×"},
	} {
		if got := shownRatio(c.m, c.target, c.format); got != c.want {
			t.Errorf("shownRatio(%v, %v) = %q, want %q", c.m, c.target, got, c.want)
		}
	}
}

// TestPredlogDroppedReadsTheNode reads the drop count the suite checks its
// logging ratios against from a real node, and finds none on a node that
// does not log.
func TestPredlogDroppedReadsTheNode(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	model := filepath.Join(dir, "fraud.onnx")
	if out, err := exec.Command(bin, "demo", "model", "--out", model).CombinedOutput(); err != nil {
		t.Fatalf("demo model: %v\n%s", err, out)
	}
	for _, c := range []struct {
		name   string
		args   []string
		logged bool
	}{
		{"log on", nil, true},
		{"log off", []string{"--predlog=false"}, false},
	} {
		data := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-"))
		n := startNode(t, bin, data, append([]string{"--model", "fraud=" + model}, c.args...)...)
		p := &proc{admin: "http://" + n.admin, dir: data}
		dropped, logged, err := p.predlogDropped()
		if err != nil || logged != c.logged || dropped != 0 {
			t.Errorf("%s: predlogDropped() = %d, %v, %v; want 0, %v, nil", c.name, dropped, logged, err, c.logged)
		}
	}
	if _, logged, err := (&proc{}).predlogDropped(); logged || err != nil {
		t.Errorf("a baseline (no admin API): logged %v, err %v", logged, err)
	}
}
