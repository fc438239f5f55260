package gateway

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/runtime"
)

// table is an immutable routing table: the scoring path loads it with one
// atomic read and never locks. The reconciler (Catalog) is its only writer
// and replaces it whole.
type table struct {
	models map[string]*route
}

// route is one model's entry: the versions that answer unversioned calls
// (the champion, and the canary for its share of routing keys) and every
// version loaded on this node, which answers calls that name it.
type route struct {
	name     string
	logMode  logMode
	champion *runtime.Slot
	canary   *runtime.Slot // nil: none
	canaryBP uint32        // the canary's share, in basis points
	versions map[string]*runtime.Slot
	stats    map[string]*slotMetrics
	drift    map[string]*versionDrift // versions with drift monitoring
}

// Catalog owns the loaded model versions of a node and publishes the routing
// table. Its methods are serialised by a mutex; they are called on model
// changes, never per request.
type Catalog struct {
	mu      sync.Mutex
	cur     atomic.Pointer[table]
	metrics *Metrics
	// DriftWindow is the drift window length of versions enabled from now
	// on (the server sets it from its Config).
	DriftWindow time.Duration
}

// NewCatalog returns an empty catalog reporting to m.
func NewCatalog(m *Metrics) *Catalog {
	c := &Catalog{metrics: m}
	c.cur.Store(&table{models: map[string]*route{}})
	m.catalog = c
	return c
}

func (c *Catalog) load() *table { return c.cur.Load() }

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

// Publish makes slot routable as its model's version; with champion set it
// also answers the model's unversioned calls. A slot it replaces (same
// model and version) is retired: it finishes its in-flight calls, then frees
// its sessions.
func (c *Catalog) Publish(slot *runtime.Slot, champion bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.load()
	next := old.clone()
	r := next.models[slot.Name]
	if r == nil {
		r = &route{name: slot.Name, versions: map[string]*runtime.Slot{}, stats: map[string]*slotMetrics{}}
	} else {
		r = r.clone()
	}
	prev := r.versions[slot.Version]
	r.versions[slot.Version] = slot
	delete(r.drift, slot.Version) // a new slot starts without; EnableDrift adds it
	r.stats[slot.Version] = c.metrics.forVersion(slot.Name, slot.Version)
	if champion || r.champion == nil || r.champion == prev {
		r.champion = slot
	}
	if r.canary != nil && r.canary == prev {
		r.canary = slot
	}
	next.models[slot.Name] = r
	c.cur.Store(next)
	if prev != nil && prev != slot {
		prev.Retire()
	}
}

// SetChampion makes an already published version answer the model's
// unversioned calls. It reports false when the version is not loaded.
func (c *Catalog) SetChampion(model, version string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := c.load().clone()
	r := next.models[model]
	if r == nil || r.versions[version] == nil {
		return false
	}
	r = r.clone()
	r.champion = r.versions[version]
	next.models[model] = r
	c.cur.Store(next)
	return true
}

// SetCanary makes an already published version answer weightBP basis
// points of the model's unversioned calls, split by routing key (see
// package routing); version "" or a zero weight removes the canary. It
// reports false when the model or the version is not loaded.
func (c *Catalog) SetCanary(model, version string, weightBP uint32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := c.load().clone()
	r := next.models[model]
	if r == nil {
		return false
	}
	var slot *runtime.Slot
	if version != "" && weightBP > 0 {
		if slot = r.versions[version]; slot == nil {
			return false
		}
	}
	if r.canary == slot && (slot == nil || r.canaryBP == weightBP) {
		return true
	}
	r = r.clone()
	r.canary, r.canaryBP = slot, weightBP
	if slot == nil {
		r.canaryBP = 0
	}
	next.models[model] = r
	c.cur.Store(next)
	return true
}

// Canary returns the version answering a share of a model's unversioned
// calls and that share in basis points, or false when it has none.
func (c *Catalog) Canary(model string) (string, uint32, bool) {
	r := c.load().models[model]
	if r == nil || r.canary == nil {
		return "", 0, false
	}
	return r.canary.Version, r.canaryBP, true
}

