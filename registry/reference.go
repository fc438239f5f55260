package registry

import (
	"encoding/json"
	"strconv"
	"time"
)

// KindDriftReference is the alert kind of the record that says a drift
// reference was bootstrapped from traffic. Before wire version 3 that
// record's evidence was the profile itself and the only place a restarted
// node found it; such records, replayed from an old log, still set the
// version's BootstrappedReference.
const KindDriftReference = "drift_reference"

// SetReferenceArgs keeps a drift reference profile bootstrapped from a
// version's traffic in the version's state (Version.BootstrappedReference),
// so every node, and a node restarted from a snapshot, monitors drift
// against the same reference. It replaces an earlier bootstrapped one; a
// version registered with a profile refuses it. The audit record is a
// drift_reference alert with the reason and the profile's size, not the
// profile. Wire version 3.
type SetReferenceArgs struct {
	Model   string          `json:"model"`
	Version int             `json:"version"`
	Profile json.RawMessage `json:"profile"`
	// Rows is how many scored rows the profile was drawn from (recorded).
	Rows   int64  `json:"rows,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// Op implements Args.
func (*SetReferenceArgs) Op() Op { return OpSetReference }

func (a *SetReferenceArgs) validate() error {
	if err := CheckModelName(a.Model); err != nil {
		return err
	}
	if err := checkVersionNumber(a.Version); err != nil {
		return err
	}
	if len(a.Profile) == 0 {
		return fieldErr("profile", nil, "must be given: the reference profile to keep")
	}
	if err := checkRaw("profile", &a.Profile, MaxProfileSize); err != nil {
		return err
	}
	if a.Rows < 0 {
		return fieldErr("rows", a.Rows, "must be >= 0")
	}
	return checkText("reason", a.Reason, MaxReasonSize, false)
}

func (a *SetReferenceArgs) apply(t *txn) (Result, error) {
	m, i, err := t.version(a.Model, a.Version)
	if err != nil {
		return Result{}, err
	}
	v := &m.Versions[i]
	if len(v.ReferenceProfile) > 0 {
		return Result{}, fieldErr("version", a.Version, m.Name+" v"+strconv.Itoa(a.Version)+" was registered with a reference profile, which drift monitoring uses; a bootstrapped one would never be")
	}
	v.BootstrappedReference = cloneRaw(a.Profile)
	if m.LastAlerts == nil {
		m.LastAlerts = make(map[string]time.Time)
	}
	m.LastAlerts[KindDriftReference] = t.now
	t.record(AuditRecord{Action: ActionAlert, Version: a.Version, Kind: KindDriftReference, Reason: a.Reason,
		Evidence: mustJSON(map[string]any{"rows": a.Rows, "profile_bytes": len(a.Profile)})})
	return Result{Model: m.Name, Version: a.Version, Stage: v.Stage}, nil
}

// oldReference applies what a drift_reference alert written before wire
// version 3 meant: its evidence is the bootstrapped profile, kept now in
// the version's state. A version with a registered profile keeps only that.
func (a *RecordAlertArgs) oldReference(t *txn, m *Model) {
	if t.wire >= 3 || a.Kind != KindDriftReference || a.Version == 0 || len(a.Evidence) == 0 {
		return
	}
	if i := m.index(a.Version); i >= 0 && len(m.Versions[i].ReferenceProfile) == 0 {
		m.Versions[i].BootstrappedReference = cloneRaw(a.Evidence)
	}
}

// oldReferences gives a state restored from a format 1 snapshot (written
// before set_reference) what replaying its log would have: each
// drift_reference alert in its audit log sets the version's bootstrapped
// reference, the last one winning. Format 1 snapshots were written by wire
// v1–v2 registries only, so every such record carries the old meaning.
func (s *State) oldReferences() {
	for i := range s.audit {
		r := &s.audit[i]
		if r.Action != ActionAlert || r.Kind != KindDriftReference || r.Version == 0 || len(r.Evidence) == 0 {
			continue
		}
		m, ok := s.models[r.Model]
		if !ok {
			continue
		}
		if j := m.index(r.Version); j >= 0 && len(m.Versions[j].ReferenceProfile) == 0 {
			m.Versions[j].BootstrappedReference = cloneRaw(r.Evidence)
		}
	}
}
