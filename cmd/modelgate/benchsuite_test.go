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
