package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/modelgate/modelgate/predlog"
	"github.com/modelgate/modelgate/registry"
	"github.com/modelgate/modelgate/runtime"
	"github.com/modelgate/modelgate/shadow"
)

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

func (s *Server) needPredLog(ctx *fasthttp.RequestCtx) bool {
	if s.predlog == nil {
		writeError(ctx, fasthttp.StatusServiceUnavailable, "this node has no prediction log")
		return false
	}
	return true
}

// labelIn is one label as clients send it: the prediction's request id, the
// label (a number, or true/false), and when the truth became known (RFC
// 3339; now when absent).
type labelIn struct {
	ID    string          `json:"id"`
	Label json.RawMessage `json:"label"`
	Time  *time.Time      `json:"time"`
}

// apiLabels: POST /api/v1/models/{m}/labels with [{"id","label","time"}].
// Idempotent: the same label twice changes nothing; a changed label
// replaces the old one in the log.
//
// Each new label is joined with every logged prediction of its id for the
// model (champion, canary and shadows) and counted in the model's online
// evaluation, in the window of the prediction's time. The answer says what
// became of them: "stored" labels changed the log, "evaluated" (label,
// prediction) pairs were counted, "unknown" labels have no logged
// prediction of the model (not logged yet, dropped, pruned, or another
// node's: stored all the same, never evaluated later; also every label of
// a model neither served here nor in the registry), "duplicates"
// repeated the stored value, "changed" replaced a stored value (the log
// keeps the new one; the evaluation keeps the first, because a pair cannot
// be taken back out of a window's sums), "unscored" predictions had no
// readable single-row score, "late" ones were older than the label delay
// the policy keeps windows for, and "refused" ones had a score or label
// the task cannot count (a binary label must be 0 or 1).
//
// On a clustered node each label is stored on the node that logged its
// prediction (see api_predlog_cluster.go); "relayed" counts the labels
// sent to each other node, and the counts sum every node's.
func (s *Server) apiLabels(ctx *fasthttp.RequestCtx, p *apiParams) {
	if !s.needPredLog(ctx) {
		return
	}
	var in []labelIn
	dec := json.NewDecoder(bytes.NewReader(ctx.Request.Body()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, `want a JSON array of {"id","label","time"}: `+err.Error())
		return
	}
	labels := make([]predlog.Label, len(in))
	for i, l := range in {
		if l.ID == "" {
			writeError(ctx, fasthttp.StatusBadRequest, "label "+strconv.Itoa(i)+": id is missing")
			return
		}
		var v float64
		switch string(bytes.TrimSpace(l.Label)) {
		case "true":
			v = 1
		case "false":
			v = 0
		default:
			if err := json.Unmarshal(l.Label, &v); err != nil {
				writeError(ctx, fasthttp.StatusBadRequest, "label "+strconv.Itoa(i)+" ("+l.ID+"): label must be a number or true/false")
				return
			}
		}
		labels[i] = predlog.Label{ID: l.ID, Value: v}
		if l.Time != nil {
			labels[i].Time = l.Time.UnixNano()
		}
	}
	_, peers, err := s.clusterPeers(ctx)
	if err != nil {
		writeError(ctx, fasthttp.StatusServiceUnavailable, err.Error())
		return
	}
	if len(peers) > 0 {
		s.routeLabels(ctx, p.model, labels, peers)
		return
	}
	out, err := s.storeLabels(p.model, labels)
	if err != nil {
		writeError(ctx, predlogStatus(err), err.Error())
		return
	}
	writeValue(ctx, fasthttp.StatusOK, out)
}

// storeLabels writes labels to this node's log and evaluates the new ones
// (see apiLabels).
func (s *Server) storeLabels(model string, labels []predlog.Label) (labelsResult, error) {
	ms := s.evalStateFor(model)
	if ms == nil {
		return labelsResult{}, errors.New("the node is shutting down")
	}
	// Serialised per model: whether a label is new and storing it must
	// be one step, or two posts of the same label would both count.
	ms.labelMu.Lock()
	defer ms.labelMu.Unlock()
	out := labelsResult{Received: len(labels)}
	// Within one post the last label of an id wins, as in the log.
	last := make(map[string]int, len(labels))
	for i := range labels {
		last[labels[i].ID] = i
	}
	var fresh []int
	for i := range labels {
		if last[labels[i].ID] != i {
			out.Duplicates++
			continue
		}
		old, had, err := s.predlog.LabelOf(model, labels[i].ID)
		if err != nil {
			return labelsResult{}, err
		}
		switch {
		case !had:
			fresh = append(fresh, i)
		case math.Float64bits(old.Value) == math.Float64bits(labels[i].Value):
			out.Duplicates++
		default:
			out.Changed++
		}
	}
	n, err := s.predlog.PutLabels(model, labels)
	if err != nil {
		return labelsResult{}, err
	}
	out.Stored = n
	if err := s.evaluateLabels(ms, model, labels, fresh, &out); err != nil {
		// The labels are stored; what failed is reading predictions back.
		return labelsResult{}, fmt.Errorf("the labels are stored, but evaluating them failed: %w", err)
	}
	return out, nil
}

