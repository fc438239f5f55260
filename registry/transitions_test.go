package registry

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// TestEveryMove puts a version in every stage and tries every per-version
// command on it, as a person (Auto false). The expected outcome of each
// cell is written out here, independently of the table in transitions.go.
func TestEveryMove(t *testing.T) {
	type outcome struct {
		stage Stage  // the version's stage after success; "deleted" for a delete
		err   string // a part of the refusal's message; "" for success
	}
	ok := func(s Stage) outcome { return outcome{stage: s} }
	no := func(msg string) outcome { return outcome{err: msg} }
	const (
		notValidated = "it has not passed validation yet"
		failed       = "it failed validation; register a new version instead"
		isChampion   = "it is the champion; promote another version first"
		recorded     = "its validation result is already recorded"
		nothing      = "nothing is waiting for approval"
	)
	actions := []string{"pass", "fail", "shadow", "canary", "retire", "promote", "delete", "approve", "reject"}
	want := map[Stage]map[string]outcome{
		StageRegistered: {
			"pass": ok(StageValidated), "fail": ok(StageFailed),
			"shadow": no(notValidated), "canary": no(notValidated), "retire": no(notValidated), "promote": no(notValidated),
			"delete": ok(stageDeleted), "approve": no(nothing), "reject": no(nothing),
		},
		StageValidated: {
			"pass": no(recorded), "fail": no(recorded),
			"shadow": ok(StageShadow), "canary": ok(StageCanary), "retire": ok(StageRetired), "promote": ok(StageChampion),
			"delete": ok(stageDeleted), "approve": no(nothing), "reject": no(nothing),
		},
		StageShadow: {
			"pass": no(recorded), "fail": no(recorded),
			"shadow": no("it is already in shadow"), "canary": ok(StageCanary), "retire": ok(StageRetired), "promote": ok(StageChampion),
			"delete": no("it is in shadow and receives mirrored traffic; retire it first"), "approve": no(nothing), "reject": no(nothing),
		},
		StageCanary: {
			"pass": no(recorded), "fail": no(recorded),
			"shadow": ok(StageShadow), "canary": ok(StageCanary), "retire": ok(StageRetired), "promote": ok(StageChampion),
			"delete": no("it is the canary and answers live traffic; retire it first"), "approve": no(nothing), "reject": no(nothing),
		},
		StageChampion: {
			"pass": no(recorded), "fail": no(recorded),
			"shadow": no(isChampion), "canary": no(isChampion), "retire": no(isChampion), "promote": no("it is already the champion"),
			"delete": no(isChampion), "approve": no(nothing), "reject": no(nothing),
		},
		StageRetired: {
			"pass": no(recorded), "fail": no(recorded),
			"shadow": ok(StageShadow), "canary": ok(StageCanary), "retire": no("it is already retired"), "promote": ok(StageChampion),
			"delete": ok(stageDeleted), "approve": no(nothing), "reject": no(nothing),
		},
		StageRolledBack: {
			"pass": no(recorded), "fail": no(recorded),
			"shadow": ok(StageShadow), "canary": ok(StageCanary), "retire": ok(StageRetired), "promote": ok(StageChampion),
			"delete": ok(stageDeleted), "approve": no(nothing), "reject": no(nothing),
		},
		StageFailed: {
			"pass": no(recorded), "fail": no(recorded),
			"shadow": no(failed), "canary": no(failed), "retire": no(failed), "promote": no(failed),
			"delete": ok(stageDeleted), "approve": no(nothing), "reject": no(nothing),
		},
	}
	for _, from := range Stages {
		for _, action := range actions {
			t.Run(string(from)+"/"+action, func(t *testing.T) {
				h, v := atStage(t, from)
				var args Args
				switch action {
				case "pass", "fail":
					args = &SetValidationArgs{Model: "m", Version: v, Passed: action == "pass"}
				case "shadow":
					args = &SetStageArgs{Model: "m", Version: v, Stage: StageShadow}
				case "canary":
					args = &SetStageArgs{Model: "m", Version: v, Stage: StageCanary, Weight: 20}
				case "retire":
					args = &SetStageArgs{Model: "m", Version: v, Stage: StageRetired}
				case "promote":
					args = &PromoteArgs{Model: "m", Version: v}
				case "delete":
					args = &DeleteVersionArgs{Model: "m", Version: v}
				case "approve":
					args = &ApproveArgs{Model: "m", Version: v}
				case "reject":
					args = &RejectArgs{Model: "m", Version: v}
				}
				w := want[from][action]
				if w.err != "" {
					h.refused(args, ErrIllegalTransition, w.err)
					return
				}
				before := h.s.LastSeq()
				h.must(args)
				if h.s.LastSeq() <= before {
					t.Fatal("a successful command appended no audit record")
				}
				if w.stage == stageDeleted {
					if _, err := h.s.Version("m", v); !errors.Is(err, ErrVersionNotFound) {
						t.Fatalf("after delete: %v", err)
					}
					return
				}
				if got := h.stage("m", v); got != w.stage {
					t.Fatalf("stage %s, want %s", got, w.stage)
				}
			})
		}
	}
}

