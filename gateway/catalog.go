package gateway

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/routing"
	"github.com/modelgate/modelgate/runtime"
)

// VersionObservers is what the gateway attaches to every routed version:
// the observers the scoring path hands each answer to after responding.
// Outside the gateway it is opaque: the node's loader gets one from
// Catalog.Observe and hands it to the reconciler with its slot.
type VersionObservers struct {
	stats *slotMetrics
	// drift is nil until monitoring is enabled, and may be enabled after
	// the version is routable (a bootstrapped reference).
	drift atomic.Pointer[versionDrift]
	// num is the version's registry number (0 when its name is not one).
	num int
	// shadow is the model's shadow state, found on the first mirrored
	// answer and kept here so later ones need no map lookup.
	shadow atomic.Pointer[modelShadow]
}

// The routing package's types as this gateway instantiates them.
type (
	table  = routing.Table[*VersionObservers]
	route  = routing.Model[*VersionObservers]
	routed = routing.Version[*VersionObservers]
)

// Catalog is a node's set of loaded versions: it loads them with the node's
// metrics wired in and publishes them into the routing table, whose only
// writer it is (driven by the reconciler when the node has a registry, or
// directly by an embedding program or test).
type Catalog struct {
	router  *routing.Router[*VersionObservers]
	metrics *Metrics
	// DriftWindow is the drift window length of versions enabled from now
	// on (the server sets it from its Config).
	DriftWindow time.Duration
	// DriftPolicy returns the drift policy a model is judged by now (the
	// node maps the registry's with lifecycle.DriftPolicy, as the
	// controller does, so the API, /metrics and the alerts agree). Nil:
	// drift.DefaultPolicy for every model.
	DriftPolicy func(model string) drift.Policy
}

// driftPolicy is the policy model's drift is judged by.
func (c *Catalog) driftPolicy(model string) drift.Policy {
	if c.DriftPolicy == nil {
		return drift.DefaultPolicy()
	}
	return c.DriftPolicy(model)
}

// NewCatalog returns an empty catalog reporting to m.
func NewCatalog(m *Metrics) *Catalog {
	c := &Catalog{router: routing.NewRouter[*VersionObservers](), metrics: m}
	m.catalog = c
	m.set.RegisterMetricsWriter(m.writeDrift)
	return c
}

func (c *Catalog) table() *table { return c.router.Table() }

// Router is the routing table the catalog publishes into: the node gives
// it to the reconciler, which then is its only writer.
func (c *Catalog) Router() *routing.Router[*VersionObservers] { return c.router }

// Load loads onnx as version of model with cfg and warms it, wiring the
// batch-size metric; the result is not routable until Publish.
func (c *Catalog) Load(model, version string, onnx []byte, cfg runtime.Config) (*runtime.Slot, error) {
	st := c.metrics.forVersion(model, version)
	cfg.OnBatch = func(_, rows int) { st.batch.Update(float64(rows)) }
	m, err := runtime.Load(onnx, cfg)
	if err != nil {
		return nil, err
	}
	return runtime.NewSlot(model, version, m), nil
}

// Observe returns the observers of a loaded slot (drift off until
// MonitorDrift), wired to the node's metrics.
func (c *Catalog) Observe(slot *runtime.Slot) *VersionObservers {
	n, _ := strconv.Atoi(slot.Version)
	return &VersionObservers{stats: c.metrics.forVersion(slot.Name, slot.Version), num: n}
}

// Publish makes slot routable as its model's version; with champion set it
// also answers the model's unversioned calls. A slot it replaces (same
// model and version) is retired: it finishes its in-flight calls, then frees
// its sessions.
func (c *Catalog) Publish(slot *runtime.Slot, champion bool) {
	c.router.Publish(slot, c.Observe(slot), champion)
}

// SetChampion makes an already published version answer the model's
// unversioned calls. It reports false when the version is not loaded.
func (c *Catalog) SetChampion(model, version string) bool {
	return c.router.SetChampion(model, version)
}

// SetCanary makes an already published version answer weightBP basis
// points of the model's unversioned calls, split by routing key (see
// package routing); version "" or a zero weight removes the canary. It
// reports false when the model or the version is not loaded.
func (c *Catalog) SetCanary(model, version string, weightBP uint32) bool {
	return c.router.SetCanary(model, version, weightBP)
}

// SetShadows makes the published versions named in versions the model's
// shadows: every answer of its champion is mirrored to them (see
// shadow.go). Names not loaded are skipped; it reports false when the
// model is not loaded.
func (c *Catalog) SetShadows(model string, versions ...string) bool {
	return c.router.SetShadows(model, versions)
}

