package gateway

import (
	"errors"
	"fmt"
	"strconv"
	"time"

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
	s.Catalog.Publish(slot, rv.Role == registry.RoleChampion)
	return nil
}

// Reconcile brings the routing table in line with the registry now and
// returns what could not be loaded.
func (s *Server) Reconcile() error { return s.reconcileNow() }
