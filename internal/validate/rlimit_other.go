//go:build !linux

package validate

import (
	"errors"
	"syscall"
)

// LimitMemory is only implemented on Linux, where RLIMIT_AS is enforced.
// Elsewhere it fails for n > 0, so the gate never runs without the limit
// asked for; pass n <= 0 (--max-memory 0) to run without one.
func LimitMemory(n int64) error {
	if n <= 0 {
		return nil
	}
	return errors.New("validate: memory limits (RLIMIT_AS) are only supported on Linux: use --max-memory 0 to run without one")
}

func childAttr() *syscall.SysProcAttr { return nil }
