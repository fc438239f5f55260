package node

import (
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/lifecycle"
	"github.com/modelgate/modelgate/shadow"
)

// rolloutSource is the gateway's shadow state and metrics as the
// controller's RolloutSource. On the leader of a cluster of more than one
// member it reads the same numbers summed over every node that pushed them
// (stats_rollout.go); elsewhere this node's own.
//
// Per arm, over the rollout period (RolloutQuery.Since to Now): requests
// and server-side failures from the version's counters (a shadow: its
// mirrored runs and their failures); the served latencies and the score
// histogram of the version's windows (Server.VersionPerf), which the p99
// and score-shift triggers compare; and the label statistics of the online
// evaluation. A shadow's latencies are the champion/shadow comparison's
// (the p99 trigger does not judge shadow runs); its scores are those of
// its shadow runs, against the champion's scores of the same period. In
// the watch, the champion arm is the standby's last period as champion, as
// long as the watch so far, for latencies, scores and labels alike.
type rolloutSource struct {
	server *gateway.Server
	n      *Node
}

// rolloutStats is what the evidence is read from: the gateway's own
// numbers (*gateway.Server) or the cluster's (*statsStore).
type rolloutStats interface {
	VersionCounts(model string, version int) (served, failed, shadowRuns, shadowErrors uint64)
	ShadowComparison(model string, champion, version int, horizon time.Duration) *shadow.Comparison
	EvaluationBetween(model string, version int, from, to time.Time) *shadow.Evaluation
	VersionPerf(model string, version int, from, to time.Time) (*hdrhistogram.Histogram, []uint64)
}

// s is where this decision's numbers come from.
func (r rolloutSource) s() rolloutStats {
	if r.n != nil && r.n.clusterLeader() {
		return r.n.stats
	}
	return r.server
}

// counts returns what version did: for a shadow its runs, else its answers.
func (r rolloutSource) counts(model string, version int, shadowed bool) (n, failed uint64) {
	served, fail, runs, runErrs := r.s().VersionCounts(model, version)
	if shadowed {
		return runs, runErrs
	}
	return served, fail
}

func (r rolloutSource) Served(model string, version int) uint64 {
	served, _, runs, _ := r.s().VersionCounts(model, version)
	return served + runs
}

func (r rolloutSource) RolloutEvidence(q lifecycle.RolloutQuery) (lifecycle.Evidence, error) {
	var ev lifecycle.Evidence
	src := r.s()
	ev.Candidate.Requests, ev.Candidate.Errors = r.counts(q.Model, q.Candidate, q.Shadow)
	ev.Champion.Requests, ev.Champion.Errors = r.counts(q.Model, q.Against, false)
	if q.Shadow {
		if c := src.ShadowComparison(q.Model, q.Against, q.Candidate, q.Now.Sub(q.Since)); c != nil {
			ev.SetShadowRuns(c)
		}
	}
	from, to := q.Since, q.Now
	ev.Candidate.Labels = labels(src.EvaluationBetween(q.Model, q.Candidate, from, to))
	lat, scores := src.VersionPerf(q.Model, q.Candidate, from, to)
	ev.Candidate.Scores = scores
	if !q.Shadow {
		ev.Candidate.Latency = lat
	}
	if q.Watch {
		// The standby is judged by its last period as champion, as long
		// as the watch so far.
		from, to = q.Since.Add(-q.Now.Sub(q.Since)), q.Since
	}
	ev.Champion.Labels = labels(src.EvaluationBetween(q.Model, q.Against, from, to))
	lat, scores = src.VersionPerf(q.Model, q.Against, from, to)
	ev.Champion.Scores = scores
	if !q.Shadow {
		ev.Champion.Latency = lat
	}
	return ev, nil
}

func labels(e *shadow.Evaluation) lifecycle.LabelStats {
	if e == nil {
		return lifecycle.LabelStats{}
	}
	m, err := e.Metrics(0)
	if err != nil {
		return lifecycle.LabelStats{}
	}
	return lifecycle.LabelsFromMetrics(m)
}

// rolloutReporter answers the admin API's rollout route.
type rolloutReporter struct{ n *Node }

func (r rolloutReporter) RolloutReport(model string) (any, error) {
	rep, err := r.n.ctrl.Report(model)
	if err != nil {
		return nil, err
	}
	return struct {
		lifecycle.RolloutReport
		Node   string `json:"node"`
		Leader bool   `json:"leader"`
	}{rep, r.n.cfg.Gateway.Node, r.n.isLeader()}, nil
}

// isLeader reports whether this node's controller decides.
func (n *Node) isLeader() bool {
	if l, ok := n.cfg.Control.(leader); ok {
		return l.IsLeader()
	}
	return true
}
