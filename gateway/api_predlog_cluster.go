package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/modelgate/modelgate/predlog"
)

// Predictions and labels across a cluster.
//
// Every node logs what it served in its own prediction log; nothing is
// replicated. So a clustered node answers the prediction routes for the
// whole cluster by asking its peers (the member table's admin addresses,
// in parallel, with the caller's own Authorization relayed, so a peer
// grants exactly what this node granted):
//
//   - GET /api/v1/predictions/{id}: local first, else the peers; the answer
//     names the node that holds the record ("node"). Not found anywhere is
//     404; not found on the nodes that answered while one did not is 503
//     naming it (the record may be there).
//   - POST /api/v1/models/{m}/labels: each label goes to the node that holds
//     its prediction (found with POST …/held on the peers) and is written
//     there; a label nobody holds is stored here, as a single node does.
//   - GET /api/v1/models/{m}/export: every member's rows merged in stamp
//     order under one cluster cursor (predlog.ClusterCursor). A member that
//     cannot be read fails the page (503, named) unless ?partial=true.
//
// ?local=true on any of them answers from this node's log alone: that is
// how nodes ask each other, so a request never fans out twice.

// Timeouts of the requests to peers. A lookup is a point read; an export
// page is up to exportPage rows a peer reads from its disk.
const (
	peerLookupTimeout = 3 * time.Second
	peerExportTimeout = time.Minute
)

// HeaderExportMissing, on a ?partial=true export page, names the members
// whose rows are not in it (comma-separated): the cursor keeps their
// position, so a later page picks their rows up.
const HeaderExportMissing = "Modelgate-Export-Missing"

func init() {
	apiRoutes = append(apiRoutes,
		withBody(newRoute("POST", "/api/v1/models/{m}/held", ScopeLabels, (*Server).apiHeld), 32<<20))
}

// clusterPeers returns this node's id and the other voters when the
// request is to be answered for the whole cluster: a clustered node, not
// asked with ?local=true. No peers: answer from the local log.
//
// Non-voters are not asked: they are edge sites, far away on poor links,
// whose rows reach the center by store-and-forward (api_edge.go) — asking
// them would fail every export while one is cut off, and export their
// forwarded rows twice.
func (s *Server) clusterPeers(ctx *fasthttp.RequestCtx) (self string, peers []ClusterMember, err error) {
	if s.cluster == nil || ctx.QueryArgs().GetBool("local") {
		return "", nil, nil
	}
	members, err := s.cluster.Members()
	if err != nil {
		return "", nil, fmt.Errorf("cannot read the cluster's members: %w", err)
	}
	self = s.cluster.NodeID()
	for _, m := range members {
		if m.ID != self && m.Voter {
			peers = append(peers, m)
		}
	}
	return self, peers, nil
}

// selfVoter reports whether this node is a voter (an edge site is not).
func (s *Server) selfVoter() bool {
	members, err := s.cluster.Members()
	if err != nil {
		return true
	}
	for _, m := range members {
		if m.ID == s.cluster.NodeID() {
			return m.Voter
		}
	}
	return true
}

// nodeName is the name this node's answers give it: its member id in a
// cluster, else the configured node name.
func (s *Server) nodeName() string {
	if s.cluster != nil {
		return s.cluster.NodeID()
	}
	return s.cfg.Node
}

// peerCall is one request to a peer's admin API and what came of it.
type peerCall struct {
	member ClusterMember
	status int
	header http.Header
	body   []byte
	err    error // not answered: unreachable, timed out, broke off
}

// askPeers sends method path (with its query) to every peer in parallel,
// carrying auth (the caller's Authorization) and body, and returns the
// answers in the peers' order.
func (s *Server) askPeers(peers []ClusterMember, method, path string, body []byte, auth string, timeout time.Duration) []peerCall {
	out := make([]peerCall, len(peers))
	var wg sync.WaitGroup
	for i, m := range peers {
		out[i].member = m
		if m.AdminAddr == "" {
			out[i].err = errors.New("it has not announced its admin address")
			continue
		}
		wg.Add(1)
		go func(pc *peerCall) {
			defer wg.Done()
			pc.status, pc.header, pc.body, pc.err = s.peerRequest(m.AdminAddr, method, path, body, auth, timeout)
		}(&out[i])
	}
	wg.Wait()
	return out
}

