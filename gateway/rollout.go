package gateway

import (
	"strconv"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/valyala/fasthttp"

	"github.com/modelgate/modelgate/shadow"
)

// What the lifecycle controller reads of this node for rollouts
// (internal/node's RolloutSource). All of it comes from counters and
// statistics the scoring path and the shadow workers already keep; none
// of it runs on the scoring path.

// VersionCounts returns what version of model did on this node since it
// started: the requests it answered (champion, canary or pinned), the
// ones of those its runtime failed (ORT errors, timeouts, a full queue;
// not a client's malformed input), and its shadow runs and their
// failures. Zero for a version this node never loaded.
func (s *Server) VersionCounts(model string, version int) (served, failed, shadowRuns, shadowErrors uint64) {
	served, failed = s.Metrics.countsOf(model, strconv.Itoa(version))
	if ms := s.lookupShadow(model); ms != nil {
		shadowRuns = ms.shadowRuns(version)
		if cmp := ms.cmp.Load(); cmp != nil {
			for _, p := range cmp.Pairs() {
				if p.Shadow == version {
					shadowErrors += cmp.Snapshot(p, maxHorizon).Errors
				}
			}
		}
	}
	return served, failed, shadowRuns, shadowErrors
}

// ShadowComparison returns the champion/shadow pair's comparison on this
// node over the last horizon (at most a day), or nil when the node has
// none for the model.
func (s *Server) ShadowComparison(model string, champion, version int, horizon time.Duration) *shadow.Comparison {
	ms := s.lookupShadow(model)
	if ms == nil {
		return nil
	}
	cmp := ms.cmp.Load()
	if cmp == nil {
		return nil
	}
	return cmp.Snapshot(shadow.Pair{Champion: champion, Shadow: version}, min(max(horizon, time.Minute), maxHorizon))
}

// EvaluationBetween returns version's online evaluation on this node
// over the windows from from to to (labels joined to predictions made
// then), or nil when the node evaluates nothing of the model. Windows no
// longer kept are left out.
func (s *Server) EvaluationBetween(model string, version int, from, to time.Time) *shadow.Evaluation {
	ms := s.lookupShadow(model)
	if ms == nil {
		return nil
	}
	ev := ms.eval.Load()
	if ev == nil {
		return nil
	}
	first, last := ev.WindowOf(from), ev.WindowOf(to)
	if keep := int64(ev.Config().Windows.Windows); last-first >= keep {
		first = last - keep + 1
	}
	var out *shadow.Evaluation
	for k := first; k <= last; k++ {
		w := ev.Window(version, k)
		switch {
		case w == nil:
		case out == nil:
			out = w
		default:
			_ = out.Merge(w) // one evaluator's windows share their settings
		}
	}
	if out == nil {
		out = ev.Snapshot(version, 0)
		out.Reset()
	}
	return out
}

// RolloutReporter answers GET /api/v1/models/{m}/rollout: internal/node
// implements it with the lifecycle controller, which gateway does not
// import.
type RolloutReporter interface {
	// RolloutReport returns the model's rollout report (JSON-encodable),
	// or the registry's error for an unknown model.
	RolloutReport(model string) (any, error)
}

// apiRollout: GET /api/v1/models/{m}/rollout — where the model's rollout
// stands against each gate, with the numbers, and what the controller
// will do next.
func (s *Server) apiRollout(ctx *fasthttp.RequestCtx, p *apiParams) {
	if s.cfg.Rollouts == nil {
		writeError(ctx, fasthttp.StatusNotImplemented, "this node runs no lifecycle controller, so it has no rollout to report")
		return
	}
	rep, err := s.cfg.Rollouts.RolloutReport(p.model)
	if err != nil {
		writeError(ctx, registryStatus(err), err.Error())
		return
	}
	writeValue(ctx, fasthttp.StatusOK, rep)
}

// VersionPerf returns a version's served latencies (microseconds) and its
// scores in ScoreBins equal-width bins over [0, 1], over the windows that
// overlap from..to and are still kept (the drift window's length, about
// six hours back at most). A shadow's histogram holds its shadow runs'
// scores and no latencies. Both are empty when the version never was
// loaded here; the caller owns them.
func (s *Server) VersionPerf(model string, version int, from, to time.Time) (*hdrhistogram.Histogram, []uint64) {
	p := s.Metrics.perfOf(model, strconv.Itoa(version))
	if p == nil {
		return newPerfLatency(), make([]uint64, ScoreBins)
	}
	return p.between(from, to)
}
