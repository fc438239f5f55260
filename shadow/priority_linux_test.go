package shadow

import (
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/niceness"
)

// threadsAtNice counts this process's threads at the given nice value from
// /proc/self/task/*/stat (field 19, counted after the command name). The
// main thread is left out: when a goroutine locked to it exits, Go parks
// that thread for good instead of ending it.
func threadsAtNice(t *testing.T, nice int) int {
	t.Helper()
	n, err := niceness.ThreadsAt(nice)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitFor polls cond; the deadline is one only a hang exceeds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWorkersRunNiced checks that the workers run on threads of their own
// at the configured nice value and that those threads end with the mirror
// rather than go back to the runtime's pool at that priority.
func TestWorkersRunNiced(t *testing.T) {
	const nice = 17 // no other test uses it
	base := threadsAtNice(t, nice)
	m, err := NewMirror(MirrorConfig{Workers: 3, QueueSize: 1, Nice: nice})
	if err != nil {
		t.Fatal(err)
	}
	// One of the three may have locked the (uncounted) main thread.
	waitFor(t, "three worker threads at nice 17", func() bool { return threadsAtNice(t, nice) >= base+2 })
	if got := threadsAtNice(t, nice); got > base+3 {
		t.Fatalf("%d threads at nice %d, want at most %d: the lowered priority leaked to other threads", got, nice, base+3)
	}
	m.Close()
	waitFor(t, "the niced threads to end with the mirror", func() bool { return threadsAtNice(t, nice) == base })
}