func (s *Server) peerRequest(admin, method, path string, body []byte, auth string, timeout time.Duration) (int, http.Header, []byte, error) {
	c, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(c, method, s.peers().URL(admin, path), rd)
	if err != nil {
		return 0, nil, nil, err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.peers().Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxForwardedResponse+1))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("its answer (%d) broke off: %w", resp.StatusCode, err)
	}
	if len(b) > maxForwardedResponse {
		return 0, nil, nil, fmt.Errorf("its answer is larger than %d bytes", maxForwardedResponse)
	}
	return resp.StatusCode, resp.Header, b, nil
}

// failure describes a peer call that did not give a usable answer.
func (pc *peerCall) failure() string {
	if pc.err != nil {
		return pc.member.ID + " unreachable (" + pc.err.Error() + ")"
	}
	return pc.member.ID + " answered " + strconv.Itoa(pc.status) + ": " + errorText(pc.body)
}

// errorText is the message of an admin API error body, else the body.
func errorText(b []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return e.Error
	}
	if len(b) > 200 {
		b = b[:200]
	}
	return string(bytes.TrimSpace(b))
}

// findPrediction answers GET /api/v1/predictions/{id} for a record this
// node does not hold: the first peer that holds it answers (its answer
// names it in "node").
func (s *Server) findPrediction(ctx *fasthttp.RequestCtx, self string, peers []ClusterMember, id string) {
	auth := string(ctx.Request.Header.Peek("Authorization"))
	calls := s.askPeers(peers, "GET", "/api/v1/predictions/"+url.PathEscape(id)+"?local=true", nil, auth, peerLookupTimeout)
	notFound := []string{self}
	var failed []string
	for i := range calls {
		pc := &calls[i]
		switch {
		case pc.err == nil && pc.status == fasthttp.StatusOK:
			ctx.SetStatusCode(fasthttp.StatusOK)
			ctx.SetContentTypeBytes(contentJSON)
			ctx.SetBody(pc.body)
			return
		case pc.err == nil && pc.status == fasthttp.StatusNotFound:
			notFound = append(notFound, pc.member.ID)
		default:
			failed = append(failed, pc.failure())
		}
	}
	if len(failed) == 0 {
		writeError(ctx, fasthttp.StatusNotFound, fmt.Sprintf("prediction %q is not logged on any node of the cluster (not found on %s)", id, strings.Join(notFound, ", ")))
		return
	}
	writeError(ctx, fasthttp.StatusServiceUnavailable, fmt.Sprintf("prediction %q: not found on %s; %s: it may be logged there, retry when it answers",
		id, strings.Join(notFound, ", "), strings.Join(failed, "; ")))
}

// apiHeld answers POST /api/v1/models/{m}/held: which of the request ids
// in the body ([id, …]) have a prediction of the model in this node's log.
// Nodes ask it of each other to route labels to the holder.
func (s *Server) apiHeld(ctx *fasthttp.RequestCtx, p *apiParams) {
	if !s.needPredLog(ctx) {
		return
	}
	var ids []string
	if err := json.Unmarshal(ctx.Request.Body(), &ids); err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, "want a JSON array of request ids: "+err.Error())
		return
	}
	held := []string{}
	for _, id := range ids {
		ok, err := s.holds(p.model, id)
		if err != nil {
			writeError(ctx, predlogStatus(err), err.Error())
			return
		}
		if ok {
			held = append(held, id)
		}
	}
	writeValue(ctx, fasthttp.StatusOK, heldAnswer{Held: held})
}

// heldAnswer is POST …/held's answer.
type heldAnswer struct {
	Held []string `json:"held"`
}

var errFound = errors.New("found")

