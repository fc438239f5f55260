package gateway_test

import (
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/oiptest"
	"github.com/modelgate/modelgate/runtime"
)

// BenchmarkHandler is the whole in-process scoring path for one demo
// request: route, parse, run, write. Compare with runtime's BenchmarkORTRun.
func BenchmarkHandler(b *testing.B) {
	srv := startServer(b, gateway.Config{})
	serveModel(b, srv, "fraud", "1", demoModel(b), runtime.Config{Sessions: 1})
	body := oiptest.GoodRequest(1)
	var ctx fasthttp.RequestCtx
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.SetRequestURI("/v2/models/fraud/infer")
		ctx.Request.SetBody(body)
		srv.HandleScoring(&ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}
