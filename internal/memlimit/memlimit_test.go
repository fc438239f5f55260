package memlimit

import (
	"math"
	"runtime/debug"
	"strings"
	"testing"
)

func TestSet(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	f := func(spec string, want int64, source string) {
		t.Helper()
		got, src, err := Set(spec)
		if err != nil {
			t.Fatalf("Set(%q): %v", spec, err)
		}
		if got != want || !strings.Contains(src, source) {
			t.Fatalf("Set(%q) = %d from %q, want %d from %q", spec, got, src, want, source)
		}
		if want > 0 && debug.SetMemoryLimit(-1) != want {
			t.Fatalf("Set(%q): the runtime's limit is %d, want %d", spec, debug.SetMemoryLimit(-1), want)
		}
	}
	f("2GiB", 2<<30, "--memory-limit")
	f("512MB", 512e6, "--memory-limit")
	f("off", 0, "off")
	if debug.SetMemoryLimit(-1) != math.MaxInt64 {
		t.Fatal("off left a limit in force")
	}
	auto, source, err := Auto()
	if err != nil || auto <= 0 {
		t.Fatalf("Auto: %d %v", auto, err)
	}
	f("auto", auto, source)
	for _, bad := range []string{"lots", "-1GiB", "1.5GiB"} {
		if _, _, err := Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
}

func TestSetKeepsGOMEMLIMIT(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "3GiB")
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	debug.SetMemoryLimit(3 << 30) // what the runtime read at start
	got, src, err := Set("auto")
	if err != nil || got != 3<<30 || src != "GOMEMLIMIT=3GiB" {
		t.Fatalf("Set(auto) with GOMEMLIMIT set: %d %q %v", got, src, err)
	}
}

var sink [][]byte

// TestReclaimAfterBurst: after a burst of allocations, an idle check (no
// GC cycle since the last one) collects and gives the heap back; a check
// right after a GC cycle, or with the heap near its baseline, does not.
func TestReclaimAfterBurst(t *testing.T) {
	r := &Reclaimer{MinGrowth: 32 << 20}
	r.start()
	if r.Check() {
		t.Fatal("reclaimed with nothing allocated")
	}
	for i := 0; i < 256; i++ {
		sink = append(sink, make([]byte, 1<<20))
	}
	sink = nil // garbage now, and no cycle has collected it yet
	_, before := r.read()
	if r.Check() {
		// The burst itself ran GC cycles: not idle yet.
		t.Fatal("reclaimed right after GC cycles ran")
	}
	if !r.Check() {
		_, held := r.read()
		t.Fatalf("an idle check did not reclaim %d bytes held over a baseline of %d", held, r.baseline)
	}
	_, after := r.read()
	if after > before/2 {
		t.Fatalf("held %d bytes before the reclaim and %d after", before, after)
	}
	if r.Reclaims() != 1 || r.Check() {
		t.Fatalf("reclaims %d; a check at the new baseline must not reclaim again", r.Reclaims())
	}
}

// TestReclaimAgainWhenBurstWasLive: a reclaim that runs while a burst's
// memory is still live (requests draining) does not make that the new
// baseline: once it dies, the next idle check reclaims it.
func TestReclaimAgainWhenBurstWasLive(t *testing.T) {
	r := &Reclaimer{MinGrowth: 32 << 20}
	r.start()
	for i := 0; i < 256; i++ {
		sink = append(sink, make([]byte, 1<<20))
	}
	r.Check() // the burst ran GC cycles: not idle
	if !r.Check() {
		t.Fatal("no reclaim at the first idle check")
	}
	if _, held := r.read(); held < 200<<20 {
		t.Fatalf("the live burst was freed (%d bytes held): the test proves nothing", held)
	}
	sink = nil // the burst's requests are done
	_, before := r.read()
	if !r.Check() {
		t.Fatalf("the burst died after a reclaim and was never reclaimed (held %d, baseline %d)", before, r.baseline)
	}
	if _, after := r.read(); after > before/2 {
		t.Fatalf("held %d bytes before the second reclaim and %d after", before, after)
	}
}
