package shadow

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	goruntime "runtime"
	"testing"
	"time"

	"github.com/modelgate/modelgate/runtime"
)

func row(i int) []float32 {
	return []float32{float32(i) * 0.1, -float32(i%7) * 0.3, 0.5, float32(i%3) - 1}
}

// TestMirrorRunsEveryShadow mirrors 40 champion answers to two shadows and
// checks each outcome against a direct ONNX Runtime run of the same rows
// on that shadow, and the counters.
func TestMirrorRunsEveryShadow(t *testing.T) {
	champ := logisticSlot(t, 1, []float32{0.5, -0.2, 0.1, 0.3}, 0)
	sh2 := logisticSlot(t, 2, []float32{0.6, -0.1, 0.1, 0.2}, 0.1)
	sh3 := logisticSlot(t, 3, []float32{-0.4, 0.2, 0.3, 0.1}, -0.2)
	col := newCollector(100)
	m := newMirror(t, MirrorConfig{Model: "fraud", QueueSize: 64, Workers: 2, Observer: col})
	at := time.Unix(1_700_000_000, 0)
	want := map[string][]float32{}
	for i := range 40 {
		rows := [][]float32{row(i), row(i + 100)}
		c := scored(t, champ, rows)
		id := fmt.Sprintf("req-%d", i)
		r := &Request{ID: id, Time: at.Add(time.Duration(i) * time.Second), Champion: 1, ChampionLatency: time.Duration(i+1) * time.Microsecond,
			Inputs: c.Inputs, ChampionOutputs: c.Outputs, Shadows: []Target{{2, sh2}, {3, sh3}}}
		if !m.Enqueue(r) {
			t.Fatalf("request %d not queued with %d of 64 copies in use", i, i)
		}
		want[id+"/2"] = scored(t, sh2, rows).Outputs[0].Float32s()
		want[id+"/3"] = scored(t, sh3, rows).Outputs[0].Float32s()
		want[id+"/champion"] = c.Outputs[0].Float32s()
	}
	for range 80 {
		o := col.next(t)
		id := string(o.RequestID)
		if o.Err != nil {
			t.Fatalf("%s on version %d: %v", id, o.Version, o.Err)
		}
		var i int
		fmt.Sscanf(id, "req-%d", &i)
		if o.Model != "fraud" || o.Champion != 1 || !o.Time.Equal(at.Add(time.Duration(i)*time.Second)) ||
			o.ChampionLatency != time.Duration(i+1)*time.Microsecond || o.Latency <= 0 {
			t.Fatalf("outcome %+v does not carry its request's fields", o)
		}
		if got, w := o.Outputs[0].Float32s(), want[fmt.Sprintf("%s/%d", id, o.Version)]; fmt.Sprint(got) != fmt.Sprint(w) {
			t.Fatalf("%s on version %d: %v, a direct run gives %v", id, o.Version, got, w)
		}
		if got := o.ChampionOutputs[0].Float32s(); fmt.Sprint(got) != fmt.Sprint(want[id+"/champion"]) {
			t.Fatalf("%s: champion outputs %v, want %v", id, got, want[id+"/champion"])
		}
		delete(want, fmt.Sprintf("%s/%d", id, o.Version))
	}
	m.Close()
	s := m.Stats()
	if s.Served != 40 || s.Enqueued != 40 || s.Mirrored != 40 || s.Runs != 80 || s.Errors+s.Dropped+s.Panics+s.Retired+s.SampledOut != 0 {
		t.Fatalf("stats %+v", s)
	}
	if s.Coverage() != 1 {
		t.Fatalf("coverage %v, want 1", s.Coverage())
	}
}

