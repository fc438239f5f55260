package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/shadow"
)

// Cluster-wide statistics on the admin API.
//
// Every node pushes its mergeable statistics to the leader (POST
// /api/v1/cluster/stats, admin scope, internal/node's push loop): per
// served version the drift windows it closed since the leader last
// acknowledged them, as sketch exports. The leader keeps the latest of
// each node's windows and merges them (ClusterStats, internal/node); what
// its lifecycle controller judges, and what the drift API shows on the
// leader of a cluster of more than one member, is the merge. A push is
// answered only by the leader: a follower refuses it with 409 naming the
// leader, so the pusher looks the leader up again (it is never forwarded:
// statistics pushed to a node that lost the lead would be lost with it).

// StatsPushVersion is the push body's format version this build writes
// and reads; the leader refuses (400) any other.
const StatsPushVersion = 1

// Bounds of a push, checked before anything is merged: the body (the
// route's limit), the versions it may name, the windows per version (a
// ring holds at most 10,000) and a name's length.
const (
	maxStatsBody      = 32 << 20
	maxPushVersions   = 4096
	maxPushWindows    = 10000
	maxPushStats      = 100000
	maxStatsNameBytes = 256
)

// StatsPush is one node's push: its drift windows per served version.
type StatsPush struct {
	// V is the format version (StatsPushVersion).
	V int `json:"v"`
	// Node is the pushing node's ID.
	Node string `json:"node"`
	// Seq orders a node's pushes: it starts at the node's start time in
	// Unix ns and grows by one per push, so a retried or duplicated push
	// (a Seq the leader has seen) is recognised and not merged again.
	Seq uint64 `json:"seq"`
	// Boot identifies the node's run (its start in Unix ns): counters
	// start from zero on every run, so the leader keeps each run's last.
	Boot uint64 `json:"boot"`
	// WindowNS is the node's drift window length; windows of nodes with
	// other lengths do not line up and are refused.
	WindowNS int64 `json:"window_ns"`
	// Drift is the windows per version.
	Drift []DriftPush `json:"drift,omitempty"`
	// Counts are every version's counters on the node (all of them, every
	// push); Stats the rollout statistics' windows that changed since the
	// leader acknowledged them (stats_rollout.go).
	Counts []VersionCount `json:"counts,omitempty"`
	Stats  []StatWindow   `json:"stats,omitempty"`
}

// DriftPush is one version's closed drift windows.
type DriftPush struct {
	Model   string `json:"model"`
	Version int    `json:"version"`
	// Through is the newest window the node has closed: every window up to
	// it that is not in Windows (and newer than what the leader holds)
	// counted no row.
	Through int64 `json:"through"`
	// Windows are the closed windows with rows, by number (see
	// drift.ClosedWindow), their sketches exported.
	Windows []PushedWindow `json:"windows,omitempty"`
}

// PushedWindow is one closed drift window's sketch (drift's export
// format, base64 in JSON).
type PushedWindow struct {
	ID     int64  `json:"id"`
	Sketch []byte `json:"sketch"`
}

// StatsAck is the leader's answer to a push.
type StatsAck struct {
	// Leader is the ID of the node that merged it.
	Leader string `json:"leader"`
	Seq    uint64 `json:"seq"`
	// Duplicate: the leader had merged this push (or a later one) already;
	// nothing changed.
	Duplicate bool `json:"duplicate,omitempty"`
	// Windows is how many drift windows were merged, StatWindows how many
	// rollout statistics' windows.
	Windows     int `json:"windows"`
	StatWindows int `json:"stat_windows,omitempty"`
	// Refused are the versions whose windows were not merged, and why.
	Refused []StatsRefusal `json:"refused,omitempty"`
}

// Reasons a version's pushed windows are refused (StatsRefusal.Reason).
const (
	RefusedExportVersion = "export_version"   // sketches in another format version
	RefusedProfile       = "profile_mismatch" // sketches of another reference profile
	RefusedCorrupt       = "corrupt"          // sketches that do not decode
	RefusedWindowLength  = "window_length"    // another drift window length
	RefusedNotMonitored  = "not_monitored"    // the leader does not monitor the version's drift
)

// StatsRefusal is one version whose windows a push could not merge.
type StatsRefusal struct {
	Model   string `json:"model"`
	Version int    `json:"version"`
	Reason  string `json:"reason"`
	Error   string `json:"error"`
}

