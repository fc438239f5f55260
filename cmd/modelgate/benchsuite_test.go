package main

import "testing"

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
		{0.8996, 0.90, pct, "89.96%"}, // the 19:06 run of session 4
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