// TestEnqueueCopiesCallerBuffers overwrites the caller's id and input
// buffers as soon as Enqueue returns (as fasthttp reuses a request's) and
// checks the shadow still ran on the original rows.
func TestEnqueueCopiesCallerBuffers(t *testing.T) {
	champ := logisticSlot(t, 1, []float32{0.5, -0.2, 0.1, 0.3}, 0)
	sh := logisticSlot(t, 2, []float32{0.6, -0.1, 0.1, 0.2}, 0.1)
	col := newCollector(1)
	col.gate = make(chan struct{})
	m := newMirror(t, MirrorConfig{QueueSize: 4, Observer: col})
	rows := [][]float32{row(1), row(2)}
	c := scored(t, champ, rows)
	want := scored(t, sh, rows).Outputs[0].Float32s()
	origIn := append([]byte(nil), c.Inputs[0].Data...)
	origOut := append([]byte(nil), c.Outputs[0].Data...)
	idBuf := []byte("req-original")
	if !m.Enqueue(&Request{ID: string(idBuf), Champion: 1, Inputs: c.Inputs, ChampionOutputs: c.Outputs, Shadows: []Target{{2, sh}}}) {
		t.Fatal("not queued")
	}
	for i := range c.Inputs[0].Data {
		c.Inputs[0].Data[i] = 0xff // NaN everywhere
	}
	for i := range c.Outputs[0].Data {
		c.Outputs[0].Data[i] = 0
	}
	copy(idBuf, "XXXXXXXXXXXX")
	waitEntered(t, col)
	close(col.gate)
	o := col.next(t)
	if string(o.RequestID) != "req-original" || !bytes.Equal(o.Inputs[0].Data, origIn) || !bytes.Equal(o.ChampionOutputs[0].Data, origOut) {
		t.Fatalf("the outcome saw the caller's later writes: id %q", o.RequestID)
	}
	if o.Err != nil || fmt.Sprint(o.Outputs[0].Float32s()) != fmt.Sprint(want) {
		t.Fatalf("shadow answered %v (err %v), a direct run of the original rows %v", o.Outputs, o.Err, want)
	}
}

// TestMirrorQueueFullSkipsAndCounts holds the only worker inside the
// observer, so no copy comes back: exactly QueueSize answers are queued and
// every later one is skipped and counted, without blocking the caller.
func TestMirrorQueueFullSkipsAndCounts(t *testing.T) {
	champ := logisticSlot(t, 1, []float32{0.5, -0.2, 0.1, 0.3}, 0)
	sh := logisticSlot(t, 2, []float32{0.6, -0.1, 0.1, 0.2}, 0.1)
	col := newCollector(10)
	col.gate = make(chan struct{})
	m := newMirror(t, MirrorConfig{QueueSize: 3, Workers: 1, Observer: col})
	defer func() {
		select {
		case <-col.gate:
		default:
			close(col.gate) // never leave Close waiting on a held worker
		}
	}()
	c := scored(t, champ, [][]float32{row(1)})
	queued := 0
	for i := range 10 {
		if m.Enqueue(&Request{ID: fmt.Sprint(i), Inputs: c.Inputs, ChampionOutputs: c.Outputs, Shadows: []Target{{2, sh}}}) {
			queued++
		}
	}
	if s := m.Stats(); queued != 3 || s.Enqueued != 3 || s.Dropped != 7 || s.Served != 10 {
		t.Fatalf("queued %d, stats %+v; want 3 queued and 7 dropped of 10 served", queued, s)
	}
	waitEntered(t, col)
	close(col.gate)
	for range 3 {
		if o := col.next(t); o.Err != nil {
			t.Fatal(o.Err)
		}
	}
	m.Close()
	if s := m.Stats(); s.Mirrored != 3 || s.Coverage() != 0.3 {
		t.Fatalf("after the queue drained: %+v, coverage %v; want 3 mirrored, coverage 0.3", s, s.Coverage())
	}
}

// panicky panics in its first ObserveShadow, then collects.
type panicky struct {
	*collector
	n int
}

func (p *panicky) ObserveShadow(o *Outcome) {
	p.n++
	if p.n == 1 {
		panic("observer bug")
	}
	p.collector.ObserveShadow(o)
}

// TestShadowFailuresNeverReachTheCaller runs copies on a shadow whose
// input differs from the champion's (an error from the runtime), on a slot
// whose model panics inside the runtime, and through an observer that
// panics: Enqueue returns normally each time, the failures come back as
// outcomes with the right error and are counted, and the worker goes on.
func TestShadowFailuresNeverReachTheCaller(t *testing.T) {
	champ := logisticSlot(t, 1, []float32{0.5, -0.2, 0.1, 0.3}, 0)
	wide := logisticSlot(t, 2, []float32{0.1, 0.1, 0.1, 0.1, 0.1}, 0) // takes 5 features
	broken := runtime.NewSlot("fraud", "3", nil)                      // Infer on a nil model panics
	good := logisticSlot(t, 4, []float32{0.6, -0.1, 0.1, 0.2}, 0.1)
	col := &panicky{collector: newCollector(10)}
	m := newMirror(t, MirrorConfig{QueueSize: 8, Observer: col})
	c := scored(t, champ, [][]float32{row(1)})
	if !m.Enqueue(&Request{ID: "a", Inputs: c.Inputs, ChampionOutputs: c.Outputs,
		Shadows: []Target{{4, good}, {2, wide}, {3, broken}, {4, good}}}) {
		t.Fatal("not queued")
	}
	var shapeErr *runtime.ShapeError
	if o := col.next(t); o.Version != 2 || !errors.As(o.Err, &shapeErr) || o.Outputs != nil {
		t.Fatalf("version 2 (5 features): %+v, want a *runtime.ShapeError and no outputs", o.Err)
	}
	if o := col.next(t); o.Version != 3 || !errors.Is(o.Err, ErrPanic) {
		t.Fatalf("version 3 (nil model): %v, want ErrPanic", o.Err)
	}
	if o := col.next(t); o.Version != 4 || o.Err != nil || len(o.Outputs) != 1 {
		t.Fatalf("version 4 after the failures: %+v", o)
	}
	m.Close()
	if s := m.Stats(); s.Runs != 4 || s.Errors != 2 || s.Panics != 2 || s.Mirrored != 1 {
		t.Fatalf("stats %+v, want 4 runs, 2 errors, 2 panics (one run, one observer), 1 mirrored", s)
	}
}

