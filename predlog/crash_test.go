package predlog

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const crashEnv = "PREDLOG_CRASH_CHILD_DIR"

// TestCrashChild is the child of TestCrashDurable: it appends in durable
// mode from a few goroutines and prints each acknowledged id, until killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("only runs as the child of TestCrashDurable")
	}
	c := DefaultConfig(dir)
	c.PruneInterval = -1
	c.MemTableSize = 4 << 20 // flushes happen during the run too
	c.IndexRunSize = 256     // index runs are written and merged during the run too
	l, err := Open(c)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	for w := 0; w < 4; w++ {
		go func() {
			g := newDemoGen(uint64(time.Now().UnixNano()) + uint64(w))
			for {
				r := g.next()
				if err := l.AppendDurable(r); err != nil {
					fmt.Println("append:", err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Fprintf(out, "ack %s\n", r.RequestID)
				out.Flush() // the id is printed only after the record is synced
				mu.Unlock()
			}
		}()
	}
	select {} // until SIGKILL
}

// TestCrashDurable SIGKILLs a child appending in durable mode at a random
// moment, reopens its log and finds every id the child acknowledged.
func TestCrashDurable(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	var acked []string
	for round := 0; round < 3; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		// Kill after a random number of acknowledgements, not after a random
		// time: on a busy machine the child may not have started within a
		// few hundred milliseconds, and a round that kills it before its
		// first acknowledgement tests nothing. The child keeps appending
		// while the kill is on its way, so the cut still falls anywhere in
		// its commits.
		killAt := len(acked) + 1 + rng.IntN(300)
		hang := time.NewTimer(hangTimeout)
		before := len(acked)
		for len(acked) < killAt {
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatalf("round %d: the child exited on its own (%v)", round, cmd.Wait())
				}
				if id, ok := strings.CutPrefix(line, "ack "); ok {
					acked = append(acked, id)
				} else if !strings.HasPrefix(line, "=== ") {
					t.Logf("child: %s", line)
				}
			case <-hang.C:
				_ = cmd.Process.Signal(syscall.SIGKILL)
				t.Fatalf("round %d: the child acknowledged %d of %d appends within %s", round, len(acked)-before, killAt-before, hangTimeout)
			}
		}
		hang.Stop()
		_ = cmd.Process.Signal(syscall.SIGKILL)
		for line := range lines { // what the child printed before it died
			if id, ok := strings.CutPrefix(line, "ack "); ok {
				acked = append(acked, id)
			}
		}
		_ = cmd.Wait()
		if len(acked) == before {
			t.Fatalf("round %d: the child acknowledged nothing", round)
		}

		c := DefaultConfig(dir)
		c.PruneInterval = -1
		c.IndexRunSize = 256
		l, err := Open(c)
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		for _, id := range acked {
			if _, err := l.Get(id); err != nil {
				t.Fatalf("round %d: acknowledged record %s: %v", round, id, err)
			}
		}
		if err := closeLog(t, l); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: %d acknowledged records all found after SIGKILL", round, len(acked)-before)
	}
}
