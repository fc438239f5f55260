package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/modelgate/modelgate/internal/peer"
	"github.com/valyala/fasthttp"
)

// Cluster membership and leader forwarding on the admin API.
//
// A registry write (every admin route but GET and labels) sent to a
// follower is forwarded to the leader's admin API — the request as the
// client sent it: method, path, query, the caller's Authorization and
// Idempotency-Key, the body streamed (a model upload is never held whole
// in memory) — and answered with the leader's answer once this node has
// applied the log up to the index the leader reported after the write
// (HeaderAppliedIndex), so a read on the same node afterwards sees it.
// Reads are local; GET …?consistent=true is linearizable: the leader
// confirms its leadership with a quorum and applies everything committed
// before it answers, and a follower forwards such a read to it.

// Cluster is what a replicated registry with membership offers the admin
// API (cluster.Node, adapted by internal/node). The gateway imports no
// Raft: it asks this.
type Cluster interface {
	// NodeID is this node's ID in the cluster.
	NodeID() string
	// IsLeader reports whether this node leads now.
	IsLeader() bool
	// LeaderAdmin is the leader's ID and admin address ("" when unknown).
	LeaderAdmin() (id, adminAddr string)
	// AppliedIndex is the newest log index this node has applied.
	AppliedIndex() uint64
	// WaitApplied waits until this node has applied index, or ctx ends.
	WaitApplied(ctx context.Context, index uint64) error
	// WaitLeader waits until a leader is known, or ctx ends.
	WaitLeader(ctx context.Context) error
	// CatchUp, on the leader, returns once its state holds every entry of
	// its log (a newly elected leader replays it first).
	CatchUp(ctx context.Context) error
	// LinearizableRead, on the leader, returns once a read on this node
	// sees every write committed before the call.
	LinearizableRead(ctx context.Context) error
	// Members lists the cluster's members.
	Members() ([]ClusterMember, error)
	// Join adds a member (on the leader); joining again the same way is a
	// no-op. Errors wrap ErrBadMember, ErrMemberConflict or are the
	// cluster's unavailability.
	Join(ctx context.Context, m ClusterMember) error
	// Remove takes a member out (on the leader). Errors wrap
	// ErrNoSuchMember, ErrMemberConflict or are the cluster's
	// unavailability.
	Remove(ctx context.Context, id string) error
}

// ClusterMember is one member as the admin API shows it.
type ClusterMember struct {
	ID        string `json:"id"`
	RaftAddr  string `json:"raft_addr"`
	AdminAddr string `json:"admin_addr"`
	Voter     bool   `json:"voter"`
}

// Membership errors a Cluster returns, mapped to 400, 409 and 404.
var (
	ErrBadMember      = errors.New("gateway: bad cluster member")
	ErrMemberConflict = errors.New("gateway: cluster membership conflict")
	ErrNoSuchMember   = errors.New("gateway: no such cluster member")
)

// Headers of forwarding.
const (
	// HeaderAppliedIndex is on every admin answer of a clustered node:
	// the log index it had applied when it answered.
	HeaderAppliedIndex = "X-Modelgate-Applied-Index"
	// HeaderForwardedBy marks a request a follower forwarded (its node
	// ID): the receiver answers it itself or refuses, never forwards again.
	HeaderForwardedBy = "X-Modelgate-Forwarded-By"
	// HeaderForwardedTo names the leader that answered a forwarded request.
	HeaderForwardedTo = "X-Modelgate-Forwarded-To"
	// HeaderAppliedHere is "false" on a forwarded write's answer when this
	// node could not apply it within the apply timeout (partitioned or far
	// behind): the write is committed, but a read here may not see it yet.
	HeaderAppliedHere = "X-Modelgate-Applied-Here"
)

// maxForwardedResponse bounds a leader's answer a follower relays: the
// answers of writes are small; a consistent read of the audit log is the
// largest.
const maxForwardedResponse = 256 << 20

// uploadForwardTimeout bounds a forwarded registration: the leader reads the
// upload, runs the validation gate (up to 5 minutes) and commits twice.
const uploadForwardTimeout = 10 * time.Minute