// holds reports whether this node logged a prediction of model for id.
func (s *Server) holds(model, id string) (bool, error) {
	err := s.predlog.Lookup(id, func(r *predlog.Record) error {
		if r.Model == model {
			return errFound
		}
		return nil
	})
	switch {
	case err == errFound:
		return true, nil
	case err == nil, errors.Is(err, predlog.ErrNotFound):
		return false, nil
	}
	return false, err
}

// routeLabels stores a label post across the cluster: labels whose
// prediction this node holds, or that no node holds, are stored here; the
// others are relayed to their holders (?local=true). Nothing is written
// when a label's holder cannot be known (a peer did not answer) — the
// client retries the whole post, and labels are upserts, so a retry after
// a partial failure stores nothing twice.
func (s *Server) routeLabels(ctx *fasthttp.RequestCtx, model string, labels []predlog.Label, peers []ClusterMember) {
	out := labelsResult{Received: len(labels)}
	// Within one post the last label of an id wins, as in the log.
	last := make(map[string]int, len(labels))
	for i := range labels {
		last[labels[i].ID] = i
	}
	var here, rest []predlog.Label
	for i := range labels {
		if last[labels[i].ID] != i {
			out.Duplicates++
			continue
		}
		ok, err := s.holds(model, labels[i].ID)
		if err != nil {
			writeError(ctx, predlogStatus(err), err.Error())
			return
		}
		if ok {
			here = append(here, labels[i])
		} else {
			rest = append(rest, labels[i])
		}
	}
	auth := string(ctx.Request.Header.Peek("Authorization"))
	groups := map[string][]predlog.Label{}
	admins := map[string]string{}
	if len(rest) > 0 && len(peers) > 0 {
		ids := make([]string, len(rest))
		for i := range rest {
			ids[i] = rest[i].ID
		}
		body, _ := json.Marshal(ids)
		calls := s.askPeers(peers, "POST", "/api/v1/models/"+url.PathEscape(model)+"/held", body, auth, peerLookupTimeout)
		holder := map[string]string{}
		var failed []string
		for i := range calls {
			pc := &calls[i]
			var ans heldAnswer
			if pc.err != nil || pc.status != fasthttp.StatusOK || json.Unmarshal(pc.body, &ans) != nil {
				failed = append(failed, pc.failure())
				continue
			}
			admins[pc.member.ID] = pc.member.AdminAddr
			for _, id := range ans.Held {
				if _, dup := holder[id]; !dup { // the first member (in member order) wins
					holder[id] = pc.member.ID
				}
			}
		}
		var unheld []predlog.Label
		for _, lb := range rest {
			if h, ok := holder[lb.ID]; ok {
				groups[h] = append(groups[h], lb)
			} else {
				unheld = append(unheld, lb)
			}
		}
		if len(unheld) > 0 && len(failed) > 0 {
			writeError(ctx, fasthttp.StatusServiceUnavailable, fmt.Sprintf("%d labels (the first for %q) are for predictions not logged on the nodes that answered, and %s: "+
				"their predictions may be there; nothing was stored: retry the post (labels are idempotent)", len(unheld), unheld[0].ID, strings.Join(failed, "; ")))
			return
		}
		rest = unheld
	}
	// Relayed first, in member order: a failure is reported before this
	// node writes, and a retry repeats only upserts.
	holders := make([]string, 0, len(groups))
	for h := range groups {
		holders = append(holders, h)
	}
	sort.Strings(holders)
	for _, h := range holders {
		res, err := s.relayLabels(admins[h], model, groups[h], auth)
		if err != nil {
			writeError(ctx, fasthttp.StatusServiceUnavailable, fmt.Sprintf("cannot relay %d labels to %s, which holds their predictions: %v; "+
				"retry the post (labels are idempotent)", len(groups[h]), h, err))
			return
		}
		out.add(res)
		if out.Relayed == nil {
			out.Relayed = map[string]int{}
		}
		out.Relayed[h] = len(groups[h])
	}
	here = append(here, rest...)
	if len(here) > 0 {
		res, err := s.storeLabels(model, here)
		if err != nil {
			writeError(ctx, predlogStatus(err), err.Error())
			return
		}
		out.add(res)
	}
	writeValue(ctx, fasthttp.StatusOK, out)
}

