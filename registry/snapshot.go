package registry

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
)

// SnapshotFormat is the version of the snapshot encoding MarshalSnapshot
// writes. RestoreSnapshot reads it and format 1.
//
//	1  the audit log whole, numbered from 1; LastSeq is its length
//	2  last_seq of its own: the audit log holds the records trim_audit
//	   kept, numbered without gaps up to last_seq
const SnapshotFormat = 2

// snapshot is the encoded state. Models are sorted by name, versions by
// number, and idempotency keys oldest first; encoding/json sorts map keys,
// so one state has exactly one encoding.
type snapshot struct {
	Format           int           `json:"format"`
	LastSeq          *uint64       `json:"last_seq,omitempty"` // format 2 on
	Models           []*Model      `json:"models"`
	Audit            []AuditRecord `json:"audit"`
	IdempotencyLimit int           `json:"idempotency_limit"`
	Idempotency      []keyEntry    `json:"idempotency"`
}

// MarshalSnapshot encodes the whole state (JSON, format SnapshotFormat). The
// same state always encodes to the same bytes, so replicas can compare
// snapshots byte for byte.
func (s *State) MarshalSnapshot() ([]byte, error) {
	seq := s.seq
	snap := snapshot{
		Format:           SnapshotFormat,
		LastSeq:          &seq,
		Models:           make([]*Model, 0, len(s.models)),
		Audit:            s.audit,
		IdempotencyLimit: s.keys.limit,
		Idempotency:      s.keys.ordered(),
	}
	if snap.Audit == nil {
		snap.Audit = []AuditRecord{}
	}
	for _, name := range s.modelNames() {
		snap.Models = append(snap.Models, s.models[name])
	}
	b, err := json.Marshal(&snap)
	if err != nil {
		return nil, fmt.Errorf("registry: cannot encode snapshot: %w", err)
	}
	return b, nil
}

// RestoreSnapshot decodes a snapshot into a new State. The result replaces
// whatever state the caller had; it is never merged with one. A snapshot
// that does not decode, or whose state breaks one of the registry's
// invariants, is refused with an error wrapping ErrCorruptSnapshot.
func RestoreSnapshot(b []byte) (*State, error) {
	var snap snapshot
	if err := strictUnmarshal(b, &snap); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptSnapshot, err)
	}
	seq := uint64(len(snap.Audit)) // format 1: the whole log, from 1
	switch {
	case snap.Format == 1 && snap.LastSeq == nil:
	case snap.Format == SnapshotFormat && snap.LastSeq != nil:
		seq = *snap.LastSeq
	case snap.Format == 1 || snap.Format == SnapshotFormat:
		return nil, fmt.Errorf("%w: format %d with last_seq %v (last_seq comes with format 2, and only with it)", ErrCorruptSnapshot, snap.Format, snap.LastSeq != nil)
	default:
		return nil, fmt.Errorf("%w: format %d (this registry reads formats 1 and %d)", ErrCorruptSnapshot, snap.Format, SnapshotFormat)
	}
	if snap.IdempotencyLimit < 1 {
		return nil, fmt.Errorf("%w: idempotency_limit %d", ErrCorruptSnapshot, snap.IdempotencyLimit)
	}
	s := &State{models: make(map[string]*Model, len(snap.Models)), audit: snap.Audit, seq: seq, keys: newKeyRing(snap.IdempotencyLimit)}
	for _, m := range snap.Models {
		if m == nil {
			return nil, fmt.Errorf("%w: null model", ErrCorruptSnapshot)
		}
		if _, dup := s.models[m.Name]; dup {
			return nil, fmt.Errorf("%w: model %q twice", ErrCorruptSnapshot, m.Name)
		}
		s.models[m.Name] = m
	}
	if len(snap.Idempotency) > snap.IdempotencyLimit {
		return nil, fmt.Errorf("%w: %d idempotency keys, more than the limit of %d", ErrCorruptSnapshot, len(snap.Idempotency), snap.IdempotencyLimit)
	}
	for _, e := range snap.Idempotency {
		if _, dup := s.keys.get(e.Key); dup {
			return nil, fmt.Errorf("%w: idempotency key %q twice", ErrCorruptSnapshot, e.Key)
		}
		s.keys.add(e)
	}
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptSnapshot, err)
	}
	if snap.Format == 1 {
		s.oldReferences()
	}
	return s, nil
}

