package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/hashicorp/raft"
)

// The expectations hashicorp/raft has of its LogStore and StableStore, read
// from how it calls them (api.go, raft.go, replication.go, log.go), and the
// behaviours raft-boltdb's own tests check.

func openTestStore(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := OpenStore(dir, StoreOptions{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func testLog(index uint64, data string) *raft.Log {
	return &raft.Log{Index: index, Term: 1, Data: []byte(data)}
}

func storeLogs(t testing.TB, s *Store, from, to uint64) []*raft.Log {
	t.Helper()
	var logs []*raft.Log
	for i := from; i <= to; i++ {
		logs = append(logs, testLog(i, fmt.Sprint("log", i)))
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	return logs
}

func wantBounds(t testing.TB, s *Store, first, last uint64) {
	t.Helper()
	f, err := s.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	if f != first || l != last {
		t.Fatalf("FirstIndex, LastIndex = %d, %d; want %d, %d", f, l, first, last)
	}
}

// wantMissing checks GetLog returns raft.ErrLogNotFound itself: raft's
// replication compares it with == (replication.go: err == ErrLogNotFound)
// to decide to send a snapshot instead.
func wantMissing(t testing.TB, s *Store, index uint64) {
	t.Helper()
	if err := s.GetLog(index, new(raft.Log)); err != raft.ErrLogNotFound {
		t.Fatalf("GetLog(%d) = %v, want raft.ErrLogNotFound itself", index, err)
	}
}

func TestStoreEmpty(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	wantBounds(t, s, 0, 0)
	wantMissing(t, s, 0)
	wantMissing(t, s, 1)
	if err := s.StoreLogs(nil); err != nil {
		t.Fatal(err)
	}
	wantBounds(t, s, 0, 0)
}

func TestStoreLogs(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	logs := storeLogs(t, s, 1, 3)
	wantBounds(t, s, 1, 3)
	for _, want := range logs {
		var got raft.Log
		if err := s.GetLog(want.Index, &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(&got, want) {
			t.Fatalf("GetLog(%d) = %+v, want %+v", want.Index, got, want)
		}
	}
	wantMissing(t, s, 4)

	// StoreLog, and the caller's struct is overwritten whole.
	one := &raft.Log{Index: 4, Term: 2, Type: raft.LogNoop}
	if err := s.StoreLog(one); err != nil {
		t.Fatal(err)
	}
	got := raft.Log{Data: []byte("stale"), Extensions: []byte("stale")}
	if err := s.GetLog(4, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, one) {
		t.Fatalf("GetLog(4) = %+v, want %+v", got, one)
	}
	wantBounds(t, s, 1, 4)
}

func TestStoreOverwrite(t *testing.T) {
	// A follower whose tail conflicts with the leader's has it deleted and
	// rewritten (raft.go appendEntries); a rewrite may also land directly.
	s := openTestStore(t, t.TempDir())
	storeLogs(t, s, 1, 5)
	if err := s.DeleteRange(4, 5); err != nil {
		t.Fatal(err)
	}
	wantBounds(t, s, 1, 3)
	if err := s.StoreLogs([]*raft.Log{{Index: 3, Term: 7, Data: []byte("new")}, {Index: 4, Term: 7}}); err != nil {
		t.Fatal(err)
	}
	var got raft.Log
	if err := s.GetLog(3, &got); err != nil || got.Term != 7 || string(got.Data) != "new" {
		t.Fatalf("GetLog(3) = %+v, %v; want the rewritten entry", got, err)
	}
	wantBounds(t, s, 1, 4)
}

func TestStoreDeleteRange(t *testing.T) {
	f := func(first, last, min, max uint64, wantFirst, wantLast uint64) {
		t.Helper()
		s := openTestStore(t, t.TempDir())
		storeLogs(t, s, first, last)
		if err := s.DeleteRange(min, max); err != nil {
			t.Fatal(err)
		}
		wantBounds(t, s, wantFirst, wantLast)
		for i := first; i <= last; i++ {
			err := s.GetLog(i, new(raft.Log))
			if deleted := i >= min && i <= max; deleted != (err == raft.ErrLogNotFound) {
				t.Fatalf("DeleteRange(%d, %d): GetLog(%d) = %v", min, max, i, err)
			}
		}
	}
	f(1, 3, 1, 2, 3, 3)               // raft-boltdb's case: inclusive
	f(1, 10, 1, 7, 8, 10)             // compaction after a snapshot
	f(1, 10, 6, 10, 1, 5)             // a follower's conflicting tail
	f(1, 10, 1, 10, 0, 0)             // everything
	f(5, 10, 0, math.MaxUint64, 0, 0) // the whole key space
	f(1, 10, 4, 4, 1, 10)             // one entry (a hole)
	f(1, 10, 7, 3, 1, 10)             // min > max: nothing
	f(1, 10, 11, 20, 1, 10)           // beyond the end
	f(1, 3, math.MaxUint64, math.MaxUint64, 1, 3)
}

func TestStoreGaps(t *testing.T) {
	// After installing a snapshot raft may write entries past a gap (it
	// does not ask for MonotonicLogStore, which this store does not claim).
	s := openTestStore(t, t.TempDir())
	storeLogs(t, s, 1, 3)
	storeLogs(t, s, 100, 102)
	wantBounds(t, s, 1, 102)
	wantMissing(t, s, 50)
	if _, ok := any(s).(raft.MonotonicLogStore); ok {
		t.Fatal("Store claims MonotonicLogStore")
	}
}

func TestStoreStable(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	// raft compares the missing-key error by its text (api.go, raft.go).
	if v, err := s.Get([]byte("bad")); err == nil || err.Error() != "not found" || v != nil {
		t.Fatalf("Get(missing) = %q, %v; want nil, \"not found\"", v, err)
	}
	if v, err := s.GetUint64([]byte("bad")); err == nil || err.Error() != "not found" || v != 0 {
		t.Fatalf("GetUint64(missing) = %d, %v; want 0, \"not found\"", v, err)
	}
	if err := s.Set([]byte("hello"), []byte("world")); err != nil {
		t.Fatal(err)
	}
	v, err := s.Get([]byte("hello"))
	if err != nil || string(v) != "world" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	v[0] = 'W' // the caller owns the copy
	if v, _ := s.Get([]byte("hello")); string(v) != "world" {
		t.Fatalf("Get after modifying a returned value = %q", v)
	}
	if err := s.Set([]byte("empty"), nil); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get([]byte("empty")); err != nil || len(v) != 0 {
		t.Fatalf("Get(empty) = %q, %v", v, err)
	}
	for _, x := range []uint64{0, 123, math.MaxUint64} {
		if err := s.SetUint64([]byte("abc"), x); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetUint64([]byte("abc")); err != nil || got != x {
			t.Fatalf("GetUint64 = %d, %v; want %d", got, err, x)
		}
	}
	// Stable keys and log entries do not see each other.
	wantBounds(t, s, 0, 0)
	if err := s.Set([]byte("x"), []byte("abc")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetUint64([]byte("x")); !errors.Is(err, ErrCorruptLog) {
		t.Fatalf("GetUint64 of a 3-byte value = %v, want ErrCorruptLog", err)
	}
}

func TestStoreHasExistingState(t *testing.T) {
	// raft.HasExistingState decides whether a node may bootstrap.
	dir := t.TempDir()
	s := openTestStore(t, filepath.Join(dir, "log"))
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 1, newHCLog(testLogger(), "snap"))
	if err != nil {
		t.Fatal(err)
	}
	if has, err := raft.HasExistingState(s, s, snaps); err != nil || has {
		t.Fatalf("fresh store: HasExistingState = %v, %v", has, err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 1); err != nil {
		t.Fatal(err)
	}
	if has, err := raft.HasExistingState(s, s, snaps); err != nil || !has {
		t.Fatalf("after setting the term: HasExistingState = %v, %v", has, err)
	}
}

func TestStoreReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir, StoreOptions{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	logs := storeLogs(t, s, 1, 100)
	if err := s.DeleteRange(1, 10); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 9); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStore(dir, StoreOptions{Logger: testLogger()}); err == nil {
		t.Fatal("a second OpenStore of an open dir succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.LastIndex(); err != ErrStoreClosed {
		t.Fatalf("LastIndex after Close = %v", err)
	}
	if err := s.StoreLog(testLog(101, "x")); err != ErrStoreClosed {
		t.Fatalf("StoreLog after Close = %v", err)
	}

	s = openTestStore(t, dir)
	wantBounds(t, s, 11, 100)
	for _, want := range logs[10:] {
		var got raft.Log
		if err := s.GetLog(want.Index, &got); err != nil || !reflect.DeepEqual(&got, want) {
			t.Fatalf("after reopen GetLog(%d) = %+v, %v", want.Index, got, err)
		}
	}
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 9 {
		t.Fatalf("after reopen CurrentTerm = %d, %v", v, err)
	}
}

func TestStoreConcurrent(t *testing.T) {
	// Raft reads entries (replication, the FSM) while it appends.
	s := openTestStore(t, t.TempDir())
	storeLogs(t, s, 1, 1)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				last, err := s.LastIndex()
				if err != nil {
					t.Error(err)
					return
				}
				var l raft.Log
				if err := s.GetLog(last, &l); err != nil || l.Index != last {
					t.Errorf("GetLog(LastIndex %d) = %+v, %v", last, l, err)
					return
				}
			}
		})
	}
	for i := uint64(2); i <= 60; i += 3 {
		storeLogs(t, s, i, i+2)
	}
	close(stop)
	wg.Wait()
	wantBounds(t, s, 1, 61)
}

func TestStoreFailedSyncStopsAcks(t *testing.T) {
	// A WAL write or sync that fails must not be acknowledged, and nothing
	// after it either (etcd's rule): the store turns sticky-failed.
	var failing errorfs.Toggle
	inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
		switch op.Kind {
		case errorfs.OpFileWrite, errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
			if filepath.Ext(op.Path) == ".log" {
				return failing.MaybeError(op)
			}
		}
		return nil
	})
	failing.Injector = errorfs.ErrInjected
	s, err := OpenStore("db", StoreOptions{Logger: testLogger(), FS: errorfs.Wrap(vfs.NewMem(), inj)})
	if err != nil {
		t.Fatal(err)
	}
	storeLogs(t, s, 1, 3)
	if err := s.Healthy(); err != nil {
		t.Fatal(err)
	}
	failing.On()
	if err := s.StoreLogs([]*raft.Log{testLog(4, "lost")}); !errors.Is(err, ErrStoreFailed) {
		t.Fatalf("StoreLogs with a failing WAL = %v, want ErrStoreFailed", err)
	} else {
		t.Logf("StoreLogs with a failing WAL: %v", err)
	}
	failing.Off()
	if err := s.StoreLogs([]*raft.Log{testLog(5, "after")}); !errors.Is(err, ErrStoreFailed) {
		t.Fatalf("StoreLogs after a failure = %v, want the sticky ErrStoreFailed", err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 2); !errors.Is(err, ErrStoreFailed) {
		t.Fatalf("SetUint64 after a failure = %v, want ErrStoreFailed", err)
	}
	if err := s.Healthy(); !errors.Is(err, ErrStoreFailed) {
		t.Fatalf("Healthy = %v", err)
	}
	// Reads of what was acknowledged still work.
	if err := s.GetLog(3, new(raft.Log)); err != nil {
		t.Fatal(err)
	}
	// Closing a store whose WAL failed may report the failure; it must not hang.
	done := make(chan struct{})
	go func() { _ = s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close of a failed store hangs")
	}
}

func TestStoreLogBytesCopied(t *testing.T) {
	// GetLog must copy out of Pebble's buffers; StoreLogs must not keep the
	// caller's slices.
	s := openTestStore(t, t.TempDir())
	data := []byte("original")
	if err := s.StoreLog(&raft.Log{Index: 1, Data: data, Extensions: []byte("ext")}); err != nil {
		t.Fatal(err)
	}
	copy(data, "CHANGED!")
	var a raft.Log
	if err := s.GetLog(1, &a); err != nil {
		t.Fatal(err)
	}
	storeLogs(t, s, 2, 200) // churn Pebble's memory
	if !bytes.Equal(a.Data, []byte("original")) || !bytes.Equal(a.Extensions, []byte("ext")) {
		t.Fatalf("GetLog(1) = %q %q", a.Data, a.Extensions)
	}
}
