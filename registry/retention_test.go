package registry

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// alerts appends n cheap records (drift alerts on model m).
func (h *harness) alerts(m string, n int) {
	h.t.Helper()
	for i := 0; i < n; i++ {
		h.must(&RecordAlertArgs{Model: m, Kind: "drift", Reason: "tick"})
	}
}

func seqs(recs []AuditRecord) []uint64 {
	out := make([]uint64, len(recs))
	for i := range recs {
		out[i] = recs[i].Seq
	}
	return out
}

// TestTrimAuditKeepsSequence: trimming removes the oldest records only;
// LastSeq, and the Seq of every kept record, are what they were, and a
// reader paging with Since goes on from where it was.
func TestTrimAuditKeepsSequence(t *testing.T) {
	h := newHarness(t)
	h.must(&CreateModelArgs{Model: "m"})
	h.alerts("m", 49) // records 1..50
	cursor := h.s.Audit(AuditFilter{Limit: 45})[44].Seq
	kept := h.s.Audit(AuditFilter{Since: 41})
	before := h.s.LastSeq()

	res := h.must(&TrimAuditArgs{KeepLast: 10})
	if h.s.LastSeq() != before+1 || res.AuditSeq != before+1 {
		t.Fatalf("LastSeq %d (result %d), want %d: only the trim's own record may raise it", h.s.LastSeq(), res.AuditSeq, before+1)
	}
	if got := h.s.FirstRetainedSeq(); got != 42 || len(h.s.Audit(AuditFilter{})) != 10 {
		t.Fatalf("first retained seq %d, want 42: the last 9 and the trim's own record", got)
	}
	after := h.s.Audit(AuditFilter{Since: 41, Until: 50})
	if !equalRecords(after, kept) {
		t.Fatalf("kept records changed: %v, want %v", seqs(after), seqs(kept))
	}
	next := h.s.Audit(AuditFilter{Since: cursor})
	if want := []uint64{46, 47, 48, 49, 50, 51}; !slicesEqual(seqs(next), want) {
		t.Fatalf("paging from %d after the trim: %v, want %v", cursor, seqs(next), want)
	}
	if old := h.s.Audit(AuditFilter{Since: 3, Limit: 2}); !slicesEqual(seqs(old), []uint64{42, 43}) {
		t.Fatalf("from a trimmed cursor: %v, want the oldest kept [42 43]", seqs(old))
	}
	last := next[len(next)-1]
	if last.Action != ActionTrimAudit || !bytes.Contains(last.Evidence, []byte(`"trimmed_from":1,"trimmed_through":41`)) {
		t.Fatalf("trim record: %+v %s", last, last.Evidence)
	}
	h.must(&RecordAlertArgs{Model: "m", Kind: "drift"})
	if h.s.LastSeq() != before+2 {
		t.Fatalf("the next record got seq %d, want %d", h.s.LastSeq(), before+2)
	}
}