// TestTransitionTableMatchesDoc parses the table in doc.go and checks every
// cell against LegalTransition, so the documentation cannot drift from the
// code.
func TestTransitionTableMatchesDoc(t *testing.T) {
	b, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var header []Stage
	rows := 0
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(line, "//"))
		if strings.HasPrefix(line, `from \ to`) {
			for _, f := range strings.Fields(line)[3:] {
				if f == "delete" {
					f = string(stageDeleted)
				}
				header = append(header, Stage(f))
			}
			continue
		}
		if header == nil {
			continue
		}
		if line == "" {
			break
		}
		// Cells are separated by two or more spaces; a cell may be "P, R'".
		from := Stage(strings.Fields(line)[0])
		cells := splitCells(strings.TrimSpace(strings.TrimPrefix(line, string(from))))
		if len(cells) != len(header) {
			t.Fatalf("doc.go row %q has %d cells, want %d", line, len(cells), len(header))
		}
		for i, c := range cells {
			if got, want := LegalTransition(from, header[i]), c != "."; got != want {
				t.Errorf("%s → %s: doc.go says %q, LegalTransition says %v", from, header[i], c, got)
			}
		}
		rows++
	}
	if rows != len(Stages) {
		t.Fatalf("doc.go table has %d rows, want one per stage (%d)", rows, len(Stages))
	}
}

func splitCells(s string) []string {
	var cells []string
	for _, f := range strings.Split(s, "  ") {
		if f = strings.TrimSpace(f); f != "" {
			cells = append(cells, f)
		}
	}
	return cells
}

