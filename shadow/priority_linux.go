package shadow

import (
	"runtime"
	"syscall"
)

// lowerPriority moves the calling goroutine to an OS thread of its own and
// sets that thread's nice value. The thread is never unlocked: it ends with
// the goroutine instead of going back to the runtime's pool, where it would
// run other goroutines (scoring among them) at the lowered priority. On
// Linux the nice value belongs to each thread (setpriority(2), PRIO_PROCESS
// with a thread id), and threads the runtime starts later do not inherit it.
//
// A copy of predlog's helper (predlog/priority_linux.go), kept here because
// shadow may not import predlog; a shared internal/ package can replace both
// when predlog is next touched.
func lowerPriority(nice int) error {
	runtime.LockOSThread()
	return syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), nice)
}