// peerProbeTimeout bounds asking a peer for its own report in GET
// /api/v1/cluster: an unreachable peer shows as such, it does not stall
// the listing.
const peerProbeTimeout = 2 * time.Second

func init() {
	apiRoutes = append(apiRoutes,
		newRoute("GET", "/api/v1/cluster", ScopeRead, (*Server).apiCluster),
		newRoute("GET", "/api/v1/cluster/self", ScopeRead, (*Server).apiClusterSelf),
		newRoute("POST", "/api/v1/cluster/join", ScopeAdmin, (*Server).apiClusterJoin),
		newRoute("DELETE", "/api/v1/cluster/members/{id}", ScopeAdmin, (*Server).apiClusterRemove),
	)
}

// forwards reports whether route r changes the replicated registry, and so
// runs on the leader. Labels are written to this node's prediction log,
// not the registry: they stay here; so do local routes.
func (r *apiRoute) forwards() bool { return r.method != "GET" && r.scope != ScopeLabels && !r.local }

// routeToLeader forwards request ctx for route r to the leader when it
// must run there, or makes a consistent read linearizable on the leader.
// It reports whether it answered the request.
func (s *Server) routeToLeader(ctx *fasthttp.RequestCtx, r *apiRoute) bool {
	consistent := r.method == "GET" && ctx.QueryArgs().GetBool("consistent")
	if !r.forwards() && !consistent {
		return false
	}
	c, cancel := context.WithTimeout(s.ctx, s.cfg.ApplyTimeout)
	defer cancel()
	id, admin := s.cluster.LeaderAdmin()
	if id == "" {
		// An election in progress, or no quorum: wait for a leader within
		// the write's deadline rather than answer from a state that may
		// not be replayed yet.
		if err := s.cluster.WaitLeader(c); err != nil {
			writeError(ctx, fasthttp.StatusServiceUnavailable, "no leader within "+s.cfg.ApplyTimeout.String()+" ("+err.Error()+
				"): nothing was applied; retry when the cluster has a quorum")
			return true
		}
		id, admin = s.cluster.LeaderAdmin()
	}
	if s.cluster.IsLeader() {
		err := s.cluster.CatchUp(c)
		if consistent && err == nil {
			err = s.cluster.LinearizableRead(c)
		}
		if err != nil {
			writeError(ctx, fasthttp.StatusServiceUnavailable, "the leader cannot bring its registry up to date: "+err.Error()+"; nothing was applied: retry")
			return true
		}
		return false
	}
	if by := ctx.Request.Header.Peek(HeaderForwardedBy); len(by) > 0 {
		// Two hops could loop while leadership moves: the client retries.
		writeError(ctx, fasthttp.StatusServiceUnavailable, "node "+s.cluster.NodeID()+" received this request forwarded by "+string(by)+
			" as the leader, but it does not lead (any more); nothing was applied: retry")
		return true
	}
	if id == "" || admin == "" {
		writeError(ctx, fasthttp.StatusServiceUnavailable, "the leader "+id+" has not announced its admin address (yet), so node "+s.cluster.NodeID()+
			" cannot forward to it; nothing was applied: retry, or send the request to the leader's admin API")
		return true
	}
	s.forward(ctx, r, id, admin)
	return true
}

