package gateway

import (
	"sort"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/modelgate/modelgate/shadow"
)

// parseHorizon reads ?window= (default 1h), a Go duration from 1m to max.
func parseHorizon(ctx *fasthttp.RequestCtx, max time.Duration) (time.Duration, bool) {
	w := ctx.QueryArgs().Peek("window")
	if len(w) == 0 {
		return time.Hour, true
	}
	d, err := time.ParseDuration(string(w))
	if err != nil || d < time.Minute || d > max {
		writeError(ctx, fasthttp.StatusBadRequest, "window must be a duration between 1m and "+max.String()+" (1m, 1h, 24h), got "+strconv.Quote(string(w)))
		return 0, false
	}
	return d, true
}

// shadowOf answers 404 itself when the node knows nothing of model: it
// serves no version of it and has no statistics for it.
func (s *Server) shadowOf(ctx *fasthttp.RequestCtx, model string) *modelShadow {
	if s.Catalog.table().Model(model) != nil {
		if ms := s.shadowState(model); ms != nil {
			return ms
		}
		writeError(ctx, fasthttp.StatusServiceUnavailable, "the node is shutting down")
		return nil
	}
	if ms := s.lookupShadow(model); ms != nil {
		return ms
	}
	writeError(ctx, fasthttp.StatusNotFound, "model "+strconv.Quote(model)+" is not served by this node and has no shadow or evaluation statistics here")
	return nil
}

// pairReport is one champion/shadow pair over the window.
type pairReport struct {
	Champion int `json:"champion"`
	Shadow   int `json:"shadow"`
	shadow.ComparisonSummary
}

// canaryReport compares the canary with the champion on their labelled
// predictions: the two answer different requests, so there is no
// per-request agreement table, only each one's evaluation.
type canaryReport struct {
	Version       int            `json:"version"`
	WeightPercent float64        `json:"weight_percent"`
	Source        string         `json:"source"`
	Champion      shadow.Metrics `json:"champion"`
	Canary        shadow.Metrics `json:"canary"`
	// Deltas are canary − champion (for log_loss, lower is better).
	DeltaPrecision float64 `json:"delta_precision"`
	DeltaRecall    float64 `json:"delta_recall"`
	DeltaAUC       float64 `json:"delta_auc"`
	DeltaLogLoss   float64 `json:"delta_log_loss"`
}

// mirrorReport is the model's mirror counters on this node since it
// started, with the coverage (mirrored / served).
type mirrorReport struct {
	shadow.MirrorStats
	Coverage float64 `json:"coverage"`
}

// apiComparison: GET /api/v1/models/{m}/comparison?window=1h compares every
// shadow with the champion on the mirrored requests of the window (score
// differences, agreement at the policy threshold, latencies, errors) and
// the canary with the champion on their labelled predictions. On the
// leader of a cluster every node's pushed statistics are merged ("view":
// "cluster"; ?node=<its ID> for its own), elsewhere they are the node's.
func (s *Server) apiComparison(ctx *fasthttp.RequestCtx, p *apiParams) {
	horizon, ok := parseHorizon(ctx, maxHorizon)
	if !ok {
		return
	}
	ms := s.shadowOf(ctx, p.model)
	if ms == nil {
		return
	}
	view, merged, ok := s.statsView(ctx)
	if !ok {
		return
	}
	cmp, ev := ms.cmp.Load(), ms.eval.Load()
	if cmp == nil || ev == nil {
		writeError(ctx, fasthttp.StatusServiceUnavailable, "the model's shadow statistics are not configured (see the node's log)")
		return
	}
	st := ms.stats()
	out := struct {
		Model     string        `json:"model"`
		Window    string        `json:"window"`
		Node      string        `json:"node"`
		View      string        `json:"view,omitempty"`
		Threshold float64       `json:"threshold"`
		Champion  int           `json:"champion,omitempty"`
		Mirror    mirrorReport  `json:"mirror"`
		Shadows   []pairReport  `json:"shadows"`
		Canary    *canaryReport `json:"canary,omitempty"`
	}{Model: p.model, Window: horizon.String(), Node: s.cfg.Node, View: view, Threshold: cmp.Config().Threshold,
		Mirror: mirrorReport{st, st.Coverage()}, Shadows: []pairReport{}}
	want := map[shadow.Pair]bool{}
	r := s.Catalog.table().Model(p.model)
	if r != nil && r.Champion != nil {
		out.Champion = r.Champion.Attach.num
		for _, sv := range r.Shadows {
			want[shadow.Pair{Champion: out.Champion, Shadow: sv.Attach.num}] = true
		}
	}
	for _, pr := range cmp.Pairs() {
		want[pr] = true
	}
	pairs := make([]shadow.Pair, 0, len(want))
	for pr := range want {
		pairs = append(pairs, pr)
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].Champion != pairs[j].Champion {
			return pairs[i].Champion < pairs[j].Champion
		}
		return pairs[i].Shadow < pairs[j].Shadow
	})
	for _, pr := range pairs {
		c := comparisonOf(merged, cmp, p.model, pr, horizon)
		current := r != nil && pr.Champion == out.Champion && want[pr]
		if c.Runs == 0 && !current {
			continue // an old pair with nothing in the window
		}
		sum := c.Summary()
		sum.MeanDiff, sum.StdDevDiff = finite(sum.MeanDiff), finite(sum.StdDevDiff)
		sum.MinDiff, sum.MaxDiff = finite(sum.MinDiff), finite(sum.MaxDiff)
		for i := range sum.DiffQuantiles {
			sum.DiffQuantiles[i] = finite(sum.DiffQuantiles[i])
		}
		out.Shadows = append(out.Shadows, pairReport{pr.Champion, pr.Shadow, sum})
	}
	if r != nil && r.Canary != nil && r.Champion != nil {
		cr := &canaryReport{Version: r.Canary.Attach.num, WeightPercent: float64(r.CanaryBP) / 100, Source: "labels"}
		var err1, err2 error
		cr.Champion, err1 = evaluationOf(merged, ev, p.model, out.Champion, horizon).Metrics(0)
		cr.Canary, err2 = evaluationOf(merged, ev, p.model, cr.Version, horizon).Metrics(0)
		if err1 == nil && err2 == nil {
			cr.DeltaPrecision = cr.Canary.Precision - cr.Champion.Precision
			cr.DeltaRecall = cr.Canary.Recall - cr.Champion.Recall
			cr.DeltaAUC = cr.Canary.AUC - cr.Champion.AUC
			cr.DeltaLogLoss = cr.Canary.LogLoss - cr.Champion.LogLoss
		}
		out.Canary = cr
	}
	writeValue(ctx, fasthttp.StatusOK, out)
}

