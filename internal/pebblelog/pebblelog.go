package pebblelog

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
)

// Fatal is the panic value of Logger.Fatalf. A store recovers it on its
// commit path and turns it into a sticky failure (see the package doc);
// any other panic value it re-panics.
type Fatal struct {
	Store string // "predlog", "artifact", "raft store"
	Dir   string // the Pebble directory
	Msg   string // Pebble's message
}

// Error makes a *Fatal usable as an error: it names the store, its
// directory and what Pebble said.
func (f *Fatal) Error() string {
	return fmt.Sprintf("%s: Pebble in %s stopped: %s", f.Store, f.Dir, f.Msg)
}

// Logger is a pebble.Logger writing to a *slog.Logger. Infof goes out at
// DEBUG (Pebble's job reports: flushes, compactions, WAL files), Errorf at
// ERROR, Fatalf at ERROR and then panics (see the package doc). Every line
// carries the attributes store and dir.
type Logger struct {
	log     *slog.Logger
	store   string
	dir     string
	onFatal func(*Fatal)
}

var _ pebble.Logger = (*Logger)(nil)

// New returns the Pebble logger of the store named store (as operators see
// it in the log lines) in dir. A nil log discards every line. onFatal, when
// set, is called by Fatalf after logging and before panicking, on whatever
// goroutine Pebble called it: stores use it to mark themselves failed even
// when the panic ends the process, or is recovered by someone else.
func New(log *slog.Logger, store, dir string, onFatal func(*Fatal)) *Logger {
	if log == nil {
		log = Discard()
	}
	return &Logger{log: log, store: store, dir: dir, onFatal: onFatal}
}

// Discard returns a logger that drops everything: the default of every
// store Config whose Logger is nil.
func Discard() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError + 1}))
}

// Infof implements pebble.Logger: DEBUG, formatted only when enabled.
func (l *Logger) Infof(format string, args ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug("pebble: "+fmt.Sprintf(format, args...), "store", l.store, "dir", l.dir)
	}
}

// Errorf implements pebble.Logger: ERROR. Pebble reports background errors
// (a failed flush or compaction, a file it could not delete) here.
func (l *Logger) Errorf(format string, args ...any) {
	l.log.Error("pebble: "+fmt.Sprintf(format, args...), "store", l.store, "dir", l.dir)
}

// Fatalf implements pebble.Logger: it logs at ERROR, calls onFatal, and
// panics with a *Fatal.
func (l *Logger) Fatalf(format string, args ...any) {
	f := &Fatal{Store: l.store, Dir: l.dir, Msg: fmt.Sprintf(format, args...)}
	l.log.Error("pebble: fatal: "+f.Msg+" (writes to this store stop; restart the node once the disk or directory is fixed)", "store", l.store, "dir", l.dir)
	if l.onFatal != nil {
		l.onFatal(f)
	}
	panic(f)
}

// Recover turns a *Fatal panic into an error; it is meant to be deferred
// around a store's commit: defer pebblelog.Recover(&err). Any other panic
// goes on.
func Recover(err *error) {
	if r := recover(); r != nil {
		f, ok := r.(*Fatal)
		if !ok {
			panic(r)
		}
		*err = f
	}
}
