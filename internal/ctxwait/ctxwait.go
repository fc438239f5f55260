// Package ctxwait waits for blocking work within a context's deadline: what
// a node's shutdown does for each of its parts.
package ctxwait

import "context"

// Wait runs wait and reports whether it returned before ctx ended; when it
// did not, wait goes on in the background (the process is exiting).
func Wait(ctx context.Context, wait func()) bool {
	done := make(chan struct{})
	go func() {
		wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		select {
		case <-done: // finished as the deadline came: not late
			return true
		default:
			return false
		}
	}
}
