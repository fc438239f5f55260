package cluster

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/modelgate/modelgate/internal/auditarchive"
	"github.com/modelgate/modelgate/registry"
)

// TestSnapshotBoundedByAuditRetention: 100,000 audit records with
// retention on (keep the last 1,000, trimmed every 500 as a leader's
// retention loop does). The snapshot's size is bounded by what is
// retained, not by the history; trims never change LastSeq beyond their
// own record; every trimmed record is in the node's archive; and replaying
// the log from scratch, or restoring the snapshot, gives the same state.
func TestSnapshotBoundedByAuditRetention(t *testing.T) {
	const (
		records   = 100_000
		keepLast  = 1000
		trimEvery = 500
	)
	arch, err := auditarchive.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer arch.Close()
	f := NewFSM(testLogger())
	f.SetArchive(arch)
	c := newCmds()
	var entries []*raft.Log
	apply := func(args registry.Args) *ApplyResponse {
		t.Helper()
		l := encodeLog(t, uint64(len(entries)+1), c.cmd(args))
		entries = append(entries, l)
		r := f.Apply(l).(*ApplyResponse)
		if r.Err != nil {
			t.Fatalf("entry %d (%s): %v", l.Index, args.Op(), r.Err)
		}
		return r
	}
	// ~300 bytes of evidence a record: without retention the audit log
	// alone would take about 40 MB of snapshot.
	evidence := json.RawMessage(`{"psi":"` + strings.Repeat("x", 280) + `"}`)
	apply(&registry.CreateModelArgs{Model: "fraud"})
	var appended uint64 = 1 // records appended so far, trims' own included
	var sizeAt20k int
	for appended < records {
		apply(&registry.RecordAlertArgs{Model: "fraud", Kind: "drift", Reason: "window", Evidence: evidence})
		appended++
		if appended%trimEvery == 0 && appended > keepLast {
			before := f.LastSeq()
			r := apply(&registry.TrimAuditArgs{KeepLast: keepLast})
			appended++
			if f.LastSeq() != before+1 || r.Result.AuditSeq != before+1 {
				t.Fatalf("a trim moved LastSeq from %d to %d; only its own record may raise it by one", before, f.LastSeq())
			}
		}
		if sizeAt20k == 0 && appended >= 20_000 {
			sizeAt20k = len(persist(t, f))
		}
	}
	if f.LastSeq() != appended {
		t.Fatalf("LastSeq %d after %d records: trims renumbered the log", f.LastSeq(), appended)
	}

	snap := persist(t, f)
	var retained []registry.AuditRecord
	f.Read(func(s *registry.State) { retained = s.Audit(registry.AuditFilter{}) })
	if len(retained) > keepLast+trimEvery+1 {
		t.Fatalf("%d records retained, more than keep_last %d + the %d appended between trims", len(retained), keepLast, trimEvery)
	}
	// The bound: the retained records at the largest encoded size any of
	// them has, the idempotency window at 256 bytes a key (short keys, a
	// 32-hex fingerprint, a small result), and 64 KiB for the envelope and
	// the model. Without retention the audit log alone is ~300 B × 100,000.
	var maxRec int
	for i := range retained {
		b, _ := json.Marshal(&retained[i])
		maxRec = max(maxRec, len(b)+1)
	}
	bound := (keepLast+trimEvery+1)*maxRec + registry.DefaultIdempotencyWindow*256 + 64<<10
	if len(snap) > bound {
		t.Fatalf("snapshot of %d bytes after %d records, more than the %d retention allows", len(snap), records, bound)
	}
	if len(snap) > sizeAt20k+sizeAt20k/10 {
		t.Fatalf("snapshot grew with history: %d bytes at 20,000 records, %d at %d", sizeAt20k, len(snap), records)
	}
	t.Logf("snapshot %d bytes at %d records (%d at 20,000; bound %d); %d retained", len(snap), records, sizeAt20k, bound, len(retained))

	// Every record that left the state is in the archive, numbered as it was.
	first := retained[0].Seq
	old, err := arch.Audit(registry.AuditFilter{Until: first - 1})
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(old)) != first-1 || old[0].Seq != 1 || old[len(old)-1].Seq != first-1 {
		t.Fatalf("archive holds %d records, want 1 to %d", len(old), first-1)
	}
	if old[1].Action != registry.ActionAlert || !bytes.Equal(old[1].Evidence, evidence) {
		t.Fatalf("archived record 2: %+v", old[1])
	}

	// Registry purity: the log replayed from scratch, and the snapshot
	// restored, are the same state.
	g := NewFSM(testLogger())
	for _, l := range entries {
		g.Apply(l)
	}
	if !bytes.Equal(persist(t, g), snap) {
		t.Fatal("replaying the log from scratch gives another state")
	}
	h := NewFSM(testLogger())
	if err := h.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(persist(t, h), snap) || h.LastSeq() != f.LastSeq() {
		t.Fatalf("restored: LastSeq %d, want %d", h.LastSeq(), f.LastSeq())
	}
}