// evalStateFor returns the model's evaluation state for a label post. A
// model neither served here nor in the registry gets a state of its own
// only once it exists: until then a detached one counts its labels as
// unknown, so label posts naming made-up models cannot grow the node's
// state and metric series.
func (s *Server) evalStateFor(model string) *modelShadow {
	if ms := s.lookupShadow(model); ms != nil {
		return ms
	}
	known := s.Catalog.table().Model(model) != nil
	if !known && s.control != nil {
		s.control.View(func(st *registry.State) {
			_, err := st.Policy(model)
			known = err == nil
		})
	}
	if known {
		return s.shadowState(model)
	}
	if s.shadowsClosed() {
		return nil
	}
	return &modelShadow{name: model, s: s, runs: map[int]*atomic.Uint64{}, detached: true}
}

// labelsResult is the answer to a label post (see apiLabels).
type labelsResult struct {
	Received   int `json:"received"`
	Stored     int `json:"stored"`
	Evaluated  int `json:"evaluated"`
	Unknown    int `json:"unknown"`
	Duplicates int `json:"duplicates"`
	Changed    int `json:"changed"`
	Unscored   int `json:"unscored"`
	Late       int `json:"late"`
	Refused    int `json:"refused"`
	// Relayed counts, per node, the labels relayed to the node that holds
	// their predictions (a clustered node only).
	Relayed map[string]int `json:"relayed,omitempty"`
}

// evaluateLabels joins the labels at indices fresh with the model's logged
// predictions of their ids and counts each pair in the evaluation.
func (s *Server) evaluateLabels(ms *modelShadow, model string, labels []predlog.Label, fresh []int, out *labelsResult) error {
	if ms.detached {
		out.Unknown += len(fresh) // no such model: nothing to join with
		return nil
	}
	ev := ms.eval.Load()
	if ev == nil {
		return errors.New("the model's evaluation is not configured (see the node's log)")
	}
	ms.mu.Lock()
	spec := ms.settings.score()
	ms.mu.Unlock()
	var (
		views  []runtime.Tensor
		scores []float64
	)
	for _, i := range fresh {
		lb := &labels[i]
		found := false
		err := s.predlog.Lookup(lb.ID, func(rec *predlog.Record) error {
			if rec.Model != model {
				return nil
			}
			found = true
			views = outputTensors(views, rec.Outputs)
			var err error
			scores, err = spec.AppendScores(scores[:0], views)
			if err != nil || len(scores) != 1 {
				// One label judges one row: a batch request's rows have no
				// label each.
				out.Unscored++
				return nil
			}
			num, _ := strconv.Atoi(rec.Version)
			late := ev.Late()
			err = ev.Add(shadow.Labelled{Time: time.Unix(0, rec.Time), Version: num, Role: shadow.Role(rec.Role.String()), Score: scores[0], Label: lb.Value})
			switch {
			case err == nil:
				out.Evaluated++
			case ev.Late() != late:
				out.Late++
			default:
				out.Refused++
			}
			return nil
		})
		if err != nil {
			return err
		}
		if !found {
			out.Unknown++
		}
	}
	return nil
}

func predlogStatus(err error) int {
	switch {
	case errors.Is(err, predlog.ErrInvalid), errors.Is(err, predlog.ErrBadCursor):
		return fasthttp.StatusBadRequest
	case errors.Is(err, predlog.ErrNotFound):
		return fasthttp.StatusNotFound
	}
	return fasthttp.StatusServiceUnavailable
}

// exportPage bounds one export answer; the cursor resumes after it.
const exportPage = 10000

