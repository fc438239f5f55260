package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/modelgate/modelgate/cluster"
	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/gateway"
)

// Cluster-wide statistics: every node pushes its closed drift windows to
// the leader, and the leader judges their merge.
//
// Push. Every StatsPushInterval (a quarter of the drift window by default)
// each node sends the leader, per version it monitors, the windows it
// closed since the leader last acknowledged them and the number of its
// newest closed window (through). The leader pushes to itself in process.
// Windows are immutable once closed and the leader keeps the latest copy
// of each (node, version, window), so a retried push replaces what it
// already sent; a push whose Seq the leader has seen is not merged again
// at all. A push to a node that does not lead is refused (409), and a
// failed push makes the next one resend every window the node keeps,
// to whichever node leads then: a new leader holds nothing of anybody's.
//
// Alignment. Windows are aligned on multiples of their length since the
// Unix epoch (drift.WindowConfig), so window n of every node covers the
// same time and the cluster's window n is their sum; nodes with another
// window length are refused. The merge is held at the oldest "through"
// of the nodes that push, plus one: a window is judged only once every
// pushing node has closed and sent it, so the leader never judges a
// window that still misses a node's rows (it runs up to one push interval
// behind its own windows). A node whose clock lags cannot hold it back by
// more than the staleness bound.
//
// Absence. A node that has not pushed for staleAfter (four push
// intervals: one drift window by default) is left out of the merge
// entirely — its older windows too, so the merge is always the same set of
// nodes in every window and a partition does not read as a change in the
// traffic mix — and is listed "stale" in the views until it pushes again;
// after a ring of windows (an hour by default) without a push it is
// forgotten.
//
// Leader change. The store lives on the leader and is emptied when the
// node stops leading. A new leader starts from the pushes it receives:
// every node resends its whole ring to it on its first push, so what is
// lost is at most the windows in flight and those of nodes that died with
// the old leader.

// statsStaleAfter is how many push intervals a node may miss before the
// merge leaves it out.
const statsStaleAfter = 4

// statsPushTimeout bounds one push to the leader.
const statsPushTimeout = 10 * time.Second

type verKey struct {
	model   string
	version int
}

// pushedDrift is one node's windows of one version.
type pushedDrift struct {
	through int64
	windows map[int64][]byte
}

// pushedNode is what the leader holds of one node.
type pushedNode struct {
	seq   uint64
	last  time.Time
	drift map[verKey]*pushedDrift
}

// mergedView is a merge built once and reused until something changes.
type mergedView struct {
	gen   uint64
	cur   int64
	using string // the contributing nodes
	w     *drift.Windows
}

// statsStore is the leader's store of pushed statistics: gateway's
// ClusterStats.
type statsStore struct {
	self       string
	window     time.Duration
	interval   time.Duration
	staleAfter time.Duration
	now        func() time.Time
	isLeader   func() bool
	// local returns this node's windows of a version (nil when it does not
	// monitor it): the profile and window geometry pushes are read by.
	local func(model string, version int) *drift.Windows
	log   *slog.Logger

	mu      sync.Mutex
	nodes   map[string]*pushedNode
	gen     uint64 // bumped by every change to nodes
	merged  map[string]*mergedView
	dups    uint64
	refused map[string]uint64
	warned  map[string]bool // refusals logged (node, version, reason)

	// The rollout's statistics (stats_rollout.go).
	counts   map[countKey]gateway.VersionCount
	stats    map[statKey]pushedStat
	servedHW map[verKey]uint64
	pruned   time.Time
}

var _ gateway.ClusterStats = (*statsStore)(nil)

func newStatsStore(self string, window, interval time.Duration, local func(string, int) *drift.Windows, isLeader func() bool, log *slog.Logger) *statsStore {
	return &statsStore{
		self: self, window: window, interval: interval, staleAfter: statsStaleAfter * interval,
		now: time.Now, isLeader: isLeader, local: local, log: log,
		nodes: map[string]*pushedNode{}, merged: map[string]*mergedView{},
		refused: map[string]uint64{}, warned: map[string]bool{},
	}
}

// reset forgets every push: the node no longer leads.
func (s *statsStore) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.nodes) > 0 {
		s.nodes, s.merged = map[string]*pushedNode{}, map[string]*mergedView{}
		s.counts, s.stats, s.servedHW = nil, nil, nil
		s.gen++
	}
}

// ringOf is how many closed windows w keeps one by one.
func ringOf(w *drift.Windows) int64 {
	c := w.Config()
	return int64(c.Rollup / c.Window)
}