func equalRecords(a, b []AuditRecord) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func slicesEqual(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestTrimAuditByAge: max_age removes records older than the command's
// time minus the age, and stops at the first younger one.
func TestTrimAuditByAge(t *testing.T) {
	h := newHarness(t) // a minute per command
	h.must(&CreateModelArgs{Model: "m"})
	h.alerts("m", 19) // records 1..20 at t0+1m … t0+20m
	// The trim is made at t0+21m: older than 5m means before t0+16m.
	h.must(&TrimAuditArgs{MaxAge: Duration(5 * time.Minute)})
	if got := h.s.FirstRetainedSeq(); got != 16 {
		t.Fatalf("first retained seq %d, want 16 (records at t0+16m and later are younger than 5m)", got)
	}
	// Both bounds: a record goes when either says so.
	h.must(&TrimAuditArgs{KeepLast: 3, MaxAge: Duration(time.Hour)})
	if got := seqs(h.s.Audit(AuditFilter{})); !slicesEqual(got, []uint64{20, 21, 22}) {
		t.Fatalf("kept %v, want 3: the last 2 and the trim's record", got)
	}
	// A trim leaves nothing for the next one: it does not feed itself.
	h.refused(&TrimAuditArgs{KeepLast: 3}, ErrNothingToTrim, "")
}

// TestTrimAuditRefusesNoop: a trim with nothing outside its bounds is
// refused, changes nothing and uses no sequence number.
func TestTrimAuditRefusesNoop(t *testing.T) {
	h := newHarness(t)
	h.must(&CreateModelArgs{Model: "m"})
	h.alerts("m", 4)
	h.refused(&TrimAuditArgs{KeepLast: 6}, ErrNothingToTrim, "the state holds records 1 to 5, within keep_last 6")
	h.refused(&TrimAuditArgs{}, ErrInvalid, "keep_last")
	h.refused(&TrimAuditArgs{KeepLast: -1}, ErrInvalid, "keep_last")
}

// TestTrimSnapshotRoundTrip: a trimmed state's snapshot restores to the
// same state (same bytes, same LastSeq), replaying its commands from
// scratch gives the same bytes, and a format 1 snapshot (before
// trimming existed) still restores with LastSeq its length.
func TestTrimSnapshotRoundTrip(t *testing.T) {
	h := newHarness(t)
	h.must(&CreateModelArgs{Model: "m"})
	h.alerts("m", 30)
	h.must(&TrimAuditArgs{KeepLast: 7})
	h.alerts("m", 3)
	snap := h.snapshot()
	r, err := RestoreSnapshot(snap)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := r.MarshalSnapshot()
	if !bytes.Equal(b, snap) || r.LastSeq() != h.s.LastSeq() || r.FirstRetainedSeq() != h.s.FirstRetainedSeq() {
		t.Fatalf("restored LastSeq %d first %d, want %d %d; bytes equal %v", r.LastSeq(), r.FirstRetainedSeq(), h.s.LastSeq(), h.s.FirstRetainedSeq(), bytes.Equal(b, snap))
	}
	replay := New()
	for _, c := range h.log {
		_, _ = replay.Apply(c)
	}
	if b, _ := replay.MarshalSnapshot(); !bytes.Equal(b, snap) {
		t.Fatal("replaying the commands from scratch gives another state")
	}

	old := newHarness(t)
	old.must(&CreateModelArgs{Model: "m"})
	old.alerts("m", 2)
	v1 := strings.Replace(string(old.snapshot()), `"format":2,"last_seq":3,`, `"format":1,`, 1)
	s, err := RestoreSnapshot([]byte(v1))
	if err != nil {
		t.Fatalf("format 1 snapshot: %v", err)
	}
	if s.LastSeq() != 3 || len(s.Audit(AuditFilter{})) != 3 {
		t.Fatalf("format 1 snapshot restored with LastSeq %d", s.LastSeq())
	}
}

// TestSetReference: a bootstrapped reference lives in the version's state;
// its audit record is short (no profile); a version registered with a
// profile refuses one.
func TestSetReference(t *testing.T) {
	h := newHarness(t)
	h.register("m", 1)
	prof := json.RawMessage(`{"rows":1000,"features":[{"name":"amount"}]}`)
	h.must(&SetReferenceArgs{Model: "m", Version: 1, Profile: prof, Rows: 1000, Reason: "the first 1000 rows"})
	v, _ := h.s.Version("m", 1)
	if !bytes.Equal(v.BootstrappedReference, prof) {
		t.Fatalf("bootstrapped reference %s, want %s", v.BootstrappedReference, prof)
	}
	recs := h.s.Audit(AuditFilter{Model: "m", Version: 1})
	last := recs[len(recs)-1]
	if last.Kind != KindDriftReference || string(last.Evidence) != `{"profile_bytes":44,"rows":1000}` {
		t.Fatalf("audit record %+v %s", last, last.Evidence)
	}
	h.must(&RegisterArgs{Model: "m", Digest: digestOf(2), Size: 10, ReferenceProfile: prof})
	h.refused(&SetReferenceArgs{Model: "m", Version: 2, Profile: prof}, ErrInvalid, "registered with a reference profile")
	h.refused(&SetReferenceArgs{Model: "m", Version: 9, Profile: prof}, ErrVersionNotFound, "")
}

// TestOldDriftReferenceReplays: a drift_reference alert from a wire v2 log
// carries the profile as evidence; replayed, it sets the version's
// bootstrapped reference, so a node restarted on an old data dir finds it.
// A v3 alert of that kind is only a record.
func TestOldDriftReferenceReplays(t *testing.T) {
	h := newHarness(t)
	h.register("m", 1)
	const v2 = `{"v":2,"op":"record_alert","time":"2025-06-01T10:00:00Z","actor":"drift","idempotency_key":"drift-reference/m/1","args":{"model":"m","version":1,"kind":"drift_reference","reason":"the first rows","evidence":{"rows":500}}}`
	c, err := DecodeCommand([]byte(v2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.Apply(c); err != nil {
		t.Fatal(err)
	}
	if v, _ := h.s.Version("m", 1); string(v.BootstrappedReference) != `{"rows":500}` {
		t.Fatalf("old drift_reference record left bootstrapped reference %q", v.BootstrappedReference)
	}
	// A format 1 snapshot of that log (written before set_reference) holds
	// the record but not the field: restored, the version has it again.
	snap := strings.Replace(string(h.snapshot()), `,"bootstrapped_reference":{"rows":500}`, "", 1)
	snap = strings.Replace(snap, `"format":2,"last_seq":3,`, `"format":1,`, 1)
	if strings.Contains(snap, "bootstrapped_reference") || !strings.Contains(snap, `"format":1,`) {
		t.Fatalf("not a format 1 snapshot: %.200s", snap)
	}
	old, err := RestoreSnapshot([]byte(snap))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := old.Version("m", 1); string(v.BootstrappedReference) != `{"rows":500}` {
		t.Fatalf("format 1 snapshot restored bootstrapped reference %q", v.BootstrappedReference)
	}
	h.register("m", 2)
	h.must(&RecordAlertArgs{Model: "m", Version: 2, Kind: KindDriftReference, Evidence: json.RawMessage(`{"rows":7}`)})
	if v, _ := h.s.Version("m", 2); v.BootstrappedReference != nil {
		t.Fatalf("a v3 drift_reference alert set a reference: %s", v.BootstrappedReference)
	}
}
