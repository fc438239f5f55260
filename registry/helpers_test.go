package registry

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// harness applies commands to a State with a clock that advances a minute
// per command and a fresh idempotency key each time.
type harness struct {
	t     testing.TB
	s     *State
	now   time.Time
	keys  int
	actor string
	log   []Command // every command given to Apply, successful or not
}

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func newHarness(t testing.TB) *harness {
	return &harness{t: t, s: New(), now: t0, actor: "alice"}
}

func (h *harness) cmd(args Args) Command {
	h.now = h.now.Add(time.Minute)
	h.keys++
	return Command{Time: h.now, Actor: h.actor, IdempotencyKey: fmt.Sprintf("key-%d", h.keys), Args: args}
}

func (h *harness) do(args Args) (Result, error) {
	c := h.cmd(args)
	h.log = append(h.log, c)
	return h.s.Apply(c)
}

func (h *harness) must(args Args) Result {
	h.t.Helper()
	r, err := h.do(args)
	if err != nil {
		h.t.Fatalf("%s: %v", args.Op(), err)
	}
	if err := h.s.check(); err != nil {
		h.t.Fatalf("after %s: invariant broken: %v", args.Op(), err)
	}
	return r
}

// refused applies args, wants an error that unwraps to target and contains
// want, and checks the state did not change.
func (h *harness) refused(args Args, target error, want string) {
	h.t.Helper()
	before := h.snapshot()
	_, err := h.do(args)
	if err == nil {
		h.t.Fatalf("%s %+v: applied, want an error containing %q", args.Op(), args, want)
	}
	if !errors.Is(err, target) {
		h.t.Fatalf("%s: error %v does not unwrap to %v", args.Op(), err, target)
	}
	if !strings.Contains(err.Error(), want) {
		h.t.Fatalf("%s: error %q does not contain %q", args.Op(), err, want)
	}
	if !bytes.Equal(before, h.snapshot()) {
		h.t.Fatalf("%s: refused command changed the state", args.Op())
	}
}

func (h *harness) snapshot() []byte {
	h.t.Helper()
	b, err := h.s.MarshalSnapshot()
	if err != nil {
		h.t.Fatal(err)
	}
	return b
}

func (h *harness) stage(model string, n int) Stage {
	h.t.Helper()
	v, err := h.s.Version(model, n)
	if err != nil {
		h.t.Fatal(err)
	}
	return v.Stage
}

// register adds a version of model with a digest derived from seed and a
// one-input, one-output signature, and returns its number.
func (h *harness) register(model string, seed int) int {
	h.t.Helper()
	return h.must(&RegisterArgs{Model: model, Digest: digestOf(seed), Size: 1000 + int64(seed), Signature: testSignature()}).Version
}

func (h *harness) validate(model string, n int, passed bool) Result {
	h.t.Helper()
	return h.must(&SetValidationArgs{Model: model, Version: n, Passed: passed, Evidence: []byte(`{"smoke_ms":1.5}`)})
}

func digestOf(seed int) string {
	sum := sha256.Sum256([]byte(fmt.Sprint("artifact-", seed)))
	return hex.EncodeToString(sum[:])
}

func testSignature() Signature {
	return Signature{
		Inputs:  []TensorSpec{{Name: "features", DataType: "FP32", Shape: []int64{-1, 30}}},
		Outputs: []TensorSpec{{Name: "probability", DataType: "FP32", Shape: []int64{-1, 1}}},
	}
}

// atStage builds a model "m" whose v1 is the champion and whose v2 is in
// stage st, and returns the harness and 2. For st == champion, v1 is retired
// and on the rollback stack; for rolled_back, v1 is champion again.
func atStage(t testing.TB, st Stage) (*harness, int) {
	t.Helper()
	h := newHarness(t)
	h.register("m", 1)
	h.validate("m", 1, true) // v1: first to pass → champion
	v := h.register("m", 2)
	switch st {
	case StageRegistered:
	case StageFailed:
		h.validate("m", v, false)
	default:
		h.validate("m", v, true)
	}
	switch st {
	case StageShadow:
		h.must(&SetStageArgs{Model: "m", Version: v, Stage: StageShadow})
	case StageCanary:
		h.must(&SetStageArgs{Model: "m", Version: v, Stage: StageCanary, Weight: 10})
	case StageChampion:
		h.must(&PromoteArgs{Model: "m", Version: v})
	case StageRetired:
		h.must(&SetStageArgs{Model: "m", Version: v, Stage: StageRetired})
	case StageRolledBack:
		h.must(&PromoteArgs{Model: "m", Version: v})
		h.must(&RollbackArgs{Model: "m"})
	}
	if got := h.stage("m", v); got != st {
		t.Fatalf("setup: v%d is %s, want %s", v, got, st)
	}
	return h, v
}