// TestAutoMoves checks what the policy does to moves proposed by the
// lifecycle controller.
func TestAutoMoves(t *testing.T) {
	t.Run("default policy: shadow and canary at once, champion waits", func(t *testing.T) {
		h, v := atStage(t, StageValidated)
		r := h.must(&SetStageArgs{Model: "m", Version: v, Stage: StageShadow, Auto: true})
		if r.PendingApproval || h.stage("m", v) != StageShadow {
			t.Fatalf("shadow: %+v", r)
		}
		h.must(&SetStageArgs{Model: "m", Version: v, Stage: StageCanary, Weight: 5, Auto: true})
		r = h.must(&PromoteArgs{Model: "m", Version: v, Auto: true, Reason: "auc better at 95%"})
		if !r.PendingApproval || r.Stage != StageCanary || h.stage("m", v) != StageCanary {
			t.Fatalf("promote: %+v, stage %s", r, h.stage("m", v))
		}
		if p := h.s.PendingApprovals(); len(p) != 1 || p[0].Pending.To != StageChampion {
			t.Fatalf("pending: %+v", p)
		}
		h.refused(&PromoteArgs{Model: "m", Version: v, Auto: true}, ErrIllegalTransition, "a move to champion is already waiting for approval")
		h.actor = "bob"
		r = h.must(&ApproveArgs{Model: "m", Version: v, Reason: "looks good"})
		if r.Stage != StageChampion || h.stage("m", v) != StageChampion || h.stage("m", 1) != StageRetired {
			t.Fatalf("approve: %+v", r)
		}
		recs := h.s.Audit(AuditFilter{Since: h.s.LastSeq() - 3})
		if len(recs) != 3 || recs[0].Action != ActionApprove || recs[1].Action != ActionPromote || recs[2].Action != ActionRetire {
			t.Fatalf("audit: %+v", recs)
		}
		if recs[1].Actor != "bob" || !strings.Contains(recs[1].Reason, "approved request by alice: auc better at 95%") {
			t.Fatalf("promote record: %+v", recs[1])
		}
		h.refused(&ApproveArgs{Model: "m", Version: v}, ErrIllegalTransition, "nothing is waiting for approval (it is champion)")
	})
	t.Run("manual mode: every automatic move waits", func(t *testing.T) {
		h, v := atStage(t, StageValidated)
		p := DefaultPolicy()
		p.Promotion.Mode = PromotionManual
		h.must(&SetPolicyArgs{Model: "m", Policy: p})
		for _, args := range []Args{
			&SetStageArgs{Model: "m", Version: v, Stage: StageShadow, Auto: true},
		} {
			r := h.must(args)
			if !r.PendingApproval || h.stage("m", v) != StageValidated {
				t.Fatalf("%+v", r)
			}
		}
		h.must(&RejectArgs{Model: "m", Version: v, Reason: "not now"})
		if got, _ := h.s.Version("m", v); got.Pending != nil {
			t.Fatal("reject left the request")
		}
		// Retiring has no gate: it happens at once even in manual mode.
		r := h.must(&SetStageArgs{Model: "m", Version: v, Stage: StageRetired, Auto: true})
		if r.PendingApproval || h.stage("m", v) != StageRetired {
			t.Fatalf("retire: %+v", r)
		}
	})
	t.Run("a person's move clears a pending request", func(t *testing.T) {
		h, v := atStage(t, StageShadow)
		h.must(&PromoteArgs{Model: "m", Version: v, Auto: true})
		h.must(&SetStageArgs{Model: "m", Version: v, Stage: StageCanary, Weight: 50})
		got, _ := h.s.Version("m", v)
		if got.Pending != nil || got.Stage != StageCanary {
			t.Fatalf("%+v", got)
		}
	})
	t.Run("approve rechecks the state", func(t *testing.T) {
		h, v := atStage(t, StageValidated)
		p := DefaultPolicy()
		p.Promotion.Canary.RequireApproval = true
		h.must(&SetPolicyArgs{Model: "m", Policy: p})
		h.must(&SetStageArgs{Model: "m", Version: v, Stage: StageCanary, Weight: 10, Auto: true})
		v3 := h.register("m", 3)
		h.validate("m", v3, true)
		h.must(&SetStageArgs{Model: "m", Version: v3, Stage: StageCanary, Weight: 20})
		h.refused(&ApproveArgs{Model: "m", Version: v}, ErrIllegalTransition, "v3 is already the canary (weight 20); move it to shadow or retire it first")
	})
	t.Run("rolled back: people only", func(t *testing.T) {
		for _, args := range []Args{
			&SetStageArgs{Model: "m", Version: 2, Stage: StageShadow, Auto: true},
			&SetStageArgs{Model: "m", Version: 2, Stage: StageCanary, Weight: 1, Auto: true},
			&SetStageArgs{Model: "m", Version: 2, Stage: StageRetired, Auto: true},
			&PromoteArgs{Model: "m", Version: 2, Auto: true},
		} {
			h, _ := atStage(t, StageRolledBack)
			h.refused(args, ErrIllegalTransition, "it was rolled back; only a person can bring it back")
		}
	})
}