// Ingest merges one push (see the file comment).
func (s *statsStore) Ingest(p *gateway.StatsPush) gateway.StatsAck {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	ack := gateway.StatsAck{Leader: s.self, Seq: p.Seq}
	n := s.nodes[p.Node]
	if n == nil {
		n = &pushedNode{drift: map[verKey]*pushedDrift{}}
		s.nodes[p.Node] = n
	}
	n.last = now // a retry still says the node is alive
	s.gen++
	if p.Seq <= n.seq {
		s.dups++
		ack.Duplicate = true
		return ack
	}
	n.seq = p.Seq
	s.forgetSilent(now)
	refuseVersion := func(model string, version int, reason, msg string) {
		ack.Refused = append(ack.Refused, gateway.StatsRefusal{Model: model, Version: version, Reason: reason, Error: msg})
		s.refused[reason]++
		key := p.Node + "\x00" + model + "\x00" + strconv.Itoa(version) + "\x00" + reason
		if !s.warned[key] {
			s.warned[key] = true
			s.log.Warn("statistics refused: this node's windows are left out of the cluster's judgement (logged once per node, version and reason; counted in GET /api/v1/cluster/stats)",
				"from", p.Node, "model", model, "version", version, "reason", reason, "err", msg)
		}
	}
	refuse := func(d *gateway.DriftPush, reason, msg string) { refuseVersion(d.Model, d.Version, reason, msg) }
	s.ingestRollout(p, now, &ack, refuseVersion)
	for i := range p.Drift {
		d := &p.Drift[i]
		if time.Duration(p.WindowNS) != s.window {
			refuse(d, gateway.RefusedWindowLength, fmt.Sprintf("its drift windows are %s long, the leader's %s: windows of different lengths do not line up; give every node the same --drift-window", time.Duration(p.WindowNS), s.window))
			continue
		}
		lw := s.local(d.Model, d.Version)
		if lw == nil {
			refuse(d, gateway.RefusedNotMonitored, "the leader does not monitor this version's drift (not loaded there yet, or its reference is still being sampled); the node resends them")
			continue
		}
		if reason, err := checkWindows(lw.Profile(), d.Windows); err != nil {
			refuse(d, reason, err.Error())
			continue
		}
		pd := n.drift[verKey{d.Model, d.Version}]
		if pd == nil {
			pd = &pushedDrift{through: d.Through, windows: map[int64][]byte{}}
			n.drift[verKey{d.Model, d.Version}] = pd
		}
		pd.through = max(pd.through, d.Through)
		floor := pd.through - ringOf(lw)
		for _, w := range d.Windows {
			if w.ID > floor {
				pd.windows[w.ID] = w.Sketch
				ack.Windows++
			}
		}
		for id := range pd.windows {
			if id <= floor {
				delete(pd.windows, id)
			}
		}
	}
	return ack
}

// checkWindows checks pushed sketches against the leader's profile of
// their version: the export format's version first (a node of another
// build), then the profile and the counts. It returns the refusal's reason.
func checkWindows(p *drift.Profile, ws []gateway.PushedWindow) (string, error) {
	for _, w := range ws {
		v, err := drift.SketchExportVersion(w.Sketch)
		if err != nil {
			return gateway.RefusedCorrupt, fmt.Errorf("window %d: %w", w.ID, err)
		}
		if v != drift.ExportVersion {
			return gateway.RefusedExportVersion, fmt.Errorf("window %d: sketch export format version %d, this build reads %d: run one build on every node", w.ID, v, drift.ExportVersion)
		}
		if _, err := drift.Import(p, w.Sketch); errors.Is(err, drift.ErrLayoutMismatch) {
			return gateway.RefusedProfile, fmt.Errorf("window %d: the sketch was made against another reference profile than the leader's (a reference bootstrapped on each node, or a different registration): %w", w.ID, err)
		} else if err != nil {
			return gateway.RefusedCorrupt, fmt.Errorf("window %d: %w", w.ID, err)
		}
	}
	return "", nil
}

// forgetSilent drops the nodes that have not pushed for a ring of windows.
// Caller holds mu.
func (s *statsStore) forgetSilent(now time.Time) {
	for id, n := range s.nodes {
		if now.Sub(n.last) > 60*s.window && id != s.self {
			delete(s.nodes, id)
		}
	}
}

func (s *statsStore) stale(n *pushedNode, now time.Time) bool {
	return now.Sub(n.last) > s.staleAfter
}