// check verifies the invariants every state reachable by Apply keeps. It
// returns the first broken one.
func (s *State) check() error {
	if uint64(len(s.audit)) > s.seq {
		return fmt.Errorf("%d audit records, more than last_seq %d", len(s.audit), s.seq)
	}
	first := s.seq - uint64(len(s.audit)) + 1 // the kept records run without gaps up to seq
	for i := range s.audit {
		if want := first + uint64(i); s.audit[i].Seq != want {
			return fmt.Errorf("audit record %d has seq %d", want, s.audit[i].Seq)
		}
	}
	for _, name := range s.modelNames() {
		if err := s.models[name].check(name); err != nil {
			return fmt.Errorf("model %s: %w", name, err)
		}
	}
	return nil
}

// check verifies one model's invariants:
//   - versions ascending, numbered below NextVersion, each naming the model,
//     digests unique;
//   - exactly one version in stage champion when Champion is set, none when
//     not; the same for canary, with CanaryWeight in 0–100 (0 without one);
//   - the rollback stack holds existing, distinct, non-champion versions;
//   - a version's stage agrees with its validation record: registered has
//     none, failed a failed one, every other stage a passed one and a
//     signature; a pending approval asks for shadow, canary or champion.
func (m *Model) check(name string) error {
	if m.Name != name || !validModelName(name) {
		return fmt.Errorf("bad name %q", m.Name)
	}
	if err := m.Policy.Validate(); err != nil {
		return err
	}
	if m.NextVersion < 1 {
		return fmt.Errorf("next_version %d", m.NextVersion)
	}
	digests := make(map[string]int, len(m.Versions))
	var champions, canaries int
	for i := range m.Versions {
		v := &m.Versions[i]
		at := "v" + strconv.Itoa(v.Number)
		if v.Number < 1 || v.Number >= m.NextVersion || i > 0 && v.Number <= m.Versions[i-1].Number {
			return fmt.Errorf("%s out of order or beyond next_version %d", at, m.NextVersion)
		}
		if v.Model != name {
			return fmt.Errorf("%s names model %q", at, v.Model)
		}
		if o, dup := digests[v.Digest]; dup {
			return fmt.Errorf("%s has the digest of v%d", at, o)
		}
		digests[v.Digest] = v.Number
		if !v.Stage.Valid() {
			return fmt.Errorf("%s has stage %q", at, v.Stage)
		}
		switch v.Stage {
		case StageRegistered:
			if v.Validation != nil {
				return fmt.Errorf("%s is registered but has a validation result", at)
			}
		case StageFailed:
			if v.Validation == nil || v.Validation.Passed {
				return fmt.Errorf("%s is failed without a failed validation", at)
			}
		default:
			if v.Validation == nil || !v.Validation.Passed {
				return fmt.Errorf("%s is %s without a passed validation", at, v.Stage)
			}
			if len(v.Signature.Inputs) == 0 || len(v.Signature.Outputs) == 0 {
				return fmt.Errorf("%s is %s without a signature", at, v.Stage)
			}
		}
		switch v.Stage {
		case StageChampion:
			champions++
			if m.Champion != v.Number {
				return fmt.Errorf("%s is in stage champion but the alias points at v%d", at, m.Champion)
			}
		case StageCanary:
			canaries++
			if m.Canary != v.Number {
				return fmt.Errorf("%s is in stage canary but the alias points at v%d", at, m.Canary)
			}
		}
		if p := v.Pending; p != nil {
			if p.To != StageShadow && p.To != StageCanary && p.To != StageChampion || CheckWeight(p.Weight) != nil {
				return fmt.Errorf("%s has a pending move to %q weight %v", at, p.To, p.Weight)
			}
		}
	}
	if (m.Champion != 0) != (champions == 1) || champions > 1 {
		return fmt.Errorf("champion alias v%d with %d versions in stage champion", m.Champion, champions)
	}
	if (m.Canary != 0) != (canaries == 1) || canaries > 1 {
		return fmt.Errorf("canary alias v%d with %d versions in stage canary", m.Canary, canaries)
	}
	if CheckWeight(m.CanaryWeight) != nil || m.Canary == 0 && m.CanaryWeight != 0 {
		return fmt.Errorf("canary weight %v (canary v%d)", m.CanaryWeight, m.Canary)
	}
	for i, n := range m.PreviousChampions {
		if m.index(n) < 0 || n == m.Champion || slices.Contains(m.PreviousChampions[:i], n) {
			return fmt.Errorf("rollback stack %v holds v%d, which is missing, the champion, or repeated", m.PreviousChampions, n)
		}
	}
	return nil
}
