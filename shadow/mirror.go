package shadow

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelgate/modelgate/internal/niceness"
	"github.com/modelgate/modelgate/runtime"
)

// Target is one shadow version a request is copied to.
type Target struct {
	Version int
	// Slot runs the version. The worker takes a reference for each run, so
	// a slot retired while a copy waits is skipped (Stats.Retired), never
	// run after it closed.
	Slot *runtime.Slot
}

// Request is what the scoring path hands Enqueue once the champion has
// answered. Enqueue copies what it keeps; none of these slices or strings
// is referenced after it returns.
type Request struct {
	// ID is the request id: the sample decision hashes it, and outcomes
	// carry it (for the prediction log's shadow records).
	ID string
	// Time is when the champion answered; comparison windows use it. Zero
	// means now (one clock read the caller may save by passing its own).
	Time            time.Time
	Champion        int
	ChampionLatency time.Duration
	Inputs          []runtime.Tensor
	ChampionOutputs []runtime.Tensor
	// Shadows are the versions that get a copy, from the routing table.
	Shadows []Target
}

// Outcome is one shadow run of one mirrored request.
type Outcome struct {
	Model string
	// RequestID is the request's id, reused like the slices below:
	// string(o.RequestID) to keep it.
	RequestID       []byte
	Time            time.Time // when the champion answered
	Champion        int
	ChampionLatency time.Duration
	ChampionOutputs []runtime.Tensor
	Version         int // the shadow version
	Inputs          []runtime.Tensor
	// Outputs are the shadow's, one per signature output; nil when Err is
	// set.
	Outputs []runtime.Tensor
	// Err is the run's error: the runtime's, or an ErrPanic error when it
	// panicked.
	Err     error
	Latency time.Duration // the shadow's run, queue wait excluded
}

// Observer receives shadow outcomes. ObserveShadow is called on a mirror
// worker, once per shadow run; the Outcome and every slice in it are
// reused once it returns, so it copies what it keeps. It runs on the
// workers' niced threads: a slow observer slows mirroring (the queue fills
// and copies are skipped and counted), never scoring. A panic in it is
// recovered and counted (Stats.Panics).
type Observer interface {
	ObserveShadow(o *Outcome)
}

// Observers hands each outcome to every observer in order.
type Observers []Observer

