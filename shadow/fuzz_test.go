package shadow

import (
	"bytes"
	"testing"
)

// FuzzImportComparison feeds Import arbitrary bytes: it must never panic,
// and whatever it accepts must export back to the same bytes and merge.
// Seeds (valid exports, empty and busy, and crashers once found) live in
// testdata/fuzz/FuzzImportComparison.
func FuzzImportComparison(f *testing.F) {
	f.Add(NewComparison(0.5).Export())
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ImportComparison(data)
		if err != nil {
			return
		}
		out := c.Export()
		if !bytes.Equal(out, data) {
			t.Fatalf("accepted bytes export differently:\n in %x\nout %x", data, out)
		}
		d := c.Clone()
		if err := d.Merge(c); err != nil {
			t.Fatal(err)
		}
		_ = d.Summary()
	})
}

// FuzzImportEvaluation is FuzzImportComparison for evaluations; accepted
// bytes must also yield metrics.
func FuzzImportEvaluation(f *testing.F) {
	e, _ := NewEvaluation(EvalConfig{Bins: 10, CalibrationBins: 5})
	f.Add(e.Export())
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ImportEvaluation(data)
		if err != nil {
			return
		}
		if out := e.Export(); !bytes.Equal(out, data) {
			t.Fatalf("accepted bytes export differently:\n in %x\nout %x", data, out)
		}
		d := e.Clone()
		if err := d.Merge(e); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Metrics(0.9); err != nil {
			t.Fatal(err)
		}
	})
}
