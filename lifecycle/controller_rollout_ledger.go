package lifecycle

import (
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/modelgate/modelgate/registry"
)

// A rollout's state (RolloutState) is not a registry field of its own: it
// is read from the registry as it stands and from the audit records the
// controller wrote. The step is the candidate's stage and canary weight
// (which only the registry changes), refined by the last rollout record
// where the stage cannot tell (two shadow steps); when it began is the
// version's last stage change (Version.Updated) or that record's time; the
// requests on it are the last record's count plus what this leader counted
// since; pending is the version's pending approval. Every rollout record's
// evidence is Decision.Evidence() with the state the decision left
// ("state"), so a new leader reads where its predecessor stood from the
// same records a person reads. See doc.go, "Rollout state".

// rolloutEvidence is d's evidence with the state it leaves, for the audit
// record.
func rolloutEvidence(d Decision, after RolloutState) json.RawMessage {
	ev := d.Evidence()
	st, err := json.Marshal(after)
	if err != nil || len(ev) < 2 || ev[len(ev)-1] != '}' {
		return ev
	}
	out := make([]byte, 0, len(ev)+len(st)+10)
	out = append(out, ev[:len(ev)-1]...)
	out = append(out, `,"state":`...)
	out = append(out, st...)
	return append(out, '}')
}

// recordedDecision is what the ledger reads back from a rollout record.
type recordedDecision struct {
	Action Action        `json:"action"`
	Phase  string        `json:"phase"`
	Step   int           `json:"step"`
	Checks []Check       `json:"checks"`
	State  *RolloutState `json:"state"`
}

// decisionKey is what makes a held decision news: its action, step,
// pending approval and every check's status. Numbers and reasons that move
// every window (elapsed time, counts) are not part of it, so a rollout
// waiting out a step writes one record, not one a window.
func decisionKey(d Decision, st RolloutState) string {
	return keyOf3(d.Action, d.Step, st.Pending, d.Checks)
}

func keyOf3(a Action, step int, pending bool, checks []Check) string {
	parts := make([]string, 0, len(checks))
	for _, c := range checks {
		parts = append(parts, c.Name+"="+c.Status)
	}
	sort.Strings(parts)
	return string(a) + "." + strconv.Itoa(step) + "." + strconv.FormatBool(pending) + "." + strings.Join(parts, ",")
}

// lastRecord is the last rollout record of a version on its current stage.
type lastRecord struct {
	seq   uint64
	state RolloutState
	key   string
}

// watchRecord is a champion the rollout promoted, in its watch.
type watchRecord struct {
	version int
	since   time.Time
}

type modelVersion struct {
	model   string
	version int
}

// rolloutLedger is the ledger's part for rollouts.
type rolloutLedger struct {
	last      map[modelVersion]lastRecord
	rampStart map[modelVersion]time.Time
	watch     map[string]watchRecord
	// rejected holds the steps on which a person rejected the move the
	// rollout proposed, with the move's name.
	rejected map[stepKey]string
}

func newRolloutLedger() rolloutLedger {
	return rolloutLedger{last: map[modelVersion]lastRecord{}, rampStart: map[modelVersion]time.Time{},
		watch: map[string]watchRecord{}, rejected: map[stepKey]string{}}
}

// read takes one audit record into the rollout ledger.
func (l *rolloutLedger) read(r *registry.AuditRecord) {
	mv := modelVersion{r.Model, r.Version}
	var rd recordedDecision
	rollout := len(r.Evidence) > 0 && json.Unmarshal(r.Evidence, &rd) == nil && rd.State != nil && rd.Phase != ""
	switch r.Action {
	case registry.ActionAlert:
		if r.Kind != KindRollout || !rollout {
			return
		}
		l.last[mv] = lastRecord{seq: r.Seq, state: *rd.State, key: keyOf3(rd.Action, rd.Step, rd.State.Pending, rd.Checks)}
		if rd.Action == ActionComplete {
			if w, ok := l.watch[r.Model]; ok && w.version == r.Version {
				delete(l.watch, r.Model)
			}
		}
	case registry.ActionRequestApproval:
		if rollout {
			l.last[mv] = lastRecord{seq: r.Seq, state: *rd.State, key: keyOf3(rd.Action, rd.Step, true, rd.Checks)}
		}
	case registry.ActionReject:
		if lr, ok := l.last[mv]; ok {
			name := string(r.To)
			if r.To == registry.StageCanary {
				name = "canary " + registry.FormatWeight(r.Weight) + "%"
			}
			l.rejected[stepKey{r.Model, r.Version, lr.state.Step, lr.state.StepStarted.UnixNano()}] = name
		}
	case registry.ActionSetStage, registry.ActionPromote, registry.ActionRollback, registry.ActionRetire, registry.ActionDeleteVersion:
		// A new stage is a new step, whoever moved it: the step is read
		// from the stage again, and begins now.
		delete(l.last, mv)
		switch {
		case r.To == registry.StageShadow || r.To == registry.StageCanary:
			if r.From != registry.StageShadow && r.From != registry.StageCanary {
				l.rampStart[mv] = r.Time
			}
		default:
			delete(l.rampStart, mv)
		}
		if r.Action == registry.ActionPromote {
			if rollout {
				l.watch[r.Model] = watchRecord{version: r.Version, since: r.Time}
			} else {
				delete(l.watch, r.Model) // a person chose the champion
			}
		}
		if r.Action == registry.ActionRollback {
			delete(l.watch, r.Model)
		}
	}
}

