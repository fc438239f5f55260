package niceness

import (
	"testing"
	"time"
)

// TestLowerIsPerThreadAndEndsWithTheGoroutine: a lowered goroutine's thread
// alone takes the value, and it ends when the goroutine does.
func TestLowerIsPerThreadAndEndsWithTheGoroutine(t *testing.T) {
	const nice = 11
	count := func() int {
		n, err := ThreadsAt(nice)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	base := count()
	lowered, stop, done := make(chan error), make(chan struct{}), make(chan struct{})
	for range 2 {
		go func() {
			defer func() { done <- struct{}{} }()
			lowered <- Lower(nice)
			<-stop
		}()
	}
	for range 2 {
		if err := <-lowered; err != nil {
			t.Fatal(err)
		}
	}
	// One of the two may have locked the (uncounted) main thread.
	if got := count(); got < base+1 || got > base+2 {
		t.Fatalf("%d threads at nice %d with two lowered goroutines, want %d or %d", got, nice, base+1, base+2)
	}
	close(stop)
	<-done
	<-done
	for deadline := time.Now().Add(time.Minute); count() != base; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the lowered threads outlived their goroutines by a minute (%d left at nice %d)", count()-base, nice)
		}
	}
}