func TestCanaryRules(t *testing.T) {
	h, v := atStage(t, StageCanary)
	h.refused(&SetStageArgs{Model: "m", Version: v, Stage: StageCanary, Weight: 10}, ErrIllegalTransition,
		"registry: cannot change the canary weight of m v2: it is already the canary at weight 10")
	h.refused(&SetStageArgs{Model: "m", Version: v, Stage: StageCanary, Weight: 101}, ErrInvalid,
		"registry: weight (101) must be a percentage between 0 and 100")
	h.refused(&SetStageArgs{Model: "m", Version: v, Stage: StageCanary, Weight: -1}, ErrInvalid, "weight (-1)")
	h.refused(&SetStageArgs{Model: "m", Version: v, Stage: StageShadow, Weight: 5}, ErrInvalid, "applies only to stage canary")
	h.refused(&SetStageArgs{Model: "m", Version: v, Stage: StageCanary, Weight: 0.005}, ErrInvalid,
		"registry: weight (0.005) must be a percentage in steps of 0.01 (one basis point)")
	for _, w := range []float64{0, 100, 0.1, 0.01, 37} {
		h.must(&SetStageArgs{Model: "m", Version: v, Stage: StageCanary, Weight: w})
		if _, got, _ := h.s.Canary("m"); got != w {
			t.Fatalf("weight %v, want %v", got, w)
		}
		if bp := WeightBasisPoints(w); float64(bp) != w*100 {
			t.Fatalf("weight %v is %d basis points", w, bp)
		}
	}
	v3 := h.register("m", 3)
	h.validate("m", v3, true)
	h.refused(&SetStageArgs{Model: "m", Version: v3, Stage: StageCanary, Weight: 5}, ErrIllegalTransition,
		"registry: cannot make m v3 the canary: v2 is already the canary (weight 37)")
	// Promoting the canary clears the alias.
	h.must(&PromoteArgs{Model: "m", Version: v})
	if _, _, err := h.s.Canary("m"); !errors.Is(err, ErrNoCanary) {
		t.Fatalf("canary after promotion: %v", err)
	}
	h.must(&SetStageArgs{Model: "m", Version: v3, Stage: StageCanary, Weight: 5})
	h.must(&SetStageArgs{Model: "m", Version: v3, Stage: StageShadow})
	if m, _ := h.s.Model("m"); m.Canary != 0 || m.CanaryWeight != 0 {
		t.Fatalf("alias after shadow: %d %v", m.Canary, m.CanaryWeight)
	}
}

func TestStageArgsRefused(t *testing.T) {
	h, v := atStage(t, StageValidated)
	f := func(st Stage, want string) {
		t.Helper()
		h.refused(&SetStageArgs{Model: "m", Version: v, Stage: st}, ErrInvalid, want)
	}
	f(StageChampion, "registry: stage (\"champion\") cannot be set directly; promote the version instead")
	f(StageRolledBack, "roll the model back instead")
	f(StageValidated, "record a validation result instead")
	f(StageFailed, "record a validation result instead")
	f(StageRegistered, "must be shadow, canary or retired")
	f("", "must be shadow, canary or retired")
}

