package auditarchive

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/modelgate/modelgate/registry"
)

func recs(from, to uint64) []registry.AuditRecord {
	var out []registry.AuditRecord
	for s := from; s <= to; s++ {
		m := "a"
		if s%2 == 0 {
			m = "b"
		}
		out = append(out, registry.AuditRecord{Seq: s, Time: time.Unix(int64(s), 0).UTC(), Actor: "t", Action: registry.ActionAlert,
			Model: m, Version: int(s % 3), Kind: "drift", Evidence: json.RawMessage(`{"n":1}`), IdempotencyKey: "k"})
	}
	return out
}

// TestArchiveFiltersAndSurvivesReopen: records come back, filtered and
// paged as the registry's Audit does, after the archive is closed and
// opened again; putting the same records twice changes nothing.
func TestArchiveFiltersAndSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	a, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Put(recs(1, 50)); err != nil {
		t.Fatal(err)
	}
	if err := a.Put(recs(41, 60)); err != nil { // a replayed trim overlaps
		t.Fatal(err)
	}
	a.Close()
	if a, err = Open(dir, nil); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	f := func(filter registry.AuditFilter, want ...uint64) {
		t.Helper()
		got, err := a.Audit(filter)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%+v: %d records, want %v", filter, len(got), want)
		}
		for i := range got {
			if got[i].Seq != want[i] {
				t.Fatalf("%+v: record %d has seq %d, want %v", filter, i, got[i].Seq, want)
			}
		}
	}
	f(registry.AuditFilter{Since: 55}, 56, 57, 58, 59, 60)
	f(registry.AuditFilter{Since: 10, Until: 13}, 11, 12, 13)
	f(registry.AuditFilter{Model: "b", Limit: 3}, 2, 4, 6)
	f(registry.AuditFilter{Model: "a", Version: 1, Since: 20, Limit: 2}, 25, 31)
	f(registry.AuditFilter{Since: 60})
	f(registry.AuditFilter{Since: 5, Until: 5})
	got, _ := a.Audit(registry.AuditFilter{Since: 6, Limit: 1})
	if want := recs(7, 7)[0]; got[0].Time != want.Time || string(got[0].Evidence) != `{"n":1}` || got[0].Model != want.Model {
		t.Fatalf("record 7 came back as %+v", got[0])
	}
}

// TestArchiveClosed: a closed archive says so instead of panicking.
func TestArchiveClosed(t *testing.T) {
	a, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if err := a.Put(recs(1, 1)); err != ErrClosed {
		t.Fatalf("Put after Close: %v", err)
	}
	if _, err := a.Audit(registry.AuditFilter{}); err != ErrClosed {
		t.Fatalf("Audit after Close: %v", err)
	}
}