// TestRetiredShadowIsSkipped queues a copy for a shadow that leaves
// routing (retired and drained) before its turn: it is skipped and
// counted, never run on a closed model.
func TestRetiredShadowIsSkipped(t *testing.T) {
	champ := logisticSlot(t, 1, []float32{0.5, -0.2, 0.1, 0.3}, 0)
	gone := logisticSlot(t, 2, []float32{0.6, -0.1, 0.1, 0.2}, 0.1)
	live := logisticSlot(t, 3, []float32{0.6, -0.1, 0.1, 0.2}, 0.1)
	col := newCollector(4)
	m := newMirror(t, MirrorConfig{QueueSize: 4, Observer: col})
	c := scored(t, champ, [][]float32{row(1)})
	gone.Retire()
	<-gone.Drained()
	m.Enqueue(&Request{ID: "a", Inputs: c.Inputs, ChampionOutputs: c.Outputs, Shadows: []Target{{2, gone}, {3, live}}})
	if o := col.next(t); o.Version != 3 || o.Err != nil {
		t.Fatalf("%+v", o)
	}
	m.Close()
	if s := m.Stats(); s.Retired != 1 || s.Runs != 1 || s.Errors != 0 {
		t.Fatalf("stats %+v, want 1 retired, 1 run, no error", s)
	}
}

// TestSampleRateHashesTheRequestID checks the share a rate keeps, that two
// mirrors (two nodes) pick the same ids, and that a lower rate keeps a
// subset of what a higher one kept.
func TestSampleRateHashesTheRequestID(t *testing.T) {
	a := newMirror(t, MirrorConfig{SampleRate: 0.25, Workers: 1, QueueSize: 1})
	b := newMirror(t, MirrorConfig{SampleRate: 0.25, Workers: 1, QueueSize: 1})
	low := newMirror(t, MirrorConfig{SampleRate: 0.1, Workers: 1, QueueSize: 1})
	const n = 100_000
	kept := 0
	for i := range n {
		id := fmt.Sprintf("acct-%d", i)
		ka := a.sampled(id)
		if ka != b.sampled(id) {
			t.Fatalf("%s: two mirrors at the same rate decide differently", id)
		}
		if low.sampled(id) && !ka {
			t.Fatalf("%s: kept at 10%% but not at 25%%", id)
		}
		if ka {
			kept++
		}
	}
	// Binomial sd at n=1e5, p=0.25 is 0.0014: ±0.01 is seven of them.
	if share := float64(kept) / n; math.Abs(share-0.25) > 0.01 {
		t.Fatalf("rate 0.25 kept %.4f of ids", share)
	}
	if err := a.SetSampleRate(0); err != nil || a.sampled("acct-1") {
		t.Fatalf("rate 0 still samples (err %v)", err)
	}
	if err := a.SetSampleRate(1.5); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("SetSampleRate(1.5) = %v, want ErrInvalidConfig", err)
	}
	// Through Enqueue: an answer left out is counted, not queued.
	live := logisticSlot(t, 2, []float32{0.6, -0.1, 0.1, 0.2}, 0.1)
	if a.Enqueue(&Request{ID: "x", Shadows: []Target{{2, live}}}) || a.Stats().SampledOut != 1 {
		t.Fatalf("rate 0: Enqueue queued, or stats %+v", a.Stats())
	}
}

