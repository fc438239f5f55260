package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// TestRandomCommands applies random command sequences (fixed seeds) and
// checks the registry's invariants after every step:
//
//   - State.check passes (aliases and stages agree, at most one champion and
//     one canary per model, canary weight in 0–100, rollback stack sane);
//   - a model that has had a champion always has exactly one;
//   - the audit log only grows, by consecutive sequence numbers, and never
//     changes what it already holds; a successful command appends at least
//     one record and reports the last one's Seq; a refused one appends none
//     and changes nothing;
//   - snapshot → restore → snapshot gives the same bytes;
//   - retrying an applied command (same key) returns its first Result and
//     changes nothing;
//   - replaying every command from an empty state gives the same results and
//     byte-identical snapshots.
func TestRandomCommands(t *testing.T) {
	seeds, steps := 50, 200
	if testing.Short() {
		seeds = 10
	}
	for seed := range seeds {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			runRandom(t, uint64(seed), steps)
		})
	}
}

type outcome struct {
	res Result
	err string
}

func runRandom(t *testing.T, seed uint64, steps int) {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	s := New()
	now := t0
	var (
		log      []Command // every command applied, in order
		outcomes []outcome
		applied  []int // indexes into log of successful first applications
		audit    []AuditRecord
		had      = map[string]bool{}
		ok, bad  int
	)
	snap := mustSnapshot(t, s)
	for step := range steps {
		var c Command
		retry := len(applied) > 0 && r.IntN(10) == 0
		if retry {
			// A client retry after an unknown outcome: same command, same
			// key, later time.
			c = log[applied[r.IntN(len(applied))]]
			c.Time = now
		} else {
			now = now.Add(time.Duration(1+r.IntN(600)) * time.Second)
			c = Command{Time: now, Actor: []string{"alice", "bob", "lifecycle"}[r.IntN(3)], IdempotencyKey: fmt.Sprintf("s%d-%d", seed, step), Args: randomArgs(r, s)}
		}
		before := snap
		res, err := s.Apply(c)
		log = append(log, c)
		o := outcome{res: res}
		if err != nil {
			o.err = err.Error()
		}
		outcomes = append(outcomes, o)
		snap = mustSnapshot(t, s)
		what := fmt.Sprintf("step %d %s %+v", step, c.Op(), c.Args)

		if err := s.check(); err != nil {
			t.Fatalf("%s: invariant broken: %v", what, err)
		}
		switch {
		case retry:
			if err != nil || !res.Replayed {
				t.Fatalf("%s: retry gave %+v, %v", what, res, err)
			}
			if !bytes.Equal(before, snap) {
				t.Fatalf("%s: a retry changed the state", what)
			}
		case err != nil:
			bad++
			if !bytes.Equal(before, snap) {
				t.Fatalf("%s: refused (%v) but changed the state", what, err)
			}
			var te *TransitionError
			var fe *FieldError
			if !errors.As(err, &te) && !errors.As(err, &fe) && !errors.Is(err, ErrModelNotFound) && !errors.Is(err, ErrVersionNotFound) &&
				!errors.Is(err, ErrDuplicateArtifact) && !errors.Is(err, ErrModelExists) {
				t.Fatalf("%s: unexpected kind of error: %v", what, err)
			}
		default:
			ok++
			applied = append(applied, len(log)-1)
			if res.Replayed || res.AuditSeq != s.LastSeq() || s.LastSeq() <= uint64(len(audit)) {
				t.Fatalf("%s: result %+v with LastSeq %d (was %d)", what, res, s.LastSeq(), len(audit))
			}
			if res.Version != 0 && res.Stage != "" {
				if v, err := s.Version(res.Model, res.Version); err != nil || v.Stage != res.Stage {
					t.Fatalf("%s: result says v%d is %s, state says %v %v", what, res.Version, res.Stage, v.Stage, err)
				}
			}
		}
		// The audit log: what was there is unchanged, the rest is new and
		// numbered on.
		recs := s.Audit(AuditFilter{})
		if len(recs) < len(audit) {
			t.Fatalf("%s: audit log shrank from %d to %d", what, len(audit), len(recs))
		}
		if step%10 == 0 && len(audit) > 0 && !reflect.DeepEqual(recs[:len(audit)], audit) {
			t.Fatalf("%s: audit log rewritten", what)
		}
		for i := len(audit); i < len(recs); i++ {
			if recs[i].Seq != uint64(i+1) || recs[i].IdempotencyKey != c.IdempotencyKey || !recs[i].Time.Equal(c.Time) {
				t.Fatalf("%s: new audit record %+v", what, recs[i])
			}
		}
		audit = recs
		// Champions, once there, stay.
		for _, m := range s.Models() {
			if had[m.Name] && m.Champion == 0 {
				t.Fatalf("%s: %s lost its champion", what, m.Name)
			}
			had[m.Name] = m.Champion != 0
		}
		// Snapshot → restore → snapshot (when the state changed: the same
		// bytes were restored and checked at an earlier step).
		if !bytes.Equal(before, snap) {
			restored, err := RestoreSnapshot(snap)
			if err != nil {
				t.Fatalf("%s: restore: %v", what, err)
			}
			if again := mustSnapshot(t, restored); !bytes.Equal(again, snap) {
				t.Fatalf("%s: snapshot → restore → snapshot differs", what)
			}
		}
		if step%25 == 24 || step == steps-1 {
			replay(t, log, outcomes, snap)
		}
	}
	// Keep the generator honest: both outcomes must be common.
	if ok < steps/5 || bad < steps/10 {
		t.Fatalf("seed %d: %d applied, %d refused: the generator needs tuning", seed, ok, bad)
	}
}

