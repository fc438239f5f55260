package lifecycle

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/registry"
)

// The ledger is the controller's reading of the audit log: the decisions
// already taken, by this leader or an earlier one. It is a cache, rebuilt
// from the replicated log by any node that becomes leader, and read
// incrementally (only records past the last one seen) once a step.

// driftGrowth is how much larger (in severity, see severity) a breach of a
// statistic already recorded must be to be recorded again within the
// cooldown: a drift that doubled its distance past the threshold is news
// to the person reading the audit log; one that wobbles is not.
const driftGrowth = 2

// driftRecord is the last drift alert recorded for a model.
type driftRecord struct {
	version int
	time    time.Time
	alerts  []drift.Alert
}

// superseded reports whether alerts of version judged at now are news
// against this record: another version, the cooldown since the record
// passed (a reminder that the drift lasts), or a larger drift (a statistic
// or feature not breached before, or one at least driftGrowth times as far
// past its threshold).
func (r driftRecord) superseded(version int, now time.Time, cooldown time.Duration, alerts []drift.Alert) bool {
	if version != r.version {
		return true
	}
	if !now.Before(r.time) && now.Sub(r.time) >= cooldown {
		return true
	}
	was := make(map[alertKey]float64, len(r.alerts))
	for _, a := range r.alerts {
		was[keyOf(a)] = severity(a)
	}
	for _, a := range alerts {
		s, ok := was[keyOf(a)]
		if !ok || severity(a) >= driftGrowth*s {
			return true
		}
	}
	return false
}

type alertKey struct {
	input     string
	index     int
	output    bool
	statistic string
}

func keyOf(a drift.Alert) alertKey {
	return alertKey{a.Input, a.Index, a.Output, a.Statistic}
}

// pending is a retraining request recorded without an outcome.
type pending struct {
	model   string
	version int
	event   Event
}

type ledger struct {
	seq       uint64 // the last audit record read
	lastDrift map[string]driftRecord
	requests  map[string]pending // by event id
	order     []string           // request ids in record order (may hold settled ones)
	rollout   rolloutLedger
	alerts    map[string]Alert // alerts requested without an outcome, by id
	alertIDs  []string         // their ids in record order (may hold settled ones)
}

func newLedger() ledger {
	return ledger{lastDrift: map[string]driftRecord{}, requests: map[string]pending{}, rollout: newRolloutLedger(), alerts: map[string]Alert{}}
}

// update reads the audit records appended since the last update.
func (l *ledger) update(st *registry.State) {
	if st.LastSeq() < l.seq {
		*l = newLedger() // another log altogether (a test's fresh registry)
	}
	for _, r := range st.Audit(registry.AuditFilter{Since: l.seq}) {
		l.seq = r.Seq
		l.rollout.read(&r)
		if r.Action != registry.ActionAlert {
			continue
		}
		switch r.Kind {
		case KindDrift:
			var alerts []drift.Alert
			if json.Unmarshal(r.Evidence, &alerts) == nil {
				l.lastDrift[r.Model] = driftRecord{version: r.Version, time: r.Time, alerts: alerts}
			}
		case KindRetrainingRequested:
			var ev Event
			if json.Unmarshal(r.Evidence, &ev) == nil && ev.ID != "" && r.IdempotencyKey == ev.ID+keyRequested {
				l.requests[ev.ID] = pending{model: r.Model, version: r.Version, event: ev}
				l.order = append(l.order, ev.ID)
			}
		case KindRetrainingDelivered:
			delete(l.requests, strings.TrimSuffix(r.IdempotencyKey, keyDelivered))
		case KindRetrainingFailed:
			delete(l.requests, strings.TrimSuffix(r.IdempotencyKey, keyFailed))
		case KindAlertRequested:
			var a Alert
			if json.Unmarshal(r.Evidence, &a) == nil && a.ID != "" && r.IdempotencyKey == a.ID+keyRequested {
				l.alerts[a.ID] = a
				l.alertIDs = append(l.alertIDs, a.ID)
			}
		case KindAlertDelivered:
			delete(l.alerts, strings.TrimSuffix(r.IdempotencyKey, keyDelivered))
		case KindAlertFailed:
			delete(l.alerts, strings.TrimSuffix(r.IdempotencyKey, keyFailed))
		}
	}
	if len(l.order) > 2*len(l.requests)+16 {
		kept := l.order[:0]
		for _, id := range l.order {
			if _, ok := l.requests[id]; ok {
				kept = append(kept, id)
			}
		}
		l.order = kept
	}
}

// undeliveredAlerts lists the alerts requested without an outcome, oldest
// first.
func (l *ledger) undeliveredAlerts() []Alert {
	var out []Alert
	kept := l.alertIDs[:0]
	for _, id := range l.alertIDs {
		if a, ok := l.alerts[id]; ok {
			out = append(out, a)
			kept = append(kept, id)
		}
	}
	l.alertIDs = kept
	return out
}

// undelivered lists the requests without an outcome, oldest first.
func (l *ledger) undelivered() []pending {
	var out []pending
	seen := map[string]bool{}
	for _, id := range l.order {
		if p, ok := l.requests[id]; ok && !seen[id] {
			seen[id] = true
			out = append(out, p)
		}
	}
	return out
}
