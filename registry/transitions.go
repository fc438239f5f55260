package registry

import (
	"slices"
	"strconv"
)

// via is a set of the ways a version can be moved between two stages.
type via uint8

const (
	viaValidation    via = 1 << iota // set_validation
	viaFirstChampion                 // set_validation passed while the model has no champion
	viaSetStage                      // set_stage (or approve of a pending set_stage)
	viaPromote                       // promote (or approve of a pending promote); for champion → retired, promoting another version
	viaRollback                      // rollback: the champion → rolled_back, the previous champion → champion
	viaDelete                        // delete_version
)

// stageDeleted is the pseudo-stage a delete moves a version to.
const stageDeleted Stage = "deleted"

// transitions is the table of legal moves: transitions[from][to] is the set
// of ways a version in stage from can be moved to stage to. A pair missing
// from the table is illegal whatever the command. doc.go has the same table
// for people; TestTransitionTable checks every cell against its own copy.
//
// Beyond the table:
//   - an automatic (Auto) move out of rolled_back is refused: only a person
//     brings back a version that was rolled back;
//   - a model has at most one canary: making a second one is refused until
//     the first is moved to shadow, retired or promoted;
//   - a canary → canary move must change the weight;
//   - rollback needs a champion and a previous champion on the stack.
var transitions = map[Stage]map[Stage]via{
	StageRegistered: {
		StageValidated: viaValidation,
		StageFailed:    viaValidation,
		stageDeleted:   viaDelete,
	},
	StageValidated: {
		StageShadow:   viaSetStage,
		StageCanary:   viaSetStage,
		StageChampion: viaPromote | viaFirstChampion,
		StageRetired:  viaSetStage,
		stageDeleted:  viaDelete,
	},
	StageShadow: {
		StageCanary:   viaSetStage,
		StageChampion: viaPromote | viaRollback,
		StageRetired:  viaSetStage,
	},
	StageCanary: {
		StageShadow:   viaSetStage,
		StageCanary:   viaSetStage, // a new weight
		StageChampion: viaPromote | viaRollback,
		StageRetired:  viaSetStage,
	},
	StageChampion: {
		StageRetired:    viaPromote, // another version was promoted
		StageRolledBack: viaRollback,
	},
	StageRetired: {
		StageShadow:   viaSetStage,
		StageCanary:   viaSetStage,
		StageChampion: viaPromote | viaRollback,
		stageDeleted:  viaDelete,
	},
	StageRolledBack: {
		StageShadow:   viaSetStage,
		StageCanary:   viaSetStage,
		StageChampion: viaPromote,
		StageRetired:  viaSetStage,
		stageDeleted:  viaDelete,
	},
	StageFailed: {
		stageDeleted: viaDelete,
	},
}

// LegalTransition reports whether some command can move a version from
// stage from to stage to. Pass "deleted" as to for a delete.
func LegalTransition(from, to Stage) bool { return transitions[from][to] != 0 }

// whyNot explains, for an operator, why a version in stage from cannot be
// moved to stage to.
func whyNot(from, to Stage) string {
	switch {
	case to == StageValidated || to == StageFailed:
		return "its validation result is already recorded (it is " + string(from) + ")"
	case from == to && to == StageChampion:
		return "it is already the champion"
	case from == to && to == StageShadow:
		return "it is already in shadow"
	case from == to:
		return "it is already " + string(to)
	case from == StageFailed:
		return "it failed validation; register a new version instead"
	case from == StageRegistered:
		return "it has not passed validation yet"
	case from == StageChampion:
		return "it is the champion; promote another version first"
	case to == stageDeleted && from == StageCanary:
		return "it is the canary and answers live traffic; retire it first"
	case to == stageDeleted && from == StageShadow:
		return "it is in shadow and receives mirrored traffic; retire it first"
	case to == StageRolledBack:
		return "only the champion can be rolled back"
	}
	return "a " + string(from) + " version cannot become " + string(to)
}