// EnableDrift starts drift monitoring of a published version: against
// profile when given, else against a reference bootstrapped from its first
// bootstrapRows scored rows (onBooted, when set, is told the reference).
// It fails when the model's signature has nothing drift can read.
func (c *Catalog) EnableDrift(model, version string, profile *drift.Profile, bootstrapRows int, onBooted func(model, version string, p *drift.Profile)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := c.load().clone()
	r := next.models[model]
	if r == nil || r.versions[version] == nil {
		return fmt.Errorf("gateway: %s v%s is not loaded", model, version)
	}
	var cb func(*versionDrift, *drift.Profile)
	if onBooted != nil {
		cb = func(d *versionDrift, p *drift.Profile) { onBooted(d.model, d.version, p) }
	}
	d, err := newVersionDrift(model, version, r.versions[version].Model.Signature(), profile, bootstrapRows, windowConfig(c.DriftWindow), cb)
	if err != nil {
		return fmt.Errorf("gateway: no drift monitoring for %s v%s: %w", model, version, err)
	}
	r = r.clone()
	if r.drift == nil {
		r.drift = map[string]*versionDrift{}
	}
	r.drift[version] = d
	next.models[model] = r
	c.cur.Store(next)
	c.metrics.watchDrift(d)
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

// driftOf returns a version's drift state, or nil.
func (c *Catalog) driftOf(model, version string) *versionDrift {
	if r := c.load().models[model]; r != nil {
		return r.drift[version]
	}
	return nil
}

// logMode is how a model's predictions are logged.
type logMode uint8

const (
	logAsync logMode = iota
	logDurable
	logOff
)

// SetLogMode sets how a model's predictions are logged: "async",
// "durable" or "off" (registry.LogAsync …). It reports false when the model
// is not loaded.
func (c *Catalog) SetLogMode(model, mode string) bool {
	m := logAsync
	switch mode {
	case "durable":
		m = logDurable
	case "off":
		m = logOff
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	next := c.load().clone()
	r := next.models[model]
	if r == nil {
		return false
	}
	if r.logMode != m {
		r = r.clone()
		r.logMode = m
		next.models[model] = r
		c.cur.Store(next)
	}
	return true
}

// Remove stops routing to a version and retires it. Removing the champion
// leaves the model without one (its unversioned calls get 503) unless
// another version is loaded, which then becomes champion: the newest by
// name order. It reports whether the version was loaded.
func (c *Catalog) Remove(model, version string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := c.load().clone()
	r := next.models[model]
	if r == nil || r.versions[version] == nil {
		return false
	}
	r = r.clone()
	slot := r.versions[version]
	delete(r.versions, version)
	delete(r.stats, version)
	delete(r.drift, version)
	if r.canary == slot {
		r.canary, r.canaryBP = nil, 0
	}
	if r.champion == slot {
		r.champion = nil
		if vs := r.sortedVersions(); len(vs) > 0 {
			r.champion = r.versions[vs[len(vs)-1]]
		}
	}
	if len(r.versions) == 0 {
		delete(next.models, model)
	} else {
		next.models[model] = r
	}
	c.cur.Store(next)
	slot.Retire()
	return true
}

// Close retires every version and waits until all have drained.
func (c *Catalog) Close() {
	c.mu.Lock()
	old := c.load()
	c.cur.Store(&table{models: map[string]*route{}})
	c.mu.Unlock()
	for _, r := range old.models {
		for _, s := range r.versions {
			s.Retire()
			<-s.Drained()
		}
	}
}

// Models lists the served model names, sorted.
func (c *Catalog) Models() []string {
	t := c.load()
	names := make([]string, 0, len(t.models))
	for n := range t.models {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Champion returns the version answering a model's unversioned calls.
func (c *Catalog) Champion(model string) (string, bool) {
	r := c.load().models[model]
	if r == nil || r.champion == nil {
		return "", false
	}
	return r.champion.Version, true
}

func (t *table) clone() *table {
	n := &table{models: make(map[string]*route, len(t.models)+1)}
	for k, v := range t.models {
		n.models[k] = v
	}
	return n
}

func (r *route) clone() *route {
	n := &route{name: r.name, logMode: r.logMode, champion: r.champion, canary: r.canary, canaryBP: r.canaryBP,
		versions: make(map[string]*runtime.Slot, len(r.versions)+1),
		stats:    make(map[string]*slotMetrics, len(r.stats)+1)}
	for k, v := range r.versions {
		n.versions[k] = v
	}
	for k, v := range r.stats {
		n.stats[k] = v
	}
	if len(r.drift) > 0 {
		n.drift = make(map[string]*versionDrift, len(r.drift))
		for k, v := range r.drift {
			n.drift[k] = v
		}
	}
	return n
}

// sortedVersions orders versions numerically when they are numbers (OIP
// versions are strings, registry versions are 1, 2, …), else by name.
func (r *route) sortedVersions() []string {
	vs := make([]string, 0, len(r.versions))
	for v := range r.versions {
		vs = append(vs, v)
	}
	sort.Slice(vs, func(i, j int) bool {
		if len(vs[i]) != len(vs[j]) && isDigits(vs[i]) && isDigits(vs[j]) {
			return len(vs[i]) < len(vs[j])
		}
		return vs[i] < vs[j]
	})
	return vs
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