// candidate returns the rollout in progress on m, if any: its canary, else
// its newest shadow, else a champion the rollout promoted that is still in
// its watch. Only models whose policy has a rollout section are rolled
// out: a model whose stages people move by hand keeps that until its
// policy says otherwise.
func (l *rolloutLedger) candidate(m *registry.Model) (rolloutCandidate, bool) {
	if m.Policy.Rollout == nil || m.Champion == 0 {
		return rolloutCandidate{}, false
	}
	rp := m.Policy.EffectiveRollout()
	var cand *registry.Version
	for i := range m.Versions {
		v := &m.Versions[i]
		if v.Number == m.Canary {
			cand = v
			break
		}
		if v.Stage == registry.StageShadow && (cand == nil || v.Number > cand.Number) {
			cand = v
		}
	}
	if cand != nil {
		mv := modelVersion{m.Name, cand.Number}
		step := stepOf(&rp, cand.Stage, m.CanaryWeight)
		rc := rolloutCandidate{model: *m, version: *cand, against: m.Champion, phase: PhaseRamp,
			state: RolloutState{Step: step, StepStarted: cand.Updated, Pending: cand.Pending != nil}}
		if lr, ok := l.last[mv]; ok && lr.state.Step >= 0 && lr.state.Step < len(rp.Steps) && stepOf(&rp, cand.Stage, m.CanaryWeight) == stepFloor(&rp, lr.state.Step) {
			rc.state.Step, rc.state.StepStarted = lr.state.Step, lr.state.StepStarted
			rc.base, rc.baseSeq = lr.state.StepRequests, lr.seq
		}
		rc.since = cand.Updated
		if t, ok := l.rampStart[mv]; ok {
			rc.since = t
		}
		return rc, true
	}
	w, ok := l.watch[m.Name]
	if !ok || w.version != m.Champion || len(m.PreviousChampions) == 0 {
		return rolloutCandidate{}, false
	}
	champ, ok := m.Version(m.Champion)
	if !ok {
		return rolloutCandidate{}, false
	}
	rc := rolloutCandidate{model: *m, version: champ, against: m.PreviousChampions[len(m.PreviousChampions)-1], phase: PhaseWatch,
		state: RolloutState{Step: len(rp.Steps), StepStarted: w.since}, since: w.since}
	if lr, ok := l.last[modelVersion{m.Name, champ.Number}]; ok && lr.state.Step == len(rp.Steps) {
		rc.base, rc.baseSeq = lr.state.StepRequests, lr.seq
	}
	return rc, true
}

// stepOf maps a stage and canary weight to the ramp: the first shadow step,
// or the canary step of that weight (a weight a person set between two
// steps counts as the lower one). -1: the stage is not on the ramp.
func stepOf(rp *registry.RolloutPolicy, stage registry.Stage, weight float64) int {
	best := -1
	for i, s := range rp.Steps {
		switch {
		case s.Stage != stage:
		case stage == registry.StageShadow:
			return i
		case s.Weight <= weight || best < 0:
			best = i
		}
	}
	return best
}

// stepFloor is the step stepOf returns for step i's own stage and weight:
// two steps with the same floor are on the same stage and weight.
func stepFloor(rp *registry.RolloutPolicy, i int) int {
	return stepOf(rp, rp.Steps[i].Stage, rp.Steps[i].Weight)
}
