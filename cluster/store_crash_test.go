package cluster

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"
)

// The crash tests write raft log entries whose every field follows from the
// index, so a reader can check each entry it finds.

func crashEntry(i uint64) *raft.Log {
	return &raft.Log{
		Index:      i,
		Term:       1 + i/100,
		Type:       raft.LogCommand,
		Data:       crashPayload(i),
		Extensions: []byte{byte(i)},
		AppendedAt: time.Unix(int64(i), 0),
	}
}

func crashPayload(i uint64) []byte {
	return bytes.Repeat([]byte(strconv.FormatUint(i, 10)+";"), int(i%50))
}

// crashWriter appends batches of 1–16 entries after the store's last one,
// each with the commit index staged as raft stages it (the last entry
// before the batch: a follower learns an entry committed after storing
// it), every few batches deletes the log's head (as compaction after a
// snapshot does) and raises CurrentTerm. ack is told what each call made durable,
// after it returned.
func crashWriter(s *Store, rng *rand.Rand, stop <-chan struct{}, ack func(kind string, a, b uint64)) error {
	for n := 0; ; n++ {
		select {
		case <-stop:
			return nil
		default:
		}
		last, err := s.LastIndex()
		if err != nil {
			return err
		}
		from, to := last+1, last+1+uint64(rng.IntN(16))
		logs := make([]*raft.Log, 0, to-from+1)
		for i := from; i <= to; i++ {
			logs = append(logs, crashEntry(i))
		}
		if err := s.StageCommitIndex(last); err != nil {
			return err
		}
		if err := s.StoreLogs(logs); err != nil {
			return err
		}
		ack("ok", from, to) // and commit index from-1
		if n%10 == 9 {
			if err := s.SetUint64([]byte("CurrentTerm"), to); err != nil {
				return err
			}
			ack("term", to, to)
		}
		if n%25 == 24 && to > 300 {
			first, err := s.FirstIndex()
			if err != nil {
				return err
			}
			if err := s.DeleteRange(first, to-200); err != nil {
				return err
			}
			ack("del", first, to-200)
		}
	}
}

// crashAcks is what a writer acknowledged before the crash.
type crashAcks struct {
	last  uint64 // highest acknowledged index
	delHi uint64 // highest index an acknowledged DeleteRange removed
	term  uint64 // highest acknowledged CurrentTerm
	// commit is the highest commit index persisted with acknowledged
	// entries.
	commit uint64
	// writtenBy is the highest index the writer had acknowledged when the
	// crash happened, which may be above last when the writer went on
	// while the crash was taken (0: last). A delete in flight at the crash
	// reaches at most 200 below it.
	writtenBy uint64
}

// checkAfterCrash opens the store in dir on fs and checks that it holds
// every acknowledged write, contiguously, and nothing a delete removed.
func checkAfterCrash(t *testing.T, dir string, fs vfs.FS, acks crashAcks) (first, last uint64) {
	t.Helper()
	s, err := OpenStore(dir, StoreOptions{Logger: testLogger(), FS: fs})
	if err != nil {
		t.Fatalf("reopen after crash: %v", err)
	}
	defer s.Close()
	if first, err = s.FirstIndex(); err != nil {
		t.Fatal(err)
	}
	if last, err = s.LastIndex(); err != nil {
		t.Fatal(err)
	}
	if last < acks.last {
		t.Fatalf("after crash LastIndex = %d, but %d was acknowledged", last, acks.last)
	}
	if acks.delHi > 0 && first <= acks.delHi {
		t.Fatalf("after crash FirstIndex = %d, but entries up to %d were deleted (acknowledged)", first, acks.delHi)
	}
	// A delete in flight at the crash may or may not have happened; the
	// writer deletes only up to 200 below the last entry it wrote.
	writtenBy := max(acks.last, acks.writtenBy)
	if headMax := max(acks.delHi+1, writtenBy-min(writtenBy, 199)); acks.last > 0 && (first == 0 || first > headMax) {
		t.Fatalf("after crash FirstIndex = %d, want at most %d (acknowledged entries lost at the head)", first, headMax)
	}
	for i := first; i <= last; i++ { // contiguous, every entry intact
		var got raft.Log
		if err := s.GetLog(i, &got); err != nil {
			t.Fatalf("after crash (log %d–%d) GetLog(%d): %v", first, last, i, err)
		}
		want := crashEntry(i)
		if got.Index != i || got.Term != want.Term || got.Type != want.Type || !bytes.Equal(got.Data, want.Data) ||
			!bytes.Equal(got.Extensions, want.Extensions) || !got.AppendedAt.Equal(want.AppendedAt) {
			t.Fatalf("after crash entry %d = %+v, want %+v", i, got, want)
		}
	}
	// The commit index went in the batches of the entries, so whatever a
	// crash kept, it names no entry beyond the log — unclamped.
	commit, err := s.readCommitIndex()
	if err != nil {
		t.Fatalf("after crash: %v", err)
	}
	if commit > last || commit < acks.commit {
		t.Fatalf("after crash the persisted commit index is %d (log %d–%d); want at most the last index and at least the acknowledged %d", commit, first, last, acks.commit)
	}
	if acks.term > 0 {
		term, err := s.GetUint64([]byte("CurrentTerm"))
		if err != nil || term < acks.term {
			t.Fatalf("after crash CurrentTerm = %d, %v; %d was acknowledged", term, err, acks.term)
		}
	}
	return first, last
}