// replay applies log to an empty state and checks every outcome and the
// final snapshot.
func replay(t *testing.T, log []Command, outcomes []outcome, want []byte) {
	t.Helper()
	s := New()
	for i, c := range log {
		res, err := s.Apply(c)
		o := outcome{res: res}
		if err != nil {
			o.err = err.Error()
		}
		if o != outcomes[i] {
			t.Fatalf("replay step %d %s: got %+v, first time %+v", i, c.Op(), o, outcomes[i])
		}
	}
	if got := mustSnapshot(t, s); !bytes.Equal(got, want) {
		t.Fatalf("replay from empty: snapshot differs")
	}
}

func mustSnapshot(t *testing.T, s *State) []byte {
	t.Helper()
	b, err := s.MarshalSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var randomModels = []string{"fraud", "churn"}

// randomArgs returns a command that is often, but not always, legal in s.
func randomArgs(r *rand.Rand, s *State) Args {
	model := randomModels[r.IntN(len(randomModels))]
	version := randomVersion(r, s, model)
	auto := r.IntN(3) == 0
	reason := []string{"", "ramp", "drift", "p99 regression"}[r.IntN(4)]
	switch n := r.IntN(100); {
	case n < 14:
		a := &RegisterArgs{Model: model, Digest: digestOf(r.IntN(16)), Size: 1 + r.Int64N(1<<20), Reason: reason}
		if r.IntN(5) > 0 {
			a.Signature = testSignature()
		}
		if r.IntN(4) == 0 {
			a.Lineage = Lineage{ParentVersion: r.IntN(5), TrainingMetrics: map[string]float64{"auc": r.Float64()}, CodeCommit: "abc"}
		}
		if r.IntN(4) == 0 {
			a.ReferenceProfile = json.RawMessage(`{"bins": [1, 2, 3]}`)
		}
		return a
	case n < 30:
		if r.IntN(4) > 0 {
			version = versionIn(r, s, model, StageRegistered, version)
		}
		a := &SetValidationArgs{Model: model, Version: version, Passed: r.IntN(4) > 0, Reason: reason}
		if r.IntN(2) == 0 {
			a.Signature = testSignature()
			a.Evidence = json.RawMessage(fmt.Sprintf(`{"smoke_ms": %d}`, r.IntN(9)))
		}
		return a
	case n < 50:
		if r.IntN(3) == 0 {
			version = versionIn(r, s, model, StageValidated, version)
		}
		st := []Stage{StageShadow, StageCanary, StageCanary, StageRetired, StageChampion}[r.IntN(5)]
		a := &SetStageArgs{Model: model, Version: version, Stage: st, Auto: auto, Reason: reason}
		if st == StageCanary {
			w := r.IntN(111) - 5
			a.Weight = float64(w)
			if w%7 == 3 { // some basis-point weights, without another draw from r
				a.Weight += 0.25
			}
		}
		return a
	case n < 62:
		if r.IntN(2) == 0 {
			version = versionIn(r, s, model, StageCanary, version)
		}
		return &PromoteArgs{Model: model, Version: version, Auto: auto, Reason: reason}
	case n < 68:
		return &RollbackArgs{Model: model, Auto: auto, Reason: reason}
	case n < 75:
		version = pendingVersion(r, s, model, version)
		return &ApproveArgs{Model: model, Version: version, Reason: reason}
	case n < 78:
		version = pendingVersion(r, s, model, version)
		return &RejectArgs{Model: model, Version: version}
	case n < 85:
		return &DeleteVersionArgs{Model: model, Version: version, Reason: reason}
	case n < 90:
		p := DefaultPolicy()
		if r.IntN(3) == 0 {
			p.Promotion.Mode = PromotionManual
		}
		p.Promotion.Shadow.RequireApproval = r.IntN(3) == 0
		p.Promotion.Canary.RequireApproval = r.IntN(3) == 0
		p.Promotion.Champion.RequireApproval = r.IntN(2) == 0
		if r.IntN(5) == 0 {
			p.Drift.PSI.Threshold = -1 // refused
		}
		return &SetPolicyArgs{Model: model, Policy: p, Reason: reason}
	case n < 94:
		return &RecordAlertArgs{Model: model, Version: r.IntN(2) * version, Kind: []string{"drift", "retraining_requested"}[r.IntN(2)],
			Evidence: json.RawMessage(`{"psi": 0.3}`)}
	case n < 96:
		return &CreateModelArgs{Model: model}
	default:
		// Plain bad input.
		return []Args{
			&PromoteArgs{Model: "Bad Name", Version: 1},
			&SetStageArgs{Model: model, Version: 0, Stage: StageShadow},
			&RegisterArgs{Model: model, Digest: "xyz", Size: 1},
		}[r.IntN(3)]
	}
}

// randomVersion picks an existing version of model most of the time.
func randomVersion(r *rand.Rand, s *State, model string) int {
	m, err := s.Model(model)
	if err != nil || len(m.Versions) == 0 || r.IntN(8) == 0 {
		return 1 + r.IntN(8)
	}
	return m.Versions[r.IntN(len(m.Versions))].Number
}

// versionIn picks a version of model in stage st, or returns otherwise.
func versionIn(r *rand.Rand, s *State, model string, st Stage, otherwise int) int {
	m, err := s.Model(model)
	if err != nil {
		return otherwise
	}
	var in []int
	for _, v := range m.Versions {
		if v.Stage == st {
			in = append(in, v.Number)
		}
	}
	if len(in) == 0 {
		return otherwise
	}
	return in[r.IntN(len(in))]
}

// pendingVersion picks a version of model waiting for approval, mostly.
func pendingVersion(r *rand.Rand, s *State, model string, otherwise int) int {
	var in []int
	for _, v := range s.PendingApprovals() {
		if v.Model == model {
			in = append(in, v.Number)
		}
	}
	if len(in) == 0 || r.IntN(4) == 0 {
		return otherwise
	}
	return in[r.IntN(len(in))]
}