// relayLabels posts labels to the holder's local log.
func (s *Server) relayLabels(admin, model string, labels []predlog.Label, auth string) (labelsResult, error) {
	in := make([]labelIn, len(labels))
	for i, lb := range labels {
		v, _ := json.Marshal(lb.Value)
		in[i] = labelIn{ID: lb.ID, Label: v}
		if lb.Time != 0 {
			t := time.Unix(0, lb.Time).UTC()
			in[i].Time = &t
		}
	}
	body, err := json.Marshal(in)
	if err != nil {
		return labelsResult{}, err
	}
	status, _, b, err := s.peerRequest(admin, "POST", "/api/v1/models/"+url.PathEscape(model)+"/labels?local=true", body, auth, peerLookupTimeout+s.cfg.ApplyTimeout)
	if err != nil {
		return labelsResult{}, err
	}
	if status != fasthttp.StatusOK {
		return labelsResult{}, fmt.Errorf("it answered %d: %s", status, errorText(b))
	}
	var res labelsResult
	if err := json.Unmarshal(b, &res); err != nil {
		return labelsResult{}, fmt.Errorf("its answer is not a label result: %w", err)
	}
	return res, nil
}

// add sums another node's result into r (Received stays this post's).
func (r *labelsResult) add(o labelsResult) {
	r.Stored += o.Stored
	r.Evaluated += o.Evaluated
	r.Unknown += o.Unknown
	r.Duplicates += o.Duplicates
	r.Changed += o.Changed
	r.Unscored += o.Unscored
	r.Late += o.Late
	r.Refused += o.Refused
}

// nodePage is one member's local export page, split into lines.
type nodePage struct {
	id     string
	lines  [][]byte
	stamps []int64 // the stamp each line's own cursor stands after
	next   int64   // where the member's page ended
	full   bool    // the page reached the limit: the member may have more
	err    string  // why the member's rows could not be read
}

// cursorField precedes the cursor, the last field of an export line.
var cursorField = []byte(`,"cursor":"`)

// split cuts an NDJSON page into lines and reads each line's cursor.
// Values are JSON-escaped, so the unescaped cursorField occurs only as the
// field itself.
func (np *nodePage) split(body []byte, labelled bool) error {
	for len(body) > 0 {
		i := bytes.IndexByte(body, '\n')
		if i < 0 {
			return errors.New("its export page ends in the middle of a line")
		}
		line := body[:i+1]
		body = body[i+1:]
		j := bytes.LastIndex(line, cursorField)
		if j < 0 || !bytes.HasSuffix(line, []byte("\"}\n")) {
			return errors.New("an export line without its cursor")
		}
		st, err := predlog.CursorStamp(predlog.Cursor(line[j+len(cursorField):len(line)-3]), labelled)
		if err != nil {
			return fmt.Errorf("an export line's cursor: %w", err)
		}
		np.lines = append(np.lines, line[:j])
		np.stamps = append(np.stamps, st)
	}
	return nil
}

