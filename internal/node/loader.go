package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/artifact"
	"github.com/modelgate/modelgate/lifecycle"
	"github.com/modelgate/modelgate/registry"
	"github.com/modelgate/modelgate/runtime"
)

// The reconciler (routing.Reconciler) is the only writer of the routing
// table. The node gives it the registry as a routing.Source and a loader:
// loading a version means reading its artifact, loading and warming it
// with the node's runtime config and metrics, and starting its drift
// monitor, all before the reconciler makes it routable.

// controlSource is the registry as the reconciler reads it.
type controlSource struct{ c gateway.Control }

func (cs controlSource) RoutingView() (v registry.RoutingView) {
	cs.c.View(func(st *registry.State) { v = st.RoutingView() })
	return v
}

func (cs controlSource) Changed() <-chan struct{} { return cs.c.Changed() }

// loader loads versions for the reconciler.
type loader struct{ n *Node }

func (l loader) Load(model string, rv registry.RouteVersion) (*runtime.Slot, *gateway.VersionObservers, error) {
	n := l.n
	if n.cfg.Artifacts == nil {
		return nil, nil, errors.New("this node has no artifact store")
	}
	if err := n.distributed(model, rv.Version); err != nil {
		return nil, nil, err
	}
	b, err := n.cfg.Artifacts.Get(rv.Digest)
	if errors.Is(err, artifact.ErrNotFound) {
		// Registered through another node: the distributor is fetching
		// its bytes from a holder (distribute.go). Not routed until then;
		// the report_ready that follows the fetch reconciles again.
		return nil, nil, fmt.Errorf("artifact %s of %s v%d is not on this node yet, so the version is not routed here: it is being fetched from a holder (GET /api/v1/cluster/self shows how far): %w", rv.Digest, model, rv.Version, err)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read artifact %s: %w", rv.Digest, err)
	}
	start := time.Now()
	slot, err := n.catalog.Load(model, strconv.Itoa(rv.Version), b, n.cfg.Runtime)
	if err != nil {
		return nil, nil, err
	}
	// Before the reconciler publishes it: the line that shows, on each
	// node, that a version was loaded and warmed before it was routed.
	n.log.Info("version loaded and warmed on this node", "model", model, "version", rv.Version,
		"took", time.Since(start).Round(time.Millisecond))
	if werr := slot.Model.WarmupError(); werr != nil {
		// Zeros are no valid input for every model; it still serves.
		n.log.Warn("model loaded, but its warm-up run on zero inputs failed; the first real call initialises it",
			"model", model, "version", rv.Version, "err", werr)
	}
	obs := n.catalog.Observe(slot)
	if !n.cfg.NoDrift {
		n.monitorDrift(slot, obs, rv.Version)
	}
	return slot, obs, nil
}

// distributed refuses to load a version this node's own validation gate
// has not passed, while it is one member of several: the bytes came from
// another node, and untrusted bytes are loaded into the serving process
// only after the gate (a child process) ran on them here. Under a "quorum"
// distribution policy a version may even be champion while this node's
// gate refused it: the node keeps serving what it had. The report_ready
// that follows the gate reconciles again. Alone in its cluster, a node
// validated what it stored itself.
func (n *Node) distributed(model string, version int) error {
	if n.dist == nil {
		return nil
	}
	if ms, err := n.dist.c.Members(); err != nil || len(ms) < 2 {
		return nil
	}
	self := n.dist.c.ID()
	var err error
	n.cfg.Control.View(func(st *registry.State) {
		v, verr := st.Version(model, version)
		switch {
		case verr != nil:
		case len(v.Holders) == 0:
			// Registered before the registry recorded holders (wire v3):
			// loaded from what is here, as then, so a node upgraded in
			// place serves its champion at once.
		case v.FailedReason(self) != "":
			err = fmt.Errorf("not loaded on this node: its validation gate refused the bytes of v%d: %s", version, v.FailedReason(self))
		case !v.IsReadyOn(self):
			err = fmt.Errorf("%w: v%d is being fetched, verified and validated here (GET /api/v1/cluster/self shows how far)", gateway.ErrNotLoadedYet, version)
		}
	})
	return err
}

