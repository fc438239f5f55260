package routing

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/modelgate/modelgate/registry"
	"github.com/modelgate/modelgate/runtime"
)

// Source is the replicated registry as the reconciler sees it.
type Source interface {
	// RoutingView returns what every node should serve now.
	RoutingView() registry.RoutingView
	// Changed returns a channel closed at the next change of the registry.
	Changed() <-chan struct{}
}

// Loader loads versions for the reconciler.
type Loader[A any] interface {
	// Load fetches version v of model, loads and warms it, and returns its
	// slot with what the node attaches to it. The slot is not routable
	// until the reconciler publishes it. An error leaves nothing behind.
	Load(model string, v registry.RouteVersion) (*runtime.Slot, A, error)
}

// Reconciler is the only writer of a node's routing table when the node has
// a registry: it reads the registry's routing view, loads and warms every
// version the node should serve, publishes the table, and retires what
// left it. A version becomes routable only once warm, and a retired one
// drains before freeing its sessions, so promotions and rollbacks swap
// without failing a request. A rollback to the warm standby loads nothing:
// it moves the champion pointer.
type Reconciler[A any] struct {
	router *Router[A]
	src    Source
	loader Loader[A]
	log    *slog.Logger
	now    func() time.Time

	mu     sync.Mutex // serialises reconciliations
	seq    uint64     // registry sequence the table reflects
	err    error      // what the last reconciliation could not load
	expiry time.Time  // when the next standby's TTL runs out (zero: none)
}

// NewReconciler returns a reconciler publishing into router what src says,
// loading through loader. A nil log discards.
func NewReconciler[A any](router *Router[A], src Source, loader Loader[A], log *slog.Logger) *Reconciler[A] {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reconciler[A]{router: router, src: src, loader: loader, log: log, now: time.Now}
}

// retryAfter is how soon a reconciliation that could not load everything
// is tried again.
const retryAfter = 2 * time.Second

// Run reconciles now and at every registry change until stop is closed,
// again after a failure, and when a standby's TTL runs out.
func (c *Reconciler[A]) Run(stop <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	logged := ""
	for {
		changed := c.src.Changed()
		err := c.Reconcile()
		c.mu.Lock()
		expiry := c.expiry
		c.mu.Unlock()
		if err == nil {
			logged = ""
		}
		switch {
		case err != nil:
			// Retried every retryAfter: say it again only when it changes.
			if msg := err.Error(); msg != logged {
				c.log.Error("cannot serve what the registry says", "err", err)
				logged = msg
			} else {
				c.log.Debug("still cannot serve what the registry says", "err", err)
			}
			timer.Reset(retryAfter)
		case !expiry.IsZero():
			timer.Reset(expiry.Sub(c.now()))
		}
		select {
		case <-changed:
		case <-timer.C:
		case <-stop:
			timer.Stop()
			return
		}
	}
}

// Err returns what the last reconciliation could not load, or nil.
func (c *Reconciler[A]) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Reconcile brings the routing table in line with the registry now and
// returns what could not be loaded.
func (c *Reconciler[A]) Reconcile() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	view := c.src.RoutingView()
	now := c.now()
	if view.Seq == c.seq && c.err == nil && (c.expiry.IsZero() || now.Before(c.expiry)) {
		return nil
	}
	var errs []error
	var expiry time.Time
	want := map[string]map[string]bool{}
	for _, m := range view.Models {
		if len(m.Versions) == 0 {
			continue
		}
		want[m.Model] = map[string]bool{}
		loaded := c.router.Table().Model(m.Model)
		for _, rv := range m.Versions {
			if rv.Role == registry.RoleStandby && !m.StandbyUntil.IsZero() {
				if !now.Before(m.StandbyUntil) {
					continue // its TTL ran out: drained below
				}
				if expiry.IsZero() || m.StandbyUntil.Before(expiry) {
					expiry = m.StandbyUntil
				}
			}
			vs := strconv.Itoa(rv.Version)
			want[m.Model][vs] = true
			if loaded != nil && loaded.Version(vs) != nil {
				continue
			}
			slot, attach, err := c.loader.Load(m.Model, rv)
			if err != nil {
				errs = append(errs, fmt.Errorf("model %s v%d: %w", m.Model, rv.Version, err))
				continue
			}
			c.router.Publish(slot, attach, rv.Role == registry.RoleChampion)
			c.log.Info("version loaded", "model", m.Model, "version", rv.Version, "role", string(rv.Role))
		}
		if m.Champion != 0 && c.router.SetChampion(m.Model, strconv.Itoa(m.Champion)) {
			c.log.Debug("champion routed", "model", m.Model, "version", m.Champion)
		}
		canary := ""
		if m.Canary != 0 {
			canary = strconv.Itoa(m.Canary)
		}
		c.router.SetCanary(m.Model, canary, registry.WeightBasisPoints(m.CanaryWeight))
		shadows := make([]string, len(m.Shadows))
		for i, n := range m.Shadows {
			shadows[i] = strconv.Itoa(n)
		}
		c.router.SetShadows(m.Model, shadows)
		c.router.SetLogMode(m.Model, ParseLogMode(m.LogMode))
	}
	for _, m := range c.router.Table().Models() {
		for _, v := range m.Versions() {
			if !want[m.Name][v.Slot.Version] {
				c.router.Remove(m.Name, v.Slot.Version)
				c.log.Info("version drained", "model", m.Name, "version", v.Slot.Version)
			}
		}
	}
	c.seq, c.err, c.expiry = view.Seq, errors.Join(errs...), expiry
	return c.err
}
