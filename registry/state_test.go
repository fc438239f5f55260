package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestIdempotency(t *testing.T) {
	h := newHarness(t)
	c := h.cmd(&RegisterArgs{Model: "fraud", Digest: digestOf(1), Size: 10, Signature: testSignature()})
	first, err := h.s.Apply(c)
	if err != nil {
		t.Fatal(err)
	}
	snap := h.snapshot()
	// A retry after an unknown outcome: same key, same command, later time.
	retry := c
	retry.Time = c.Time.Add(30 * time.Second)
	again, err := h.s.Apply(retry)
	if err != nil {
		t.Fatal(err)
	}
	first.Replayed = true
	if again != first {
		t.Fatalf("retry: %+v, want %+v", again, first)
	}
	if !bytes.Equal(snap, h.snapshot()) {
		t.Fatal("a retry changed the state")
	}
	// The same key with another command is a client bug.
	other := c
	other.Args = &RegisterArgs{Model: "fraud", Digest: digestOf(2), Size: 10, Signature: testSignature()}
	_, err = h.s.Apply(other)
	var ie *IdempotencyError
	if !errors.As(err, &ie) || !errors.Is(err, ErrIdempotencyConflict) || ie.Op != OpRegister {
		t.Fatalf("%v", err)
	}
	if !strings.Contains(err.Error(), `idempotency key "key-1" was already used for a different register command`) {
		t.Fatal(err)
	}
	other = c
	other.Actor = "mallory"
	if _, err := h.s.Apply(other); !errors.Is(err, ErrIdempotencyConflict) {
		t.Fatalf("other actor: %v", err)
	}
	// A refused command does not use its key: after fixing the state, the
	// same key applies.
	p := h.cmd(&PromoteArgs{Model: "fraud", Version: 1})
	if _, err := h.s.Apply(p); !errors.Is(err, ErrIllegalTransition) {
		t.Fatal(err)
	}
	h.validate("fraud", 1, true)
	v2 := h.register("fraud", 2)
	h.validate("fraud", v2, true)
	p.Args = &PromoteArgs{Model: "fraud", Version: v2}
	if r, err := h.s.Apply(p); err != nil || r.Replayed {
		t.Fatal(r, err)
	}
}

