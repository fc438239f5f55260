package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/artifact"
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
	b, err := n.cfg.Artifacts.Get(rv.Digest)
	if errors.Is(err, artifact.ErrNotFound) {
		// Registered through another node: its bytes are there, not here
		// (nodes do not fetch artifacts from each other yet). Not routed.
		return nil, nil, fmt.Errorf("artifact %s is not on this node, so the version is not routed here: it was uploaded to another member; give this node the same file (serve --model %s=PATH) until artifact distribution fetches it: %w", rv.Digest, model, err)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read artifact %s: %w", rv.Digest, err)
	}
	slot, err := n.catalog.Load(model, strconv.Itoa(rv.Version), b, n.cfg.Runtime)
	if err != nil {
		return nil, nil, err
	}
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

// driftReferenceKind is the audit alert kind that records a reference
// profile bootstrapped from traffic; its evidence is the profile, which is
// how a restarted node finds it again.
const driftReferenceKind = "drift_reference"

// monitorDrift starts drift monitoring of a loaded version against, in
// order: the profile registered with it, one bootstrapped earlier (from
// the audit log), or a new bootstrap from its first scored rows.
func (n *Node) monitorDrift(slot *runtime.Slot, obs *gateway.VersionObservers, version int) {
	model := slot.Name
	var prof json.RawMessage
	rows := 0
	n.cfg.Control.View(func(st *registry.State) {
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
			n.log.Warn("the reference profile does not parse; bootstrapping a new one", "model", model, "version", version, "err", err)
			p = nil
		}
	}
	if err := n.catalog.MonitorDrift(slot, obs, p, rows, n.recordReference); err != nil {
		n.log.Info("drift not monitored", "model", model, "version", version, "why", err.Error())
	}
}

// recordReference writes a bootstrapped reference into the audit log.
func (n *Node) recordReference(model, version string, p *drift.Profile) {
	num, _ := strconv.Atoi(version)
	ev, err := json.Marshal(p)
	if err != nil || len(ev) > registry.MaxEvidenceSize {
		n.log.Warn("bootstrapped reference cannot go into the audit log; a restart will bootstrap again", "model", model, "version", version, "bytes", len(ev), "err", err)
		ev = nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.Gateway.ApplyTimeout)
	defer cancel()
	_, err = n.cfg.Control.Apply(ctx, registry.Command{Time: time.Now().UTC(), Actor: "drift", IdempotencyKey: "drift-reference/" + model + "/" + version,
		Args: &registry.RecordAlertArgs{Model: model, Version: num, Kind: driftReferenceKind,
			Reason: fmt.Sprintf("no reference profile was registered: the first %d scored rows became the reference", p.Rows), Evidence: ev}})
	if err != nil {
		n.log.Warn("cannot record the bootstrapped drift reference", "model", model, "version", version, "err", err)
	}
}