// exportMerged answers an export page for the whole cluster.
func (s *Server) exportMerged(ctx *fasthttp.RequestCtx, model, self string, peers []ClusterMember, limit int, labelled bool) {
	q := ctx.QueryArgs()
	partial := q.GetBool("partial")
	cc, err := predlog.ParseClusterCursor(predlog.Cursor(q.Peek("since")), labelled)
	if err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, "since: "+err.Error()+" (pass the Modelgate-Next-Cursor of the previous page, or a row's cursor)")
		return
	}
	// An edge site's own rows are the center's once forwarded: the merged
	// export is the voters' (this node's only when it votes).
	own := 0
	if s.selfVoter() {
		own = 1
	}
	pages := make([]nodePage, len(peers)+own)
	var wg sync.WaitGroup
	if own == 1 {
		pages[0].id = self
		wg.Add(1)
		go func() {
			defer wg.Done()
			np := &pages[0]
			var buf []byte
			next, err := s.predlog.Export(model, cc.Of(self), labelled, limit, func(r *predlog.Row) error {
				buf = predlog.AppendNDJSON(buf, r)
				return nil
			})
			if err == nil {
				np.next, err = predlog.CursorStamp(next, labelled)
			}
			if err == nil {
				err = np.split(buf, labelled)
			}
			if err != nil {
				np.err = self + " (this node) cannot read its log: " + err.Error()
			}
		}()
	}
	auth := string(ctx.Request.Header.Peek("Authorization"))
	base := "/api/v1/models/" + url.PathEscape(model) + "/export?local=true&labelled=" + strconv.FormatBool(labelled) + "&limit=" + strconv.Itoa(limit) + "&since="
	for i, m := range peers {
		np := &pages[i+own]
		np.id = m.ID
		if m.AdminAddr == "" {
			np.err = m.ID + " has not announced its admin address"
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, hdr, body, err := s.peerRequest(m.AdminAddr, "GET", base+url.QueryEscape(string(cc.Of(m.ID))), nil, auth, peerExportTimeout)
			pc := peerCall{member: m, status: status, body: body, err: err}
			if err != nil || status != fasthttp.StatusOK {
				np.err = pc.failure()
				return
			}
			if np.next, err = predlog.CursorStamp(predlog.Cursor(hdr.Get("Modelgate-Next-Cursor")), labelled); err != nil {
				np.err = m.ID + "'s export page has no usable Modelgate-Next-Cursor: " + err.Error()
				return
			}
			if err := np.split(body, labelled); err != nil {
				np.lines, np.stamps, np.err = nil, nil, m.ID+": "+err.Error()
			}
		}()
	}
	wg.Wait()
	var missing, failed []string
	for i := range pages {
		np := &pages[i]
		if np.err != "" {
			missing, failed = append(missing, np.id), append(failed, np.err)
			continue
		}
		np.full = len(np.lines) >= limit
	}
	if len(failed) > 0 && !partial {
		writeError(ctx, fasthttp.StatusServiceUnavailable, "cannot export "+model+" across the cluster: "+strings.Join(failed, "; ")+
			"; no page is answered without every node's rows (retraining must not miss any): retry, or pass partial=true to export the others' (the cursor keeps the missing nodes' position)")
		return
	}

	pos := copyCursor(cc)
	var (
		buf  []byte
		at   = make([]int, len(pages))
		rows int
	)
	for rows < limit {
		best := -1
		stop := false
		for i := range pages {
			np := &pages[i]
			if np.err != "" {
				continue
			}
			if at[i] == len(np.lines) {
				// A member that may have more rows: its next one could come
				// before any other's, so the page ends here.
				stop = stop || np.full
				continue
			}
			if best < 0 || np.stamps[at[i]] < pages[best].stamps[at[best]] ||
				(np.stamps[at[i]] == pages[best].stamps[at[best]] && np.id < pages[best].id) {
				best = i
			}
		}
		if stop || best < 0 {
			break
		}
		np := &pages[best]
		pos.Nodes[np.id] = np.stamps[at[best]]
		buf = append(buf, np.lines[at[best]]...)
		buf = append(buf, cursorField...)
		buf = append(buf, pos.Cursor()...)
		buf = append(buf, "\"}\n"...)
		at[best]++
		rows++
	}
	for i := range pages {
		if np := &pages[i]; np.err == "" && at[i] == len(np.lines) {
			pos.Nodes[np.id] = np.next // past superseded labels too
		}
	}
	if len(missing) > 0 {
		ctx.Response.Header.Set(HeaderExportMissing, strings.Join(missing, ","))
	}
	ctx.Response.Header.Set("Modelgate-Next-Cursor", string(pos.Cursor()))
	ctx.SetContentType("application/x-ndjson")
	ctx.SetBody(buf)
}

// copyCursor copies cc, so a page's positions can move without touching
// the cursor it started from.
func copyCursor(cc predlog.ClusterCursor) predlog.ClusterCursor {
	out := predlog.ClusterCursor{Labelled: cc.Labelled, Floor: cc.Floor, Nodes: make(map[string]int64, len(cc.Nodes)+1)}
	for id, st := range cc.Nodes {
		out.Nodes[id] = st
	}
	return out
}
