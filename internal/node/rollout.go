package node

import (
	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/lifecycle"
	"github.com/modelgate/modelgate/shadow"
)

// rolloutSource is the gateway's shadow state and metrics as the
// controller's RolloutSource. It reads this node's numbers only: in a
// cluster the leader judges by the traffic it serves itself (statistics
// are not yet gathered across nodes).
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
type rolloutSource struct{ s *gateway.Server }

// counts returns what version did: for a shadow its runs, else its answers.
func (r rolloutSource) counts(model string, version int, shadowed bool) (n, failed uint64) {
	served, fail, runs, runErrs := r.s.VersionCounts(model, version)
	if shadowed {
		return runs, runErrs
	}
	return served, fail
}

func (r rolloutSource) Served(model string, version int) uint64 {
	served, _, runs, _ := r.s.VersionCounts(model, version)
	return served + runs
}

func (r rolloutSource) RolloutEvidence(q lifecycle.RolloutQuery) (lifecycle.Evidence, error) {
	var ev lifecycle.Evidence
	ev.Candidate.Requests, ev.Candidate.Errors = r.counts(q.Model, q.Candidate, q.Shadow)
	ev.Champion.Requests, ev.Champion.Errors = r.counts(q.Model, q.Against, false)
	if q.Shadow {
		if c := r.s.ShadowComparison(q.Model, q.Against, q.Candidate, q.Now.Sub(q.Since)); c != nil {
			ev.SetShadowRuns(c)
		}
	}
	from, to := q.Since, q.Now
	ev.Candidate.Labels = labels(r.s.EvaluationBetween(q.Model, q.Candidate, from, to))
	lat, scores := r.s.VersionPerf(q.Model, q.Candidate, from, to)
	ev.Candidate.Scores = scores
	if !q.Shadow {
		ev.Candidate.Latency = lat
	}
	if q.Watch {
		// The standby is judged by its last period as champion, as long
		// as the watch so far.
		from, to = q.Since.Add(-q.Now.Sub(q.Since)), q.Since
	}
	ev.Champion.Labels = labels(r.s.EvaluationBetween(q.Model, q.Against, from, to))
	lat, scores = r.s.VersionPerf(q.Model, q.Against, from, to)
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
