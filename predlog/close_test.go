package predlog

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// hangTimeout bounds every wait in these tests that only a bug can make
// long: a Close, a durable append, a background condition. Close takes
// milliseconds even under the race detector on a busy machine; a minute is
// a hang. A planted bug in the committer once deadlocked the package in
// cleanup until go test's 15-minute timeout.
const hangTimeout = time.Minute

// hung is set once a wait has hung, just before the panic.
var hung atomic.Bool

// closeLog closes l, failing fast when Close hangs: it prints every
// goroutine (the stuck committer or waiter is among them) and panics, which
// ends the test binary at once instead of leaving each later test to hang
// in turn.
func closeLog(t testing.TB, l *Log) error {
	t.Helper()
	if hung.Load() {
		// The panic below is unwinding through this test's cleanups: a
		// second Close of the same log would only wait as long again.
		return errors.New("predlog test: not closed, an earlier wait hung")
	}
	var err error
	within(t, "Close", func() { err = l.Close() })
	return err
}

// within runs f and panics with every goroutine's stack when it has not
// returned after hangTimeout.
func within(t testing.TB, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	timer := time.NewTimer(hangTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		hung.Store(true)
		buf := make([]byte, 4<<20)
		buf = buf[:runtime.Stack(buf, true)]
		fmt.Fprintf(os.Stderr, "predlog test %s: %s did not return within %s; goroutines:\n%s\n", t.Name(), what, hangTimeout, buf)
		panic(fmt.Sprintf("predlog test %s: %s did not return within %s: a deadlock (goroutines above)", t.Name(), what, hangTimeout))
	}
}

// TestCloseLogBounded: closing twice (the test, then its cleanup) returns
// at once both times, with Close's own answer.
func TestCloseLogBounded(t *testing.T) {
	l := openLog(t, testConfig(t))
	if err := l.Append(newDemoGen(1).next()); err != nil {
		t.Fatal(err)
	}
	if err := closeLog(t, l); err != nil {
		t.Fatal(err)
	}
	if err := closeLog(t, l); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// recv receives from ch within hangTimeout (see within).
func recv[T any](t testing.TB, what string, ch <-chan T) T {
	t.Helper()
	var v T
	within(t, what, func() { v = <-ch })
	return v
}
