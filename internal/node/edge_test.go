package node

import (
	"encoding/binary"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/predlog"
	"github.com/modelgate/modelgate/registry"
)

func fp32(vs ...float32) []byte {
	b := make([]byte, 4*len(vs))
	for i, v := range vs {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

// edgeRow is a served demo-shaped row: features [rows,3], probability [rows,1].
func edgeRow(id string, role predlog.Role, features []float32, scores ...float32) *predlog.Record {
	rows := int64(len(scores))
	return &predlog.Record{RequestID: id, Model: "fraud", Version: "1", Role: role,
		Inputs:  []predlog.Tensor{{Name: "features", DataType: "FP32", Shape: []int64{rows, 3}, Data: fp32(features...)}},
		Outputs: []predlog.Tensor{{Name: "probability", DataType: "FP32", Shape: []int64{rows, 1}, Data: fp32(scores...)}}}
}

// TestEdgeSelects: the edge policy's rules, one case a line: the
// low-confidence band (every row of a batch), out-of-profile features in
// reference standard deviations (and non-finite values), never a shadow
// row, nothing without a rule that applies.
func TestEdgeSelects(t *testing.T) {
	band := &registry.EdgePolicy{LowConfidence: &registry.EdgeBand{Threshold: 0.5, Margin: 0.05}}
	oop := &registry.EdgePolicy{OutOfProfile: true}
	prof := &drift.Profile{Features: []drift.Feature{{Input: "features", Index: 1, Numeric: &drift.NumericRef{Mean: 10, Std: 2}}}}
	f := func(pol *registry.EdgePolicy, prof *drift.Profile, r *predlog.Record, want bool) {
		t.Helper()
		if got := edgeSelects(pol, "", prof, r); got != want {
			t.Fatalf("%s: selected %v, want %v", r.RequestID, got, want)
		}
	}
	ok := []float32{0, 10, 0}
	f(band, nil, edgeRow("near", predlog.RoleChampion, ok, 0.52), true)
	f(band, nil, edgeRow("in-band-below", predlog.RoleCanary, ok, 0.46), true)
	f(band, nil, edgeRow("confident", predlog.RoleChampion, ok, 0.9), false)
	f(band, nil, edgeRow("shadow", predlog.RoleShadow, ok, 0.5), false)
	f(band, nil, edgeRow("batch", predlog.RoleChampion, append(ok, ok...), 0.9, 0.51), true)
	f(oop, prof, edgeRow("far", predlog.RoleChampion, []float32{0, 19, 0}, 0.9), true)
	f(oop, prof, edgeRow("low", predlog.RoleChampion, []float32{0, 1, 0}, 0.9), true)
	f(oop, prof, edgeRow("inside", predlog.RoleChampion, []float32{0, 17, 0}, 0.9), false)
	f(oop, prof, edgeRow("nan", predlog.RoleChampion, []float32{0, float32(math.NaN()), 0}, 0.9), true)
	f(oop, prof, edgeRow("other-column", predlog.RoleChampion, []float32{1e9, 10, 0}, 0.9), false)
	f(oop, nil, edgeRow("no-profile", predlog.RoleChampion, []float32{0, 1e9, 0}, 0.9), false)
	f(&registry.EdgePolicy{OutOfProfile: true, OutOfProfileZ: 10}, prof, edgeRow("within-z10", predlog.RoleChampion, []float32{0, 19, 0}, 0.9), false)
}

// TestEdgeSample: the calibration sample is a share of ids, the same for
// an id on every run (a restarted site selects what it selected before).
func TestEdgeSample(t *testing.T) {
	pol := &registry.EdgePolicy{SampleRate: 0.25}
	n := 0
	for i := 0; i < 4000; i++ {
		r := edgeRow(fmt.Sprintf("tx-%d", i), predlog.RoleChampion, []float32{0, 0, 0}, 0.9)
		a, b := edgeSelects(pol, "", nil, r), edgeSelects(pol, "", nil, r)
		if a != b {
			t.Fatalf("%s: selected %v then %v", r.RequestID, a, b)
		}
		if a {
			n++
		}
	}
	// 4000 draws at 0.25: 1000 ± 27 (one standard deviation); 8 of them
	// apart is a broken hash, not bad luck.
	if n < 780 || n > 1220 {
		t.Fatalf("%d of 4000 sampled at rate 0.25", n)
	}
	all := &registry.EdgePolicy{SampleRate: 1}
	if !edgeSelects(all, "", nil, edgeRow("x", predlog.RoleChampion, []float32{0, 0, 0}, 0.9)) {
		t.Fatal("rate 1 left a row out")
	}
}

// TestPacer: posts are spaced so the bytes sent stay under the rate on
// average; the first goes at once, idle time is not saved up.
func TestPacer(t *testing.T) {
	now := time.Unix(1000, 0)
	p := pacer{rate: 1000, now: func() time.Time { return now }}
	f := func(n int, want time.Duration) {
		t.Helper()
		if got := p.delay(n); got != want {
			t.Fatalf("delay(%d) = %v, want %v", n, got, want)
		}
	}
	f(500, 0)                     // first post: at once; books 0.5 s
	f(1000, 500*time.Millisecond) // waits for the first one's share
	now = now.Add(1500 * time.Millisecond)
	f(100, 0) // the link was busy until now: no wait
	now = now.Add(time.Hour)
	f(2000, 0)          // idle for an hour: at once …
	f(1, 2*time.Second) // … but the hour is not credit for a burst
}
