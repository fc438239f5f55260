package gateway

import (
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// apiDrift: GET /api/v1/models/{m}/drift[?version=N][&window=1h] and GET
// /api/v1/models/{m}/versions/{v}/drift[?window=1h]. Without a window it
// is the judgement the lifecycle controller makes (drift.Evaluate over
// pooled runs under the model's policy: status, alerts, the newest run's
// report); with one, that horizon's traffic merged into one report,
// judged by the same policy. Without a version, the champion this node
// serves. In a cluster of more than one member the leader shows the
// cluster's view (every pushing node's windows merged, "view":"cluster",
// the nodes listed), any node its own with ?node=<its ID>, and the leader
// another node's as pushed with ?node=ID; a follower shows its own
// ("view":"node"), and ?consistent=true asks the leader instead. A version whose reference is still being sampled
// answers 200 with status "bootstrapping" and its progress: a fresh node
// is not an error.
func (s *Server) apiDrift(ctx *fasthttp.RequestCtx, p *apiParams) {
	var horizon time.Duration
	if w := ctx.QueryArgs().Peek("window"); len(w) > 0 {
		d, err := time.ParseDuration(string(w))
		if err != nil || d <= 0 || d > 24*time.Hour {
			writeError(ctx, fasthttp.StatusBadRequest, "window must be a duration between 1m and 24h (1m, 1h, 24h), got "+strconv.Quote(string(w)))
			return
		}
		horizon = d
	}
	version := p.version
	if version == 0 {
		if q := ctx.QueryArgs().Peek("version"); len(q) > 0 {
			n, err := strconv.Atoi(string(q))
			if err != nil || n <= 0 {
				writeError(ctx, fasthttp.StatusBadRequest, "version must be a positive integer, got "+strconv.Quote(string(q)))
				return
			}
			version = n
		} else {
			champ, ok := s.Catalog.Champion(p.model)
			if !ok {
				writeError(ctx, fasthttp.StatusNotFound, p.model+" has no champion on this node: pass ?version=N")
				return
			}
			version, _ = strconv.Atoi(champ)
		}
	}
	d := s.Catalog.driftOf(p.model, strconv.Itoa(version))
	if d == nil {
		writeError(ctx, fasthttp.StatusNotFound, p.model+" v"+strconv.Itoa(version)+" is not monitored for drift on this node (not loaded, or its signature has no numeric rows)")
		return
	}
	w, view, nodes, ok := s.driftSource(ctx, p.model, version)
	if !ok {
		return
	}
	v, err := d.view(s.Catalog.driftPolicy(p.model), horizon, w)
	if err != nil {
		writeError(ctx, fasthttp.StatusServiceUnavailable, "cannot judge drift of "+p.model+" v"+strconv.Itoa(version)+": "+err.Error())
		return
	}
	v.Model, v.Version, v.Node, v.View, v.Nodes = p.model, version, s.cfg.Node, view, nodes
	if view == ViewNode && len(nodes) == 1 {
		v.Node = nodes[0].ID // another node's windows, as the leader holds them
	}
	writeValue(ctx, fasthttp.StatusOK, v)
}
