package gateway

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// handleAdmin serves the admin listener: the /api/v1 admin API,
// Prometheus metrics and health.
func (s *Server) handleAdmin(ctx *fasthttp.RequestCtx) {
	if bytes.HasPrefix(ctx.Path(), []byte("/api/")) {
		s.serveAPI(ctx)
		return
	}
	switch string(ctx.Path()) {
	case "/metrics":
		if onlyGET(ctx) {
			ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
			s.Metrics.WritePrometheus(ctx)
		}
	case "/healthz":
		if onlyGET(ctx) {
			writeJSON(ctx, fasthttp.StatusOK, `{"live":true}`)
		}
	default:
		writeError(ctx, fasthttp.StatusNotFound, "no such admin endpoint: "+string(ctx.Path()))
	}
}
