package gateway

import (
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/registry"
)

// thresholds maps a registry drift policy to drift's thresholds (the same
// fields by the same names).
func thresholds(p registry.DriftPolicy) drift.Thresholds {
	conv := func(t registry.DriftThreshold) drift.Threshold {
		return drift.Threshold{Enabled: t.Enabled, Threshold: t.Threshold, MinCount: t.MinCount, ConsecutiveWindows: t.ConsecutiveWindows}
	}
	return drift.Thresholds{PSI: conv(p.PSI), JS: conv(p.JS), KS: conv(p.KS), Wasserstein: conv(p.Wasserstein), Chi2P: conv(p.Chi2P)}
}

// apiDrift: GET /api/v1/models/{m}/versions/{v}/drift?window=1m|1h|24h
// (or any Go duration up to 24h) compares the window's traffic on this node
// with the version's reference and judges it by the model's policy.
func (s *Server) apiDrift(ctx *fasthttp.RequestCtx, p *apiParams) {
	horizon := time.Hour
	if w := ctx.QueryArgs().Peek("window"); len(w) > 0 {
		d, err := time.ParseDuration(string(w))
		if err != nil || d <= 0 || d > 24*time.Hour {
			writeError(ctx, fasthttp.StatusBadRequest, "window must be a duration between 1m and 24h (1m, 1h, 24h), got "+strconv.Quote(string(w)))
			return
		}
		horizon = d
	}
	d := s.Catalog.driftOf(p.model, strconv.Itoa(p.version))
	if d == nil {
		writeError(ctx, fasthttp.StatusNotFound, p.model+" v"+strconv.Itoa(p.version)+" is not monitored for drift on this node (not loaded, or its signature has no numeric rows)")
		return
	}
	th := drift.DefaultThresholds()
	if s.control != nil {
		s.control.View(func(st *registry.State) {
			if pol, err := st.Policy(p.model); err == nil {
				th = thresholds(pol.Drift)
			}
		})
	}
	rep, err := d.report(horizon, th)
	if err != nil {
		writeError(ctx, fasthttp.StatusServiceUnavailable, err.Error())
		return
	}
	writeValue(ctx, fasthttp.StatusOK, struct {
		Model   string `json:"model"`
		Version int    `json:"version"`
		Window  string `json:"window"`
		Node    string `json:"node"`
		*drift.Report
	}{p.model, p.version, horizon.String(), s.cfg.Node, rep})
}
