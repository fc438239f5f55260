package bench

import (
	"context"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// serve starts a fasthttp server on 127.0.0.1 running h and returns its
// URL; it stops when the test ends.
func serve(t *testing.T, h fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fasthttp.Server{Handler: h}
	go s.Serve(ln)
	t.Cleanup(func() { s.Shutdown() })
	return "http://" + ln.Addr().String()
}

// answer writes a minimal OIP response naming version v.
func answer(ctx *fasthttp.RequestCtx, v string) {
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"model_name":"fraud","model_version":"` + v + `","outputs":[{"name":"score","shape":[1,1],"datatype":"FP32","data":[0.1]}]}`)
}

func quickConfig(target string, phases ...Phase) Config {
	return Config{Target: target, Model: "fraud", Ring: 256, Scenario: Scenario{Name: "test", Phases: phases}}
}

// TestOpenLoopShowsStall: a server that stalls every request for 200 ms
// once a second. Measured from the intended send times, the open loop's
// p99 shows the stall; a closed loop would have sent nothing while stalled.
func TestOpenLoopShowsStall(t *testing.T) {
	var mu sync.Mutex
	var nextStall, stallUntil time.Time
	url := serve(t, func(ctx *fasthttp.RequestCtx) {
		mu.Lock()
		now := time.Now()
		if nextStall.IsZero() {
			nextStall = now.Add(300 * time.Millisecond)
		}
		if !now.Before(nextStall) {
			stallUntil = now.Add(200 * time.Millisecond)
			nextStall = now.Add(time.Second)
		}
		wait := stallUntil.Sub(now)
		mu.Unlock()
		if wait > 0 {
			time.Sleep(wait)
		}
		answer(ctx, "1")
	})
	cfg := quickConfig(url,
		Phase{Name: "open", Duration: Duration(2500 * time.Millisecond), Rate: 400, Connections: 8},
		// For the log only: one closed-loop connection sends nothing while
		// stalled, so its p99 hardly sees the stall.
		Phase{Name: "naive", Duration: Duration(1500 * time.Millisecond), Connections: 1})
	rep, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := rep.Phases[0]
	t.Logf("open loop: sent %d, p50 %s, p99 %s, max %s, late %d", p.Sent, fmtUS(p.Latency.P50), fmtUS(p.Latency.P99), fmtUS(p.Latency.Max), p.LateSends)
	t.Logf("naive closed loop: p50 %s, p99 %s", fmtUS(rep.Phases[1].Latency.P50), fmtUS(rep.Phases[1].Latency.P99))
	if p.Latency.P99 < 150_000 {
		t.Fatalf("open-loop p99 %s hides the 200 ms stalls", fmtUS(p.Latency.P99))
	}
	if p.Sent < 900 {
		t.Fatalf("sent %d requests, want about 1000 (2.5 s at 400/s)", p.Sent)
	}
	// With 8 connections all stalled, later sends must start late, and the
	// report must say so.
	if p.LateSends == 0 || len(rep.Notes) == 0 {
		t.Fatalf("late sends %d, notes %q: the stall should have delayed sends", p.LateSends, rep.Notes)
	}
}

// TestFixedDelay: against a server that answers after 5 ms, the open
// loop's p50 is within 5% of 5 ms.
func TestFixedDelay(t *testing.T) {
	url := serve(t, func(ctx *fasthttp.RequestCtx) {
		// Sleep most of it, spin the rest: time.Sleep overshoots by
		// ~0.2 ms, and the delay must be what the test says.
		until := time.Now().Add(5 * time.Millisecond)
		time.Sleep(4 * time.Millisecond)
		for time.Now().Before(until) {
			runtime.Gosched()
		}
		answer(ctx, "3")
	})
	cfg := quickConfig(url, Phase{Name: "open", Duration: Duration(1500 * time.Millisecond), Rate: 200, Poisson: true})
	rep, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := rep.Phases[0]
	t.Logf("fixed 5 ms: p50 %s p99 %s, sent %d", fmtUS(p.Latency.P50), fmtUS(p.Latency.P99), p.Sent)
	// The floor is exact: no answer comes before the handler's 5 ms (less
	// the histogram's precision). Above it a busy machine adds its own
	// scheduling delay, so the ceiling only catches a wrong measurement
	// (a unit, a start time taken too early), not a slow run.
	if p.Latency.P50 < 4750 || p.Latency.P50 > 50000 {
		t.Fatalf("p50 %s, want at least 5ms (less 5%% precision) and no unit error", fmtUS(p.Latency.P50))
	}
	if v := p.Versions["3"]; v.Count != p.OK || v.Count == 0 {
		t.Fatalf("version 3 answered %d of %d", v.Count, p.OK)
	}
}

// TestClosedLoopAndErrors: a closed loop counts HTTP errors by status and
// connect errors by kind.
func TestClosedLoopAndErrors(t *testing.T) {
	var mu sync.Mutex
	n := 0
	url := serve(t, func(ctx *fasthttp.RequestCtx) {
		mu.Lock()
		n++
		fail := n%10 == 0
		mu.Unlock()
		if fail {
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
			ctx.SetBodyString(`{"error":"busy"}`)
			return
		}
		answer(ctx, "2")
	})
	cfg := quickConfig(url, Phase{Name: "closed", Duration: Duration(400 * time.Millisecond), Connections: 4})
	rep, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := rep.Phases[0]
	if p.OK == 0 || p.Errors["http_503"] == 0 || p.Versions["2"].Count != p.OK {
		t.Fatalf("ok %d errors %v versions %v", p.OK, p.Errors, p.Versions)
	}

	// Nothing listens here: every request is a connect error.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	cfg = quickConfig("http://"+addr, Phase{Name: "down", Duration: Duration(200 * time.Millisecond), Rate: 50})
	rep, err = Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e := rep.Phases[0].Errors; e["connect"] == 0 || rep.Phases[0].OK != 0 {
		t.Fatalf("errors %v, want connect errors", e)
	}
}

func TestDriftSwitch(t *testing.T) {
	cfg := quickConfig("http://127.0.0.1:1", Phase{Duration: Duration(time.Second), Rate: 1})
	cfg.ensureDefaults()
	l, err := newLoader(&cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	if l.cur.Load().drift {
		t.Fatal("starts drifted")
	}
	l.setDrift(true)
	if !l.cur.Load().drift || string(l.cur.Load().bodies[0].b) == string(l.clean.bodies[0].b) {
		t.Fatal("drift on does not send drifted bodies")
	}
}

// TestRecordDoesNotAllocate pins the per-request bookkeeping at zero
// allocations once a version has been seen.
func TestRecordDoesNotAllocate(t *testing.T) {
	sh := newShard()
	resp := []byte(`{"model_name":"fraud","model_version":"12","outputs":[]}`)
	sh.result(time.Millisecond, 200, parseVersion(resp), nil, 0, time.Millisecond)
	n := testing.AllocsPerRun(100, func() {
		sh.result(time.Millisecond, 200, parseVersion(resp), nil, 0, time.Millisecond)
	})
	if n != 0 {
		t.Fatalf("%v allocations per recorded request", n)
	}
}

func TestParseVersion(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := string(parseVersion([]byte(in))); got != want {
			t.Fatalf("parseVersion(%q) = %q, want %q", in, got, want)
		}
	}
	f(`{"model_name":"m","model_version":"12","id":"x"}`, "12")
	f(`{"model_name":"m","model_version": 7}`, "7")
	f(`{"model_name":"m"}`, "")
	f(`{"model_version":"unterminated`, "")
}

func TestBodiesAreDistinct(t *testing.T) {
	r := generateRing(64, 2, 100, 7, noDrift, idPrefix(1))
	d := generateRing(64, 2, 100, 7, DefaultConfig().Drift, idPrefix(1))
	seen := map[string]bool{}
	for i, b := range r.bodies {
		putID(b.b, b.idAt, uint64(i))
		if seen[string(b.b)] {
			t.Fatalf("body %d repeats", i)
		}
		seen[string(b.b)] = true
		if string(d.bodies[i].b) == string(b.b) {
			t.Fatalf("drifted body %d equals the clean one", i)
		}
	}
}
