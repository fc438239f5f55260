package predlog

import (
	"runtime"
	"syscall"
)

// lowerPriority moves the calling goroutine to an OS thread of its own and
// sets that thread's nice value. The thread is never unlocked: it ends with
// the goroutine instead of going back to the runtime's pool, where it would
// run other goroutines at the lowered priority (on the main thread, Go parks
// it for good instead, so nothing runs there either). On Linux the nice
// value is a property of each thread (setpriority(2), PRIO_PROCESS with a
// thread id), and threads the runtime starts later do not inherit it: a
// locked thread has a clean one start them.
func lowerPriority(nice int) error {
	runtime.LockOSThread()
	return syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), nice)
}
