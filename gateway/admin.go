package gateway

import (
	"github.com/valyala/fasthttp"
)

// handleAdmin serves the admin listener: Prometheus metrics and health. The
// model-management API (/api/v1) joins it with the registry.
func (s *Server) handleAdmin(ctx *fasthttp.RequestCtx) {
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