// versionEval is one version's evaluation over the window.
type versionEval struct {
	Version int    `json:"version"`
	Role    string `json:"role"`
	// Predictions is what the version answered on this node since the
	// node started (in the cluster view: on every node, summed): served
	// requests (champion, canary, pinned calls) plus shadow runs. It is a
	// node counter, not a window's: the windowed count of what was judged
	// is Labelled.
	Predictions uint64 `json:"predictions"`
	shadow.Metrics
}

// apiEvaluation: GET /api/v1/models/{m}/evaluation?window=1h evaluates
// every version of the model against the labels of predictions made in the
// window (by prediction time, so late labels count where they belong). On
// the leader of a cluster it is every node's labels and predictions merged
// ("view":"cluster"; ?node=<its ID> for its own), elsewhere the node's.
func (s *Server) apiEvaluation(ctx *fasthttp.RequestCtx, p *apiParams) {
	ms := s.shadowOf(ctx, p.model)
	if ms == nil {
		return
	}
	view, merged, ok := s.statsView(ctx)
	if !ok {
		return
	}
	ev := ms.eval.Load()
	if ev == nil {
		writeError(ctx, fasthttp.StatusServiceUnavailable, "the model's evaluation is not configured (see the node's log)")
		return
	}
	wc := ev.Config().Windows
	horizon, ok := parseHorizon(ctx, wc.Window*time.Duration(wc.Windows-1))
	if !ok {
		return
	}
	roles := map[int]string{}
	if r := s.Catalog.table().Model(p.model); r != nil {
		for _, v := range r.Versions() {
			roles[v.Attach.num] = "standby"
		}
		for _, v := range r.Shadows {
			roles[v.Attach.num] = string(shadow.RoleShadow)
		}
		if r.Canary != nil {
			roles[r.Canary.Attach.num] = string(shadow.RoleCanary)
		}
		if r.Champion != nil {
			roles[r.Champion.Attach.num] = string(shadow.RoleChampion)
		}
	}
	for _, vr := range ev.Versions() {
		if _, ok := roles[vr.Version]; !ok {
			// No longer loaded here: the role its latest labelled
			// prediction had.
			roles[vr.Version] = string(vr.Role)
		}
	}
	delete(roles, 0) // a version name that is not a registry number
	out := struct {
		Model     string        `json:"model"`
		Window    string        `json:"window"`
		Node      string        `json:"node"`
		View      string        `json:"view,omitempty"`
		Task      string        `json:"task"`
		Threshold float64       `json:"threshold"`
		Versions  []versionEval `json:"versions"`
	}{Model: p.model, Window: horizon.String(), Node: s.cfg.Node, View: view, Task: ev.Config().Task.String(),
		Threshold: ev.Config().Threshold, Versions: []versionEval{}}
	for n, role := range roles {
		m, err := evaluationOf(merged, ev, p.model, n, horizon).Metrics(0)
		if err != nil {
			writeError(ctx, fasthttp.StatusInternalServerError, err.Error())
			return
		}
		preds := ms.shadowRuns(n) + s.Metrics.requestsOf(p.model, strconv.Itoa(n))
		if merged != nil {
			served, _, runs, _ := merged.VersionCounts(p.model, n)
			preds = served + runs
		}
		out.Versions = append(out.Versions, versionEval{Version: n, Role: role, Predictions: preds, Metrics: m})
	}
	sort.Slice(out.Versions, func(i, j int) bool { return out.Versions[i].Version < out.Versions[j].Version })
	writeValue(ctx, fasthttp.StatusOK, out)
}
