package cluster

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/modelgate/modelgate/registry"
)

func applyFSM(t testing.TB, f *FSM, index uint64, c registry.Command) *ApplyResponse {
	t.Helper()
	resp, ok := f.Apply(encodeLog(t, index, c)).(*ApplyResponse)
	if !ok {
		t.Fatalf("Apply returned %T", resp)
	}
	return resp
}

func TestFSMApplyMatchesRegistry(t *testing.T) {
	// The FSM is the registry behind a decode: the same commands give the
	// same results, the same errors and the same state.
	c := newCmds()
	seq := story(c, "fraud")
	seq = append(seq,
		c.cmd(&registry.PromoteArgs{Model: "fraud", Version: 9}),                                // refused: no v9
		c.cmd(&registry.DeleteVersionArgs{Model: "fraud", Version: 2}),                          // refused: the champion
		c.cmd(&registry.SetStageArgs{Model: "fraud", Version: 3, Stage: "canary", Weight: 101}), // refused: weight
		seq[2], // a retry of register v2: Replayed
	)
	f := NewFSM(testLogger())
	direct := registry.New()
	for i, cmd := range seq {
		resp := applyFSM(t, f, uint64(i+1), cmd)
		want, wantErr := direct.Apply(cmd)
		if resp.Result != want || (resp.Err == nil) != (wantErr == nil) || wantErr != nil && resp.Err.Error() != wantErr.Error() {
			t.Fatalf("command %d (%s): FSM %+v, %v; registry %+v, %v", i, cmd.Op(), resp.Result, resp.Err, want, wantErr)
		}
	}
	if got := f.Clone(); !bytes.Equal(snapshotOf(t, got), snapshotOf(t, direct)) {
		t.Fatal("FSM state differs from the registry's")
	}
	last := applyFSM(t, f, 99, seq[2])
	if !last.Result.Replayed || last.Result.Version != 2 {
		t.Fatalf("retry = %+v, want Replayed v2", last.Result)
	}
}

func TestFSMRefusalIsAResult(t *testing.T) {
	c := newCmds()
	f := NewFSM(testLogger())
	for i, cmd := range story(c, "m") {
		if r := applyFSM(t, f, uint64(i+1), cmd); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	before := persist(t, f)
	ch := f.Changed()
	f1 := func(name string, l *raft.Log, target error) {
		t.Helper()
		resp, _ := f.Apply(l).(*ApplyResponse)
		if resp == nil || !errors.Is(resp.Err, target) {
			t.Fatalf("%s: Apply = %+v, want an error wrapping %v", name, resp, target)
		}
		if !bytes.Equal(before, persist(t, f)) {
			t.Fatalf("%s changed the state", name)
		}
		select {
		case <-ch:
			t.Fatalf("%s closed the Changed channel", name)
		default:
		}
	}
	f1("unknown version", encodeLog(t, 20, c.cmd(&registry.PromoteArgs{Model: "m", Version: 42})), registry.ErrVersionNotFound)
	f1("illegal transition", encodeLog(t, 21, c.cmd(&registry.DeleteVersionArgs{Model: "m", Version: 2})), registry.ErrIllegalTransition)
	f1("garbage", &raft.Log{Index: 22, Type: raft.LogCommand, Data: []byte("not json")}, registry.ErrMalformedCommand)
	f1("empty", &raft.Log{Index: 23, Type: raft.LogCommand}, registry.ErrMalformedCommand)
	f1("a newer wire version", &raft.Log{Index: 24, Type: raft.LogCommand, Data: []byte(`{"v":99,"op":"register"}`)}, registry.ErrUnsupportedVersion)
	// Other entry types never reach a registry.
	if r := f.Apply(&raft.Log{Index: 25, Type: raft.LogNoop, Data: []byte("x")}); r != nil {
		t.Fatalf("Apply(LogNoop) = %v", r)
	}
}

func TestFSMChanged(t *testing.T) {
	c := newCmds()
	f := NewFSM(testLogger())
	ch := f.Changed()
	applyFSM(t, f, 1, c.cmd(registerArgs("m", 1)))
	select {
	case <-ch:
	default:
		t.Fatal("Changed not closed after a command changed the state")
	}
	ch2 := f.Changed()
	if ch2 == ch {
		t.Fatal("Changed returned the closed channel again")
	}
	if f.LastSeq() == 0 {
		t.Fatalf("LastSeq = %d", f.LastSeq())
	}
	// A restore wakes watchers too.
	if err := f.Restore(io.NopCloser(bytes.NewReader(persist(t, NewFSM(nil))))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch2:
	default:
		t.Fatal("Changed not closed after Restore")
	}
}

func TestFSMRestoreReplaces(t *testing.T) {
	c := newCmds()
	a := NewFSM(testLogger())
	for i, cmd := range story(c, "fraud") {
		applyFSM(t, a, uint64(i+1), cmd)
	}
	snap := persist(t, a)

	// b has a model a never had and a longer audit log.
	b := NewFSM(testLogger())
	for i, cmd := range append(story(newCmds(), "spam"), story(newCmds(), "churn")...) {
		applyFSM(t, b, uint64(i+1), cmd)
	}
	if err := b.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(persist(t, b), snap) {
		t.Fatal("restored state differs from the snapshot")
	}
	b.Read(func(s *registry.State) {
		if _, err := s.Model("spam"); !errors.Is(err, registry.ErrModelNotFound) {
			t.Fatalf("model spam survived the restore (merged, not replaced): %v", err)
		}
		if got := len(s.Models()); got != 1 {
			t.Fatalf("%d models after restore, want 1", got)
		}
	})
	// Idempotency keys come from the snapshot too: a retry is recognised.
	if r := applyFSM(t, b, 100, story(newCmds(), "fraud")[2]); !r.Result.Replayed {
		t.Fatalf("retry after restore = %+v, want Replayed", r.Result)
	}

	// A snapshot that is not ours, or is damaged, leaves the state alone.
	before := persist(t, b)
	for name, bad := range map[string][]byte{
		"empty":       nil,
		"no header":   snap[len(snapshotMagic):],
		"other magic": append([]byte("modelgate/cluster-snapshot/9\n"), snap[len(snapshotMagic):]...),
		"truncated":   snap[:len(snap)-10],
		"bad state":   append([]byte(snapshotMagic), `{"format":1,"models":[],"audit":[{"seq":7}],"idempotency_limit":1,"idempotency":[]}`...),
	} {
		if err := b.Restore(io.NopCloser(bytes.NewReader(bad))); !errors.Is(err, ErrCorruptSnapshot) {
			t.Fatalf("Restore(%s) = %v, want ErrCorruptSnapshot", name, err)
		}
		if !bytes.Equal(before, persist(t, b)) {
			t.Fatalf("a failed Restore (%s) changed the state", name)
		}
	}
}

func TestFSMSnapshotIsPointInTime(t *testing.T) {
	// Raft calls Apply while Persist runs: the snapshot must hold the state
	// of the moment Snapshot was called.
	c := newCmds()
	f := NewFSM(testLogger())
	seq := story(c, "m")
	for i, cmd := range seq[:4] {
		applyFSM(t, f, uint64(i+1), cmd)
	}
	want := persist(t, f)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	for i, cmd := range seq[4:] {
		applyFSM(t, f, uint64(i+5), cmd)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	if !bytes.Equal(sink.Bytes(), want) {
		t.Fatal("the snapshot saw commands applied after Snapshot returned")
	}
}

func TestFSMConcurrentReaders(t *testing.T) {
	c := newCmds()
	f := NewFSM(testLogger())
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-f.Changed():
				}
				f.Read(func(s *registry.State) {
					if v := s.RoutingView(); v.Seq != s.LastSeq() {
						t.Errorf("routing view seq %d, state %d", v.Seq, s.LastSeq())
					}
				})
				_ = f.Clone().Models()
			}
		})
	}
	for i := range 10 {
		for j, cmd := range story(c, "m"+string(rune('a'+i))) {
			applyFSM(t, f, uint64(i*10+j+1), cmd)
		}
	}
	close(stop)
	wg.Wait()
}

