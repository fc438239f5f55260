package predlog

import (
	"errors"
	"testing"
)

// TestClusterCursorRoundTrip: a position encodes to one cursor and reads
// back the same; a single-log cursor reads as that stamp on every node; a
// cursor of the other mode, or damaged, is ErrBadCursor.
func TestClusterCursorRoundTrip(t *testing.T) {
	cc := ClusterCursor{Labelled: true, Floor: 7, Nodes: map[string]int64{"n1": 1 << 62, "n2": 0, "edge-paris": 12345}}
	c := cc.Cursor()
	got, err := ParseClusterCursor(c, true)
	if err != nil {
		t.Fatalf("parse %q: %v", c, err)
	}
	if got.Floor != 7 || len(got.Nodes) != 3 || got.Nodes["n1"] != 1<<62 || got.Nodes["n2"] != 0 || got.Nodes["edge-paris"] != 12345 {
		t.Fatalf("round trip: %+v", got)
	}
	if got.Of("n9") != makeCursor(true, 7) || got.Of("n2") != makeCursor(true, 0) {
		t.Fatalf("per-node cursors: %q %q", got.Of("n9"), got.Of("n2"))
	}
	legacy, err := ParseClusterCursor(makeCursor(false, 99), false)
	if err != nil || legacy.Floor != 99 || len(legacy.Nodes) != 0 || legacy.Of("any") != makeCursor(false, 99) {
		t.Fatalf("a single-log cursor: %+v, %v", legacy, err)
	}
	start, err := ParseClusterCursor("", false)
	if err != nil || start.Floor != 0 || len(start.Nodes) != 0 {
		t.Fatalf("the empty cursor: %+v, %v", start, err)
	}
	bad := func(c Cursor, labelled bool) {
		t.Helper()
		if _, err := ParseClusterCursor(c, labelled); !errors.Is(err, ErrBadCursor) {
			t.Fatalf("%q (labelled %v): %v, want ErrBadCursor", c, labelled, err)
		}
	}
	bad(c, false)                   // the other mode
	bad(makeCursor(true, 1), false) // a single-log cursor of the other mode
	bad(c[:len(c)-1], true)         // cut
	bad(c+"A", true)                // trailing data
	bad("c2"+c[2:], true)           // a version this parser does not know
	bad("c1", true)                 // no payload
	bad("c1bAAA=", true)            // padded (not the canonical form)
	bad("c1bIAAAA", true)           // an over-long varint for floor 0
	bad("c1bAACAm4xAQJuMQE", true)  // the same node twice
}

// FuzzClusterCursor feeds arbitrary strings to the cursor parser: it must
// never panic, and a cursor it accepts is the canonical encoding of what it
// read (so two cursors never name one position, and a position read back
// encodes to the same string).
func FuzzClusterCursor(f *testing.F) {
	f.Add("", false)
	f.Add(string(makeCursor(true, 42)), true)
	f.Add(string(ClusterCursor{Nodes: map[string]int64{"n1": 5, "n2": 1 << 40}}.Cursor()), false)
	f.Add(string(ClusterCursor{Labelled: true, Floor: 3, Nodes: map[string]int64{"a": 0}}.Cursor()), true)
	f.Fuzz(func(t *testing.T, s string, labelled bool) {
		cc, err := ParseClusterCursor(Cursor(s), labelled)
		if err != nil {
			if !errors.Is(err, ErrBadCursor) {
				t.Fatalf("%q: %v, want ErrBadCursor", s, err)
			}
			return
		}
		if len(s) > 0 && s[0] == 'c' {
			if got := cc.Cursor(); string(got) != s {
				t.Fatalf("%q parses but encodes as %q", s, got)
			}
		}
		again, err := ParseClusterCursor(cc.Cursor(), labelled)
		if err != nil || again.Floor != cc.Floor || len(again.Nodes) != len(cc.Nodes) {
			t.Fatalf("%q: re-encoded %q reads %+v, %v", s, cc.Cursor(), again, err)
		}
		for id, st := range cc.Nodes {
			if again.Nodes[id] != st {
				t.Fatalf("%q: node %q at %d, re-read %d", s, id, st, again.Nodes[id])
			}
		}
	})
}