// actionFor names the attempted move in a TransitionError.
func actionFor(from, to Stage) string {
	switch to {
	case StageValidated, StageFailed:
		return "validate"
	case StageShadow:
		return "shadow"
	case StageCanary:
		if from == StageCanary {
			return "canary weight"
		}
		return "canary"
	case StageRetired:
		return "retire"
	case StageChampion:
		return "promote"
	case StageRolledBack:
		return "roll back"
	case stageDeleted:
		return "delete"
	}
	return "move"
}

// allow returns nil when the table lets version v of m move to stage to by
// way w, or a *TransitionError saying why not.
func allow(m *Model, v *Version, to Stage, w via) error {
	if transitions[v.Stage][to]&w != 0 {
		return nil
	}
	return &TransitionError{Model: m.Name, Version: v.Number, Action: actionFor(v.Stage, to), From: v.Stage, To: to, Reason: whyNot(v.Stage, to)}
}

// checkMove checks a set_stage or promote of version v of m to stage to
// (weight for a canary): the table, then the rules beyond it.
func checkMove(m *Model, v *Version, to Stage, weight float64, w via, auto bool) error {
	if err := allow(m, v, to, w); err != nil {
		return err
	}
	refuse := func(reason string) error {
		return &TransitionError{Model: m.Name, Version: v.Number, Action: actionFor(v.Stage, to), From: v.Stage, To: to, Reason: reason}
	}
	if auto && v.Stage == StageRolledBack {
		return refuse("it was rolled back; only a person can bring it back")
	}
	if to == StageCanary {
		if m.Canary != 0 && m.Canary != v.Number {
			return refuse("v" + strconv.Itoa(m.Canary) + " is already the canary (weight " + FormatWeight(m.CanaryWeight) + "); move it to shadow or retire it first")
		}
		if v.Stage == StageCanary && m.CanaryWeight == weight {
			return refuse("it is already the canary at weight " + FormatWeight(weight))
		}
	}
	return nil
}

// move puts version i of m in stage to and keeps the aliases in step: it is
// the only place that changes a version's stage once it is validated.
func (t *txn) move(m *Model, i int, to Stage, weight float64) {
	v := &m.Versions[i]
	if v.Stage == StageCanary && to != StageCanary {
		m.Canary, m.CanaryWeight = 0, 0
	}
	if v.Stage == StageChampion && to != StageChampion {
		m.Champion = 0
	}
	switch to {
	case StageCanary:
		m.Canary, m.CanaryWeight = v.Number, weight
	case StageChampion:
		m.Champion = v.Number
		m.PreviousChampions = slices.DeleteFunc(m.PreviousChampions, func(n int) bool { return n == v.Number })
	}
	v.Stage = to
	v.Updated = t.now
	v.Pending = nil
}

// compat applies wire v2's rule to a move that will have version v answer
// the champion's clients (promote, or a new canary): v must accept what
// they send and give what they read (CheckCompatible), unless force. It
// returns what force overrode ("" when nothing), or the *SignatureError.
// Commands of wire v1 were written before the rule and apply without it.
func (t *txn) compat(m *Model, v *Version, to Stage, force bool) (string, error) {
	if (to != StageChampion && to != StageCanary) || t.cmd.wire == 1 || m.Champion == 0 || m.Champion == v.Number || (to == StageCanary && v.Stage == StageCanary) {
		return "", nil
	}
	e := CheckCompatible(m.Versions[m.index(m.Champion)].Signature, v.Signature)
	if e == nil {
		return "", nil
	}
	e.Model, e.Version, e.Champion, e.Action = m.Name, v.Number, m.Champion, "promote"
	if to == StageCanary {
		e.Action = "canary"
	}
	if force {
		return "forced past: " + e.Reason, nil
	}
	return "", e
}

// request records an automatic move that must wait for approval.
func (t *txn) request(m *Model, i int, to Stage, weight float64, auto, force bool, reason string, evidence []byte) (Result, error) {
	v := &m.Versions[i]
	if v.Pending != nil {
		return Result{}, &TransitionError{Model: m.Name, Version: v.Number, Action: actionFor(v.Stage, to), From: v.Stage, To: to,
			Reason: "a move to " + string(v.Pending.To) + " is already waiting for approval; approve or reject it first"}
	}
	v.Pending = &PendingTransition{To: to, Weight: weight, Force: force, RequestedBy: t.cmd.Actor, RequestedAt: t.now, Reason: reason, Evidence: evidence}
	t.record(AuditRecord{Action: ActionRequestApproval, Version: v.Number, From: v.Stage, To: to, Weight: weight, Auto: auto, Reason: reason, Evidence: evidence})
	return Result{Model: m.Name, Version: v.Number, Stage: v.Stage, PendingApproval: true}, nil
}