// forward sends the request to the leader's admin API and relays its
// answer, after waiting until this node has applied what it reported.
func (s *Server) forward(ctx *fasthttp.RequestCtx, r *apiRoute, leaderID, leaderAdmin string) {
	var body io.Reader
	var length int64
	timeout := s.cfg.ApplyTimeout + 5*time.Second
	if r.maxBody == bodyUpload {
		timeout = uploadForwardTimeout
		// Streamed as it arrives, never through ctx.Request.Body(), which
		// would read the whole stream into memory; the leader bounds it
		// again.
		if stream := ctx.RequestBodyStream(); stream != nil {
			body, length = io.LimitReader(stream, s.uploadLimit()+1), int64(ctx.Request.Header.ContentLength())
		}
	}
	if body == nil { // read whole by readAPIBody (bounded), or built in process
		b := ctx.Request.Body()
		body, length = bytes.NewReader(b), int64(len(b))
	}
	if length < 0 {
		length = -1 // chunked
	}
	c, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(c, r.method, s.peers().URL(leaderAdmin, string(ctx.RequestURI())), body)
	if err != nil {
		writeError(ctx, fasthttp.StatusInternalServerError, "cannot forward to the leader "+leaderID+": "+err.Error())
		return
	}
	if length == 0 {
		req.Body = http.NoBody
	}
	req.ContentLength = length
	ctx.Request.Header.VisitAll(func(k, v []byte) {
		switch http.CanonicalHeaderKey(string(k)) {
		case "Host", "Connection", "Content-Length", "Transfer-Encoding", "Keep-Alive", "Te", "Upgrade", "Expect":
			return
		}
		req.Header.Add(string(k), string(v))
	})
	req.Header.Set(HeaderForwardedBy, s.cluster.NodeID())
	start := time.Now()
	resp, err := s.peers().Do(req)
	if err != nil {
		writeError(ctx, fasthttp.StatusServiceUnavailable, "cannot forward to the leader "+leaderID+" at "+leaderAdmin+" after "+
			time.Since(start).Round(time.Millisecond).String()+": "+err.Error()+
			"; the write may or may not have reached it: retry with the same Idempotency-Key (a committed write is not applied twice)")
		ctx.SetConnectionClose()
		return
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, maxForwardedResponse+1))
	switch {
	case err != nil:
		writeError(ctx, fasthttp.StatusBadGateway, "the leader "+leaderID+" answered "+strconv.Itoa(resp.StatusCode)+" but its answer broke off: "+err.Error()+
			"; retry with the same Idempotency-Key")
		return
	case len(out) > maxForwardedResponse:
		writeError(ctx, fasthttp.StatusBadGateway, "the leader "+leaderID+"'s answer is larger than "+itoa(maxForwardedResponse)+" bytes; ask the leader directly")
		return
	}
	if idx, err := strconv.ParseUint(resp.Header.Get(HeaderAppliedIndex), 10, 64); err == nil {
		wc, wcancel := context.WithTimeout(s.ctx, s.cfg.ApplyTimeout)
		werr := s.cluster.WaitApplied(wc, idx)
		wcancel()
		if werr != nil {
			s.log.Warn("a forwarded write is committed, but this node has not applied it in time; reads here lag until it does",
				"leader", leaderID, "index", idx, "err", werr)
			ctx.Response.Header.Set(HeaderAppliedHere, "false")
		} else if r.forwards() && s.routing != nil {
			_ = s.routing.Reconcile()
		}
	}
	for k, vs := range resp.Header {
		switch k {
		case "Content-Length", "Connection", "Transfer-Encoding", "Date", "Server", "Keep-Alive", HeaderAppliedIndex:
			continue
		}
		for _, v := range vs {
			ctx.Response.Header.Add(k, v)
		}
	}
	ctx.Response.Header.Set(HeaderForwardedTo, leaderID)
	ctx.SetStatusCode(resp.StatusCode)
	ctx.SetBody(out)
}

// peers is the client of forwarding and peer probes: the configured one,
// or a plain one made on first use.
func (s *Server) peers() *peer.Client {
	s.fwdOnce.Do(func() {
		s.fwd = s.cfg.Peers
		if s.fwd == nil {
			s.fwd = peer.New(peer.Config{})
		}
	})
	return s.fwd
}

// forwarding is the Server's forwarding state.
type forwarding struct {
	fwdOnce sync.Once
	fwd     *peer.Client
}

// nodeReport is what a node says about itself (GET /api/v1/cluster/self):
// the part of a member's listing only that node knows.
type nodeReport struct {
	ID           string `json:"id"`
	AppliedIndex uint64 `json:"applied_index"`
	// ReadyVersions: per model, the versions this node has loaded and
	// routes to.
	ReadyVersions map[string][]int `json:"ready_versions"`
	Ready         bool             `json:"ready"`
	// NotReady says why Ready is false: a version the registry names that
	// this node could not load (its artifact is not here, …), or startup.
	NotReady string `json:"not_ready,omitempty"`
	// Distribution: per version not yet ready here ("fraud v2"), what this
	// node is doing about it (fetching, validating, the last failure).
	Distribution map[string]string `json:"distribution,omitempty"`
}

