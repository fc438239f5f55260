package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/registry"
	"github.com/modelgate/modelgate/runtime"
)

// The reconciler (routing.Reconciler) is the only writer of the routing
// table when the node has a registry. The gateway gives it the registry as
// a routing.Source and itself as the routing.Loader: loading a version
// means reading its artifact, loading and warming it with the node's
// runtime config and metrics, and starting its drift monitor, all before
// the reconciler makes it routable.

// controlSource is the registry as the reconciler reads it.
type controlSource struct{ c Control }

func (cs controlSource) RoutingView() (v registry.RoutingView) {
	cs.c.View(func(st *registry.State) { v = st.RoutingView() })
	return v
}

func (cs controlSource) Changed() <-chan struct{} { return cs.c.Changed() }

// loader loads versions for the reconciler.
type loader struct{ s *Server }

func (l loader) Load(model string, rv registry.RouteVersion) (*runtime.Slot, *versionObs, error) {
	s := l.s
	if s.artifacts == nil {
		return nil, nil, errors.New("this node has no artifact store")
	}
	b, err := s.artifacts.Get(rv.Digest)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read artifact %s: %w", rv.Digest, err)
	}
	slot, err := s.Catalog.Load(model, strconv.Itoa(rv.Version), b, s.cfg.Runtime)
	if err != nil {
		return nil, nil, err
	}
	if werr := slot.Model.WarmupError(); werr != nil {
		// Zeros are no valid input for every model; it still serves.
		s.log.Warn("model loaded, but its warm-up run on zero inputs failed; the first real call initialises it",
			"model", model, "version", rv.Version, "err", werr)
	}
	obs := s.Catalog.observe(slot)
	if !s.cfg.NoDrift {
		s.enableDrift(slot, obs, rv.Version)
	}
	return slot, obs, nil
}

// driftReferenceKind is the audit alert kind that records a reference
// profile bootstrapped from traffic; its evidence is the profile, which is
// how a restarted node finds it again.
const driftReferenceKind = "drift_reference"

// enableDrift starts drift monitoring of a loaded version against, in
// order: the profile registered with it, one bootstrapped earlier (from
// the audit log), or a new bootstrap from its first scored rows.
func (s *Server) enableDrift(slot *runtime.Slot, obs *versionObs, version int) {
	model := slot.Name
	var prof json.RawMessage
	rows := 0
	s.control.View(func(st *registry.State) {
		if v, err := st.Version(model, version); err == nil && len(v.ReferenceProfile) > 0 {
			prof = v.ReferenceProfile
		}
		if pol, err := st.Policy(model); err == nil {
			rows = int(pol.Drift.ReferenceSampleSize)
		}
		if prof == nil {
			for _, rec := range st.Audit(registry.AuditFilter{Model: model, Version: version}) {
				if rec.Action == registry.ActionAlert && rec.Kind == driftReferenceKind {
					prof = rec.Evidence
				}
			}
		}
	})
	var p *drift.Profile
	if prof != nil {
		var err error
		if p, err = drift.ParseProfile(prof); err != nil {
			s.log.Warn("the reference profile does not parse; bootstrapping a new one", "model", model, "version", version, "err", err)
			p = nil
		}
	}
	if err := s.Catalog.enableDrift(slot, obs, p, rows, s.recordReference); err != nil {
		s.log.Info("drift not monitored", "model", model, "version", version, "why", err.Error())
	}
}

// recordReference writes a bootstrapped reference into the audit log.
func (s *Server) recordReference(model, version string, p *drift.Profile) {
	n, _ := strconv.Atoi(version)
	ev := profileJSON(p)
	if len(ev) > registry.MaxEvidenceSize {
		s.log.Warn("bootstrapped reference too large for the audit log; a restart will bootstrap again", "model", model, "version", version, "bytes", len(ev))
		ev = nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ApplyTimeout)
	defer cancel()
	_, err := s.control.Apply(ctx, registry.Command{Time: time.Now().UTC(), Actor: "drift", IdempotencyKey: "drift-reference/" + model + "/" + version,
		Args: &registry.RecordAlertArgs{Model: model, Version: n, Kind: driftReferenceKind,
			Reason: fmt.Sprintf("no reference profile was registered: the first %d scored rows became the reference", p.Rows), Evidence: ev}})
	if err != nil {
		s.log.Warn("cannot record the bootstrapped drift reference", "model", model, "version", version, "err", err)
	}
}

// Reconcile brings the routing table in line with the registry now and
// returns what could not be loaded.
func (s *Server) Reconcile() error {
	if s.rec == nil {
		return nil
	}
	return s.rec.Reconcile()
}
