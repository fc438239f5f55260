package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/modelgate/modelgate/predlog"
	"github.com/modelgate/modelgate/registry"
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
// replaces the old one.
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
	n, err := s.predlog.PutLabels(p.model, labels)
	if err != nil {
		writeError(ctx, predlogStatus(err), err.Error())
		return
	}
	writeValue(ctx, fasthttp.StatusOK, struct {
		Received int `json:"received"`
		Stored   int `json:"stored"`
	}{len(labels), n})
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
// from in the Modelgate-Next-Cursor header.
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
	var buf []byte
	next, err := s.predlog.Export(p.model, predlog.Cursor(q.Peek("since")), labelled, limit, func(r *predlog.Row) error {
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
// lineage of the version that produced it.
func (s *Server) apiPrediction(ctx *fasthttp.RequestCtx, p *apiParams) {
	if !s.needPredLog(ctx) {
		return
	}
	rec, err := s.predlog.Get(p.id)
	if err != nil {
		writeError(ctx, predlogStatus(err), fmt.Sprintf("prediction %q: %v", p.id, err))
		return
	}
	row := predlog.Row{Record: rec}
	line := predlog.AppendNDJSON(nil, &row)
	var out struct {
		Prediction json.RawMessage   `json:"prediction"`
		Version    *registry.Version `json:"version,omitempty"`
		Note       string            `json:"note,omitempty"`
	}
	out.Prediction = bytes.TrimSpace(line)
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
