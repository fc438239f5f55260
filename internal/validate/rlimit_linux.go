package validate

import (
	"fmt"
	"syscall"
)

// LimitMemory caps this process's address space at n bytes (RLIMIT_AS,
// soft and hard, so it cannot be raised again). `modelgate validate` calls
// it first thing, before ONNX Runtime is loaded: past the limit mmap and
// malloc fail, so a model that makes ONNX Runtime allocate without bound
// fails its load (or crashes the child) instead of exhausting the machine.
// n <= 0 leaves the limit alone.
func LimitMemory(n int64) error {
	if n <= 0 {
		return nil
	}
	lim := syscall.Rlimit{Cur: uint64(n), Max: uint64(n)}
	if err := syscall.Setrlimit(syscall.RLIMIT_AS, &lim); err != nil {
		return fmt.Errorf("validate: cannot limit the address space to %d bytes: %w", n, err)
	}
	return nil
}

// childAttr kills the child when the process that started it dies, so a
// validator never outlives a crashed server. (Linux sends it when the
// thread that started the child exits; Go only ends threads of goroutines
// that exit while locked with runtime.LockOSThread, which Run never is.)
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