// DriftWindows merges a version's windows over the nodes that push (node
// ""), or returns one node's (see gateway.ClusterStats).
func (s *statsStore) DriftWindows(model string, version int, node string) (*drift.Windows, []gateway.StatsNode, bool) {
	lw := s.local(model, version)
	if lw == nil {
		return nil, nil, false
	}
	k := verKey{model, version}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var (
		nodes []gateway.StatsNode
		using []string
		cur   int64 = 1<<63 - 1
	)
	for id, n := range s.nodes {
		pd := n.drift[k]
		if pd == nil || node != "" && id != node {
			continue
		}
		st := gateway.StatsNode{ID: id, LastPush: n.last, Stale: s.stale(n, now), Through: pd.through, Windows: len(pd.windows)}
		nodes = append(nodes, st)
		if !st.Stale || node != "" {
			using = append(using, id)
			cur = min(cur, pd.through+1)
		}
	}
	if len(using) == 0 {
		return nil, nil, false
	}
	slices.SortFunc(nodes, func(a, b gateway.StatsNode) int { return strings.Compare(a.ID, b.ID) })
	slices.Sort(using)
	// A node whose clock lags holds the merge back at most as far as the
	// staleness bound.
	own, _ := lw.Current()
	cur = max(cur, own-int64(s.staleAfter/s.window)-1)
	key := model + "\x00" + strconv.Itoa(version) + "\x00" + node
	joined := strings.Join(using, "\x00")
	if m := s.merged[key]; m != nil && m.gen == s.gen && m.cur == cur && m.using == joined {
		return m.w, nodes, true
	}
	cfg := lw.Config()
	w, err := drift.NewWindowsAt(lw.Profile(), drift.WindowConfig{Window: cfg.Window, Rollup: cfg.Rollup, Retention: cfg.Retention, Shards: 1}, cur)
	if err != nil {
		s.log.Error("cannot build the cluster's drift windows", "model", model, "version", version, "err", err)
		return nil, nil, false
	}
	ring := ringOf(lw)
	for _, id := range using {
		for wid, b := range s.nodes[id].drift[k].windows {
			if wid < cur && wid >= cur-ring {
				if err := w.AddClosed(wid, b); err != nil {
					s.log.Error("cannot merge a pushed drift window", "from", id, "model", model, "version", version, "window", wid, "err", err)
				}
			}
		}
	}
	s.merged[key] = &mergedView{gen: s.gen, cur: cur, using: joined, w: w}
	return w, nodes, true
}

// Status is the merge at a glance.
func (s *statsStore) Status() gateway.StatsStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	st := gateway.StatsStatus{
		Node: s.self, Leader: s.isLeader(), PushInterval: s.interval.String(), StaleAfter: s.staleAfter.String(),
		Nodes: []gateway.StatsNode{}, Duplicates: s.dups, Refused: map[string]uint64{},
	}
	for id, n := range s.nodes {
		w := 0
		for _, pd := range n.drift {
			w += len(pd.windows)
		}
		st.Nodes = append(st.Nodes, gateway.StatsNode{ID: id, LastPush: n.last, Stale: s.stale(n, now), Through: -1, Windows: w})
	}
	slices.SortFunc(st.Nodes, func(a, b gateway.StatsNode) int { return strings.Compare(a.ID, b.ID) })
	for r, c := range s.refused {
		st.Refused[r] = c
	}
	return st
}

// statsPusher is a node's side: what the current leader has acknowledged.
type statsPusher struct {
	n *Node
	c *cluster.Node

	mu      sync.Mutex // one push at a time (the loop, tests)
	seq     uint64
	boot    uint64             // this run's ID (its start)
	sent    map[statKey]uint64 // rollout windows the leader holds, by hash
	budget  int                // bytes of exports a push carries (statsPushBudget)
	ackedBy string             // the leader that acknowledged acked
	acked   map[verKey]int64   // per version, the newest window it holds
	fails   int                // consecutive failed pushes
}

func newStatsPusher(n *Node, c *cluster.Node) *statsPusher {
	start := uint64(time.Now().UnixNano())
	return &statsPusher{n: n, c: c, seq: start, boot: start, acked: map[verKey]int64{}, sent: map[statKey]uint64{}, budget: statsPushBudget}
}

// pushStats pushes this node's statistics to the leader every push
// interval until stop closes.
func (n *Node) pushStats(stop <-chan struct{}) {
	if n.pusher == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-stop
		cancel()
	}()
	t := time.NewTicker(n.cfg.StatsPushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_, _ = n.pusher.push(ctx)
		case <-stop:
			return
		}
	}
}

