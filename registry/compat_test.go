package registry

import (
	"errors"
	"strings"
	"testing"
)

func spec(name, dt string, shape ...int64) TensorSpec {
	return TensorSpec{Name: name, DataType: dt, Shape: shape}
}

func sig(in []TensorSpec, out ...TensorSpec) Signature { return Signature{Inputs: in, Outputs: out} }

// TestCheckCompatible: what a candidate must accept and give to take the
// champion's clients, one case a line.
func TestCheckCompatible(t *testing.T) {
	prob := spec("probability", "FP32", -1, 1)
	champ := sig([]TensorSpec{spec("features", "FP32", -1, 30)}, prob)
	f := func(cand Signature, want string) {
		t.Helper()
		e := CheckCompatible(champ, cand)
		switch {
		case want == "" && e != nil:
			t.Fatalf("%+v: refused: %s", cand, e.Reason)
		case want != "" && e == nil:
			t.Fatalf("%+v: accepted, want a refusal with %q", cand, want)
		case want != "" && !strings.Contains(e.Reason, want):
			t.Fatalf("%+v: reason %q, want %q", cand, e.Reason, want)
		}
	}
	f(champ, "")
	f(sig([]TensorSpec{spec("features", "FP32", -1, -1)}, prob), "")                                // accepts more
	f(sig([]TensorSpec{spec("features", "FP32", -1, 30)}, prob, spec("logits", "FP32", -1, 2)), "") // an extra output
	f(sig([]TensorSpec{spec("features", "FP32", -1, 30)}, spec("probability", "FP32", 1, 1)), "")   // an output fixed where it was dynamic
	f(sig([]TensorSpec{spec("features", "FP32", -1, 4)}, prob), `input "features" takes FP32 [-1,4] but clients send FP32 [-1,30]`)
	f(sig([]TensorSpec{spec("features", "FP32", 1, 30)}, prob), "dimension 0 is fixed at 1 where clients may send any size")
	f(sig([]TensorSpec{spec("features", "FP32", -1, 30, 1)}, prob), "rank 3, not 2")
	f(sig([]TensorSpec{spec("features", "FP64", -1, 30)}, prob), `input "features" is FP64 [-1,30] but clients send FP32 [-1,30]`)
	f(sig([]TensorSpec{spec("x", "FP32", -1, 30)}, prob), `it has no input "features", which clients send as FP32 [-1,30]`)
	f(sig([]TensorSpec{spec("features", "FP32", -1, 30), spec("mask", "BOOL", -1, 30)}, prob), `it needs input "mask" (BOOL [-1,30])`)
	f(sig([]TensorSpec{spec("features", "FP32", -1, 30)}, spec("score", "FP32", -1, 1)), `it has no output "probability"`)
	f(sig([]TensorSpec{spec("features", "FP32", -1, 30)}, spec("probability", "FP32", -1, 2)), `output "probability" is FP32 [-1,2] but clients read FP32 [-1,1]`)
	if e := CheckCompatible(Signature{}, champ); e != nil {
		t.Fatalf("an unknown champion signature refused: %v", e)
	}
}

// incompatible builds model "m": v1 the champion taking features
// [-1,30], v2 validated taking features [-1,4].
func incompatible(t *testing.T) *harness {
	h := newHarness(t)
	h.register("m", 1)
	h.validate("m", 1, true)
	small := testSignature()
	small.Inputs = []TensorSpec{spec("features", "FP32", -1, 4)}
	h.must(&RegisterArgs{Model: "m", Digest: digestOf(2), Size: 2000, Signature: small})
	h.validate("m", 2, true)
	return h
}