// StatsNode is one node as the leader's merge sees it.
type StatsNode struct {
	ID string `json:"id"`
	// LastPush is when the leader last merged a push of it.
	LastPush time.Time `json:"last_push"`
	// Stale: it has not pushed for longer than the bound, so it is left
	// out of the merge until it pushes again.
	Stale bool `json:"stale"`
	// Through is its newest closed window pushed for the version (-1 in
	// the status, which is not about one version).
	Through int64 `json:"through"`
	// Windows is how many of its windows the leader holds (for the
	// version, or in all).
	Windows int `json:"windows"`
}

// StatsStatus is GET /api/v1/cluster/stats: the leader's merge at a
// glance.
type StatsStatus struct {
	Node   string `json:"node"`
	Leader bool   `json:"leader"`
	// PushInterval is how often nodes push, and StaleAfter how long a
	// node may go without before it leaves the merge.
	PushInterval string      `json:"push_interval"`
	StaleAfter   string      `json:"stale_after"`
	Nodes        []StatsNode `json:"nodes"`
	// Duplicates counts pushes recognised as already merged; Refused the
	// versions' windows refused, by reason.
	Duplicates uint64            `json:"duplicates"`
	Refused    map[string]uint64 `json:"refused"`
}

// ClusterStats is the leader's store of pushed statistics (internal/node).
type ClusterStats interface {
	// Ingest merges one decoded push. The caller has checked that this
	// node leads.
	Ingest(p *StatsPush) StatsAck
	// DriftWindows returns a version's windows merged over the nodes that
	// push (node ""), or as one node pushed them (node its ID), with the
	// nodes that contributed; ok is false when there is nothing to merge
	// (not the leader, no push yet, a version the leader does not
	// monitor).
	DriftWindows(model string, version int, node string) (w *drift.Windows, nodes []StatsNode, ok bool)
	// Status is the merge at a glance.
	Status() StatsStatus
	// VersionCounts, EvaluationBetween and ShadowComparison are Server's
	// methods of the same names summed over every node that pushed
	// (EvaluationBetween and ShadowComparison nil when none has any).
	VersionCounts(model string, version int) (served, failed, shadowRuns, shadowErrors uint64)
	EvaluationBetween(model string, version int, from, to time.Time) *shadow.Evaluation
	ShadowComparison(model string, champion, version int, horizon time.Duration) *shadow.Comparison
}

func init() {
	push := withBody(newRoute("POST", "/api/v1/cluster/stats", ScopeAdmin, (*Server).apiStatsPush), maxStatsBody)
	push.local = true
	apiRoutes = append(apiRoutes, push, newRoute("GET", "/api/v1/cluster/stats", ScopeRead, (*Server).apiStatsStatus))
}

// errStatsPush is what DecodeStatsPush's errors wrap.
var errStatsPush = errors.New("gateway: bad statistics push")

