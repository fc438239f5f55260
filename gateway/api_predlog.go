package gateway

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// The prediction log's routes answer 503 until the node has a prediction
// log.

func (s *Server) apiLabels(ctx *fasthttp.RequestCtx, p *apiParams) {
	writeError(ctx, fasthttp.StatusServiceUnavailable, "this node has no prediction log")
}

func (s *Server) apiExport(ctx *fasthttp.RequestCtx, p *apiParams) {
	writeError(ctx, fasthttp.StatusServiceUnavailable, "this node has no prediction log")
}

func (s *Server) apiPrediction(ctx *fasthttp.RequestCtx, p *apiParams) {
	writeError(ctx, fasthttp.StatusServiceUnavailable, "this node has no prediction log")
}
