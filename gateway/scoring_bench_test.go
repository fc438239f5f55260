package gateway_test

import (
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/fraud"
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

// BenchmarkHandlerParallel is BenchmarkHandler from every core at once: the
// saturated node, with nothing else running.
func BenchmarkHandlerParallel(b *testing.B) {
	benchHandlerParallel(b, gateway.Config{})
}

// BenchmarkHandlerLoggedParallel is BenchmarkHandlerLogged from every core
// at once: the log's committer and Pebble's flushes and compactions take
// their CPU from the scorers, as they do in a saturated node.
func BenchmarkHandlerLoggedParallel(b *testing.B) {
	plog, err := predlog.Open(predlog.DefaultConfig(b.TempDir()))
	if err != nil {
		b.Fatal(err)
	}
	defer plog.Close()
	benchHandlerParallel(b, gateway.Config{PredLog: plog})
	st := plog.Stats()
	b.ReportMetric(float64(st.Dropped)/float64(max(st.Appended, 1)), "dropped/op")
}

// benchHandlerParallel scores traffic like the bench harness's: 4,096
// distinct generated transactions, each request with its own id, so the
// prediction log stores what it stores in production (records that share
// little with their neighbours), not one body over and over.
func benchHandlerParallel(b *testing.B, cfg gateway.Config) {
	srv := startServer(b, cfg)
	serveModel(b, srv, "fraud", "1", demoModel(b), runtime.Config{})
	bodies, idAt := transactionBodies(4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(bodies[0])))
	b.ResetTimer()
	cpu0 := processCPU()
	defer func() {
		// CPU per request, the log's committer and Pebble's background
		// work included: steadier than ns/op on a shared machine.
		b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
	}()
	var next atomic.Uint64
	b.RunParallel(func(pb *testing.PB) {
		var ctx fasthttp.RequestCtx
		seq := next.Add(1) << 40 // a disjoint id range per goroutine
		for pb.Next() {
			seq++
			body := bodies[seq%uint64(len(bodies))]
			ctx.Request.Reset()
			ctx.Response.Reset()
			ctx.Request.Header.SetMethod("POST")
			ctx.Request.SetRequestURI("/v2/models/fraud/infer")
			ctx.Request.SetBody(body)
			putHex(ctx.Request.Body()[idAt:idAt+16], seq)
			srv.HandleScoring(&ctx)
			if ctx.Response.StatusCode() != 200 {
				b.Errorf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
				return
			}
		}
	})
}

// transactionBodies returns n OIP requests of one generated transaction
// each, with an id of 16 hex digits at offset idAt.
func transactionBodies(n int) (bodies [][]byte, idAt int) {
	g := fraud.NewGenerator(7)
	row := make([]float32, fraud.NumFeatures)
	for range n {
		g.Next(row)
		b := []byte(`{"id":"req-`)
		idAt = len(b)
		b = append(b, "0000000000000000\",\"inputs\":[{\"name\":\"features\",\"shape\":[1,30],\"datatype\":\"FP32\",\"data\":["...)
		for k, v := range row {
			if k > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendFloat(b, float64(v), 'g', 6, 32)
		}
		bodies = append(bodies, append(b, "]}]}"...))
	}
	return bodies, idAt
}

func putHex(dst []byte, v uint64) {
	const hex = "0123456789abcdef"
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = hex[v&0xf]
		v >>= 4
	}
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchHandler measures the in-process scoring path of one demo request;
// setup, when given, turns features on before the timer starts.
func benchHandler(b *testing.B, cfg gateway.Config, setup ...func(*gateway.Server, *runtime.Slot)) {
	srv := startServer(b, cfg)
	slot := serveModel(b, srv, "fraud", "1", demoModel(b), runtime.Config{Sessions: 1})
	for _, f := range setup {
		f(srv, slot)
	}
	srv.SyncShadows() // the version's score histogram reads its scores
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
		if err := srv.Catalog.EnableDrift("fraud", "1", referenceProfile(b, slot.Model), drift.BootstrapConfig{}, nil); err != nil {
			b.Fatal(err)
		}
	})
}
