package gateway

import (
	"encoding/json"
	"strconv"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/modelgate/modelgate/predlog"
)

// Edge sites' store-and-forward, the center's side: POST
// /api/v1/edge/rows takes the rows an edge site's policy selected
// (internal/node/edge.go sends them) and writes them into this node's
// prediction log, durably, under the site's name (the rows' "node"), where
// the export retraining pulls finds them. A request id is written once: a
// batch sent again (its answer was lost) is acknowledged without writing
// twice, so the site may delete — advance past — a row only after an
// answer and still lose none.

func init() {
	apiRoutes = append(apiRoutes,
		withBody(newRoute("POST", "/api/v1/edge/rows", ScopeAdmin, (*Server).apiEdgeRows), 64<<20))
}

// EdgeBatch is POST /api/v1/edge/rows's body.
type EdgeBatch struct {
	// Site names the edge site (its node id); it becomes the rows' node.
	Site string    `json:"site"`
	Rows []EdgeRow `json:"rows"`
}

// EdgeRow is one served prediction as an edge site sends it: the logged
// record, tensors as raw little-endian bytes (base64 in JSON).
type EdgeRow struct {
	ID        string       `json:"id"`
	Model     string       `json:"model"`
	Version   string       `json:"version"`
	Role      string       `json:"role"`
	TimeNs    int64        `json:"time_ns"`
	LatencyNs int64        `json:"latency_ns"`
	Inputs    []EdgeTensor `json:"inputs"`
	Outputs   []EdgeTensor `json:"outputs"`
}

// EdgeTensor is one logged tensor of an EdgeRow.
type EdgeTensor struct {
	Name     string   `json:"name"`
	DataType string   `json:"datatype"`
	Shape    []int64  `json:"shape"`
	Data     []byte   `json:"data,omitempty"`
	Strings  []string `json:"strings,omitempty"`
}

// EdgeRowOf copies a logged record into its wire form.
func EdgeRowOf(r *predlog.Record) EdgeRow {
	conv := func(ts []predlog.Tensor) []EdgeTensor {
		out := make([]EdgeTensor, len(ts))
		for i, t := range ts {
			out[i] = EdgeTensor{Name: t.Name, DataType: t.DataType, Shape: append([]int64(nil), t.Shape...),
				Data: append([]byte(nil), t.Data...), Strings: append([]string(nil), t.Strings...)}
		}
		return out
	}
	return EdgeRow{ID: r.RequestID, Model: r.Model, Version: r.Version, Role: r.Role.String(), TimeNs: r.Time,
		LatencyNs: r.Latency, Inputs: conv(r.Inputs), Outputs: conv(r.Outputs)}
}

func (e *EdgeRow) record(site string) predlog.Record {
	conv := func(ts []EdgeTensor) []predlog.Tensor {
		out := make([]predlog.Tensor, len(ts))
		for i, t := range ts {
			out[i] = predlog.Tensor{Name: t.Name, DataType: t.DataType, Shape: t.Shape, Data: t.Data, Strings: t.Strings}
		}
		return out
	}
	return predlog.Record{RequestID: e.ID, Model: e.Model, Version: e.Version, Role: predlog.ParseRole(e.Role), Time: e.TimeNs,
		Node: site, Latency: e.LatencyNs, Inputs: conv(e.Inputs), Outputs: conv(e.Outputs)}
}

// EdgeAck is the answer to POST /api/v1/edge/rows: every row of the batch
// is in this node's log, Stored of them written now, Duplicates already
// there (a batch sent again).
type EdgeAck struct {
	Stored     int `json:"stored"`
	Duplicates int `json:"duplicates"`
}

// apiEdgeRows: POST /api/v1/edge/rows (admin; an edge node's own token).
// The rows are checked first (a bad one is 400 and nothing is written),
// then written durably in order; a failed write answers 503 and the site
// sends the batch again (the rows already written count as duplicates
// then).
func (s *Server) apiEdgeRows(ctx *fasthttp.RequestCtx, _ *apiParams) {
	if !s.needPredLog(ctx) {
		return
	}
	var b EdgeBatch
	if err := json.Unmarshal(ctx.Request.Body(), &b); err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, `want {"site", "rows": [...]}: `+err.Error())
		return
	}
	if b.Site == "" {
		writeError(ctx, fasthttp.StatusBadRequest, "the batch names no site")
		return
	}
	for i := range b.Rows {
		r := &b.Rows[i]
		if r.ID == "" || r.Model == "" || r.Version == "" || !predlog.ParseRole(r.Role).Served() {
			writeError(ctx, fasthttp.StatusBadRequest, "row "+strconv.Itoa(i)+" ("+strconv.Quote(r.ID)+"): want an id, a model, a version and a served role (champion or canary)")
			return
		}
	}
	s.edgeIngestMu.Lock()
	defer s.edgeIngestMu.Unlock()
	var ack EdgeAck
	for i := range b.Rows {
		r := &b.Rows[i]
		held, err := s.holds(r.Model, r.ID)
		if err != nil {
			writeError(ctx, predlogStatus(err), "row "+strconv.Itoa(i)+" ("+r.ID+"): "+err.Error())
			return
		}
		if held {
			ack.Duplicates++
			continue
		}
		rec := r.record(b.Site)
		// Durable: the answer lets the site forget the row, so the row
		// must survive this node's crash first.
		if err := s.predlog.AppendDurable(&rec); err != nil {
			writeError(ctx, predlogStatus(err), "row "+strconv.Itoa(i)+" ("+r.ID+") of site "+b.Site+": cannot write it to the prediction log: "+err.Error()+
				"; the site sends the batch again")
			return
		}
		ack.Stored++
	}
	s.Metrics.EdgeCounter("rows_received", b.Site).Add(ack.Stored)
	s.Metrics.EdgeCounter("rows_duplicate", b.Site).Add(ack.Duplicates)
	writeValue(ctx, fasthttp.StatusOK, ack)
}

// EdgeCounter is modelgate_edge_<name>_total{site="…"}: what an edge site
// selected and sent (on the site) and what the center received from it.
func (m *Metrics) EdgeCounter(name, site string) *metrics.Counter {
	return m.set.GetOrCreateCounter(`modelgate_edge_` + name + `_total{site="` + escLabel(site) + `"}`)
}
