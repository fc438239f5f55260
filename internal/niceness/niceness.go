// Package niceness runs background goroutines at a lower CPU priority than
// scoring: the prediction log's committer and indexer and the shadow
// mirror's workers. On Linux a thread's nice value is its own
// (setpriority(2) with PRIO_PROCESS and a thread id), so a goroutine can
// yield the cores to scoring by locking itself to a thread and lowering
// that thread alone.
package niceness

// Lower moves the calling goroutine to an OS thread of its own and sets
// that thread's nice value. The thread is never unlocked: it ends with the
// goroutine instead of going back to the runtime's pool, where it would run
// other goroutines (scoring among them) at the lowered priority; on the
// main thread, Go parks it for good instead, so nothing runs there either.
// Threads the runtime starts later do not inherit the value. Where a
// thread's nice value cannot be set on its own, Lower does nothing and the
// goroutine runs at the process's priority.
func Lower(nice int) error { return lower(nice) }

// ThreadsAt counts this process's threads at nice value nice, or, when nice
// is 0, at any value but 0 (tests use it to check that lowered threads end
// with their goroutines). The main thread is left out: a goroutine locked
// to it leaves it parked at its value when it exits. It reports 0 where
// /proc/self/task does not exist.
func ThreadsAt(nice int) (int, error) { return threadsAt(nice) }
