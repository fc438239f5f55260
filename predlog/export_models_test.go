package predlog

import (
	"fmt"
	"slices"
	"testing"
)

// exportRows drains model's export and describes each row as
// "model/version id" plus "=label" when labelled.
func exportRows(t *testing.T, l *Log, model string, labelled bool) []string {
	t.Helper()
	var out []string
	_, err := l.Export(model, Cursor(""), labelled, 0, func(r *Row) error {
		s := r.Record.Model + "/" + r.Record.Version + " " + r.Record.RequestID
		if r.Labelled {
			s += fmt.Sprintf("=%g", r.Label.Value)
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		t.Fatalf("export %s (labelled %v): %v", model, labelled, err)
	}
	return out
}

// TestExportJoinsLabelsWithinTheModel: two models log the same request
// ids (ids are the client's, so they collide across models); a label sent
// for one model joins only that model's record, in both exports, and the
// other model's exports are unaffected.
func TestExportJoinsLabelsWithinTheModel(t *testing.T) {
	l := openLog(t, testConfig(t))
	g := newDemoGen(11)
	for _, id := range []string{"tx-1", "tx-2", "tx-3"} {
		for _, mv := range [][2]string{{"fraud", "1"}, {"aml", "7"}} {
			r := cloneRecord(g.next())
			r.RequestID, r.Model, r.Version = id, mv[0], mv[1]
			if err := l.AppendDurable(&r); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := l.PutLabels("fraud", []Label{{ID: "tx-1", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.PutLabels("aml", []Label{{ID: "tx-2", Value: 0}, {ID: "tx-3", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	f := func(model string, labelled bool, want ...string) {
		t.Helper()
		if got := exportRows(t, l, model, labelled); !slices.Equal(got, want) {
			t.Errorf("export %s (labelled only %v):\n got %q\nwant %q", model, labelled, got, want)
		}
	}
	f("fraud", true, "fraud/1 tx-1=1")
	f("aml", true, "aml/7 tx-2=0", "aml/7 tx-3=1")
	f("fraud", false, "fraud/1 tx-1=1", "fraud/1 tx-2", "fraud/1 tx-3")
	f("aml", false, "aml/7 tx-1", "aml/7 tx-2=0", "aml/7 tx-3=1")
	// A label for a model that logged nothing under that id yields no row.
	if _, err := l.PutLabels("churn", []Label{{ID: "tx-1", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	f("churn", true)
	f("fraud", true, "fraud/1 tx-1=1")
}