// DecodeStatsPush decodes and checks a push body: the format version,
// the node, the bounds, window numbers unique per version and not beyond
// its Through. The sketches themselves are checked when merged, against
// the version's profile. It never panics on bad input (FuzzDecodeStatsPush).
func DecodeStatsPush(body []byte) (*StatsPush, error) {
	var p StatsPush
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%w: %v", errStatsPush, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the JSON value", errStatsPush)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", errStatsPush, fmt.Sprintf(format, args...))
	}
	switch {
	case p.V != StatsPushVersion:
		return nil, bad("format version %d; this node reads %d (are the nodes running different builds?)", p.V, StatsPushVersion)
	case p.Node == "" || len(p.Node) > maxStatsNameBytes:
		return nil, bad("node must be a node ID of 1 to %d bytes", maxStatsNameBytes)
	case p.Seq == 0:
		return nil, bad("seq must be positive")
	case p.WindowNS <= 0:
		return nil, bad("window_ns must be positive, got %d", p.WindowNS)
	case len(p.Drift) > maxPushVersions:
		return nil, bad("%d versions in one push; at most %d", len(p.Drift), maxPushVersions)
	case len(p.Counts) > maxPushVersions:
		return nil, bad("%d counters in one push; at most %d", len(p.Counts), maxPushVersions)
	case len(p.Stats) > maxPushStats:
		return nil, bad("%d statistics windows in one push; at most %d", len(p.Stats), maxPushStats)
	}
	if len(p.Counts) == 0 {
		p.Counts = nil
	}
	if len(p.Stats) == 0 {
		p.Stats = nil
	}
	for i, c := range p.Counts {
		if c.Model == "" || len(c.Model) > maxStatsNameBytes || c.Version <= 0 {
			return nil, bad("counts[%d]: want a model name of 1 to %d bytes and a positive version", i, maxStatsNameBytes)
		}
	}
	for i, w := range p.Stats {
		switch {
		case w.Kind != StatPerf && w.Kind != StatEval && w.Kind != StatComparison:
			return nil, bad("stats[%d]: unknown kind %q (this node reads %s, %s and %s)", i, w.Kind, StatPerf, StatEval, StatComparison)
		case w.Model == "" || len(w.Model) > maxStatsNameBytes || w.Version <= 0 || w.Against < 0:
			return nil, bad("stats[%d]: want a model name of 1 to %d bytes and positive versions", i, maxStatsNameBytes)
		case (w.Kind == StatComparison) != (w.Against > 0):
			return nil, bad("stats[%d]: a comparison, and only a comparison, names the champion it is against", i)
		case w.WindowNS <= 0:
			return nil, bad("stats[%d]: window_ns must be positive", i)
		case len(w.Data) == 0:
			return nil, bad("stats[%d]: empty data", i)
		}
	}
	if len(p.Drift) == 0 {
		p.Drift = nil // "drift":[] and no drift are one push
	}
	for i, d := range p.Drift {
		if len(d.Windows) == 0 {
			p.Drift[i].Windows = nil
		}
		switch {
		case d.Model == "" || len(d.Model) > maxStatsNameBytes:
			return nil, bad("drift[%d]: model must be a name of 1 to %d bytes", i, maxStatsNameBytes)
		case d.Version <= 0:
			return nil, bad("drift[%d]: version must be positive, got %d", i, d.Version)
		case len(d.Windows) > maxPushWindows:
			return nil, bad("drift[%d]: %d windows; at most %d", i, len(d.Windows), maxPushWindows)
		}
		for j, w := range d.Windows {
			switch {
			case w.ID > d.Through:
				return nil, bad("drift[%d].windows[%d]: window %d is after through (%d)", i, j, w.ID, d.Through)
			case j > 0 && w.ID <= d.Windows[j-1].ID:
				return nil, bad("drift[%d].windows[%d]: windows must be in increasing order without repeats", i, j)
			case len(w.Sketch) == 0:
				return nil, bad("drift[%d].windows[%d]: empty sketch", i, j)
			}
		}
	}
	return &p, nil
}

// apiStatsPush: POST /api/v1/cluster/stats, a node's push. Only the
// leader merges: anywhere else 409 naming the leader.
func (s *Server) apiStatsPush(ctx *fasthttp.RequestCtx, _ *apiParams) {
	if s.cfg.Stats == nil {
		writeError(ctx, fasthttp.StatusNotImplemented, "this node does not gather cluster statistics")
		return
	}
	if s.cluster != nil && !s.cluster.IsLeader() {
		id, _ := s.cluster.LeaderAdmin()
		if id == "" {
			id = "unknown (an election is under way)"
		}
		writeError(ctx, fasthttp.StatusConflict, "node "+s.cluster.NodeID()+" is not the leader, so it does not merge statistics; the leader is "+id+": push there")
		return
	}
	p, err := DecodeStatsPush(ctx.Request.Body())
	if err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, err.Error())
		return
	}
	writeValue(ctx, fasthttp.StatusOK, s.cfg.Stats.Ingest(p))
}

// apiStatsStatus: GET /api/v1/cluster/stats, the merge at a glance (on a
// follower: its own, empty store; ?consistent=true asks the leader).
func (s *Server) apiStatsStatus(ctx *fasthttp.RequestCtx, _ *apiParams) {
	if s.cfg.Stats == nil {
		writeError(ctx, fasthttp.StatusNotImplemented, "this node does not gather cluster statistics")
		return
	}
	writeValue(ctx, fasthttp.StatusOK, s.cfg.Stats.Status())
}

// EachDrift calls fn for every served version monitored for drift (its
// reference profile known), with its windows: what a node pushes to the
// leader. fn may keep w; it is safe to read concurrently.
func (c *Catalog) EachDrift(fn func(model string, version int, w *drift.Windows)) {
	for _, r := range c.table().Models() {
		for _, v := range r.Versions() {
			if d := v.Attach.drift.Load(); d != nil {
				if w := d.windows.Load(); w != nil {
					fn(r.Name, v.Attach.num, w)
				}
			}
		}
	}
}

