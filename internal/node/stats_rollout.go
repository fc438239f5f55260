package node

import (
	"hash/fnv"
	"strconv"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/shadow"
)

// The rollout's statistics across the cluster: what the leader's
// RolloutSource reads (rollout.go) in a cluster of more than one member.
//
// Counters are cumulative per node run (gateway.StatsPush.Boot); the
// leader keeps the last of every run of every node, dead ones included
// (those requests were served), so the cluster's count never goes down
// while the leader leads. Windows (latencies and scores, online
// evaluation, shadow comparisons) are kept per node and window, the
// latest copy of each, for a day (the longest horizon any of them is read
// over), also after a node stops pushing: a rollout's evidence is
// cumulative over its period, and a node that died served part of it.
// Unlike drift, no merge waits for a slow node: a rollout period is many
// windows long, and a window a node has not sent yet only makes the
// evidence a push interval younger.

// statsKeep is how long the leader keeps pushed rollout windows.
const statsKeep = 25 * time.Hour

// statKey names one pushed window of one statistic of one node.
type statKey struct {
	node, kind, model string
	version, against  int
	id                int64
}

type pushedStat struct {
	windowNS int64
	data     []byte
}

// countKey names one node run's counters of one version.
type countKey struct {
	node    string
	boot    uint64
	model   string
	version int
}

// ingestRollout keeps a push's counters and windows. Caller holds s.mu.
func (s *statsStore) ingestRollout(p *gateway.StatsPush, now time.Time, ack *gateway.StatsAck, refuse func(model string, version int, reason, msg string)) {
	if s.counts == nil {
		s.counts, s.stats, s.servedHW = map[countKey]gateway.VersionCount{}, map[statKey]pushedStat{}, map[verKey]uint64{}
	}
	for _, c := range p.Counts {
		s.counts[countKey{p.Node, p.Boot, c.Model, c.Version}] = c
	}
	for i := range p.Stats {
		w := &p.Stats[i]
		if err := gateway.CheckStatWindow(w); err != nil {
			refuse(w.Model, w.Version, gateway.RefusedCorrupt, w.Kind+" window "+strconv.FormatInt(w.ID, 10)+": "+err.Error())
			continue
		}
		s.stats[statKey{p.Node, w.Kind, w.Model, w.Version, w.Against, w.ID}] = pushedStat{windowNS: w.WindowNS, data: w.Data}
		ack.StatWindows++
	}
	if now.Sub(s.pruned) > time.Minute {
		s.pruned = now
		for k, v := range s.stats {
			if time.Unix(0, (k.id+1)*v.windowNS).Before(now.Add(-statsKeep)) {
				delete(s.stats, k)
			}
		}
	}
}

// VersionCounts sums every node run's counters of a version, never less
// than it answered before (a counter that restarts, a version reloaded,
// only holds the sum until it is passed again: the controller counts a
// step's requests from the increase).
func (s *statsStore) VersionCounts(model string, version int) (served, failed, runs, runErrs uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, c := range s.counts {
		if k.model == model && k.version == version {
			served += c.Served
			failed += c.Failed
			runs += c.ShadowRuns
			runErrs += c.ShadowErrors
		}
	}
	k := verKey{model, version}
	if hw := s.servedHW[k]; served+runs < hw {
		return hw - runs, failed, runs, runErrs
	}
	if s.servedHW != nil {
		s.servedHW[k] = served + runs
	}
	return served, failed, runs, runErrs
}

// each calls fn with every kept window of kind for model and version
// (against for comparisons) that overlaps [from, to].
func (s *statsStore) each(kind, model string, version, against int, from, to time.Time, fn func(node string, data []byte)) {
	for k, v := range s.stats {
		if k.kind != kind || k.model != model || k.version != version || k.against != against {
			continue
		}
		start := k.id * v.windowNS
		if start > to.UnixNano() || start+v.windowNS <= from.UnixNano() {
			continue
		}
		fn(k.node, v.data)
	}
}

// VersionPerf merges every node's latencies and scores of a version over
// the windows overlapping [from, to].
func (s *statsStore) VersionPerf(model string, version int, from, to time.Time) (*hdrhistogram.Histogram, []uint64) {
	lat, scores := gateway.NewPerfLatency(), make([]uint64, gateway.ScoreBins)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.each(gateway.StatPerf, model, version, 0, from, to, func(node string, data []byte) {
		if err := gateway.MergePerf(lat, scores, data); err != nil {
			s.log.Error("cannot merge a pushed perf window", "from", node, "model", model, "version", version, "err", err)
		}
	})
	return lat, scores
}

// EvaluationBetween merges every node's online evaluation of a version
// over the windows overlapping [from, to], or nil when none has any.
func (s *statsStore) EvaluationBetween(model string, version int, from, to time.Time) *shadow.Evaluation {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out *shadow.Evaluation
	s.each(gateway.StatEval, model, version, 0, from, to, func(node string, data []byte) {
		e, err := shadow.ImportEvaluation(data)
		if err == nil && out == nil {
			out = e
			return
		}
		if err == nil {
			err = out.Merge(e)
		}
		if err != nil {
			s.log.Error("cannot merge a pushed evaluation window (nodes with different evaluation policies?)", "from", node, "model", model, "version", version, "err", err)
		}
	})
	return out
}

// ShadowComparison merges every node's comparison of a champion/shadow
// pair over the windows of the last horizon (at most a day), or nil when
// none has any.
func (s *statsStore) ShadowComparison(model string, champion, version int, horizon time.Duration) *shadow.Comparison {
	horizon = min(max(horizon, time.Minute), 24*time.Hour)
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out *shadow.Comparison
	s.each(gateway.StatComparison, model, version, champion, now.Add(-horizon), now, func(node string, data []byte) {
		c, err := shadow.ImportComparison(data)
		if err == nil && out == nil {
			out = c
			return
		}
		if err == nil {
			err = out.Merge(c)
		}
		if err != nil {
			s.log.Error("cannot merge a pushed shadow comparison (nodes deciding at different thresholds?)", "from", node, "model", model, "version", version, "err", err)
		}
	})
	return out
}

// addRollout adds this node's counters and the rollout windows that
// changed since the leader acknowledged them to push, up to budget bytes
// of exports (the rest go in a later push), and returns the hashes of the
// windows the leader holds once it acknowledges this push.
func (p *statsPusher) addRollout(push *gateway.StatsPush, budget int) map[statKey]uint64 {
	push.Boot = p.boot
	p.n.Server.EachVersionCount(func(c gateway.VersionCount) { push.Counts = append(push.Counts, c) })
	held := map[statKey]uint64{}
	p.n.Server.EachStatWindow(func(w gateway.StatWindow) {
		h := fnv.New64a()
		_, _ = h.Write(w.Data)
		k := statKey{"", w.Kind, w.Model, w.Version, w.Against, w.ID}
		sum := h.Sum64()
		switch {
		case p.sent[k] == sum:
			held[k] = sum
		case len(w.Data) <= budget:
			budget -= len(w.Data)
			push.Stats = append(push.Stats, w)
			held[k] = sum
		}
	})
	return held
}
