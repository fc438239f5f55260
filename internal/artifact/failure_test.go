package artifact

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// lockedBuffer is a slog handler's writer shared with Pebble's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestFailedWALStopsUploads fails the WAL under an upload: Pebble's Fatalf
// is logged at ERROR through Config.Logger with the store and directory,
// the upload fails with ErrFailed instead of the process exiting, every
// later write is refused with it, and what was stored before still reads.
func TestFailedWALStopsUploads(t *testing.T) {
	var failing errorfs.Toggle
	failing.Injector = errorfs.ErrInjected
	inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
		if strings.HasSuffix(op.Path, ".log") && (op.Kind == errorfs.OpFileWrite || op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileSyncData || op.Kind == errorfs.OpFileSyncTo) {
			return failing.MaybeError(op)
		}
		return nil
	})
	var out lockedBuffer
	s, err := Open("store", Config{ChunkSize: MinChunkSize, FS: errorfs.Wrap(vfs.NewMem(), inj), Logger: slog.New(slog.NewTextHandler(&out, nil))})
	if err != nil {
		t.Fatal(err)
	}
	before := randBytes(1, 10_000)
	d, _, err := s.Put(bytes.NewReader(before))
	if err != nil {
		t.Fatal(err)
	}
	failing.On()
	if _, _, err := s.Put(bytes.NewReader(randBytes(2, 10_000))); !errors.Is(err, ErrFailed) {
		t.Fatalf("Put over a failing WAL = %v, want ErrFailed", err)
	}
	failing.Off() // the disk comes back: the store stays failed
	if _, _, err := s.Put(bytes.NewReader(randBytes(3, 100))); !errors.Is(err, ErrFailed) {
		t.Fatalf("Put after a failure = %v, want the sticky ErrFailed", err)
	}
	if err := s.Delete(d); !errors.Is(err, ErrFailed) {
		t.Fatalf("Delete after a failure = %v, want ErrFailed", err)
	}
	if err := s.Healthy(); !errors.Is(err, ErrFailed) {
		t.Fatalf("Healthy = %v, want ErrFailed", err)
	}
	if got, err := s.Get(d); err != nil || !bytes.Equal(got, before) {
		t.Fatalf("Get of an artifact stored before the failure: %d bytes, %v", len(got), err)
	}
	for _, want := range []string{"level=ERROR", "pebble: fatal:", "store=artifact", "dir=store"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("log lacks %q:\n%s", want, out.String())
		}
	}
	done := make(chan struct{})
	go func() { _ = s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Close of a store whose WAL failed hangs")
	}
}
