package gateway_test

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/testmodels"
	"github.com/modelgate/modelgate/runtime"
)

// TestHotSwapUnderLoad swaps the champion 50 times between two versions
// while 16 goroutines score over HTTP. Every request must succeed, every
// response must name a version that was live while the request was in
// flight, and no session may outlive its version.
func TestHotSwapUnderLoad(t *testing.T) {
	onnx := testmodels.Read(t, "example_dynamic_axes.onnx")
	before := runtime.SessionsAlive()
	srv := startServer(t, gateway.Config{})
	cfg := runtime.Config{Sessions: 2}

	type life struct{ from, to time.Time }
	var mu sync.Mutex
	lives := map[string][]life{}
	open := func(v string) {
		mu.Lock()
		lives[v] = append(lives[v], life{from: time.Now(), to: time.Now().Add(time.Hour)})
		mu.Unlock()
	}
	closeLife := func(v string) {
		mu.Lock()
		l := lives[v]
		l[len(l)-1].to = time.Now()
		mu.Unlock()
	}

	open("1")
	serveModel(t, srv, "dyn", "1", onnx, cfg)

	body := []byte(`{"inputs":[{"name":"input_vectors","shape":[2,10],"datatype":"FP32","data":[[1,2,3,4,5,6,7,8,9,10],[0,0,0,0,0,0,0,0,0,1]]}]}`)
	type result struct {
		start, end time.Time
		version    string
	}
	var (
		stop    atomic.Bool
		wg      sync.WaitGroup
		failed  atomic.Int64
		served  atomic.Int64
		results = make([][]result, 16)
	)
	for g := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				start := time.Now()
				code, b := post(t, srv, "/v2/models/dyn/infer", body)
				end := time.Now()
				if code != http.StatusOK {
					failed.Add(1)
					t.Errorf("status %d during swap: %s", code, b)
					return
				}
				r := decodeResponse(t, b)
				if len(r.Outputs) != 1 || fmt.Sprint(r.Outputs[0].Shape) != "[2]" {
					t.Errorf("bad response during swap: %s", b)
				}
				results[g] = append(results[g], result{start, end, r.ModelVersion})
				served.Add(1)
			}
		}()
	}

	// Each step of a swap waits for two more answers rather than sleeping:
	// requests overlap every publish and every removal however slowly the
	// machine schedules the clients (after 2-3 ms sleeps, a busy machine
	// could run the 50 swaps with hardly a request between them).
	progress := func(swap int) {
		t.Helper()
		mark := served.Load()
		deadline := time.Now().Add(time.Minute)
		for served.Load() < mark+2 && failed.Load() == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("swap %d: no request answered for a minute", swap)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	current := "1"
	for i := 0; i < 50; i++ {
		next := map[string]string{"1": "2", "2": "1"}[current]
		slot, err := srv.Catalog.Load("dyn", next, onnx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		open(next)
		srv.Catalog.Publish(slot, true)
		progress(i)
		if !srv.Catalog.Remove("dyn", current) {
			t.Fatalf("swap %d: version %s was not loaded", i, current)
		}
		closeLife(current)
		current = next
		progress(i)
	}
	stop.Store(true)
	wg.Wait()

	total := 0
	for _, rs := range results {
		total += len(rs)
		for _, r := range rs {
			ok := false
			for _, l := range lives[r.version] {
				if !l.from.After(r.end) && !l.to.Before(r.start) {
					ok = true
				}
			}
			if !ok {
				t.Fatalf("a response named version %q, which was not live between %s and %s", r.version, r.start.Format(time.StampMicro), r.end.Format(time.StampMicro))
			}
		}
	}
	if failed.Load() > 0 {
		t.Fatalf("%d requests failed during swaps", failed.Load())
	}
	if total < 100 {
		t.Fatalf("only %d requests ran during 50 swaps: the load was not concurrent with them", total)
	}
	t.Logf("%d requests across 50 swaps, none failed", total)

	// Only the live version's sessions remain; after removing it, none.
	if got := runtime.SessionsAlive() - before; got != int64(cfg.Sessions) {
		t.Fatalf("%d sessions alive with one version loaded, want %d", got, cfg.Sessions)
	}
	srv.Catalog.Remove("dyn", current)
	deadline := time.Now().Add(time.Minute)
	for runtime.SessionsAlive() != before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := runtime.SessionsAlive() - before; got != 0 {
		t.Fatalf("%d sessions leaked", got)
	}
}