// SetLogMode sets how a model's predictions are logged: "async",
// "durable" or "off" (registry.LogAsync …). It reports false when the model
// is not loaded.
func (c *Catalog) SetLogMode(model, mode string) bool {
	return c.router.SetLogMode(model, routing.ParseLogMode(mode))
}

// EnableDrift starts drift monitoring of a published version: against
// profile when given, else against a reference bootstrapped from its
// scored rows as boot says (Rows and Period; the first rows when Period is
// 0); onBooted, when set, is told the reference. It fails when the model's
// signature has nothing drift can read.
func (c *Catalog) EnableDrift(model, version string, profile *drift.Profile, boot drift.BootstrapConfig, onBooted func(model, version string, p *drift.Profile)) error {
	var v *routed
	if r := c.table().Model(model); r != nil {
		v = r.Version(version)
	}
	if v == nil {
		return fmt.Errorf("gateway: %s v%s is not loaded", model, version)
	}
	return c.MonitorDrift(v.Slot, v.Attach, profile, boot, onBooted)
}

// MonitorDrift starts drift monitoring of slot into its observers obs,
// whether or not the slot is routable yet (a loader enables it before the
// reconciler publishes the version), as EnableDrift does.
func (c *Catalog) MonitorDrift(slot *runtime.Slot, obs *VersionObservers, profile *drift.Profile, boot drift.BootstrapConfig, onBooted func(model, version string, p *drift.Profile)) error {
	var cb func(*versionDrift, *drift.Profile)
	if onBooted != nil {
		cb = func(d *versionDrift, p *drift.Profile) { onBooted(d.model, d.version, p) }
	}
	d, err := newVersionDrift(slot.Name, slot.Version, slot.Model.Signature(), profile, boot, windowConfig(c.DriftWindow), cb)
	if err != nil {
		return fmt.Errorf("gateway: no drift monitoring for %s v%s: %w", slot.Name, slot.Version, err)
	}
	obs.drift.Store(d)
	return nil
}

// windowConfig keeps drift's proportions for any window length: windows
// one by one for 60 windows (an hour of minutes), rollups for a day's worth.
func windowConfig(w time.Duration) drift.WindowConfig {
	if w <= 0 {
		return drift.WindowConfig{}
	}
	return drift.WindowConfig{Window: w, Rollup: 60 * w, Retention: 24 * 60 * w}
}

// RotateDrift closes the drift windows whose time has passed, even for
// versions without traffic, so reports and alerts see empty windows as
// empty. The node calls it a few times a window.
func (c *Catalog) RotateDrift() {
	for _, r := range c.table().Models() {
		for _, v := range r.Versions() {
			if d := v.Attach.drift.Load(); d != nil {
				if w := d.windows.Load(); w != nil {
					w.Rotate()
				}
			}
		}
	}
}

// EachChampionDrift calls fn for every champion monitored for drift (its
// reference profile known), with its windows: what the lifecycle
// controller judges. fn may keep w; it is safe to read concurrently.
func (c *Catalog) EachChampionDrift(fn func(model string, version int, w *drift.Windows)) {
	for _, r := range c.table().Models() {
		if r.Champion == nil {
			continue
		}
		if d := r.Champion.Attach.drift.Load(); d != nil {
			if w := d.windows.Load(); w != nil {
				fn(r.Name, r.Champion.Attach.num, w)
			}
		}
	}
}

// driftOf returns a version's drift state, or nil.
func (c *Catalog) driftOf(model, version string) *versionDrift {
	if r := c.table().Model(model); r != nil {
		if v := r.Version(version); v != nil {
			return v.Attach.drift.Load()
		}
	}
	return nil
}

// Remove stops routing to a version and retires it. Removing the champion
// leaves the model without one (its unversioned calls get 503) unless
// another version is loaded, which then becomes champion: the newest by
// version order. It reports whether the version was loaded.
func (c *Catalog) Remove(model, version string) bool { return c.router.Remove(model, version) }

// Close retires every version and waits until all have drained.
func (c *Catalog) Close() { c.router.Close() }

// Models lists the served model names, sorted.
func (c *Catalog) Models() []string {
	ms := c.table().Models()
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.Name
	}
	return names
}

// Champion returns the version answering a model's unversioned calls.
func (c *Catalog) Champion(model string) (string, bool) {
	r := c.table().Model(model)
	if r == nil || r.Champion == nil {
		return "", false
	}
	return r.Champion.Slot.Version, true
}

// Canary returns the version answering a share of a model's unversioned
// calls and that share in basis points, or false when it has none.
func (c *Catalog) Canary(model string) (string, uint32, bool) {
	r := c.table().Model(model)
	if r == nil || r.Canary == nil {
		return "", 0, false
	}
	return r.Canary.Slot.Version, r.CanaryBP, true
}
