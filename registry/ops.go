package registry

import (
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"time"
)

// This file applies the operations that do not move a version between
// serving stages: creating models, registering versions, recording
// validation outcomes, policies and alerts. The stage moves are in
// transitions.go.

func (a *CreateModelArgs) apply(t *txn) (Result, error) {
	if _, ok := t.s.models[a.Model]; ok {
		return Result{}, fmt.Errorf("%w: %s (set its policy with set_policy instead)", ErrModelExists, a.Model)
	}
	p := DefaultPolicy()
	if a.Policy != nil {
		p = *a.Policy
	}
	t.create(a.Model, p, a.Reason)
	return Result{Model: a.Model}, nil
}

func (a *RegisterArgs) apply(t *txn) (Result, error) {
	m, err := t.load(a.Model)
	if err != nil {
		m = t.create(a.Model, DefaultPolicy(), "created by the registration of its first version")
	}
	for i := range m.Versions {
		if m.Versions[i].Digest == a.Digest {
			return Result{}, &DuplicateError{Model: m.Name, Version: m.Versions[i].Number, Digest: a.Digest}
		}
	}
	n := m.NextVersion
	if a.Lineage.ParentVersion >= n {
		return Result{}, fieldErr("lineage.parent_version", a.Lineage.ParentVersion,
			"must name an earlier version of "+m.Name+" (it has given out v1 to v"+strconv.Itoa(n-1)+")")
	}
	lineage := a.Lineage
	lineage.TrainingMetrics = maps.Clone(a.Lineage.TrainingMetrics)
	m.Versions = append(m.Versions, Version{
		Model:            m.Name,
		Number:           n,
		Digest:           a.Digest,
		Size:             a.Size,
		Signature:        a.Signature.clone(),
		Lineage:          lineage,
		ReferenceProfile: cloneRaw(a.ReferenceProfile),
		Golden:           cloneRaw(a.Golden),
		Stage:            StageRegistered,
		Created:          t.now,
		Updated:          t.now,
	})
	if a.Holder != "" {
		m.Versions[len(m.Versions)-1].Holders = []string{a.Holder}
	}
	m.NextVersion++
	t.record(AuditRecord{Action: ActionRegister, Version: n, To: StageRegistered, Reason: a.Reason,
		Evidence: mustJSON(map[string]any{"digest": a.Digest, "size": a.Size})})
	return Result{Model: m.Name, Version: n, Stage: StageRegistered}, nil
}

func (a *SetValidationArgs) apply(t *txn) (Result, error) {
	m, i, err := t.version(a.Model, a.Version)
	if err != nil {
		return Result{}, err
	}
	v := &m.Versions[i]
	to := StageFailed
	if a.Passed {
		to = StageValidated
	}
	if err := allow(m, v, to, viaValidation); err != nil {
		return Result{}, err
	}
	if a.Passed {
		switch {
		case v.Signature.Empty() && a.Signature.Empty():
			return Result{}, fieldErr("signature", nil, "must be given: "+m.Name+" v"+strconv.Itoa(v.Number)+" was registered without one, and a validated version needs its inputs and outputs")
		case v.Signature.Empty():
			v.Signature = a.Signature.clone()
		case !a.Signature.Empty() && !a.Signature.equal(v.Signature):
			return Result{}, fieldErr("signature", nil, "differs from the one "+m.Name+" v"+strconv.Itoa(v.Number)+" was registered with; the artifact does not declare what its registration said")
		}
	}
	v.Stage = to
	v.Updated = t.now
	if a.Passed && len(v.Holders) == 1 && len(v.ReadyOn) == 0 {
		// The node that stored the upload is the one that ran this gate:
		// its verdict is its ready report. (Holders exist from wire v4 on,
		// so older logs replay unchanged.)
		v.ReadyOn = []NodeReport{{Node: v.Holders[0], Time: t.now}}
	}
	v.Validation = &Validation{Passed: a.Passed, Time: t.now, Actor: t.cmd.Actor, Reason: a.Reason, Evidence: cloneRaw(a.Evidence)}
	t.record(AuditRecord{Action: ActionValidate, Version: v.Number, From: StageRegistered, To: to, Reason: a.Reason, Evidence: cloneRaw(a.Evidence)})
	if a.Passed && m.Champion == 0 {
		// Nothing serves this model yet, so there is nothing to protect
		// and no one to compare with: the first version to pass validation
		// is champion at once, whatever the policy.
		if err := allow(m, v, StageChampion, viaFirstChampion); err != nil {
			return Result{}, err
		}
		t.move(m, i, StageChampion, 0)
		t.record(AuditRecord{Action: ActionPromote, Version: v.Number, From: StageValidated, To: StageChampion,
			Reason: "first version of " + m.Name + " to pass validation becomes champion"})
		to = StageChampion
	}
	return Result{Model: m.Name, Version: a.Version, Stage: to}, nil
}

func (a *SetPolicyArgs) apply(t *txn) (Result, error) {
	m, err := t.load(a.Model)
	if err != nil {
		return Result{}, err
	}
	m.Policy = a.Policy.clone()
	t.record(AuditRecord{Action: ActionSetPolicy, Reason: a.Reason, Evidence: mustJSON(a.Policy)})
	return Result{Model: m.Name}, nil
}

func (a *RecordAlertArgs) apply(t *txn) (Result, error) {
	m, err := t.load(a.Model)
	if err != nil {
		return Result{}, err
	}
	var stage Stage
	if a.Version != 0 {
		i := m.index(a.Version)
		if i < 0 {
			return Result{}, versionNotFound(m.Name, a.Version)
		}
		stage = m.Versions[i].Stage
	}
	if m.LastAlerts == nil {
		m.LastAlerts = make(map[string]time.Time)
	}
	m.LastAlerts[a.Kind] = t.now
	a.oldReference(t, m)
	t.record(AuditRecord{Action: ActionAlert, Version: a.Version, Kind: a.Kind, Reason: a.Reason, Evidence: cloneRaw(a.Evidence)})
	return Result{Model: m.Name, Version: a.Version, Stage: stage}, nil
}

// mustJSON encodes a value that always encodes (validated, finite).
func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic("registry: cannot encode audit evidence: " + err.Error())
	}
	return b
}
