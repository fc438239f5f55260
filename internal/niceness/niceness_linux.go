package niceness

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
)

func lower(nice int) error {
	runtime.LockOSThread()
	return syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), nice)
}

func threadsAt(nice int) (int, error) {
	stats, err := filepath.Glob("/proc/self/task/*/stat")
	if err != nil {
		return 0, err
	}
	main := filepath.Join("/proc/self/task", strconv.Itoa(os.Getpid()), "stat")
	n := 0
	for _, p := range stats {
		if p == main {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread ended meanwhile
		}
		// Field 19, counted after the command name, which may hold spaces
		// and parentheses.
		f := bytes.Fields(b[bytes.LastIndexByte(b, ')')+1:])
		if len(f) < 17 {
			return 0, fmt.Errorf("niceness: %s: cannot parse %q", p, b)
		}
		if v, err := strconv.Atoi(string(f[16])); err == nil && (nice != 0 && v == nice || nice == 0 && v != 0) {
			n++
		}
	}
	return n, nil
}
