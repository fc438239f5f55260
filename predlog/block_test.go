package predlog

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestBlocks fills blocks of mixed versions (small blocks, so there are
// many, and groups bigger than one block), then checks that Get, Scan by
// version and time, and exports resumed from every cursor agree with the
// append order, across a restart.
func TestBlocks(t *testing.T) {
	old := maxBlockBytes
	maxBlockBytes = 1 << 10
	defer func() { maxBlockBytes = old }()
	c := testConfig(t)
	l := openLog(t, c)
	defer func() { l.Close() }()
	g := newDemoGen(7)
	var want []Record
	for i := 0; i < 300; i++ {
		r := g.next()
		r.Version = fmt.Sprint(1 + i%3)
		if i%7 == 0 {
			r.Model = "other"
		} else {
			r.Model = "fraud"
		}
		if i%50 == 49 {
			if err := l.AppendDurable(r); err != nil {
				t.Fatal(err)
			}
		} else if err := l.Append(r); err != nil {
			t.Fatal(err)
		}
		want = append(want, cloneRecord(r))
	}
	for pass := 0; pass < 2; pass++ {
		var all []Record
		_, err := l.Export("fraud", "", false, 0, func(row *Row) error {
			all = append(all, cloneRecord(&row.Record))
			all[len(all)-1].Stamp = row.Record.Stamp
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var wantFraud []Record
		for i := range want {
			if want[i].Model == "fraud" {
				wantFraud = append(wantFraud, want[i])
			}
		}
		if len(all) != len(wantFraud) {
			t.Fatalf("exported %d rows, want %d", len(all), len(wantFraud))
		}
		for i := range all {
			w := wantFraud[i]
			w.Stamp = all[i].Stamp
			sameRecord(t, &all[i], &w)
			if i > 0 && all[i].Stamp <= all[i-1].Stamp {
				t.Fatalf("row %d: stamp %d after %d", i, all[i].Stamp, all[i-1].Stamp)
			}
		}
		// Resume from every cursor, a few rows at a time.
		var ids []string
		cur := Cursor("")
		for {
			n := 0
			next, err := l.Export("fraud", cur, false, 3, func(row *Row) error {
				ids = append(ids, row.Record.RequestID)
				n++
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			cur = next
		}
		var wantIDs []string
		for i := range all {
			wantIDs = append(wantIDs, all[i].RequestID)
		}
		if !slices.Equal(ids, wantIDs) {
			t.Fatalf("resumed export gave %d ids, want %d", len(ids), len(wantIDs))
		}
		// Scan a version over a window that starts and ends inside blocks.
		from, to := all[10].Stamp, all[200].Stamp
		var got []string
		err = l.Scan("fraud", "2", time.Unix(0, from), time.Unix(0, to), func(r *Record) error {
			if r.Version != "2" || r.Stamp < from || r.Stamp >= to {
				t.Fatalf("scan gave version %s stamp %d", r.Version, r.Stamp)
			}
			got = append(got, r.RequestID)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var wantScan []string
		for _, r := range all[10:200] {
			if r.Version == "2" {
				wantScan = append(wantScan, r.RequestID)
			}
		}
		if !slices.Equal(got, wantScan) {
			t.Fatalf("scan gave %v\nwant %v", got, wantScan)
		}
		for i := range want {
			r, err := l.Get(want[i].RequestID)
			if err != nil {
				t.Fatalf("Get(%s): %v", want[i].RequestID, err)
			}
			w := want[i]
			w.Stamp = r.Stamp
			sameRecord(t, &r, &w)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = openLog(t, c)
	}
}