// apiExport: GET /api/v1/models/{m}/export?since=CURSOR&labelled=true&limit=N
// answers NDJSON rows (each with its own cursor) and the cursor to resume
// from in the Modelgate-Next-Cursor header. A clustered node merges every
// member's rows (exportMerged); ?local=true exports this node's alone.
func (s *Server) apiExport(ctx *fasthttp.RequestCtx, p *apiParams) {
	if !s.needPredLog(ctx) {
		return
	}
	q := ctx.QueryArgs()
	limit := exportPage
	if v := q.Peek("limit"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n <= 0 || n > exportPage {
			writeError(ctx, fasthttp.StatusBadRequest, "limit must be between 1 and "+strconv.Itoa(exportPage))
			return
		}
		limit = n
	}
	labelled := string(q.Peek("labelled")) == "true"
	self, peers, err := s.clusterPeers(ctx)
	if err != nil {
		writeError(ctx, fasthttp.StatusServiceUnavailable, err.Error())
		return
	}
	if len(peers) > 0 {
		s.exportMerged(ctx, p.model, self, peers, limit, labelled)
		return
	}
	since := predlog.Cursor(q.Peek("since"))
	if s.cluster != nil {
		// A cluster cursor handed out while this node had peers: its own
		// position in it.
		cc, err := predlog.ParseClusterCursor(since, labelled)
		if err != nil {
			writeError(ctx, fasthttp.StatusBadRequest, "since: "+err.Error())
			return
		}
		since = cc.Of(s.cluster.NodeID())
	}
	var buf []byte
	next, err := s.predlog.Export(p.model, since, labelled, limit, func(r *predlog.Row) error {
		buf = predlog.AppendNDJSON(buf, r)
		return nil
	})
	if err != nil {
		writeError(ctx, predlogStatus(err), err.Error())
		return
	}
	ctx.Response.Header.Set("Modelgate-Next-Cursor", string(next))
	ctx.SetContentType("application/x-ndjson")
	ctx.SetBody(buf)
}

// apiPrediction: GET /api/v1/predictions/{id}, the logged record with the
// lineage of the version that produced it. "prediction" is the served
// record (champion or canary; the latest shadow record when none was
// logged), as before; "shadows" lists the shadow versions' records of the
// same request, each naming its version and role, in commit order; "node"
// the node whose log holds it. A clustered node asks its peers for a
// record it does not hold (findPrediction).
func (s *Server) apiPrediction(ctx *fasthttp.RequestCtx, p *apiParams) {
	if !s.needPredLog(ctx) {
		return
	}
	rec, err := s.predlog.Get(p.id)
	if errors.Is(err, predlog.ErrNotFound) {
		self, peers, cerr := s.clusterPeers(ctx)
		if cerr != nil {
			writeError(ctx, fasthttp.StatusServiceUnavailable, fmt.Sprintf("prediction %q is not logged on this node, and %v", p.id, cerr))
			return
		}
		if len(peers) > 0 {
			s.findPrediction(ctx, self, peers, p.id)
			return
		}
	}
	if err != nil {
		writeError(ctx, predlogStatus(err), fmt.Sprintf("prediction %q: %v", p.id, err))
		return
	}
	row := predlog.Row{Record: rec}
	line := predlog.AppendNDJSON(nil, &row)
	var out struct {
		Prediction json.RawMessage `json:"prediction"`
		// Node is the node whose log holds the record.
		Node    string            `json:"node"`
		Version *registry.Version `json:"version,omitempty"`
		Note    string            `json:"note,omitempty"`
		Shadows []json.RawMessage `json:"shadows,omitempty"`
	}
	out.Prediction = bytes.TrimSpace(line)
	out.Node = s.nodeName()
	err = s.predlog.Lookup(p.id, func(r *predlog.Record) error {
		if r.Role != predlog.RoleShadow || r.Model != rec.Model || r.Stamp == rec.Stamp {
			return nil
		}
		row := predlog.Row{Record: *r}
		out.Shadows = append(out.Shadows, bytes.TrimSpace(predlog.AppendNDJSON(nil, &row)))
		return nil
	})
	if err != nil {
		writeError(ctx, predlogStatus(err), fmt.Sprintf("prediction %q: cannot read its shadow records: %v", p.id, err))
		return
	}
	if n, err := strconv.Atoi(rec.Version); err == nil && s.control != nil {
		s.control.View(func(st *registry.State) {
			if v, err := st.Version(rec.Model, n); err == nil {
				v.ReferenceProfile, v.Golden = nil, nil // lineage, not payloads
				out.Version = &v
			}
		})
	}
	if out.Version == nil {
		out.Note = "the version that produced it is no longer in the registry"
	}
	writeValue(ctx, fasthttp.StatusOK, out)
}
