package gateway

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// guardedPair returns a loopback TCP connection accepted through a
// connGuard, and the client's end.
func guardedPair(t *testing.T) (*guardedConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := newConnGuard(ln, 8, 8, NewMetrics())
	t.Cleanup(func() { g.Close() })
	client, err := net.DialTimeout("tcp", ln.Addr().String(), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	c, err := g.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*guardedConn), client
}

// TestGuardedConnPastDeadlineFailsNextRead: a read deadline recorded for
// the next Read still fails it once past, even with data waiting, as a
// deadline given to the socket at once would.
func TestGuardedConnPastDeadlineFailsNextRead(t *testing.T) {
	c, client := guardedPair(t)
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if n, err := c.Read(b[:]); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past its deadline: %d bytes, err %v; want os.ErrDeadlineExceeded", n, err)
	}
	// The latest deadline wins: a past one replaced by a later one before
	// the Read does not fail it.
	_ = c.SetReadDeadline(time.Now().Add(-time.Second))
	if err := c.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(b[:]); err != nil || n != 1 || b[0] != 'x' {
		t.Fatalf("Read under a later deadline: %d %q %v, want the waiting byte", n, b[:n], err)
	}
}

// TestGuardedConnDeadlineInterruptsBlockedRead: a deadline set while a Read
// is blocked applies at once and ends that Read.
func TestGuardedConnDeadlineInterruptsBlockedRead(t *testing.T) {
	c, _ := guardedPair(t)
	done := make(chan error, 1)
	go func() {
		var b [1]byte
		_, err := c.Read(b[:])
		done <- err
	}()
	// Wait for the Read to have started; whether it has parked yet does
	// not matter, the socket has the deadline either way.
	for wait := time.Now().Add(30 * time.Second); ; {
		c.mu.Lock()
		reading := c.reading
		c.mu.Unlock()
		if reading {
			break
		}
		if time.Now().After(wait) {
			t.Fatal("the Read never started")
		}
		time.Sleep(time.Millisecond)
	}
	if err := c.SetReadDeadline(time.Now()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("blocked Read ended with %v, want os.ErrDeadlineExceeded", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a deadline set during a blocked Read never ended it")
	}
}