// ObserveShadow calls each observer.
func (os Observers) ObserveShadow(o *Outcome) {
	for _, ob := range os {
		ob.ObserveShadow(o)
	}
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(o *Outcome)

// ObserveShadow calls f(o).
func (f ObserverFunc) ObserveShadow(o *Outcome) { f(o) }

// MirrorStats are a Mirror's counters since it started.
type MirrorStats struct {
	// Served counts the champion answers offered to Enqueue.
	Served uint64 `json:"served"`
	// SampledOut counts answers the sample rate left out.
	SampledOut uint64 `json:"sampled_out"`
	// Enqueued counts copies queued.
	Enqueued uint64 `json:"enqueued"`
	// Dropped counts copies skipped because the queue was full or the
	// mirror was closing.
	Dropped uint64 `json:"dropped"`
	// Mirrored counts queued copies whose shadow runs have all finished.
	Mirrored uint64 `json:"mirrored"`
	// Runs counts shadow runs (one per copy and shadow); Errors the runs
	// that returned an error or panicked; Panics the recovered panics (of a
	// run or of the observer); Retired the runs skipped because the shadow
	// had left routing by the time the copy's turn came.
	Runs    uint64 `json:"runs"`
	Errors  uint64 `json:"errors"`
	Panics  uint64 `json:"panics"`
	Retired uint64 `json:"retired"`
	// Queued is the number of copies waiting now.
	Queued int `json:"queued"`
}

// Coverage is Mirrored / Served: the share of champion answers that have
// been run on the shadows (0 before any).
func (s MirrorStats) Coverage() float64 {
	if s.Served == 0 {
		return 0
	}
	return float64(s.Mirrored) / float64(s.Served)
}

// counter is an atomic counter alone on its cache line: the hot-path
// counters are written by every core.
type counter struct {
	atomic.Uint64
	_ [56]byte
}

// job is one queued copy. Jobs are allocated once, at NewMirror, and cycle
// between free and queue; their buffers grow to the largest request seen
// and are then reused, which is what keeps Enqueue free of allocations.
type job struct {
	id       []byte
	t        time.Time
	champion int
	champLat time.Duration
	inputs   []runtime.Tensor
	champOut []runtime.Tensor
	targets  []Target
}

// Mirror runs copies of champion-answered requests on shadow versions, off
// the hot path: a bounded set of pooled copies, a queue, and workers on
// niced OS threads. One Mirror serves one model.
type Mirror struct {
	cfg  MirrorConfig
	keep atomic.Uint64 // sample when hash < keep; MaxUint64 samples all
	seq  atomic.Uint64 // stands in for missing request ids

	free  chan *job
	queue chan *job
	quit  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once

	closed                                counter
	served, sampledOut, enqueued, dropped counter
	mirrored, runs, errs, panics, retired counter
}

// NewMirror starts a mirror's workers. Close stops them.
func NewMirror(cfg MirrorConfig) (*Mirror, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m := &Mirror{
		cfg:   cfg,
		free:  make(chan *job, cfg.QueueSize),
		queue: make(chan *job, cfg.QueueSize),
		quit:  make(chan struct{}),
	}
	for range cfg.QueueSize {
		m.free <- &job{}
	}
	_ = m.SetSampleRate(cfg.SampleRate)
	m.wg.Add(cfg.Workers)
	for i := range cfg.Workers {
		go m.work(i)
	}
	return m, nil
}

// Config returns the configuration with defaults filled in.
func (m *Mirror) Config() MirrorConfig { return m.cfg }

// SetSampleRate sets the share of answers mirrored, in [0, 1]; the policy
// changes it at runtime.
func (m *Mirror) SetSampleRate(rate float64) error {
	if math.IsNaN(rate) || rate < 0 || rate > 1 {
		return configErr("sample_rate", rate, "must be in [0, 1]")
	}
	if rate == 1 {
		m.keep.Store(math.MaxUint64)
	} else {
		m.keep.Store(uint64(rate * (1 << 64)))
	}
	return nil
}

// sampled decides whether request id is mirrored. The decision is a hash
// of the id with no per-process seed, so every node (and a retry on another
// node) decides alike, and a rate cut from 50% to 25% keeps a subset of the
// ids it kept before.
func (m *Mirror) sampled(id string) bool {
	keep := m.keep.Load()
	if keep == math.MaxUint64 {
		return true
	}
	var h uint64
	if id == "" {
		h = mix(m.seq.Add(1))
	} else {
		h = hashID(id)
	}
	return h < keep
}

// hashID is FNV-1a 64 with a final mix, so ids differing only in their
// last characters still spread over the whole range.
func hashID(id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	return mix(h)
}

// mix is splitmix64's finaliser.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// Enqueue offers one champion answer for mirroring and reports whether a
// copy was queued. It never blocks: when every pooled copy is in use the
// answer is skipped and counted (Stats.Dropped). It copies r's id, inputs,
// champion outputs and shadow list into a pooled copy, so the caller may
// reuse its buffers as soon as it returns; in steady state it does not
// allocate (BYTES tensors excepted: their strings are cloned one by one).
// An answer with no shadows is not counted.
func (m *Mirror) Enqueue(r *Request) bool {
	if len(r.Shadows) == 0 {
		return false
	}
	m.served.Add(1)
	if !m.sampled(r.ID) {
		m.sampledOut.Add(1)
		return false
	}
	if m.closed.Load() != 0 {
		m.dropped.Add(1)
		return false
	}
	var j *job
	select {
	case j = <-m.free:
	default:
		m.dropped.Add(1)
		return false
	}
	j.id = append(j.id[:0], r.ID...)
	j.t, j.champion, j.champLat = r.Time, r.Champion, r.ChampionLatency
	if j.t.IsZero() {
		j.t = time.Now()
	}
	j.inputs = copyTensors(j.inputs, r.Inputs)
	j.champOut = copyTensors(j.champOut, r.ChampionOutputs)
	j.targets = append(j.targets[:0], r.Shadows...)
	// The queue holds as many jobs as exist, so this send cannot block.
	m.queue <- j
	m.enqueued.Add(1)
	return true
}

// copyTensors makes dst a deep copy of src, reusing dst's buffers.
func copyTensors(dst, src []runtime.Tensor) []runtime.Tensor {
	if cap(dst) < len(src) {
		dst = append(dst[:cap(dst)], make([]runtime.Tensor, len(src)-cap(dst))...)
	}
	dst = dst[:len(src)]
	for i := range src {
		dst[i].CopyFrom(&src[i])
		// CopyFrom shares the strings' bytes, which may be views of the
		// caller's request buffer.
		for k, s := range dst[i].Strings {
			dst[i].Strings[k] = strings.Clone(s)
		}
	}
	return dst
}

// Stats returns the counters.
func (m *Mirror) Stats() MirrorStats {
	return MirrorStats{
		Served: m.served.Load(), SampledOut: m.sampledOut.Load(),
		Enqueued: m.enqueued.Load(), Dropped: m.dropped.Load(),
		Mirrored: m.mirrored.Load(), Runs: m.runs.Load(), Errors: m.errs.Load(),
		Panics: m.panics.Load(), Retired: m.retired.Load(), Queued: len(m.queue),
	}
}

// Close stops the workers once their current runs end and drops the
// copies still queued (counted in Stats.Dropped). Enqueue after Close
// drops and counts (an Enqueue racing with Close may still leave its copy
// queued, never run). It waits for the running shadow runs and observer
// calls, so an observer blocked for good blocks Close.
func (m *Mirror) Close() error {
	m.once.Do(func() {
		m.closed.Store(1)
		close(m.quit)
		m.wg.Wait()
		for {
			select {
			case j := <-m.queue:
				m.dropped.Add(1)
				m.free <- j
			default:
				return
			}
		}
	})
	return nil
}

func (m *Mirror) work(n int) {
	defer m.wg.Done()
	if m.cfg.Nice > 0 {
		if err := niceness.Lower(m.cfg.Nice); err != nil {
			m.cfg.Logger.Warn("shadow: cannot lower a mirror worker's priority; shadow runs will compete with scoring for the cores",
				"model", m.cfg.Model, "worker", n, "nice", m.cfg.Nice, "err", err)
		}
	}
	call := runtime.NewCall()
	var out Outcome
	for {
		// quit first: a closing mirror stops taking copies even when the
		// queue is full.
		select {
		case <-m.quit:
			return
		default:
		}
		select {
		case j := <-m.queue:
			m.run(j, call, &out)
			m.free <- j
		case <-m.quit:
			return
		}
	}
}

// run runs one copy on each of its shadows and hands every outcome to the
// observer.
func (m *Mirror) run(j *job, call *runtime.Call, out *Outcome) {
	for _, tg := range j.targets {
		if tg.Slot == nil || !tg.Slot.Acquire() {
			m.retired.Add(1)
			continue
		}
		start := time.Now()
		err := m.infer(tg.Slot, j.inputs, call)
		lat := time.Since(start)
		m.runs.Add(1)
		if err != nil {
			m.errs.Add(1)
		}
		*out = Outcome{
			Model: m.cfg.Model, RequestID: j.id, Time: j.t,
			Champion: j.champion, ChampionLatency: j.champLat, ChampionOutputs: j.champOut,
			Version: tg.Version, Inputs: j.inputs, Latency: lat, Err: err,
		}
		if err == nil {
			out.Outputs = call.Outputs
		}
		m.observe(out)
	}
	m.mirrored.Add(1)
}

// infer runs inputs on the slot's model, releasing the slot's reference
// and turning a panic into an ErrPanic error.
func (m *Mirror) infer(s *runtime.Slot, inputs []runtime.Tensor, call *runtime.Call) (err error) {
	defer s.Release()
	defer func() {
		if p := recover(); p != nil {
			m.panics.Add(1)
			err = fmt.Errorf("%w: model %s version %s: %v", ErrPanic, m.cfg.Model, s.Version, p)
			// The call's state is unknown after a panic: start afresh.
			*call = *runtime.NewCall()
		}
	}()
	call.Reset()
	for i := range inputs {
		call.AddInput().CopyFrom(&inputs[i])
	}
	return s.Model.Infer(call)
}

func (m *Mirror) observe(o *Outcome) {
	if m.cfg.Observer == nil {
		return
	}
	defer func() {
		if p := recover(); p != nil {
			m.panics.Add(1)
			m.cfg.Logger.Error("shadow: the shadow observer panicked; the outcome was not recorded",
				"model", o.Model, "version", o.Version, "request_id", string(o.RequestID), "panic", fmt.Sprint(p))
		}
	}()
	m.cfg.Observer.ObserveShadow(o)
}