// Views of the drift API.
const (
	// ViewCluster: the leader's merge of every pushing node's windows.
	ViewCluster = "cluster"
	// ViewNode: one node's own windows.
	ViewNode = "node"
)

// clustered reports whether this node is in a cluster of more than one
// member: only then do views say which they are, and the leader judge
// merged statistics.
func (s *Server) clustered() bool {
	if s.cluster == nil {
		return false
	}
	ms, err := s.cluster.Members()
	return err == nil && len(ms) > 1
}

// driftSource picks the windows the drift API judges for a version whose
// local state is d: on the leader of a cluster the merge (node ""), a
// node's as the leader holds them (?node=ID), else this node's own. It
// answers an error itself and returns ok false then.
func (s *Server) driftSource(ctx *fasthttp.RequestCtx, model string, version int) (w *drift.Windows, view string, nodes []StatsNode, ok bool) {
	node := string(ctx.QueryArgs().Peek("node"))
	if !s.clustered() {
		if node != "" && node != s.cfg.Node {
			writeError(ctx, fasthttp.StatusNotFound, "no node "+strconv.Quote(node)+": this node ("+s.cfg.Node+") is not in a cluster")
			return nil, "", nil, false
		}
		return nil, "", nil, true
	}
	self := s.cluster.NodeID()
	if node == self {
		return nil, ViewNode, nil, true
	}
	if s.cfg.Stats != nil && s.cluster.IsLeader() {
		if w, nodes, ok := s.cfg.Stats.DriftWindows(model, version, node); ok {
			if node == "" {
				return w, ViewCluster, nodes, true
			}
			return w, ViewNode, nodes, true
		}
	}
	if node != "" {
		where := "this node is not the leader: ask with ?consistent=true, which the leader answers"
		if s.cluster.IsLeader() {
			where = "the leader holds no drift windows of " + model + " v" + strconv.Itoa(version) + " pushed by it (see GET /api/v1/cluster/stats)"
		}
		writeError(ctx, fasthttp.StatusNotFound, "no drift view of node "+strconv.Quote(node)+": "+where)
		return nil, "", nil, false
	}
	return nil, ViewNode, nil, true
}

// statsView picks what the evaluation and comparison endpoints read: on
// the leader of a cluster the merge of every node's pushes (ViewCluster),
// with ?node=<this node's ID> or on a follower this node's own
// (ViewNode), outside a cluster this node's own without a view. It
// answers an error itself and returns ok false then.
func (s *Server) statsView(ctx *fasthttp.RequestCtx) (view string, merged ClusterStats, ok bool) {
	node := string(ctx.QueryArgs().Peek("node"))
	if !s.clustered() {
		if node != "" && node != s.cfg.Node {
			writeError(ctx, fasthttp.StatusNotFound, "no node "+strconv.Quote(node)+": this node ("+s.cfg.Node+") is not in a cluster")
			return "", nil, false
		}
		return "", nil, true
	}
	switch self := s.cluster.NodeID(); {
	case node != "" && node != self:
		writeError(ctx, fasthttp.StatusNotFound, "this node is "+self+": ask node "+strconv.Quote(node)+"'s own admin API for its view")
		return "", nil, false
	case node == "" && s.cfg.Stats != nil && s.cluster.IsLeader():
		return ViewCluster, s.cfg.Stats, true
	}
	return ViewNode, nil, true
}

// evaluationOf is version's evaluation over the last horizon: ev's, or
// the cluster's when merged is set (empty, with ev's settings, when no
// node has any).
func evaluationOf(merged ClusterStats, ev *shadow.Evaluator, model string, version int, horizon time.Duration) *shadow.Evaluation {
	if merged == nil {
		return ev.Snapshot(version, horizon)
	}
	now := time.Now()
	if e := merged.EvaluationBetween(model, version, now.Add(-horizon), now); e != nil {
		return e
	}
	e := ev.Snapshot(version, 0)
	e.Reset()
	return e
}

// comparisonOf is a pair's comparison over the last horizon: cmp's, or the
// cluster's when merged is set.
func comparisonOf(merged ClusterStats, cmp *shadow.Comparisons, model string, pr shadow.Pair, horizon time.Duration) *shadow.Comparison {
	if merged == nil {
		return cmp.Snapshot(pr, horizon)
	}
	if c := merged.ShadowComparison(model, pr.Champion, pr.Shadow, horizon); c != nil {
		return c
	}
	return shadow.NewComparison(cmp.Config().Threshold)
}
