package registry

import (
	"fmt"
	"slices"
	"testing"
)

// TestReportReady: a registration names its holder; a ready report adds the
// node to ready_on and holders, a failed one records the gate's reason,
// and a later ready report from the same node replaces it. Every report is
// an audit record, and the state survives a snapshot round trip.
func TestReportReady(t *testing.T) {
	h := newHarness(t)
	n := h.must(&RegisterArgs{Model: "m", Digest: digestOf(1), Size: 10, Signature: testSignature(), Holder: "n1"}).Version
	h.validate("m", n, true)
	if v, _ := h.s.Version("m", n); !v.IsReadyOn("n1") {
		t.Fatalf("the registering holder ran the gate, but is not ready: %v", v.ReadyOn)
	}
	h.must(&ReportReadyArgs{Node: "n3", Model: "m", Version: n, Digest: digestOf(1), Failed: "input features: shape mismatch"})
	v, _ := h.s.Version("m", n)
	if !slices.Equal(v.Holders, []string{"n1"}) || !v.IsReadyOn("n1") || v.IsReadyOn("n3") || v.FailedReason("n3") != "input features: shape mismatch" {
		t.Fatalf("after n1 ready, n3 failed: holders %v ready %v failed %v", v.Holders, v.ReadyOn, v.FailedOn)
	}
	h.must(&ReportReadyArgs{Node: "n3", Model: "m", Version: n, Digest: digestOf(1)})
	h.must(&ReportReadyArgs{Node: "n2", Model: "m", Version: n, Digest: digestOf(1)})
	v, _ = h.s.Version("m", n)
	if !slices.Equal(v.Holders, []string{"n1", "n2", "n3"}) || v.FailedOn != nil || len(v.ReadyOn) != 3 || v.ReadyOn[1].Node != "n2" {
		t.Fatalf("after all ready: holders %v ready %v failed %v", v.Holders, v.ReadyOn, v.FailedOn)
	}
	recs := h.s.Audit(AuditFilter{Model: "m", Version: n})
	ready := 0
	for _, r := range recs {
		if r.Action == ActionReady {
			ready++
		}
	}
	if ready != 3 {
		t.Fatalf("%d ready records, want 3", ready)
	}
	back, err := RestoreSnapshot(h.snapshot())
	if err != nil {
		t.Fatal(err)
	}
	bv, _ := back.Version("m", n)
	if !slices.Equal(bv.Holders, v.Holders) || !slices.Equal(bv.ReadyOn, v.ReadyOn) {
		t.Fatalf("restored: holders %v ready %v", bv.Holders, bv.ReadyOn)
	}
}

// TestReportReadyRefuses: another digest (the node verified other bytes),
// a failed version, a deleted one and a bad node ID are refused and change
// nothing.
func TestReportReadyRefuses(t *testing.T) {
	h, v := atStage(t, StageFailed)
	h.refused(&ReportReadyArgs{Node: "n2", Model: "m", Version: 1, Digest: digestOf(2)}, ErrInvalid, "node n2 verified other bytes")
	h.refused(&ReportReadyArgs{Node: "n2", Model: "m", Version: v, Digest: digestOf(2)}, ErrIllegalTransition, "failed validation")
	h.refused(&ReportReadyArgs{Node: "n2", Model: "m", Version: 9, Digest: digestOf(2)}, ErrVersionNotFound, "")
	h.refused(&ReportReadyArgs{Node: "n 2", Model: "m", Version: 1, Digest: digestOf(1)}, ErrInvalid, "node ID")
	h.refused(&SetPolicyArgs{Model: "m", Policy: func() Policy {
		p := DefaultPolicy()
		p.Distribution = &DistributionPolicy{RequireReady: "most"}
		return p
	}()}, ErrInvalid, `policy.distribution.require_ready`)
}

// TestReportReadyCopyOnWrite: a state cloned before a report (a reader's
// view) does not see it: the version's lists are replaced, not changed.
func TestReportReadyCopyOnWrite(t *testing.T) {
	h, _ := atStage(t, StageCanary)
	h.must(&ReportReadyArgs{Node: "a", Model: "m", Version: 1, Digest: digestOf(1)})
	before, _ := h.s.Version("m", 1)
	old := h.s.Clone()
	h.must(&ReportReadyArgs{Node: "b", Model: "m", Version: 1, Digest: digestOf(1)})
	ov, _ := old.Version("m", 1)
	if len(ov.ReadyOn) != 1 || len(before.ReadyOn) != 1 || len(ov.Holders) != 1 {
		t.Fatalf("the earlier state changed: ready %v holders %v", ov.ReadyOn, ov.Holders)
	}
}

// TestPendingOn: a node should hold the versions the registry may route
// (validated on), with their holders first, marked ready when it reported
// so; not failed, registered or retired ones, nor one its gate refused;
// the standby yes.
func TestPendingOn(t *testing.T) {
	h := newHarness(t)
	reg := func(seed int) int {
		return h.must(&RegisterArgs{Model: "m", Digest: digestOf(seed), Size: 10, Signature: testSignature(), Holder: "n1"}).Version
	}
	v1 := reg(1)
	h.validate("m", v1, true) // champion
	v2 := reg(2)
	h.validate("m", v2, true) // validated
	v3 := reg(3)
	h.validate("m", v3, false) // failed
	reg(4)                     // registered
	h.must(&ReportReadyArgs{Node: "n2", Model: "m", Version: v1, Digest: digestOf(1)})
	f := func(node string, want ...string) {
		t.Helper()
		var got []string
		for _, p := range h.s.PendingOn(node) {
			got = append(got, fmt.Sprint(p.Version, p.From, p.Ready))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("pending on %s: %q, want %q", node, got, want)
		}
	}
	f("n1", "1 [n2] true", "2 [] true") // it registered both, and its gate passed them
	f("n2", "1 [n1] true", "2 [n1] false")
	f("n3", "1 [n1 n2] false", "2 [n1] false")
	h.must(&PromoteArgs{Model: "m", Version: v2}) // v1: the standby
	f("n3", "1 [n1 n2] false", "2 [n1] false")
	v5 := reg(5)
	h.validate("m", v5, true)
	h.must(&SetStageArgs{Model: "m", Version: v5, Stage: StageRetired}) // retired, not the standby
	h.must(&ReportReadyArgs{Node: "n3", Model: "m", Version: v2, Digest: digestOf(2), Failed: "no"})
	f("n3", "1 [n1 n2] false")
}
