package drift

import (
	"errors"
	"testing"

	"github.com/modelgate/modelgate/internal/fraud"
)

// TestMergedWindowsEqualOneNode: three nodes' windows (one seeing a new
// merchant category in all its rows), handed out by ClosedSince and added
// into a Windows held at the same window, count exactly what one Windows
// fed every row counts, window by window, and Evaluate judges them alike:
// the shift a third of the rows carry is a cluster-wide drift alert.
func TestMergedWindowsEqualOneNode(t *testing.T) {
	p, _, _ := reference(t)
	clock := newFakeClock()
	cfg := WindowConfig{Now: clock.Now, Shards: 1}
	all, err := NewWindows(p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	nodes := make([]*Windows, 3)
	for i := range nodes {
		if nodes[i], err = NewWindows(p, cfg); err != nil {
			t.Fatal(err)
		}
	}
	row := make([]float32, fraud.NumFeatures)
	const windows, perNode = 5, 1500
	for k := range windows {
		for i, w := range nodes {
			d := fraud.Drift{}
			if i == 2 {
				d = fraud.Drift{Kind: fraud.NewCategory, Share: 1}
			}
			g := fraud.NewGenerator(int64(100*k+i), fraud.WithDrift(d))
			for range perNode {
				g.Next(row)
				if err := w.Observe(row, score(row)); err != nil {
					t.Fatal(err)
				}
				_ = all.Observe(row, score(row))
			}
		}
		clock.Add(DefaultWindow)
	}
	all.Rotate()
	cur, _ := all.Current()
	merged, err := NewWindowsAt(p, WindowConfig{Shards: 1}, cur)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range nodes {
		through, closed := w.ClosedSince(-1 << 62)
		if through != cur-1 || len(closed) != windows {
			t.Fatalf("ClosedSince: through %d (want %d), %d windows (want %d)", through, cur-1, len(closed), windows)
		}
		for _, c := range closed {
			if c.Rows != perNode {
				t.Fatalf("window %d: %d rows, want %d", c.ID, c.Rows, perNode)
			}
			if err := merged.AddClosed(c.ID, c.Sketch); err != nil {
				t.Fatal(err)
			}
		}
		if _, again := w.ClosedSince(cur - 1); len(again) != 0 {
			t.Fatalf("ClosedSince(newest) returned %d windows", len(again))
		}
	}
	want, got := all.Recent(windows), merged.Recent(windows)
	for k := range want {
		equalCounts(t, "merged window", got[k], want[k])
	}
	equalCounts(t, "merged snapshot", merged.Snapshot(DefaultRollup), all.Snapshot(DefaultRollup))

	pol := DefaultPolicy()
	evAll, err := Evaluate(all, pol)
	if err != nil {
		t.Fatal(err)
	}
	evMerged, err := Evaluate(merged, pol)
	if err != nil {
		t.Fatal(err)
	}
	if evMerged.Status != StatusDrift || len(evMerged.Alerts) == 0 || evMerged.Rows != evAll.Rows || len(evMerged.Alerts) != len(evAll.Alerts) {
		t.Fatalf("merged: %s, %d rows, %d alerts; one node fed everything: %s, %d rows, %d alerts",
			evMerged.Status, evMerged.Rows, len(evMerged.Alerts), evAll.Status, evAll.Rows, len(evAll.Alerts))
	}

	// Refusals: a window not closed yet, one out of the ring, a sketch of
	// another profile, another export version.
	x := nodes[0].Recent(1)[0].Export()
	if err := merged.AddClosed(cur, x); err == nil {
		t.Fatal("AddClosed took the live window")
	}
	if err := merged.AddClosed(cur-61, x); err == nil {
		t.Fatal("AddClosed took a window older than the ring")
	}
	other := fraudOptions()
	other.Names = nil
	b := NewProfileBuilder(other)
	rows, scores := gen(9, 2000, fraud.Drift{})
	for i, r := range rows {
		_ = b.AddScored(r, scores[i]*0.5)
	}
	op, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	os, _ := NewSketchShards(op, 1)
	_ = os.Observe(rows[0], 0.1)
	if err := merged.AddClosed(cur-1, os.Export()); !errors.Is(err, ErrLayoutMismatch) {
		t.Fatalf("a sketch of another profile: %v, want ErrLayoutMismatch", err)
	}
	v2 := append([]byte(nil), x...)
	v2[4] = ExportVersion + 1
	if v, err := SketchExportVersion(v2); err != nil || v != ExportVersion+1 {
		t.Fatalf("SketchExportVersion: %d, %v", v, err)
	}
	if err := merged.AddClosed(cur-1, v2); !errors.Is(err, ErrCorruptSketch) {
		t.Fatalf("export version %d: %v, want ErrCorruptSketch", ExportVersion+1, err)
	}
	if _, err := SketchExportVersion([]byte("nope")); !errors.Is(err, ErrCorruptSketch) {
		t.Fatalf("SketchExportVersion of garbage: %v", err)
	}
}
