package gateway

import (
	"encoding/binary"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/modelgate/modelgate/runtime"
	"github.com/modelgate/modelgate/shadow"
)

// fakeClock is a settable clock for the windows.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// probs is a [n, 1] FP32 output named probability, as the demo model answers.
func probs(ps ...float32) []runtime.Tensor {
	b := make([]byte, 4*len(ps))
	for i, p := range ps {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(p))
	}
	return []runtime.Tensor{{Name: "probability", DataType: runtime.FP32, Shape: []int64{int64(len(ps)), 1}, Data: b}}
}

// TestVersionPerfWindows: latencies and scores recorded across several
// windows (every shard folding its live window into the ring as time
// moves on) merge into exactly the numbers of the windows a period
// overlaps; a window older than the ring keeps is left out, and a request
// that started in an earlier window than its shard's is counted in its own.
func TestVersionPerfWindows(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	clk := &fakeClock{t: t0}
	p := newVersionPerf(time.Second, clk.now)
	p.setSpec(shadow.ScoreSpec{Output: "probability"})
	if len(p.closed) != int(perfHorizon/time.Second) && len(p.closed) != perfMaxWindows {
		t.Fatalf("ring of %d windows", len(p.closed))
	}
	var buf []float64
	// Window w gets 100 requests of (w+1) ms with score 0.05 + w/10.
	for w := range 5 {
		clk.set(t0.Add(time.Duration(w) * time.Second))
		for range 100 {
			buf = p.record(clk.now(), time.Duration(w+1)*time.Millisecond, probs(0.05+float32(w)/10), buf)
		}
	}
	lat, scores := p.between(t0, t0.Add(4*time.Second+999*time.Millisecond))
	if lat.TotalCount() != 500 {
		t.Fatalf("%d latencies over five windows, want 500", lat.TotalCount())
	}
	for w := range 5 {
		bin := int((0.05 + float64(w)/10) * ScoreBins)
		if scores[bin] != 100 {
			t.Fatalf("score bin %d holds %d, want 100: %v", bin, scores[bin], scores)
		}
	}
	// The last two windows alone: their latencies only.
	lat, scores = p.between(t0.Add(3*time.Second), t0.Add(4*time.Second))
	if lat.TotalCount() != 200 || lat.Min() < 3900 || sum(scores) != 200 {
		t.Fatalf("windows 3-4: %d latencies from %dµs, %d scores", lat.TotalCount(), lat.Min(), sum(scores))
	}
	// A request of window 1 recorded now, on shards already in window 4.
	for range perfShards {
		buf = p.record(t0.Add(time.Second+time.Millisecond), 50*time.Millisecond, probs(0.99), buf)
	}
	if lat, _ := p.between(t0.Add(time.Second), t0.Add(time.Second)); lat.TotalCount() != 100+perfShards || lat.Max() < 49_000 {
		t.Fatalf("window 1 after late requests: %d latencies up to %dµs, want %d", lat.TotalCount(), lat.Max(), 100+perfShards)
	}
	// Once the ring has moved past window 0 it is gone.
	clk.set(t0.Add(time.Duration(len(p.closed)) * time.Second))
	buf = p.record(clk.now(), time.Millisecond, probs(0.5), buf)
	if lat, _ := p.between(t0, clk.now()); lat.TotalCount() != 400+perfShards+1 {
		t.Fatalf("after the ring turned: %d latencies, want %d (window 0 left)", lat.TotalCount(), 400+perfShards+1)
	}
	_ = buf
}

// TestVersionPerfScoreEdges: scores outside [0, 1] land in the edge bins,
// NaN is not counted, and a version without the policy's output counts
// latency only; shadow runs count scores and no latency.
func TestVersionPerfScoreEdges(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	p := newVersionPerf(time.Minute, clk.now)
	buf := p.record(clk.now(), time.Millisecond, probs(0, 1, -3, 7, float32(math.NaN())), nil)
	_, scores := p.between(clk.now(), clk.now())
	if sum(scores) != 0 {
		t.Fatalf("before a spec, scores were counted: %v", scores)
	}
	p.setSpec(shadow.ScoreSpec{Output: "probability"})
	buf = p.record(clk.now(), time.Millisecond, probs(0, 1, -3, 7, float32(math.NaN())), buf)
	_, scores = p.between(clk.now(), clk.now())
	if scores[0] != 2 || scores[ScoreBins-1] != 2 || sum(scores) != 4 {
		t.Fatalf("edge scores: %v, want 2 in each edge bin", scores)
	}
	p.setSpec(shadow.ScoreSpec{Output: "label"})
	buf = p.record(clk.now(), time.Millisecond, probs(0.5), buf)
	p.recordScores(clk.now(), probs(0.5))
	lat, scores := p.between(clk.now(), clk.now())
	if lat.TotalCount() != 3 || sum(scores) != 4 {
		t.Fatalf("without the policy's output: %d latencies, %d scores; want 3 and 4", lat.TotalCount(), sum(scores))
	}
	p.setSpec(shadow.ScoreSpec{})
	p.recordScores(clk.now(), probs(0.5))
	lat, scores = p.between(clk.now(), clk.now())
	if lat.TotalCount() != 3 || scores[ScoreBins/2] != 1 {
		t.Fatalf("a shadow run: %d latencies, scores %v; want 3 and one at 0.5", lat.TotalCount(), scores)
	}
	_ = buf
}

func sum(xs []uint64) (n uint64) {
	for _, x := range xs {
		n += x
	}
	return n
}

// TestVersionPerfConcurrent: recorders on several goroutines, across
// window changes, and a reader meanwhile lose no request: afterwards the
// period holds every latency and score exactly once.
func TestVersionPerfConcurrent(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	clk := &fakeClock{t: t0}
	p := newVersionPerf(time.Second, clk.now)
	p.setSpec(shadow.ScoreSpec{})
	const workers, per = 4, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []float64
			out := probs(0.3)
			for i := range per {
				// Each worker walks through ten windows.
				at := t0.Add(time.Duration(i*10/per) * time.Second).Add(time.Duration(w) * time.Millisecond)
				buf = p.record(at, time.Millisecond, out, buf)
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 50 {
			p.between(t0, t0.Add(10*time.Second))
		}
	}()
	wg.Wait()
	<-done
	clk.set(t0.Add(10 * time.Second))
	lat, scores := p.between(t0, t0.Add(10*time.Second))
	if lat.TotalCount() != workers*per || sum(scores) != workers*per {
		t.Fatalf("%d latencies and %d scores, want %d each", lat.TotalCount(), sum(scores), workers*per)
	}
}