// TestPromotionRefusesIncompatibleSignature is issue 12's "promotion ignores
// the signature": clients send features [1,30], the new version takes
// [-1,4]. Promotion and a canary move are refused with a *SignatureError
// naming the input and both shapes, and change nothing; forced, they
// happen and the audit record says what was forced past.
func TestPromotionRefusesIncompatibleSignature(t *testing.T) {
	const why = `input "features" takes FP32 [-1,4] but clients send FP32 [-1,30]`
	h := incompatible(t)
	h.refused(&PromoteArgs{Model: "m", Version: 2}, ErrIncompatibleSignature, why)
	h.refused(&PromoteArgs{Model: "m", Version: 2}, ErrIllegalTransition, "cannot promote m v2: its signature is incompatible with champion v1's")
	h.refused(&SetStageArgs{Model: "m", Version: 2, Stage: StageCanary, Weight: 10}, ErrIncompatibleSignature, "cannot make m v2 the canary")
	h.must(&SetStageArgs{Model: "m", Version: 2, Stage: StageShadow}) // mirrored copies answer no client

	var se *SignatureError
	_, err := h.do(&PromoteArgs{Model: "m", Version: 2})
	if !errors.As(err, &se) || se.Kind != "input" || se.Name != "features" || se.Want != "FP32 [-1,30]" || se.Got != "FP32 [-1,4]" || se.Champion != 1 {
		t.Fatalf("the error is %#v, want a *SignatureError naming features and both shapes", err)
	}

	h.must(&SetStageArgs{Model: "m", Version: 2, Stage: StageCanary, Weight: 10, Force: true, Reason: "clients move with it"})
	h.must(&PromoteArgs{Model: "m", Version: 2, Force: true, Reason: "clients moved"})
	recs := h.s.Audit(AuditFilter{Model: "m", Version: 2})
	var forced []Action
	for _, r := range recs {
		if r.Forced != "" {
			if !strings.Contains(r.Forced, why) {
				t.Fatalf("audit record %+v: forced %q, want it to say %q", r, r.Forced, why)
			}
			forced = append(forced, r.Action)
		}
	}
	if len(forced) != 2 || forced[0] != ActionSetStage || forced[1] != ActionPromote {
		t.Fatalf("forced audit records %v, want the canary move and the promotion", forced)
	}
}

// TestForceOnlyRecordedWhenUsed: a forced move that needed no force
// records nothing forced.
func TestForceOnlyRecordedWhenUsed(t *testing.T) {
	h := newHarness(t)
	h.register("m", 1)
	h.validate("m", 1, true)
	h.register("m", 2)
	h.validate("m", 2, true)
	h.must(&PromoteArgs{Model: "m", Version: 2, Force: true})
	for _, r := range h.s.Audit(AuditFilter{Model: "m"}) {
		if r.Forced != "" {
			t.Fatalf("record %+v says forced for a compatible promotion", r)
		}
	}
}

// TestAutoPromotionWaitsWithItsForce: an automatic promotion that the
// policy makes wait for approval is checked when asked (refused unforced)
// and, forced, carries its force to the approval.
func TestAutoPromotionWaitsWithItsForce(t *testing.T) {
	h := incompatible(t)
	h.refused(&PromoteArgs{Model: "m", Version: 2, Auto: true}, ErrIncompatibleSignature, "features")
	if r := h.must(&PromoteArgs{Model: "m", Version: 2, Auto: true, Force: true}); !r.PendingApproval {
		t.Fatalf("the default policy should make an automatic promotion wait: %+v", r)
	}
	h.must(&ApproveArgs{Model: "m", Version: 2})
	if h.stage("m", 2) != StageChampion {
		t.Fatal("the approved promotion did not happen")
	}
}

// TestWireV1PromotionUnchecked: a promotion written in wire v1 (a Raft
// entry from before the rule, replayed) applies as it did then.
func TestWireV1PromotionUnchecked(t *testing.T) {
	h := incompatible(t)
	c, err := DecodeCommand([]byte(`{"v":1,"op":"promote","time":"2025-01-02T00:00:00Z","actor":"a","idempotency_key":"old","args":{"model":"m","version":2}}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.Apply(c); err != nil {
		t.Fatalf("a v1 promotion was refused on replay: %v", err)
	}
	if h.stage("m", 2) != StageChampion {
		t.Fatal("the v1 promotion did not happen")
	}
}