func (a *SetStageArgs) apply(t *txn) (Result, error) {
	m, i, err := t.version(a.Model, a.Version)
	if err != nil {
		return Result{}, err
	}
	v := &m.Versions[i]
	if err := checkMove(m, v, a.Stage, a.Weight, viaSetStage, a.Auto); err != nil {
		return Result{}, err
	}
	var forced string
	if a.Stage == StageCanary {
		if forced, err = t.compat(m, v, a.Stage, a.Force); err != nil {
			return Result{}, err
		}
	}
	if a.Auto && m.Policy.Promotion.needsApproval(a.Stage) {
		return t.request(m, i, a.Stage, a.Weight, a.Auto, a.Force, a.Reason, a.Evidence)
	}
	t.setStage(m, i, a.Stage, a.Weight, a.Auto, a.Reason, a.Evidence, forced)
	return Result{Model: m.Name, Version: a.Version, Stage: a.Stage}, nil
}

// setStage does a checked set_stage move and records it.
func (t *txn) setStage(m *Model, i int, to Stage, weight float64, auto bool, reason string, evidence []byte, forced string) {
	from := m.Versions[i].Stage
	t.move(m, i, to, weight)
	if to != StageCanary {
		weight = 0
	}
	t.record(AuditRecord{Action: ActionSetStage, Version: m.Versions[i].Number, From: from, To: to, Weight: weight, Auto: auto, Reason: reason, Evidence: evidence, Forced: forced})
}

func (a *PromoteArgs) apply(t *txn) (Result, error) {
	m, i, err := t.version(a.Model, a.Version)
	if err != nil {
		return Result{}, err
	}
	if err := checkMove(m, &m.Versions[i], StageChampion, 0, viaPromote, a.Auto); err != nil {
		return Result{}, err
	}
	forced, err := t.compat(m, &m.Versions[i], StageChampion, a.Force)
	if err != nil {
		return Result{}, err
	}
	if a.Auto && m.Policy.Promotion.needsApproval(StageChampion) {
		return t.request(m, i, StageChampion, 0, a.Auto, a.Force, a.Reason, a.Evidence)
	}
	t.promote(m, i, a.Auto, a.Reason, a.Evidence, forced)
	return Result{Model: m.Name, Version: a.Version, Stage: StageChampion}, nil
}

// promote makes version i the champion, retires the former champion and
// pushes it on the rollback stack. The move must have been checked.
func (t *txn) promote(m *Model, i int, auto bool, reason string, evidence []byte, forced string) {
	v := &m.Versions[i]
	from := v.Stage
	old := m.Champion
	if old != 0 {
		// Retire the old champion first: move keeps the alias in step, and
		// the alias must end on the new one.
		t.move(m, m.index(old), StageRetired, 0)
		m.PreviousChampions = append(m.PreviousChampions, old)
	}
	t.move(m, i, StageChampion, 0)
	t.record(AuditRecord{Action: ActionPromote, Version: v.Number, From: from, To: StageChampion, Auto: auto, Reason: reason, Evidence: evidence, Forced: forced})
	if old != 0 {
		t.record(AuditRecord{Action: ActionRetire, Version: old, From: StageChampion, To: StageRetired, Auto: auto,
			Reason: "replaced as champion by v" + strconv.Itoa(v.Number)})
	}
}