// monitorDrift starts drift monitoring of a loaded version against, in
// order: the profile registered with it, one bootstrapped earlier (from
// the audit log), or a new bootstrap: a uniform reservoir sample of the
// policy's reference_sample_size rows out of everything scored over its
// reference_period (a day by default, so the reference holds every hour of
// the day rather than the hour of deployment; "0s" takes the first rows).
func (n *Node) monitorDrift(slot *runtime.Slot, obs *gateway.VersionObservers, version int) {
	model := slot.Name
	var prof json.RawMessage
	boot := drift.BootstrapConfig{Period: registry.DefaultReferencePeriod, Seed: bootstrapSeed(model, version)}
	n.cfg.Control.View(func(st *registry.State) {
		if v, err := st.Version(model, version); err == nil {
			prof = v.ReferenceProfile
			if len(prof) == 0 {
				prof = v.BootstrappedReference
			}
			if len(prof) == 0 {
				prof = nil
			}
		}
		if pol, err := st.Policy(model); err == nil {
			boot.Rows, boot.Period = int(pol.Drift.ReferenceSampleSize), pol.Drift.Period()
		}
	})
	var p *drift.Profile
	if prof != nil {
		var err error
		if p, err = drift.ParseProfile(prof); err != nil {
			n.log.Warn("the reference profile does not parse; bootstrapping a new one", "model", model, "version", version, "err", err)
			p = nil
		}
	}
	if err := n.catalog.MonitorDrift(slot, obs, p, boot, n.recordReference); err != nil {
		n.log.Info("drift not monitored", "model", model, "version", version, "why", err.Error())
		return
	}
	var spec *registry.DriftConstraints
	n.cfg.Control.View(func(st *registry.State) {
		if pol, err := st.Policy(model); err == nil {
			spec = pol.Drift.Constraints
		}
	})
	if unknown := obs.SetConstraints(spec); len(unknown) > 0 {
		n.warnUnknownFeatures(model, strconv.Itoa(version), unknown)
	}
}

// refreshConstraints gives every served model's versions the hard
// constraints of its current drift policy: a policy change takes effect
// within one tick of the drift loop, and a version whose reference was
// just bootstrapped gets its category rules.
func (n *Node) refreshConstraints() {
	for _, model := range n.catalog.Models() {
		var spec *registry.DriftConstraints
		n.cfg.Control.View(func(st *registry.State) {
			if pol, err := st.Policy(model); err == nil {
				spec = pol.Drift.Constraints
			}
		})
		for version, unknown := range n.catalog.SetConstraints(model, spec) {
			n.warnUnknownFeatures(model, version, unknown)
		}
	}
}

func (n *Node) warnUnknownFeatures(model, version string, unknown []string) {
	n.log.Warn("the drift policy declares ranges for features this version's rows do not have; those ranges are not enforced (use the profile's feature names or input[index])",
		"model", model, "version", version, "features", unknown)
}

// bootstrapSeed seeds a version's reservoir from its name, so a node that
// bootstraps the same traffic again samples the same rows.
func bootstrapSeed(model string, version int) uint64 {
	h := fnv.New64a()
	h.Write([]byte(model))
	return h.Sum64() ^ uint64(version)
}

// policyDrift returns the drift policy model is judged by now: the
// registry's, mapped as the lifecycle controller maps it, so the drift
// API and /metrics judge exactly as the alerts do.
func (n *Node) policyDrift(model string) drift.Policy {
	pol := drift.DefaultPolicy()
	n.cfg.Control.View(func(st *registry.State) {
		if p, err := st.Policy(model); err == nil {
			pol = lifecycle.DriftPolicy(p.Drift)
		}
	})
	return pol
}

// referenceReason says how a bootstrapped reference of rows rows was drawn.
func (n *Node) referenceReason(model string, rows int64) string {
	period := registry.DefaultReferencePeriod
	n.cfg.Control.View(func(st *registry.State) {
		if p, err := st.Policy(model); err == nil {
			period = p.Drift.Period()
		}
	})
	if period == 0 {
		return fmt.Sprintf("no reference profile was registered: the first %d scored rows became the reference", rows)
	}
	return fmt.Sprintf("no reference profile was registered: a uniform sample of %d rows out of those scored over %s became the reference", rows, period)
}

// recordReference keeps a bootstrapped reference in the version's state
// (set_reference), where every node and a restart find it.
func (n *Node) recordReference(model, version string, p *drift.Profile) {
	num, _ := strconv.Atoi(version)
	prof, err := json.Marshal(p)
	if err != nil || len(prof) > registry.MaxProfileSize {
		n.log.Warn("bootstrapped reference cannot go into the registry; a restart will bootstrap again", "model", model, "version", version, "bytes", len(prof), "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.Gateway.ApplyTimeout)
	defer cancel()
	_, err = n.cfg.Control.Apply(ctx, registry.Command{Time: time.Now().UTC(), Actor: "drift", IdempotencyKey: "set-reference/" + model + "/" + version,
		Args: &registry.SetReferenceArgs{Model: model, Version: num, Profile: prof, Rows: p.Rows, Reason: n.referenceReason(model, p.Rows)}})
	if err != nil {
		n.log.Warn("cannot record the bootstrapped drift reference; a restart will bootstrap again", "model", model, "version", version, "err", err)
	}
}
