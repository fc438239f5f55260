package cluster

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/wal"
	"github.com/hashicorp/raft"
)

// lastRecordStart returns the newest WAL file in dir and where its last
// complete record starts.
func lastRecordStart(t *testing.T, dir string) (string, int64) {
	t.Helper()
	logs, err := wal.Scan(wal.Dir{FS: vfs.Default, Dirname: dir})
	if err != nil || len(logs) == 0 {
		t.Fatalf("no WAL in %s: %v", dir, err)
	}
	r := logs[len(logs)-1].OpenForRead()
	defer r.Close()
	var last wal.Offset
	for {
		rec, off, err := r.NextRecord()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading the WAL: %v", err)
		}
		io.Copy(io.Discard, rec)
		last = off
	}
	return last.PhysicalFile, last.Physical
}

// TestStoreReportsTornTail is issue 12's "a Raft log whose tail is torn is
// reported at start, not passed over": the WAL is cut inside its last
// record, which held entries 11-14; reopening must drop them (as Pebble
// does) and say so at WARN with that index range.
func TestStoreReportsTornTail(t *testing.T) {
	f := func(name string, cutAt func(start int64) int64, want string) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTestStore(t, dir)
			storeLogs(t, s, 1, 10)
			if err := s.StoreLogs([]*raft.Log{testLog(11, "a"), testLog(12, "b"), testLog(13, "c"), testLog(14, strings.Repeat("d", 300))}); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			file, start := lastRecordStart(t, dir)
			if err := os.Truncate(file, cutAt(start)); err != nil {
				t.Fatal(err)
			}

			var logs bytes.Buffer
			s2, err := OpenStore(dir, StoreOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer s2.Close()
			wantBounds(t, s2, 1, 10)
			var warn string
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, "level=WARN") && strings.Contains(l, "tail was torn") {
					warn = l
				}
			}
			if !strings.Contains(warn, want) {
				t.Fatalf("no WARN saying %q; the log:\n%s", want, logs.String())
			}
		})
	}
	f("cut inside the operations", func(start int64) int64 { return start + 60 }, "it held raft log entries 11-14, which were dropped (the log now ends at 10)")
	f("cut inside the chunk header", func(start int64) int64 { return start + 5 }, "raft log entries after 10, if any, were dropped")
}

// TestStoreCleanTailNoWarning: a store closed cleanly, and one whose last
// write was synced before a kill, reopen without a torn-tail report.
func TestStoreCleanTailNoWarning(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	storeLogs(t, s, 1, 20)
	s.Close()
	var logs bytes.Buffer
	s2, err := OpenStore(dir, StoreOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	wantBounds(t, s2, 1, 20)
	if strings.Contains(logs.String(), "torn") {
		t.Fatalf("a clean store reported a torn tail:\n%s", logs.String())
	}
}
