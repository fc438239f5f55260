package predlog

import (
	"testing"

	"github.com/modelgate/modelgate/internal/niceness"
)

// nicedThreads counts this process's threads at the given nice value (any
// but 0 when nice is 0), from /proc/self/task/*/stat (field 19, counted after
// the command name, which may hold spaces and parentheses). The main thread
// is left out: when a goroutine locked to it exits, Go parks that thread for
// good instead of ending it, so it keeps the nice value but runs nothing.
func nicedThreads(t *testing.T, nice int) int {
	t.Helper()
	n, err := niceness.ThreadsAt(nice)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBackgroundThreadsRunNiced checks that the committer and the indexer
// run on threads of their own at BackgroundNice, that those threads end with
// the log rather than go back to the runtime's pool at that priority, and
// that a negative BackgroundNice leaves every thread alone.
func TestBackgroundThreadsRunNiced(t *testing.T) {
	const nice = 13
	// Earlier tests' logs are closed, but their threads end a moment after
	// Close returns.
	waitFor(t, "the threads of earlier tests' logs to end", func() bool { return nicedThreads(t, 0) == 0 })
	base := nicedThreads(t, nice)
	c := testConfig(t)
	c.BackgroundNice = nice
	l, err := Open(c)
	if err != nil {
		t.Fatal(err)
	}
	// The main thread is not counted: one of the two may run there.
	waitFor(t, "the committer and the indexer on threads at nice 13", func() bool {
		return nicedThreads(t, nice) >= base+BackgroundThreads-1
	})
	g := newDemoGen(3)
	for range 100 {
		if err := l.AppendDurable(g.next()); err != nil {
			t.Fatal(err)
		}
	}
	if got := nicedThreads(t, nice); got < base+BackgroundThreads-1 || got > base+BackgroundThreads {
		t.Fatalf("%d threads at nice %d while the log works, want %d (or one less, if one runs on the main thread)", got, nice, base+BackgroundThreads)
	}
	if err := closeLog(t, l); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the niced threads to end with the log", func() bool { return nicedThreads(t, nice) == base })

	c = testConfig(t)
	c.BackgroundNice = -1
	base = nicedThreads(t, 0)
	if base != 0 {
		t.Fatalf("%d niced threads left after the niced log's ended", base)
	}
	l = openLog(t, c)
	for range 100 {
		if err := l.AppendDurable(g.next()); err != nil {
			t.Fatal(err)
		}
	}
	if got := nicedThreads(t, 0); got != base {
		t.Fatalf("%d niced threads with BackgroundNice -1, want %d as before Open", got, base)
	}
}
