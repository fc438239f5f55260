package gateway_test

import (
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/oiptest"
	"github.com/modelgate/modelgate/predlog"
	"github.com/modelgate/modelgate/runtime"
)

// BenchmarkHandler is the whole in-process scoring path for one demo
// request: route, parse, run, write. Compare with runtime's BenchmarkORTRun.
func BenchmarkHandler(b *testing.B) {
	benchHandler(b, gateway.Config{})
}

// BenchmarkHandlerLogged is the same path with the prediction log on
// (async): the record is copied into the log's ring, and its committer
// goroutine competes for the same cores.
func BenchmarkHandlerLogged(b *testing.B) {
	plog, err := predlog.Open(predlog.DefaultConfig(b.TempDir()))
	if err != nil {
		b.Fatal(err)
	}
	defer plog.Close()
	benchHandler(b, gateway.Config{PredLog: plog})
	st := plog.Stats()
	b.ReportMetric(float64(st.Dropped)/float64(max(st.Appended, 1)), "dropped/op")
}

// benchHandler measures the in-process scoring path of one demo request;
// setup, when given, turns features on before the timer starts.
func benchHandler(b *testing.B, cfg gateway.Config, setup ...func(*gateway.Server, *runtime.Slot)) {
	srv := startServer(b, cfg)
	slot := serveModel(b, srv, "fraud", "1", demoModel(b), runtime.Config{Sessions: 1})
	for _, f := range setup {
		f(srv, slot)
	}
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

// BenchmarkHandlerDrift is the handler path with drift monitoring on:
// every row goes into the version's sharded sketch.
func BenchmarkHandlerDrift(b *testing.B) {
	benchHandler(b, gateway.Config{}, func(srv *gateway.Server, slot *runtime.Slot) {
		if err := srv.Catalog.EnableDrift("fraud", "1", referenceProfile(b, slot.Model), 0, nil); err != nil {
			b.Fatal(err)
		}
	})
}