// TestFSMRandomSequences applies random command sequences, refused ones
// included, to an FSM and to a bare registry, moving the FSM through
// snapshot → restore into a fresh FSM at random points: every path ends in
// byte-identical state.
func TestFSMRandomSequences(t *testing.T) {
	var applied, refused, replayed int
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		c := newCmds()
		f := NewFSM(testLogger())
		direct := registry.New()
		var keys []registry.Command
		for i := range 150 {
			cmd := randomCommand(rng, c, keys)
			keys = append(keys, cmd)
			resp := applyFSM(t, f, uint64(i+1), cmd)
			want, wantErr := direct.Apply(cmd)
			if resp.Result != want || (resp.Err == nil) != (wantErr == nil) {
				t.Fatalf("seed %d command %d (%s): FSM %+v, %v; registry %+v, %v", seed, i, cmd.Op(), resp.Result, resp.Err, want, wantErr)
			}
			switch {
			case resp.Err != nil:
				refused++
			case resp.Result.Replayed:
				replayed++
			default:
				applied++
			}
			if rng.IntN(25) == 0 {
				g := NewFSM(testLogger())
				if err := g.Restore(io.NopCloser(bytes.NewReader(persist(t, f)))); err != nil {
					t.Fatal(err)
				}
				f = g
			}
		}
		if !bytes.Equal(snapshotOf(t, f.Clone()), snapshotOf(t, direct)) {
			t.Fatalf("seed %d: FSM state differs from the registry's", seed)
		}
	}
	t.Logf("%d applied, %d refused, %d replayed", applied, refused, replayed)
	if applied < 300 || refused < 300 || replayed < 50 {
		t.Fatalf("the generator is lopsided: %d applied, %d refused, %d replayed", applied, refused, replayed)
	}
}

func randomCommand(rng *rand.Rand, c *cmds, earlier []registry.Command) registry.Command {
	model := []string{"a", "b"}[rng.IntN(2)]
	v := 1 + rng.IntN(5)
	switch rng.IntN(9) {
	case 0, 1:
		return c.cmd(registerArgs(model, rng.IntN(8)))
	case 2, 3:
		return c.cmd(validateArgs(model, v, rng.IntN(4) != 0))
	case 4:
		return c.cmd(&registry.PromoteArgs{Model: model, Version: v})
	case 5:
		st := []registry.Stage{registry.StageShadow, registry.StageCanary, registry.StageRetired}[rng.IntN(3)]
		return c.cmd(&registry.SetStageArgs{Model: model, Version: v, Stage: st, Weight: float64(rng.IntN(120))})
	case 6:
		return c.cmd(&registry.RollbackArgs{Model: model})
	case 7:
		return c.cmd(&registry.DeleteVersionArgs{Model: model, Version: v})
	default:
		if len(earlier) > 0 { // a retry
			return earlier[rng.IntN(len(earlier))]
		}
		return c.cmd(registerArgs(model, 0))
	}
}
