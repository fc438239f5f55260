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
)

// The reconciler is the only writer of the routing table when the node has
// a registry: it reads the registry's RoutingView, loads and warms every
// version this node should serve, publishes the table, and retires what
// left it. A version becomes routable only once warm, and a retired one
// drains before freeing its sessions, so promotions and rollbacks swap
// without failing a request.

// runReconciler reconciles now and at every registry change until stop.
func (s *Server) runReconciler(stop <-chan struct{}) {
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	for {
		changed := s.control.Changed()
		if err := s.reconcileNow(); err != nil {
			s.log.Error("cannot serve what the registry says", "err", err)
			retry.Reset(2 * time.Second)
		}
		select {
		case <-changed:
		case <-retry.C:
		case <-stop:
			return
		}
	}
}

// reconcileNow brings the routing table in line with the registry and
// returns what could not be loaded. Calls are serialised.
func (s *Server) reconcileNow() error {
	if s.control == nil {
		return nil
	}
	s.recMu.Lock()
	defer s.recMu.Unlock()
	var view registry.RoutingView
	logModes := map[string]string{}
	s.control.View(func(st *registry.State) {
		view = st.RoutingView()
		for _, m := range view.Models {
			if pol, err := st.Policy(m.Model); err == nil && pol.PredictionLog != nil {
				logModes[m.Model] = pol.PredictionLog.Mode
			}
		}
	})
	if view.Seq == s.recSeq && s.recErr == nil {
		return nil
	}
	var errs []error
	want := map[string]map[string]bool{}
	for _, m := range view.Models {
		if len(m.Versions) == 0 {
			continue
		}
		want[m.Model] = map[string]bool{}
		loaded := s.Catalog.load().models[m.Model]
		for _, rv := range m.Versions {
			vs := strconv.Itoa(rv.Version)
			want[m.Model][vs] = true
			if loaded != nil && loaded.versions[vs] != nil {
				continue
			}
			if err := s.loadVersion(m.Model, rv); err != nil {
				errs = append(errs, err)
				continue
			}
			s.log.Info("version loaded", "model", m.Model, "version", rv.Version, "role", string(rv.Role))
		}
		if m.Champion != 0 {
			if s.Catalog.SetChampion(m.Model, strconv.Itoa(m.Champion)) {
				s.log.Debug("champion routed", "model", m.Model, "version", m.Champion)
			}
		}
		s.Catalog.SetLogMode(m.Model, logModes[m.Model])
	}
	for _, name := range s.Catalog.Models() {
		r := s.Catalog.load().models[name]
		if r == nil {
			continue
		}
		for vs := range r.versions {
			if !want[name][vs] {
				s.Catalog.Remove(name, vs)
				s.log.Info("version drained", "model", name, "version", vs)
			}
		}
	}
	s.recSeq, s.recErr = view.Seq, errors.Join(errs...)
	return s.recErr
}

func (s *Server) loadVersion(model string, rv registry.RouteVersion) error {
	if s.artifacts == nil {
		return fmt.Errorf("model %s v%d: this node has no artifact store", model, rv.Version)
	}
	b, err := s.artifacts.Get(rv.Digest)
	if err != nil {
		return fmt.Errorf("model %s v%d: cannot read artifact %s: %w", model, rv.Version, rv.Digest, err)
	}
	slot, err := s.Catalog.Load(model, strconv.Itoa(rv.Version), b, s.cfg.Runtime)
	if err != nil {
		return fmt.Errorf("model %s v%d: %w", model, rv.Version, err)
	}
	if werr := slot.Model.WarmupError(); werr != nil {
		// Zeros are no valid input for every model; it still serves.
		s.log.Warn("model loaded, but its warm-up run on zero inputs failed; the first real call initialises it",
			"model", model, "version", rv.Version, "err", werr)
	}
	s.Catalog.Publish(slot, rv.Role == registry.RoleChampion)
	if !s.cfg.NoDrift {
		s.enableDrift(model, rv.Version)
	}
	return nil
}

// driftReferenceKind is the audit alert kind that records a reference
// profile bootstrapped from traffic; its evidence is the profile, which is
// how a restarted node finds it again.
const driftReferenceKind = "drift_reference"

// enableDrift starts drift monitoring of a loaded version against, in
// order: the profile registered with it, one bootstrapped earlier (from
// the audit log), or a new bootstrap from its first scored rows.
func (s *Server) enableDrift(model string, version int) {
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
	vs := strconv.Itoa(version)
	if err := s.Catalog.EnableDrift(model, vs, p, rows, s.recordReference); err != nil {
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
func (s *Server) Reconcile() error { return s.reconcileNow() }
