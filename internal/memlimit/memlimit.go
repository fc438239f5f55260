// Package memlimit sets a node's soft memory limit for the Go heap and
// gives memory back after bursts.
//
// A scoring node's Go heap follows its traffic: a burst of large request
// bodies grows it by hundreds of MB, and after the burst nothing makes the
// runtime collect — an idle process allocates too little to start a GC
// cycle, and Go forces one only every two minutes — so the memory stays
// with the process. Two parts fix that:
//
//   - Set gives the runtime a soft limit (debug.SetMemoryLimit), so the
//     heap collects harder as it nears the limit instead of growing into
//     the OOM killer. The limit is GOMEMLIMIT when set, else a share of the
//     container's (cgroup) memory limit or, without one, of physical
//     memory: the rest is for what the Go limit does not count (ONNX
//     Runtime's sessions, Pebble's caches, the page cache).
//   - Reclaimer collects and returns memory to the OS once a burst is over:
//     when no GC cycle has run for an interval (the process is idle) while
//     the heap holds more than twice what it held after the last reclaim
//     (and at least MinGrowth more).
package memlimit

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Shares of the memory the automatic limit takes.
const (
	// CgroupShare of a container's memory limit: the container's limit is
	// the process's (and its children's) real ceiling.
	CgroupShare = 0.75
	// PhysicalShare of physical memory when no container limit is set:
	// the machine is shared with the page cache and other processes.
	PhysicalShare = 0.5
)

// Set applies the soft memory limit spec names: "auto" (GOMEMLIMIT when
// the environment sets it, else a share of the container's or physical
// memory), "off" (no limit), or a byte count such as 2GiB. It returns the
// limit in force (0 for none) and where it came from, for the start log.
func Set(spec string) (int64, string, error) {
	spec = strings.TrimSpace(spec)
	switch spec {
	case "off", "0":
		debug.SetMemoryLimit(1<<63 - 1)
		return 0, "off", nil
	case "auto", "":
		if env := os.Getenv("GOMEMLIMIT"); env != "" {
			// The runtime parsed it at start; report what it applied.
			return debug.SetMemoryLimit(-1), "GOMEMLIMIT=" + env, nil
		}
		limit, source, err := Auto()
		if err != nil {
			return 0, "", err
		}
		debug.SetMemoryLimit(limit)
		return limit, source, nil
	}
	n, err := ParseBytes(spec)
	if err != nil || n == 0 {
		return 0, "", fmt.Errorf("memlimit: want auto, off or a byte count such as 2GiB, got %q", spec)
	}
	debug.SetMemoryLimit(n)
	return n, "--memory-limit", nil
}

// Auto computes the automatic limit: CgroupShare of the cgroup's memory
// limit when one is set below physical memory, else PhysicalShare of
// physical memory.
func Auto() (int64, string, error) {
	phys, err := physical()
	if err != nil {
		return 0, "", fmt.Errorf("memlimit: cannot read physical memory for the automatic limit (give --memory-limit): %w", err)
	}
	if cg, ok := cgroupLimit(); ok && cg < phys {
		return int64(float64(cg) * CgroupShare), fmt.Sprintf("%.0f%% of the cgroup memory limit (%d bytes)", CgroupShare*100, cg), nil
	}
	return int64(float64(phys) * PhysicalShare), fmt.Sprintf("%.0f%% of physical memory (%d bytes)", PhysicalShare*100, phys), nil
}

// cgroupLimit reads the memory limit of the process's cgroup, v2 or v1.
func cgroupLimit() (int64, bool) {
	for _, path := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0, false
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
			return n, true
		}
	}
	return 0, false
}

func physical() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("memlimit: MemTotal in /proc/meminfo: %w", err)
			}
			return kb << 10, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("memlimit: no MemTotal in /proc/meminfo")
}

// ParseBytes reads a byte count: a number with an optional unit (B, KB,
// MB, GB, TB, KiB, MiB, GiB, TiB). Zero is a count like any other; the
// caller refuses it where it means nothing.
func ParseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
	}
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<63-1)/mult {
		return 0, fmt.Errorf("want a byte count such as 4GiB, 512MiB or 1048576, got %q", s)
	}
	return n * mult, nil
}

// Reclaimer returns memory to the OS after bursts; see the package doc.
type Reclaimer struct {
	// Every is how often it looks. Default 5s: memory comes back within
	// two intervals of a burst's end.
	Every time.Duration
	// MinGrowth is the least growth over the last reclaim worth a reclaim.
	// Default 64 MiB.
	MinGrowth uint64

	reclaims atomic.Uint64
	samples  [4]metrics.Sample
	cycles   uint64
	baseline uint64
}

// Reclaims counts the reclaims done.
func (r *Reclaimer) Reclaims() uint64 { return r.reclaims.Load() }

// Run looks every r.Every until stop is closed.
func (r *Reclaimer) Run(stop <-chan struct{}) {
	r.start()
	t := time.NewTicker(r.Every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			r.Check()
		}
	}
}

// start fills the defaults and takes the first baseline.
func (r *Reclaimer) start() {
	if r.Every <= 0 {
		r.Every = 5 * time.Second
	}
	if r.MinGrowth == 0 {
		r.MinGrowth = 64 << 20
	}
	r.samples[0].Name = "/gc/cycles/total:gc-cycles"
	r.samples[1].Name = "/memory/classes/heap/objects:bytes"
	r.samples[2].Name = "/memory/classes/heap/unused:bytes"
	r.samples[3].Name = "/memory/classes/heap/free:bytes"
	r.cycles, r.baseline = r.read()
}

// read returns the GC cycles so far and the heap the process holds:
// objects live or not yet swept, the unused parts of their spans, and
// free spans not yet returned to the OS.
func (r *Reclaimer) read() (cycles, held uint64) {
	metrics.Read(r.samples[:])
	return r.samples[0].Value.Uint64(), r.samples[1].Value.Uint64() + r.samples[2].Value.Uint64() + r.samples[3].Value.Uint64()
}

// Check reclaims when the process is idle (no GC cycle since the last
// check) and holds more than twice, and MinGrowth more than, what it held
// after the last reclaim. It reports whether it reclaimed.
func (r *Reclaimer) Check() bool {
	cycles, held := r.read()
	idle := cycles == r.cycles
	r.cycles = cycles
	if !idle || held < 2*r.baseline || held-r.baseline < r.MinGrowth {
		return false
	}
	// Two cycles: the first moves what sync.Pools hold to their victim
	// caches, the second frees it; FreeOSMemory's own cycle is the second,
	// and it then returns the free spans to the OS.
	runtime.GC()
	debug.FreeOSMemory()
	prev := r.baseline
	r.cycles, r.baseline = r.read()
	// A reclaim that ran while the end of a burst was still live (requests
	// draining on a loaded machine) must not make that the new normal: the
	// baseline at most doubles per reclaim, so the next idle check collects
	// what has died since, and a heap that really grew is reached in a few
	// reclaims.
	r.baseline = min(r.baseline, 2*prev)
	r.reclaims.Add(1)
	return true
}