// push sends one push to the leader (to this node's store when it leads)
// and returns the leader's answer.
func (p *statsPusher) push(ctx context.Context) (gateway.StatsAck, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	leads := p.c.IsLeader()
	if ms, err := p.c.Members(); err == nil && len(ms) < 2 {
		// A single node judges its own windows: nothing to push, no work
		// on its behalf. A member that joins later gets the whole ring.
		p.n.stats.reset()
		p.ackedBy = ""
		return gateway.StatsAck{}, errors.New("not in a cluster of more than one member")
	}
	if !leads {
		p.n.stats.reset()
	}
	leaderID, admin := p.c.LeaderAdmin()
	if leads {
		leaderID = p.c.ID()
	}
	if leaderID == "" {
		return gateway.StatsAck{}, errors.New("no leader known")
	}
	if leaderID != p.ackedBy {
		clear(p.acked) // a new leader holds nothing of ours: resend the ring
		clear(p.sent)
	}
	budget := p.budget
	push := p.build(&budget)
	sent := p.addRollout(push, budget)
	var ack gateway.StatsAck
	var err error
	if leads {
		ack = p.n.stats.Ingest(push)
	} else {
		ack, err = p.send(ctx, admin, push)
	}
	if err != nil {
		p.ackedBy = ""
		if p.fails++; p.fails == 1 || p.fails%20 == 0 {
			p.n.log.Warn("cannot push statistics to the leader; the leader's drift judgement misses this node's traffic until a push succeeds",
				"leader", leaderID, "failures", p.fails, "err", err)
		}
		return ack, err
	}
	p.fails = 0
	p.ackedBy = ack.Leader
	p.sent = sent
	refused := map[verKey]bool{}
	for _, r := range ack.Refused {
		refused[verKey{r.Model, r.Version}] = true
	}
	for _, d := range push.Drift {
		if k := (verKey{d.Model, d.Version}); !refused[k] {
			p.acked[k] = d.Through
		}
	}
	return ack, nil
}

// build assembles the push: per monitored version, the windows closed
// since the leader's acknowledgement.
//
// A push carries at most p.budget bytes of exports (the leader's limit is
// 32 MiB of JSON, base64 adding a third): a version's windows are sent
// oldest first as far as they fit, its through set to the last one sent
// (the leader's merge waits for the rest), and the others go in later
// pushes; a new leader with many versions to catch up on receives them
// over a few intervals.
func (p *statsPusher) build(budget *int) *gateway.StatsPush {
	p.seq++
	push := &gateway.StatsPush{V: gateway.StatsPushVersion, Node: p.c.ID(), Seq: p.seq, WindowNS: int64(p.n.cfg.DriftWindow)}
	p.n.catalog.EachDrift(func(model string, version int, w *drift.Windows) {
		after, ok := p.acked[verKey{model, version}]
		if !ok {
			after = -1 << 62
		}
		through, closed := w.ClosedSince(after)
		d := gateway.DriftPush{Model: model, Version: version, Through: through}
		for _, c := range closed {
			if len(c.Sketch) > *budget {
				if len(d.Windows) == 0 {
					return // none fits: the whole version waits for the next push
				}
				d.Through = d.Windows[len(d.Windows)-1].ID
				break
			}
			*budget -= len(c.Sketch)
			d.Windows = append(d.Windows, gateway.PushedWindow{ID: c.ID, Sketch: c.Sketch})
		}
		push.Drift = append(push.Drift, d)
	})
	return push
}

// statsPushBudget bounds the exports one push carries.
const statsPushBudget = 16 << 20

// send POSTs a push to the leader's admin API.
func (p *statsPusher) send(ctx context.Context, admin string, push *gateway.StatsPush) (gateway.StatsAck, error) {
	var ack gateway.StatsAck
	if admin == "" {
		return ack, errors.New("the leader has not announced its admin address yet")
	}
	body, err := json.Marshal(push)
	if err != nil {
		return ack, err
	}
	ctx, cancel := context.WithTimeout(ctx, statsPushTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", p.n.peers.URL(admin, "/api/v1/cluster/stats"), bytes.NewReader(body))
	if err != nil {
		return ack, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.n.peers.Do(req)
	if err != nil {
		return ack, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return ack, err
	}
	if resp.StatusCode != http.StatusOK {
		return ack, fmt.Errorf("%s answered %d: %s", admin, resp.StatusCode, bytes.TrimSpace(b))
	}
	if err := json.Unmarshal(b, &ack); err != nil {
		return ack, fmt.Errorf("%s answered an unreadable acknowledgement: %w", admin, err)
	}
	return ack, nil
}

// clusterLeader reports whether this node leads a cluster of more than
// one member: then its controller judges what every node pushed.
func (n *Node) clusterLeader() bool {
	if n.pusher == nil || !n.pusher.c.IsLeader() {
		return false
	}
	ms, err := n.pusher.c.Members()
	return err == nil && len(ms) > 1
}

// mergedDrift is the cluster's merged windows of a version when this node
// leads a cluster of more than one member, else nil: what the controller
// judges in place of this node's own.
func (n *Node) mergedDrift(model string, version int) *drift.Windows {
	if !n.clusterLeader() {
		return nil
	}
	w, _, ok := n.stats.DriftWindows(model, version, "")
	if !ok {
		return nil
	}
	return w
}

// localDrift returns this node's windows of a version, or nil.
func (n *Node) localDrift(model string, version int) *drift.Windows {
	var out *drift.Windows
	n.catalog.EachDrift(func(m string, v int, w *drift.Windows) {
		if m == model && v == version {
			out = w
		}
	})
	return out
}