const crashEnv = "CLUSTER_STORE_CRASH_DIR"

// TestStoreCrashChild is the child process of TestStoreSIGKILL: it writes
// until it is killed, printing each acknowledged write.
func TestStoreCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("runs as TestStoreSIGKILL's child")
	}
	s, err := OpenStore(dir, StoreOptions{Logger: testLogger()})
	if err != nil {
		fmt.Println("crash: error", err)
		os.Exit(2)
	}
	ack := func(kind string, a, b uint64) {
		// One unbuffered write per line: what the parent reads was printed
		// after the call returned.
		fmt.Fprintf(os.Stdout, "crash: %s %d %d\n", kind, a, b)
	}
	err = crashWriter(s, rand.New(rand.NewPCG(uint64(os.Getpid()), 1)), nil, ack)
	fmt.Println("crash: error", err)
	os.Exit(2)
}

// TestStoreSIGKILL kills a writing child process at random moments and
// checks, after each kill, that every write it acknowledged is there and the
// log is contiguous. (A SIGKILL loses what the process had not handed to the
// kernel; TestStorePowerLoss covers what the kernel had not synced.)
func TestStoreSIGKILL(t *testing.T) {
	if os.Getenv(crashEnv) != "" {
		t.Skip("child")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	var acks crashAcks
	rounds := 6
	if testing.Short() {
		rounds = 2
	}
	for round := range rounds {
		cmd := exec.Command(os.Args[0], "-test.run=^TestStoreCrashChild$")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		var killed atomic.Bool
		acked := 0
		wait := time.Duration(20+rng.IntN(250)) * time.Millisecond
		var killTimer *time.Timer
		timeout := time.AfterFunc(60*time.Second, func() { _ = cmd.Process.Kill() })
		for line := range lines {
			kind, a, b, ok := parseAck(line)
			if !ok {
				if strings.HasPrefix(line, "crash: error") {
					t.Errorf("round %d: child: %s", round, line)
				}
				continue
			}
			switch kind {
			case "ok":
				acks.last = max(acks.last, b)
				acks.commit = max(acks.commit, a-1)
			case "del":
				acks.delHi = max(acks.delHi, b)
			case "term":
				acks.term = max(acks.term, a)
			}
			if acked++; acked == 1 { // the child is writing: kill it soon
				killTimer = time.AfterFunc(wait, func() {
					killed.Store(true)
					_ = cmd.Process.Kill() // SIGKILL
				})
			}
		}
		timeout.Stop()
		_ = cmd.Wait()
		if killTimer != nil {
			killTimer.Stop()
		}
		if !killed.Load() {
			t.Fatalf("round %d: the child stopped before it was killed (%d acks)", round, acked)
		}
		first, last := checkAfterCrash(t, dir, nil, acks)
		t.Logf("round %d: killed after %v and %d acks; log %d–%d, acknowledged up to %d", round, wait, acked, first, last, acks.last)
	}
}

func parseAck(line string) (kind string, a, b uint64, ok bool) {
	f := strings.Fields(line)
	if len(f) != 4 || f[0] != "crash:" {
		return "", 0, 0, false
	}
	a, err1 := strconv.ParseUint(f[2], 10, 64)
	b, err2 := strconv.ParseUint(f[3], 10, 64)
	return f[1], a, b, err1 == nil && err2 == nil
}

// TestStorePowerLoss simulates power failures: while a writer runs, it takes
// crash clones of an in-memory filesystem holding everything synced and a
// random part of what was not, and checks each holds every write
// acknowledged before the clone was taken.
func TestStorePowerLoss(t *testing.T) {
	fs := vfs.NewCrashableMem()
	s, err := OpenStore("db", StoreOptions{Logger: testLogger(), FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var mu sync.Mutex
	var acks crashAcks
	stop := make(chan struct{})
	werr := make(chan error, 1)
	go func() {
		werr <- crashWriter(s, rand.New(rand.NewPCG(1, 2)), stop, func(kind string, a, b uint64) {
			mu.Lock()
			defer mu.Unlock()
			switch kind {
			case "ok":
				acks.last = b
				acks.commit = a - 1
			case "del":
				acks.delHi = b
			case "term":
				acks.term = a
			}
		})
	}()
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 8 {
		time.Sleep(time.Duration(5+rng.IntN(40)) * time.Millisecond)
		mu.Lock()
		before := acks // acknowledged before the crash
		mu.Unlock()
		clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101), RNG: rand.New(rand.NewPCG(uint64(round), 5))})
		// The writer went on while the clone was taken (hundreds of
		// entries on a busy machine): its deletes in that time may be in
		// the clone too.
		mu.Lock()
		before.writtenBy = acks.last
		mu.Unlock()
		first, last := checkAfterCrash(t, "db", clone, before)
		t.Logf("power loss %d: log %d–%d, acknowledged up to %d", round, first, last, before.last)
	}
	close(stop)
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
}