func TestIdempotencyWindow(t *testing.T) {
	s := New()
	s.keys = newKeyRing(3)
	apply := func(key string, seed int) Result {
		t.Helper()
		r, err := s.Apply(Command{Time: t0, Actor: "a", IdempotencyKey: key, Args: &RecordAlertArgs{Model: "m", Kind: "drift", Reason: string(rune('a' + seed))}})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	s.Apply(Command{Time: t0, Actor: "a", IdempotencyKey: "create", Args: &CreateModelArgs{Model: "m"}})
	for i, k := range []string{"k1", "k2", "k3"} {
		apply(k, i)
	}
	if r := apply("k1", 0); !r.Replayed {
		t.Fatal("k1 forgotten too early")
	}
	// "create" has been pushed out by k1..k3; k1 is the oldest now.
	apply("k4", 4)
	if r := apply("k1", 0); r.Replayed {
		t.Fatal("k1 still remembered after 3 newer keys")
	}
	// The window survives a snapshot, in order.
	b, _ := s.MarshalSnapshot()
	r, err := RestoreSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := r.MarshalSnapshot()
	if !bytes.Equal(b, b2) {
		t.Fatal("restored window encodes differently")
	}
	if _, ok := r.keys.get("k3"); !ok || r.keys.limit != 3 {
		t.Fatal("window lost in restore")
	}
}

func TestRegister(t *testing.T) {
	h := newHarness(t)
	r := h.must(&RegisterArgs{Model: "fraud", Digest: digestOf(1), Size: 10, Reason: "first"})
	if r.Version != 1 || r.Stage != StageRegistered || r.Op != OpRegister || r.AuditSeq != 2 {
		t.Fatalf("%+v", r)
	}
	recs := h.s.Audit(AuditFilter{})
	if recs[0].Action != ActionCreateModel || recs[1].Action != ActionRegister || recs[1].Version != 1 {
		t.Fatalf("%+v", recs)
	}
	if p, _ := h.s.Policy("fraud"); !reflect.DeepEqual(p, DefaultPolicy()) {
		t.Fatal("implicit model does not have the default policy")
	}
	var dup *DuplicateError
	_, err := h.do(&RegisterArgs{Model: "fraud", Digest: digestOf(1), Size: 10})
	if !errors.As(err, &dup) || dup.Version != 1 || !errors.Is(err, ErrDuplicateArtifact) {
		t.Fatal(err)
	}
	h.refused(&RegisterArgs{Model: "fraud", Digest: digestOf(2), Size: 10, Lineage: Lineage{ParentVersion: 2}}, ErrInvalid,
		"registry: lineage.parent_version (2) must name an earlier version of fraud (it has given out v1 to v1)")
	// Registered without a signature: validation must supply one.
	h.refused(&SetValidationArgs{Model: "fraud", Version: 1, Passed: true}, ErrInvalid, "was registered without one")
	h.must(&SetValidationArgs{Model: "fraud", Version: 1, Passed: true, Signature: testSignature()})
	if v, _ := h.s.Version("fraud", 1); !v.Signature.equal(testSignature()) {
		t.Fatal("signature not taken from validation")
	}
	// Registered with one: validation must agree.
	v2 := h.register("fraud", 2)
	other := testSignature()
	other.Inputs[0].Shape = []int64{-1, 31}
	h.refused(&SetValidationArgs{Model: "fraud", Version: v2, Passed: true, Signature: other}, ErrInvalid, "differs from the one fraud v2 was registered with")
	// A failed validation needs no signature and keeps its evidence.
	h.must(&SetValidationArgs{Model: "fraud", Version: v2, Passed: false, Reason: "smoke run failed", Evidence: json.RawMessage(`{"error":"bad shape"}`)})
	v, _ := h.s.Version("fraud", v2)
	if v.Stage != StageFailed || v.Validation.Passed || string(v.Validation.Evidence) != `{"error":"bad shape"}` {
		t.Fatalf("%+v", v.Validation)
	}
	// Numbers are never reused.
	h.must(&DeleteVersionArgs{Model: "fraud", Version: v2})
	if n := h.register("fraud", 3); n != 3 {
		t.Fatalf("after deleting v2, next is v%d", n)
	}
	// The deleted artifact may come back (as a new version).
	if n := h.register("fraud", 2); n != 4 {
		t.Fatalf("re-registering a deleted artifact: v%d", n)
	}
	h.refused(&PromoteArgs{Model: "fraud", Version: 2}, ErrVersionNotFound, "fraud v2")
	h.refused(&PromoteArgs{Model: "other", Version: 1}, ErrModelNotFound, `"other"`)
}

func TestReadsAreCopies(t *testing.T) {
	h := newHarness(t)
	h.must(&RegisterArgs{Model: "m", Digest: digestOf(1), Size: 1, Signature: testSignature(),
		Lineage: Lineage{TrainingMetrics: map[string]float64{"auc": 0.9}}, ReferenceProfile: json.RawMessage(`{"x":1}`)})
	h.validate("m", 1, true)
	before := h.snapshot()
	m, _ := h.s.Model("m")
	m.Versions[0].Stage = StageFailed
	m.Versions[0].Signature.Inputs[0].Shape[0] = 7
	m.Versions[0].Lineage.TrainingMetrics["auc"] = 0
	m.Versions[0].ReferenceProfile[2] = 'y'
	m.Versions[0].Validation.Evidence[0] = '['
	m.Policy.Rollback.MinLabelMetricDelta = nil
	v, _ := h.s.Champion("m")
	v.Signature.Outputs[0].Name = "changed"
	recs := h.s.Audit(AuditFilter{})
	recs[len(recs)-2].Evidence[0] = '['
	ms := h.s.Models()
	ms[0].Champion = 9
	c := h.s.Clone()
	c.models["m"].Versions[0].Stage = StageRetired
	if !bytes.Equal(before, h.snapshot()) {
		t.Fatal("a read or a clone shares memory with the state")
	}
}

func TestAuditFilter(t *testing.T) {
	h := newHarness(t)
	h.register("a", 1)
	h.register("b", 2)
	h.validate("a", 1, true)
	h.must(&RecordAlertArgs{Model: "b", Kind: "drift", Reason: "psi"})
	all := h.s.Audit(AuditFilter{})
	if len(all) != 7 {
		t.Fatalf("%d records", len(all))
	}
	for i, r := range all {
		if r.Seq != uint64(i+1) || r.Actor != "alice" || r.IdempotencyKey == "" || r.Time.IsZero() {
			t.Fatalf("%+v", r)
		}
	}
	f := func(filter AuditFilter, want ...uint64) {
		t.Helper()
		var got []uint64
		for _, r := range h.s.Audit(filter) {
			got = append(got, r.Seq)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%+v: %v, want %v", filter, got, want)
		}
	}
	f(AuditFilter{Model: "a"}, 1, 2, 5, 6)
	f(AuditFilter{Model: "b"}, 3, 4, 7)
	f(AuditFilter{Model: "a", Version: 1}, 2, 5, 6)
	f(AuditFilter{Since: 4}, 5, 6, 7)
	f(AuditFilter{Since: 2, Limit: 2}, 3, 4)
	f(AuditFilter{Model: "b", Since: 3, Limit: 1}, 4)
	f(AuditFilter{Since: 7})
	f(AuditFilter{Since: 100})
	f(AuditFilter{Model: "zzz"})
	if m, _ := h.s.Model("b"); !m.LastAlerts["drift"].Equal(all[6].Time) {
		t.Fatal("last alert time not kept")
	}
	h.refused(&RecordAlertArgs{Model: "b", Version: 9, Kind: "drift"}, ErrVersionNotFound, "b v9")
}

func TestRoutingView(t *testing.T) {
	h := newHarness(t)
	for seed := 1; seed <= 5; seed++ {
		h.register("fraud", seed)
		h.validate("fraud", seed, true)
	}
	h.register("churn", 10) // registered only: nothing to serve
	h.must(&SetStageArgs{Model: "fraud", Version: 2, Stage: StageCanary, Weight: 25})
	h.must(&SetStageArgs{Model: "fraud", Version: 3, Stage: StageShadow})
	h.must(&SetStageArgs{Model: "fraud", Version: 5, Stage: StageShadow})
	rv := h.s.RoutingView()
	if rv.Seq != h.s.LastSeq() || len(rv.Models) != 2 || rv.Models[0].Model != "churn" {
		t.Fatalf("%+v", rv)
	}
	churn, ok := rv.Model("churn")
	if !ok || churn.Champion != 0 || len(churn.Versions) != 0 {
		t.Fatalf("%+v", churn)
	}
	fraud, _ := rv.Model("fraud")
	want := ModelRoute{Model: "fraud", Champion: 1, Canary: 2, CanaryWeight: 25, Shadows: []int{3, 5}, LogMode: LogAsync, Versions: []RouteVersion{
		{Version: 1, Digest: digestOf(1), Size: 1001, Role: RoleChampion},
		{Version: 2, Digest: digestOf(2), Size: 1002, Role: RoleCanary, Weight: 25},
		{Version: 3, Digest: digestOf(3), Size: 1003, Role: RoleShadow},
		{Version: 5, Digest: digestOf(5), Size: 1005, Role: RoleShadow},
	}}
	if !reflect.DeepEqual(fraud, want) {
		t.Fatalf("got  %+v\nwant %+v", fraud, want)
	}
	if _, ok := rv.Model("nope"); ok {
		t.Fatal("found a model that does not exist")
	}

	// Promoting the canary keeps the former champion warm as the standby,
	// until its TTL when the policy sets one; a rollback to it consumes it.
	pol := DefaultPolicy()
	pol.Serving = &ServingPolicy{StandbyTTL: Duration(10 * time.Minute)}
	h.must(&SetPolicyArgs{Model: "fraud", Policy: pol})
	h.must(&PromoteArgs{Model: "fraud", Version: 2})
	rv = h.s.RoutingView()
	fraud, _ = rv.Model("fraud")
	v1, _ := h.s.Version("fraud", 1)
	if fraud.Champion != 2 || fraud.Standby != 1 || !fraud.StandbyUntil.Equal(v1.Updated.Add(10*time.Minute)) ||
		fraud.Versions[0].Role != RoleStandby || fraud.Canary != 0 {
		t.Fatalf("after promotion: %+v", fraud)
	}
	h.must(&RollbackArgs{Model: "fraud"})
	rv = h.s.RoutingView()
	fraud, _ = rv.Model("fraud")
	if fraud.Champion != 1 || fraud.Standby != 0 {
		t.Fatalf("after rollback: %+v (v2 is rolled back: no standby)", fraud)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	h := newHarness(t)
	for _, c := range scenario() {
		h.must(c)
	}
	b := h.snapshot()
	r, err := RestoreSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := r.MarshalSnapshot()
	if !bytes.Equal(b, b2) {
		t.Fatal("snapshot → restore → snapshot differs")
	}
	if !reflect.DeepEqual(r.Models(), h.s.Models()) || !reflect.DeepEqual(r.Audit(AuditFilter{}), h.s.Audit(AuditFilter{})) {
		t.Fatal("restored state reads differently")
	}
	if !reflect.DeepEqual(r.Clone(), h.s.Clone()) {
		t.Fatal("restored state differs")
	}
	// An empty state round-trips too.
	e, _ := New().MarshalSnapshot()
	if re, err := RestoreSnapshot(e); err != nil || re.LastSeq() != 0 {
		t.Fatal(err)
	}
}

// scenario is a short life of a model touching every op.
func scenario() []Args {
	p := DefaultPolicy()
	p.Promotion.Canary.RequireApproval = true
	return []Args{
		&CreateModelArgs{Model: "fraud", Reason: "new"},
		&RegisterArgs{Model: "fraud", Digest: digestOf(1), Size: 10, Signature: testSignature(), Lineage: Lineage{TrainingMetrics: map[string]float64{"auc": 0.9, "ll": 0.2}}},
		&SetValidationArgs{Model: "fraud", Version: 1, Passed: true, Evidence: json.RawMessage(`{"ms":1}`)},
		&RegisterArgs{Model: "fraud", Digest: digestOf(2), Size: 11, Lineage: Lineage{ParentVersion: 1}},
		&SetValidationArgs{Model: "fraud", Version: 2, Passed: true, Signature: testSignature()},
		&SetPolicyArgs{Model: "fraud", Policy: p},
		&SetStageArgs{Model: "fraud", Version: 2, Stage: StageShadow, Auto: true},
		&SetStageArgs{Model: "fraud", Version: 2, Stage: StageCanary, Weight: 5, Auto: true},
		&ApproveArgs{Model: "fraud", Version: 2},
		&PromoteArgs{Model: "fraud", Version: 2},
		&RollbackArgs{Model: "fraud", Reason: "errors"},
		&RegisterArgs{Model: "fraud", Digest: digestOf(3), Size: 12, Signature: testSignature()},
		&SetValidationArgs{Model: "fraud", Version: 3, Passed: false},
		&DeleteVersionArgs{Model: "fraud", Version: 3},
		&RecordAlertArgs{Model: "fraud", Version: 1, Kind: "drift"},
		&RegisterArgs{Model: "churn", Digest: digestOf(4), Size: 13, Signature: testSignature()},
	}
}

func TestRestoreRefusesCorrupt(t *testing.T) {
	h := newHarness(t)
	for _, c := range scenario() {
		h.must(c)
	}
	good := string(h.snapshot())
	f := func(old, new, want string) {
		t.Helper()
		bad := strings.Replace(good, old, new, 1)
		if bad == good {
			t.Fatalf("%q not in snapshot", old)
		}
		_, err := RestoreSnapshot([]byte(bad))
		if !errors.Is(err, ErrCorruptSnapshot) || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v, want ErrCorruptSnapshot containing %q", err, want)
		}
	}
	f(`"format":2`, `"format":3`, "format 3")
	f(`"format":2,"last_seq":`, `"format":1,"last_seq":`, "format 1 with last_seq")
	f(`"last_seq":`, `"last_seq":9`, "has seq 1") // the kept records must end at last_seq
	f(`"champion":1,`, `"champion":2,`, "alias points at v2")
	f(`"canary_weight":0`, `"canary_weight":7`, "canary weight 7")
	f(`"seq":2,`, `"seq":5,`, "audit record 2 has seq 5")
	f(`"next_version":4`, `"next_version":2`, "beyond next_version")
	f(`"stage":"rolled_back"`, `"stage":"sideways"`, `stage "sideways"`)
	f(`"stage":"rolled_back"`, `"stage":"registered"`, "registered but has a validation result")
	f(`"stage":"registered"`, `"stage":"validated"`, "validated without a passed validation")
	f(`"name":"fraud"`, `"name":"Fraud"`, "bad name")
	f(`"format":2`, `"format":2,"extra":true`, `unknown field "extra"`)
	f(`"idempotency_limit":10000`, `"idempotency_limit":0`, "idempotency_limit 0")
	if _, err := RestoreSnapshot([]byte(good[:len(good)/2])); !errors.Is(err, ErrCorruptSnapshot) {
		t.Fatal(err)
	}
}