// memberView is one member in GET /api/v1/cluster.
type memberView struct {
	ClusterMember
	AppliedIndex  uint64           `json:"applied_index"`
	ReadyVersions map[string][]int `json:"ready_versions"`
	Ready         bool             `json:"ready"`
	NotReady      string           `json:"not_ready,omitempty"`
	// Source says where applied_index and ready_versions come from: "self"
	// (this node's own state) or "peer" (that node's GET
	// /api/v1/cluster/self, asked now with the caller's token).
	Source string `json:"source"`
	// Unreachable is set when the peer could not be asked: its
	// applied_index and ready_versions are then unknown (0 and empty).
	Unreachable string `json:"unreachable,omitempty"`
}

func (mv *memberView) fill(rep nodeReport) {
	mv.AppliedIndex, mv.ReadyVersions, mv.Ready, mv.NotReady = rep.AppliedIndex, rep.ReadyVersions, rep.Ready, rep.NotReady
}

// clusterView is GET /api/v1/cluster.
type clusterView struct {
	Leader  string       `json:"leader"`
	Self    string       `json:"self"`
	Members []memberView `json:"members"`
}

func (s *Server) selfReport() nodeReport {
	rep := nodeReport{ID: s.cluster.NodeID(), AppliedIndex: s.cluster.AppliedIndex(), ReadyVersions: map[string][]int{}, Ready: s.Ready()}
	if s.cfg.Distribution != nil {
		rep.Distribution = s.cfg.Distribution()
	}
	for _, m := range s.Catalog.table().Models() {
		var vs []int
		for _, v := range m.Versions() {
			if n, err := strconv.Atoi(v.Slot.Version); err == nil {
				vs = append(vs, n)
			}
		}
		sort.Ints(vs)
		rep.ReadyVersions[m.Name] = vs
	}
	if !rep.Ready {
		switch {
		case s.routing != nil && s.routing.Err() != nil:
			rep.NotReady = "cannot serve what the registry says: " + s.routing.Err().Error()
		case !s.ready.Load():
			rep.NotReady = "starting or draining"
		default:
			rep.NotReady = "a model has no champion loaded, or the prediction log failed"
		}
	}
	return rep
}

// needCluster answers 404 on a node without membership.
func (s *Server) needCluster(ctx *fasthttp.RequestCtx) bool {
	if s.cluster == nil {
		writeError(ctx, fasthttp.StatusNotFound, "this node runs no cluster membership")
		return false
	}
	return true
}

// apiClusterSelf: GET /api/v1/cluster/self.
func (s *Server) apiClusterSelf(ctx *fasthttp.RequestCtx, _ *apiParams) {
	if s.needCluster(ctx) {
		writeValue(ctx, fasthttp.StatusOK, s.selfReport())
	}
}

// apiCluster: GET /api/v1/cluster — the leader and every member. Each
// member's applied_index and ready_versions are its own word: this node's
// from its state, a peer's from its GET /api/v1/cluster/self, asked in
// parallel with the caller's token (an unreachable peer is marked so).
func (s *Server) apiCluster(ctx *fasthttp.RequestCtx, _ *apiParams) {
	if !s.needCluster(ctx) {
		return
	}
	members, err := s.cluster.Members()
	if err != nil {
		writeError(ctx, fasthttp.StatusServiceUnavailable, err.Error())
		return
	}
	leader, _ := s.cluster.LeaderAdmin()
	view := clusterView{Leader: leader, Self: s.cluster.NodeID(), Members: make([]memberView, len(members))}
	auth := string(ctx.Request.Header.Peek("Authorization"))
	var wg sync.WaitGroup
	for i, m := range members {
		mv := &view.Members[i]
		mv.ClusterMember = m
		if m.ID == s.cluster.NodeID() {
			mv.fill(s.selfReport())
			mv.Source = "self"
			continue
		}
		mv.Source = "peer"
		if m.AdminAddr == "" {
			mv.Unreachable = "no admin address announced"
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, err := s.probePeer(m.AdminAddr, auth)
			if err != nil {
				mv.Unreachable = err.Error()
				return
			}
			mv.fill(rep)
		}()
	}
	wg.Wait()
	for i := range view.Members {
		if view.Members[i].ReadyVersions == nil {
			view.Members[i].ReadyVersions = map[string][]int{}
		}
	}
	writeValue(ctx, fasthttp.StatusOK, view)
}