func TestMirrorConfigErrorsNameTheField(t *testing.T) {
	f := func(cfg MirrorConfig, field string) {
		t.Helper()
		if _, err := NewMirror(cfg); !errors.Is(err, ErrInvalidConfig) || !contains(err.Error(), field) {
			t.Fatalf("%+v: %v, want ErrInvalidConfig naming %s", cfg, err, field)
		}
	}
	f(MirrorConfig{QueueSize: -1}, "queue_size")
	f(MirrorConfig{Workers: 1000}, "workers")
	f(MirrorConfig{SampleRate: 2}, "sample_rate")
	f(MirrorConfig{SampleRate: math.NaN()}, "sample_rate")
	f(MirrorConfig{Nice: 20}, "nice")
}

// TestComparisonsObserveMirroredOutcomes wires a Comparisons as the
// mirror's observer and checks the pair's statistics against the rows'
// scores computed directly.
func TestComparisonsObserveMirroredOutcomes(t *testing.T) {
	champ := logisticSlot(t, 1, []float32{0.5, -0.2, 0.1, 0.3}, 0)
	sh := logisticSlot(t, 2, []float32{-0.4, 0.2, 0.3, 0.1}, -0.2)
	cs, err := NewComparisons(CompareConfig{Threshold: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	col := newCollector(20)
	m := newMirror(t, MirrorConfig{QueueSize: 32, Observer: Observers{cs, col}})
	want := NewComparison(0.5)
	for i := range 20 {
		rows := [][]float32{row(i), row(i + 50), row(i + 90)}
		c := scored(t, champ, rows)
		s := scored(t, sh, rows)
		for k := range rows {
			_ = want.RecordRow(float64(c.Outputs[0].Float32(k)), float64(s.Outputs[0].Float32(k)))
		}
		m.Enqueue(&Request{ID: fmt.Sprint(i), Time: time.Now(), Champion: 1, ChampionLatency: 300 * time.Microsecond,
			Inputs: c.Inputs, ChampionOutputs: c.Outputs, Shadows: []Target{{2, sh}}})
	}
	for range 20 {
		col.next(t)
	}
	got := cs.Snapshot(Pair{1, 2}, time.Hour)
	if got.Runs != 20 || got.Unscored != 0 || got.Agreement != want.Agreement || got.Diff.Count() != 60 {
		t.Fatalf("comparison %+v, want 20 runs and the agreement %+v over 60 rows", got.Summary(), want.Agreement)
	}
	near(t, "mean diff", got.Diff.Mean(), want.Diff.Mean(), 1e-12)
	if p50 := got.ChampionLatency.ValueAtQuantile(50); p50 < 297 || p50 > 303 {
		t.Fatalf("champion p50 %d µs, want 300", p50)
	}
}

// TestSlowShadowKeepsMemoryFlat holds the only worker (a shadow infinitely
// slower than the champion) and offers 50,000 answers of 64 rows (about
// 2 KB of copies each): the heap must not grow by more than the pooled
// copies, because every answer past them is skipped and counted, not
// queued.
func TestSlowShadowKeepsMemoryFlat(t *testing.T) {
	champ := logisticSlot(t, 1, []float32{0.5, -0.2, 0.1, 0.3}, 0)
	sh := logisticSlot(t, 2, []float32{0.6, -0.1, 0.1, 0.2}, 0.1)
	const size = 64
	col := newCollector(size)
	col.gate = make(chan struct{})
	defer close(col.gate)
	m := newMirror(t, MirrorConfig{QueueSize: size, Workers: 1, Observer: col})
	rows := make([][]float32, 64)
	for i := range rows {
		rows[i] = row(i)
	}
	c := scored(t, champ, rows)
	r := &Request{ID: "x", Inputs: c.Inputs, ChampionOutputs: c.Outputs, Shadows: []Target{{2, sh}}}
	m.Enqueue(r)
	waitEntered(t, col)
	heap := func() uint64 {
		goruntime.GC()
		var ms goruntime.MemStats
		goruntime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	const offered = 50_000
	for range offered {
		m.Enqueue(r)
	}
	grew := int64(heap()) - int64(before)
	s := m.Stats()
	if s.Enqueued != size || s.Dropped != offered+1-size {
		t.Fatalf("stats %+v: want %d queued and the other %d dropped", s, size, offered+1-size)
	}
	// Unbounded, the copies would take 50,000 × 2 KB = 100 MB.
	if grew > 2<<20 {
		t.Fatalf("the heap grew by %d bytes with the shadow stuck; the pooled copies bound it near %d", grew, size*2048)
	}
}
