package cluster

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/modelgate/modelgate/registry"
)

// cmds makes registry commands with a clock that advances a minute per
// command and a fresh idempotency key each time.
type cmds struct {
	now  time.Time
	keys int
}

func newCmds() *cmds { return &cmds{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *cmds) cmd(args registry.Args) registry.Command {
	c.now = c.now.Add(time.Minute)
	c.keys++
	return registry.Command{Time: c.now, Actor: "alice", IdempotencyKey: fmt.Sprintf("key-%d", c.keys), Args: args}
}

func digestOf(seed int) string {
	sum := sha256.Sum256([]byte(fmt.Sprint("artifact-", seed)))
	return hex.EncodeToString(sum[:])
}

func testSignature() registry.Signature {
	return registry.Signature{
		Inputs:  []registry.TensorSpec{{Name: "features", DataType: "FP32", Shape: []int64{-1, 30}}},
		Outputs: []registry.TensorSpec{{Name: "probability", DataType: "FP32", Shape: []int64{-1, 1}}},
	}
}

func registerArgs(model string, seed int) *registry.RegisterArgs {
	return &registry.RegisterArgs{Model: model, Digest: digestOf(seed), Size: 1000 + int64(seed), Signature: testSignature()}
}

func validateArgs(model string, v int, passed bool) *registry.SetValidationArgs {
	return &registry.SetValidationArgs{Model: model, Version: v, Passed: passed, Evidence: []byte(`{"smoke_ms":1.5}`)}
}

// story is a register/validate/promote sequence: v1 becomes champion by
// validation, v2 by promotion, v3 is left a shadow.
func story(c *cmds, model string) []registry.Command {
	return []registry.Command{
		c.cmd(registerArgs(model, 1)),
		c.cmd(validateArgs(model, 1, true)),
		c.cmd(registerArgs(model, 2)),
		c.cmd(validateArgs(model, 2, true)),
		c.cmd(&registry.PromoteArgs{Model: model, Version: 2, Reason: "better AUC"}),
		c.cmd(registerArgs(model, 3)),
		c.cmd(validateArgs(model, 3, true)),
		c.cmd(&registry.SetStageArgs{Model: model, Version: 3, Stage: registry.StageShadow}),
	}
}

func encodeLog(t testing.TB, index uint64, c registry.Command) *raft.Log {
	t.Helper()
	b, err := registry.EncodeCommand(c)
	if err != nil {
		t.Fatal(err)
	}
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: b}
}

func snapshotOf(t testing.TB, s *registry.State) []byte {
	t.Helper()
	b, err := s.MarshalSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	closed, canceled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Cancel() error { s.canceled = true; return nil }

// persist snapshots f and returns the bytes Persist writes.
func persist(t testing.TB, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	if !sink.closed || sink.canceled {
		t.Fatalf("Persist: closed %v canceled %v", sink.closed, sink.canceled)
	}
	return sink.Bytes()
}