func (s *Server) probePeer(admin, auth string) (nodeReport, error) {
	c, cancel := context.WithTimeout(s.ctx, peerProbeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(c, "GET", s.peers().URL(admin, "/api/v1/cluster/self"), nil)
	if err != nil {
		return nodeReport{}, err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := s.peers().Do(req)
	if err != nil {
		return nodeReport{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nodeReport{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return nodeReport{}, errors.New("GET /api/v1/cluster/self answered " + strconv.Itoa(resp.StatusCode) + ": " + string(bytes.TrimSpace(b)))
	}
	var rep nodeReport
	if err := json.Unmarshal(b, &rep); err != nil {
		return nodeReport{}, errors.New("GET /api/v1/cluster/self: " + err.Error())
	}
	return rep, nil
}

// joinRequest is POST /api/v1/cluster/join's body.
type joinRequest struct {
	ID        string `json:"id"`
	RaftAddr  string `json:"raft_addr"`
	AdminAddr string `json:"admin_addr"`
	// Voter defaults to true; false joins a non-voter (an edge site that
	// serves and syncs but never votes).
	Voter *bool `json:"voter"`
}

// apiClusterJoin: POST /api/v1/cluster/join (on the leader: followers
// forward it). 200 with the members once the node is in the configuration.
func (s *Server) apiClusterJoin(ctx *fasthttp.RequestCtx, _ *apiParams) {
	if !s.needCluster(ctx) {
		return
	}
	var jr joinRequest
	if !decodeBody(ctx, &jr) {
		return
	}
	if jr.ID == "" || jr.RaftAddr == "" || jr.AdminAddr == "" {
		writeError(ctx, fasthttp.StatusBadRequest, `a join needs {"id", "raft_addr", "admin_addr"} and may say "voter": false`)
		return
	}
	m := ClusterMember{ID: jr.ID, RaftAddr: jr.RaftAddr, AdminAddr: jr.AdminAddr, Voter: jr.Voter == nil || *jr.Voter}
	c, cancel := context.WithTimeout(s.ctx, s.cfg.ApplyTimeout)
	defer cancel()
	if err := s.cluster.Join(c, m); err != nil {
		writeError(ctx, clusterStatus(err), "cannot join "+m.ID+": "+err.Error())
		return
	}
	s.log.Info("cluster member joined", "id", m.ID, "raft_addr", m.RaftAddr, "admin_addr", m.AdminAddr, "voter", m.Voter)
	s.writeMembers(ctx)
}

// apiClusterRemove: DELETE /api/v1/cluster/members/{id}.
func (s *Server) apiClusterRemove(ctx *fasthttp.RequestCtx, p *apiParams) {
	if !s.needCluster(ctx) {
		return
	}
	c, cancel := context.WithTimeout(s.ctx, s.cfg.ApplyTimeout)
	defer cancel()
	if err := s.cluster.Remove(c, p.id); err != nil {
		writeError(ctx, clusterStatus(err), "cannot remove "+p.id+": "+err.Error())
		return
	}
	s.log.Info("cluster member removed", "id", p.id, "by", p.actor)
	s.writeMembers(ctx)
}

// writeMembers answers with the leader and the configuration's members.
func (s *Server) writeMembers(ctx *fasthttp.RequestCtx) {
	members, err := s.cluster.Members()
	if err != nil {
		writeError(ctx, fasthttp.StatusServiceUnavailable, err.Error())
		return
	}
	leader, _ := s.cluster.LeaderAdmin()
	writeValue(ctx, fasthttp.StatusOK, struct {
		Leader  string          `json:"leader"`
		Members []ClusterMember `json:"members"`
	}{leader, members})
}

func clusterStatus(err error) int {
	switch {
	case errors.Is(err, ErrBadMember):
		return fasthttp.StatusBadRequest
	case errors.Is(err, ErrMemberConflict):
		return fasthttp.StatusConflict
	case errors.Is(err, ErrNoSuchMember):
		return fasthttp.StatusNotFound
	}
	return fasthttp.StatusServiceUnavailable
}