func TestRollback(t *testing.T) {
	h := newHarness(t)
	h.register("fraud", 1)
	h.refused(&RollbackArgs{Model: "fraud"}, ErrIllegalTransition, "registry: cannot roll back fraud: it has no champion yet")
	h.validate("fraud", 1, true)
	h.refused(&RollbackArgs{Model: "fraud"}, ErrIllegalTransition, "there is no previous champion to return to")
	for seed := 2; seed <= 4; seed++ {
		v := h.register("fraud", seed)
		h.validate("fraud", v, true)
		h.must(&PromoteArgs{Model: "fraud", Version: v})
	}
	m, _ := h.s.Model("fraud")
	if m.Champion != 4 || len(m.PreviousChampions) != 3 || m.PreviousChampions[2] != 3 {
		t.Fatalf("%d %v", m.Champion, m.PreviousChampions)
	}
	// v3 is moved to canary meanwhile; rollback brings it back from there.
	h.must(&SetStageArgs{Model: "fraud", Version: 3, Stage: StageCanary, Weight: 5})
	r := h.must(&RollbackArgs{Model: "fraud", Reason: "p99 regression", Evidence: []byte(`{"p99_ms": 80}`)})
	if r.Version != 3 || r.Stage != StageChampion || h.stage("fraud", 4) != StageRolledBack {
		t.Fatalf("%+v", r)
	}
	if _, _, err := h.s.Canary("fraud"); !errors.Is(err, ErrNoCanary) {
		t.Fatal("the restored champion is still the canary")
	}
	// Delete v2 from the stack: the next rollback skips to v1.
	h.must(&DeleteVersionArgs{Model: "fraud", Version: 2})
	r = h.must(&RollbackArgs{Model: "fraud"})
	if r.Version != 1 || h.stage("fraud", 3) != StageRolledBack {
		t.Fatalf("%+v", r)
	}
	h.refused(&RollbackArgs{Model: "fraud"}, ErrIllegalTransition, "there is no previous champion")
	h.refused(&RollbackArgs{Model: "nope"}, ErrModelNotFound, `"nope"`)
	// A person may bring a rolled-back version back.
	h.must(&PromoteArgs{Model: "fraud", Version: 4, Reason: "the regression was the network"})
	if h.stage("fraud", 4) != StageChampion || h.stage("fraud", 1) != StageRetired {
		t.Fatal("promote of a rolled-back version")
	}
}

func TestFirstValidatedBecomesChampion(t *testing.T) {
	h := newHarness(t)
	h.register("fraud", 1)
	h.register("fraud", 2)
	h.validate("fraud", 1, false) // v1 fails: still no champion
	if _, err := h.s.Champion("fraud"); !errors.Is(err, ErrNoChampion) {
		t.Fatal(err)
	}
	if rv := h.s.RoutingView(); len(rv.Models) != 1 || len(rv.Models[0].Versions) != 0 {
		t.Fatalf("%+v", rv)
	}
	r := h.validate("fraud", 2, true)
	if r.Stage != StageChampion {
		t.Fatalf("%+v", r)
	}
	c, err := h.s.Champion("fraud")
	if err != nil || c.Number != 2 {
		t.Fatal(c.Number, err)
	}
	// A model with a champion keeps the next validated version as validated,
	// even with a policy that asks for approval of everything.
	v3 := h.register("fraud", 3)
	if r := h.validate("fraud", v3, true); r.Stage != StageValidated {
		t.Fatalf("%+v", r)
	}
	recs := h.s.Audit(AuditFilter{Model: "fraud", Version: 2})
	var actions []string
	for _, r := range recs {
		actions = append(actions, string(r.Action)+":"+string(r.To))
	}
	if got := strings.Join(actions, " "); got != "register:registered validate:validated promote:champion" {
		t.Fatal(got)
	}
}

// TestRollbackFromEveryStage: the previous champion returns from whatever
// stage it was moved to after it was replaced.
func TestRollbackFromEveryStage(t *testing.T) {
	for _, st := range []Stage{StageRetired, StageShadow, StageCanary} {
		t.Run(string(st), func(t *testing.T) {
			h, v := atStage(t, StageChampion) // v1 retired, on the stack
			switch st {
			case StageShadow:
				h.must(&SetStageArgs{Model: "m", Version: 1, Stage: StageShadow})
			case StageCanary:
				h.must(&SetStageArgs{Model: "m", Version: 1, Stage: StageCanary, Weight: 50})
			}
			r := h.must(&RollbackArgs{Model: "m", Reason: "errors"})
			if r.Version != 1 || h.stage("m", 1) != StageChampion || h.stage("m", v) != StageRolledBack {
				t.Fatalf("%+v", r)
			}
			m, _ := h.s.Model("m")
			if m.Champion != 1 || m.Canary != 0 || len(m.PreviousChampions) != 0 {
				t.Fatalf("%+v", m)
			}
			rv := h.s.RoutingView()
			if route, _ := rv.Model("m"); len(route.Versions) != 1 || route.Versions[0].Role != RoleChampion {
				t.Fatalf("%+v", route)
			}
		})
	}
}
