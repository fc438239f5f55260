package predlog

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// exportAll drains an export in pages of limit rows, reopening the log
// between pages when reopen is set, and returns the rows' ids with their
// labels ("id" or "id=label").
func exportAll(t *testing.T, l **Log, c Config, cursor Cursor, labelled bool, limit int, reopen bool) ([]string, Cursor) {
	t.Helper()
	var out []string
	for page := 0; ; page++ {
		n := 0
		next, err := (*l).Export("fraud", cursor, labelled, limit, func(r *Row) error {
			s := r.Record.RequestID
			if r.Labelled {
				s += fmt.Sprintf("=%g", r.Label.Value)
				if r.Label.ID != r.Record.RequestID {
					t.Fatalf("label id %q on row %q", r.Label.ID, r.Record.RequestID)
				}
			}
			out = append(out, s)
			n++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n > limit && !labelled {
			t.Fatalf("page of %d rows, limit %d", n, limit)
		}
		if n == 0 && next == cursor {
			return out, next
		}
		if n == 0 && !labelled {
			t.Fatalf("empty page moved the cursor from %s to %s", cursor, next)
		}
		cursor = next
		if reopen && page%3 == 0 {
			if err := closeLog(t, *l); err != nil {
				t.Fatal(err)
			}
			*l = openLog(t, c)
		}
	}
}

func TestExportRoundTrip(t *testing.T) {
	c := testConfig(t)
	l := openLog(t, c)
	g := newDemoGen(3)
	var ids []string
	for i := 0; i < 300; i++ {
		r := g.next()
		if err := l.Append(r); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.RequestID)
	}
	// A shadow copy of one request: the labelled export has a row for each.
	shadow := cloneRecord(g.next())
	shadow.RequestID, shadow.Role, shadow.Version = ids[10], RoleShadow, "2"
	if err := l.AppendDurable(&shadow); err != nil {
		t.Fatal(err)
	}
	// Label every third prediction, in random order, plus one label for an
	// id nobody logged.
	rng := rand.New(rand.NewPCG(7, 7))
	want := map[string]float64{}
	var labels []Label
	for i := 0; i < len(ids); i += 3 {
		want[ids[i]] = float64(i % 2)
		labels = append(labels, Label{ID: ids[i], Value: float64(i % 2)})
	}
	rng.Shuffle(len(labels), func(i, j int) { labels[i], labels[j] = labels[j], labels[i] })
	n, err := l.PutLabels("fraud", append(labels, Label{ID: "never-logged", Value: 1}))
	if err != nil || n != len(labels)+1 {
		t.Fatalf("PutLabels = %d, %v", n, err)
	}

	// All rows, in pages of 7 with restarts: every prediction once, in
	// commit order, labelled ones with their label.
	all, rowsCursor := exportAll(t, &l, c, "", false, 7, true)
	if len(all) != len(ids)+1 {
		t.Fatalf("exported %d rows, want %d", len(all), len(ids)+1)
	}
	for i, id := range ids {
		w := id
		if v, ok := want[id]; ok {
			w += fmt.Sprintf("=%g", v)
		}
		if all[i] != w {
			t.Fatalf("row %d = %s, want %s", i, all[i], w)
		}
	}

	// Labelled rows, in pages of 4 with restarts: every labelled row once.
	lab, labCursor := exportAll(t, &l, c, "", true, 4, true)
	if len(lab) != len(labels) {
		t.Fatalf("labelled export gave %d rows, want %d", len(lab), len(labels))
	}
	seen := map[string]int{}
	for _, s := range lab {
		seen[s]++
	}
	for id, v := range want {
		if k := fmt.Sprintf("%s=%g", id, v); seen[k] != 1 {
			t.Fatalf("labelled row %s exported %d times", k, seen[k])
		}
	}

	// Labels that arrive later (new, changed, repeated) show up after the
	// labelled cursor, and only they; repeats are no-ops.
	late := []Label{
		{ID: ids[10], Value: 1},               // new: two rows, champion and shadow
		{ID: ids[0], Value: 1 - want[ids[0]]}, // changed
		{ID: ids[3], Value: want[ids[3]]},     // same again: nothing
	}
	n, err = l.PutLabels("fraud", late)
	if err != nil || n != 2 {
		t.Fatalf("PutLabels(late) = %d, %v; want 2 changes", n, err)
	}
	more, _ := exportAll(t, &l, c, labCursor, true, 100, false)
	wantMore := fmt.Sprint([]string{ids[10] + "=1", ids[10] + "=1", fmt.Sprintf("%s=%g", ids[0], 1-want[ids[0]])})
	if fmt.Sprint(more) != wantMore {
		t.Fatalf("after late labels: %v, want %v", more, wantMore)
	}
	// The rows cursor sees only rows committed after it, even when their
	// request time is older than every row before it.
	old := cloneRecord(g.next())
	old.Time = time.Unix(1, 0).UnixNano()
	if err := l.AppendDurable(&old); err != nil {
		t.Fatal(err)
	}
	tail, _ := exportAll(t, &l, c, rowsCursor, false, 10, false)
	if fmt.Sprint(tail) != fmt.Sprint([]string{old.RequestID}) {
		t.Fatalf("after the rows cursor: %v", tail)
	}
	s := l.Stats()
	if s.LabelsNew != 1 || s.LabelsChanged != 1 { // since the last reopen

		t.Fatalf("label stats %+v", s)
	}
}

func TestExportCursorErrors(t *testing.T) {
	l := openLog(t, testConfig(t))
	g := newDemoGen(4)
	for i := 0; i < 5; i++ {
		if err := l.AppendDurable(g.next()); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []Cursor{"x", "p12", "l0000000000000001", "pzzzzzzzzzzzzzzzz"} {
		if _, err := l.Export("fraud", c, false, 0, func(*Row) error { return nil }); !errors.Is(err, ErrBadCursor) {
			t.Fatalf("Export(%q) = %v, want ErrBadCursor", c, err)
		}
	}
	// An error from fn stops the export before the refused row.
	stop := errors.New("stop")
	var got []string
	next, err := l.Export("fraud", "", false, 0, func(r *Row) error {
		if len(got) == 2 {
			return stop
		}
		got = append(got, r.Record.RequestID)
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatal(err)
	}
	var rest []string
	_, err = l.Export("fraud", next, false, 0, func(r *Row) error {
		rest = append(rest, r.Record.RequestID)
		return nil
	})
	if err != nil || len(rest) != 3 {
		t.Fatalf("resumed after a refusal: %v, %v", rest, err)
	}
	// CursorAt starts at a time.
	n := 0
	if _, err := l.Export("fraud", CursorAt(time.Now().Add(time.Hour), false), false, 0, func(*Row) error { n++; return nil }); err != nil || n != 0 {
		t.Fatalf("export from the future: %d rows, %v", n, err)
	}
}

func TestPutLabelsValidation(t *testing.T) {
	l := openLog(t, testConfig(t))
	for _, lbs := range [][]Label{{{ID: ""}}, {{ID: "a", Value: nan()}}} {
		if _, err := l.PutLabels("fraud", lbs); !errors.Is(err, ErrInvalid) {
			t.Fatalf("PutLabels(%v) = %v", lbs, err)
		}
	}
	if n, err := l.PutLabels("fraud", []Label{{ID: "a", Value: 1}, {ID: "a", Value: 1}}); err != nil || n != 1 {
		t.Fatalf("duplicate in one call: %d, %v", n, err)
	}
	if n, err := l.PutLabels("fraud", []Label{{ID: "a", Value: 1}}); err != nil || n != 0 {
		t.Fatalf("same label again: %d, %v", n, err)
	}
}