func (a *RollbackArgs) apply(t *txn) (Result, error) {
	m, err := t.load(a.Model)
	if err != nil {
		return Result{}, err
	}
	refuse := func(reason string) error {
		return &TransitionError{Model: m.Name, Action: "roll back", Reason: reason}
	}
	if m.Champion == 0 {
		return Result{}, refuse("it has no champion yet")
	}
	if len(m.PreviousChampions) == 0 {
		return Result{}, refuse("there is no previous champion to return to (v" + strconv.Itoa(m.Champion) + " is the only one it has had, or the others were deleted)")
	}
	cur := m.index(m.Champion)
	prevNum := m.PreviousChampions[len(m.PreviousChampions)-1]
	prev := m.index(prevNum)
	if err := allow(m, &m.Versions[cur], StageRolledBack, viaRollback); err != nil {
		return Result{}, err
	}
	if err := allow(m, &m.Versions[prev], StageChampion, viaRollback); err != nil {
		return Result{}, err
	}
	curNum, prevFrom := m.Champion, m.Versions[prev].Stage
	t.move(m, cur, StageRolledBack, 0)
	t.move(m, prev, StageChampion, 0) // also pops it off the stack
	t.record(AuditRecord{Action: ActionRollback, Version: curNum, From: StageChampion, To: StageRolledBack, Auto: a.Auto, Reason: a.Reason, Evidence: a.Evidence})
	t.record(AuditRecord{Action: ActionRollback, Version: prevNum, From: prevFrom, To: StageChampion, Auto: a.Auto,
		Reason: "previous champion returns in place of v" + strconv.Itoa(curNum)})
	return Result{Model: m.Name, Version: prevNum, Stage: StageChampion}, nil
}

func (a *ApproveArgs) apply(t *txn) (Result, error) {
	m, i, err := t.version(a.Model, a.Version)
	if err != nil {
		return Result{}, err
	}
	v := &m.Versions[i]
	p := v.Pending
	if p == nil {
		return Result{}, &TransitionError{Model: m.Name, Version: v.Number, Action: "approve", From: v.Stage,
			Reason: "nothing is waiting for approval (it is " + string(v.Stage) + ")"}
	}
	// The state may have changed since the request: check again, as a
	// person's move (the approver is a person).
	if err := checkMove(m, v, p.To, p.Weight, viaMoveFor(p.To), false); err != nil {
		return Result{}, err
	}
	forced, err := t.compat(m, v, p.To, p.Force)
	if err != nil {
		return Result{}, err
	}
	t.record(AuditRecord{Action: ActionApprove, Version: v.Number, From: v.Stage, To: p.To, Weight: p.Weight, Reason: a.Reason, Evidence: p.Evidence})
	reason := "approved request by " + p.RequestedBy
	if p.Reason != "" {
		reason += ": " + p.Reason
	}
	if p.To == StageChampion {
		t.promote(m, i, false, reason, p.Evidence, forced)
	} else {
		t.setStage(m, i, p.To, p.Weight, false, reason, p.Evidence, forced)
	}
	return Result{Model: m.Name, Version: a.Version, Stage: p.To}, nil
}

func viaMoveFor(to Stage) via {
	if to == StageChampion {
		return viaPromote
	}
	return viaSetStage
}

func (a *RejectArgs) apply(t *txn) (Result, error) {
	m, i, err := t.version(a.Model, a.Version)
	if err != nil {
		return Result{}, err
	}
	v := &m.Versions[i]
	if v.Pending == nil {
		return Result{}, &TransitionError{Model: m.Name, Version: v.Number, Action: "reject", From: v.Stage,
			Reason: "nothing is waiting for approval (it is " + string(v.Stage) + ")"}
	}
	p := v.Pending
	v.Pending = nil
	t.record(AuditRecord{Action: ActionReject, Version: v.Number, From: v.Stage, To: p.To, Weight: p.Weight, Reason: a.Reason})
	return Result{Model: m.Name, Version: a.Version, Stage: v.Stage}, nil
}

func (a *DeleteVersionArgs) apply(t *txn) (Result, error) {
	m, i, err := t.version(a.Model, a.Version)
	if err != nil {
		return Result{}, err
	}
	v := m.Versions[i]
	if err := allow(m, &v, stageDeleted, viaDelete); err != nil {
		return Result{}, err
	}
	m.Versions = slices.Delete(m.Versions, i, i+1)
	m.PreviousChampions = slices.DeleteFunc(m.PreviousChampions, func(n int) bool { return n == v.Number })
	t.record(AuditRecord{Action: ActionDeleteVersion, Version: v.Number, From: v.Stage, Reason: a.Reason})
	return Result{Model: m.Name, Version: a.Version}, nil
}
