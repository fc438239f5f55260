package pebblelog

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// TestFatalfLogsThenPanicsWithFatal drives a real Pebble DB into Fatalf (a
// commit whose WAL write fails) and checks the policy: one ERROR line naming
// the store and its directory, onFatal told, and a *Fatal panic that Recover
// turns into an error on the commit path.
func TestFatalfLogsThenPanicsWithFatal(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	var failing errorfs.Toggle
	failing.Injector = errorfs.ErrInjected
	inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
		if strings.HasSuffix(op.Path, ".log") && (op.Kind == errorfs.OpFileWrite || op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileSyncData) {
			return failing.MaybeError(op)
		}
		return nil
	})
	var told *Fatal
	db, err := pebble.Open("db", &pebble.Options{FS: errorfs.Wrap(vfs.NewMem(), inj), Logger: New(log, "teststore", "db", func(f *Fatal) { told = f })})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set([]byte("a"), []byte("1"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	failing.On()
	commit := func() (err error) {
		defer Recover(&err)
		return db.Set([]byte("b"), []byte("2"), pebble.Sync)
	}
	err = commit()
	var f *Fatal
	if !errors.As(err, &f) || f.Store != "teststore" || f.Dir != "db" || told != f {
		t.Fatalf("commit with a failing WAL = %v (onFatal got %v), want the *Fatal of teststore in db", err, told)
	}
	line := out.String()
	for _, want := range []string{"level=ERROR", "pebble: fatal: ", "store=teststore", "dir=db", "injected error"} {
		if !strings.Contains(line, want) {
			t.Fatalf("log lacks %q:\n%s", want, line)
		}
	}
}

// TestRecoverPassesOtherPanics: only *Fatal is turned into an error; a bug
// elsewhere still crashes.
func TestRecoverPassesOtherPanics(t *testing.T) {
	defer func() {
		if r := recover(); r != "a bug" {
			t.Fatalf("recovered %v, want the original panic", r)
		}
	}()
	func() (err error) {
		defer Recover(&err)
		panic("a bug")
	}()
}

// TestLevels: Errorf at ERROR, Infof at DEBUG only, nil logger discards.
func TestLevels(t *testing.T) {
	var out bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&out, nil)), "s", "d", nil)
	l.Infof("flushed %d", 1)
	if out.Len() != 0 {
		t.Fatalf("Infof at the default INFO level wrote %q", out.String())
	}
	l.Errorf("background error: %s", "disk full")
	if s := out.String(); !strings.Contains(s, "level=ERROR") || !strings.Contains(s, "pebble: background error: disk full") || !strings.Contains(s, "store=s dir=d") {
		t.Fatalf("Errorf wrote %q", s)
	}
	New(nil, "s", "d", nil).Errorf("nobody hears this") // must not panic
}
