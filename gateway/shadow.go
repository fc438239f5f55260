package gateway

import (
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelgate/modelgate/predlog"
	"github.com/modelgate/modelgate/registry"
	"github.com/modelgate/modelgate/routing"
	"github.com/modelgate/modelgate/runtime"
	"github.com/modelgate/modelgate/shadow"
)

// Shadow mirroring and online evaluation on a node.
//
// Each model the node has seen shadows or labels for gets a modelShadow:
// a shadow.Mirror (only while the routing table gives the model shadows),
// the champion/shadow Comparisons and the label Evaluator, all configured
// from the model's policy. The scoring path reaches it through the
// VersionObservers of the version that answered (one atomic load, no map
// lookup), so steady-state mirroring allocates nothing. SyncShadows, which
// the node calls at every registry change and once a second, follows the
// routing table and the policies: it closes the
// mirror of a model whose shadows left, applies a new sample rate, and
// replaces the statistics when the threshold, task or score output change
// (windows counted at another threshold do not merge).

// Comparison windows: ten minutes, a day of them. A window of one pair
// holds two latency histograms (~40 KB), so a busy pair costs at most
// ~6 MB, and ?window= can reach back 24 hours.
const (
	compareWindow  = 10 * time.Minute
	compareWindows = 144
)

// maxHorizon bounds ?window= on the comparison and evaluation reports.
const maxHorizon = 24 * time.Hour

// shadowSettings is what a model's policy says about shadows and
// evaluation, with defaults filled in.
type shadowSettings struct {
	sampleRate float64
	eval       registry.EvaluationPolicy
}

func (a shadowSettings) sameStats(b shadowSettings) bool {
	return a.eval.Task == b.eval.Task && a.eval.Threshold == b.eval.Threshold && a.eval.Output == b.eval.Output &&
		a.eval.Column == b.eval.Column && a.eval.LabelDelay == b.eval.LabelDelay
}

func (a shadowSettings) score() shadow.ScoreSpec {
	return shadow.ScoreSpec{Output: a.eval.Output, Column: a.eval.Column}
}

func (a shadowSettings) task() shadow.Task {
	if a.eval.Task == registry.TaskRegression {
		return shadow.Regression
	}
	return shadow.Binary
}

// evalWindows sizes the evaluation ring so that a label arriving up to
// labelDelay after its prediction still finds the prediction's window, and
// a day of evaluation stays queryable beyond that: the shortest window
// length that covers it in at most 1,024 windows (an evaluation window is
// ~16 KB, so a version costs at most ~16 MB however long the delay).
func evalWindows(labelDelay time.Duration) shadow.WindowConfig {
	keep := labelDelay + maxHorizon
	for _, w := range []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 6 * time.Hour, 24 * time.Hour} {
		n := int((keep+w-1)/w) + 1
		if n <= 1024 {
			return shadow.WindowConfig{Window: w, Windows: n}
		}
	}
	return shadow.WindowConfig{Window: 24 * time.Hour, Windows: 1024}
}

// modelShadow is one model's shadow and evaluation state on this node.
type modelShadow struct {
	name string
	s    *Server

	mu       sync.Mutex // guards mirror changes, settings and closedTotals
	mirror   atomic.Pointer[shadow.Mirror]
	settings shadowSettings
	// closedTotals sums the counters of mirrors closed so far, so the
	// exported counters keep rising across a shadow leaving and coming
	// back.
	closedTotals shadow.MirrorStats

	cmp  atomic.Pointer[shadow.Comparisons]
	eval atomic.Pointer[shadow.Evaluator]

	// runs counts shadow runs per shadow version since the node started
	// (the "predictions" of a shadow in the evaluation report).
	runsMu sync.Mutex
	runs   map[int]*atomic.Uint64

	// labelMu serialises label posts of the model, so that "was this
	// label already stored" and storing it are one step: the same label
	// posted twice at once still counts once.
	labelMu sync.Mutex

	// detached marks the throwaway state of a label post for a model the
	// node does not know (see evalStateFor): it evaluates nothing.
	detached bool

	// rec is the observer's record, reused under recMu.
	recMu sync.Mutex
	rec   predlog.Record
}

// shadowSet is the node's modelShadows.
type shadowSet struct {
	mu     sync.Mutex
	models map[string]*modelShadow
	closed bool
}

// shadowState returns model's state, creating it (nil once the server is
// shutting down).
func (s *Server) shadowState(model string) *modelShadow {
	s.shadows.mu.Lock()
	defer s.shadows.mu.Unlock()
	if ms := s.shadows.models[model]; ms != nil {
		return ms
	}
	if s.shadows.closed {
		return nil
	}
	if s.shadows.models == nil {
		s.shadows.models = map[string]*modelShadow{}
	}
	ms := &modelShadow{name: model, s: s, runs: map[int]*atomic.Uint64{}}
	ms.apply(s.shadowSettingsOf(model))
	s.shadows.models[model] = ms
	s.Metrics.watchShadow(ms)
	return ms
}

// lookupShadow returns model's state, or nil when it has none yet.
func (s *Server) lookupShadow(model string) *modelShadow {
	s.shadows.mu.Lock()
	defer s.shadows.mu.Unlock()
	return s.shadows.models[model]
}

// shadowSettingsOf reads model's policy (defaults without a registry or a
// model).
func (s *Server) shadowSettingsOf(model string) shadowSettings {
	var sv *registry.ServingPolicy
	var ev *registry.EvaluationPolicy
	if s.control != nil {
		s.control.View(func(st *registry.State) {
			if pol, err := st.Policy(model); err == nil {
				sv, ev = pol.Serving, pol.Evaluation
			}
		})
	}
	return shadowSettings{sampleRate: sv.SampleRate(), eval: ev.Effective()}
}

// apply makes the statistics and the mirror follow st. New statistics
// start empty: the old ones were counted at another threshold or score.
func (ms *modelShadow) apply(st shadowSettings) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.cmp.Load() == nil || !ms.settings.sameStats(st) {
		cmp, err := shadow.NewComparisons(shadow.CompareConfig{Threshold: st.eval.Threshold, Score: st.score(),
			Windows: shadow.WindowConfig{Window: compareWindow, Windows: compareWindows}})
		if err != nil {
			// The registry validated the policy; this is a bug, not an
			// operator's mistake. Keep the statistics we have.
			ms.s.log.Error("shadow: cannot configure comparisons; keeping the previous ones", "model", ms.name, "err", err)
		} else {
			ms.cmp.Store(cmp)
		}
		ev, err := shadow.NewEvaluator(shadow.EvalConfig{Task: st.task(), Threshold: st.eval.Threshold,
			Windows: evalWindows(time.Duration(st.eval.LabelDelay))})
		if err != nil {
			ms.s.log.Error("shadow: cannot configure evaluation; keeping the previous one", "model", ms.name, "err", err)
		} else {
			ms.eval.Store(ev)
		}
	}
	if m := ms.mirror.Load(); m != nil && st.sampleRate != ms.settings.sampleRate {
		_ = m.SetSampleRate(st.sampleRate)
	}
	ms.settings = st
}

// mirrorOf returns the model's mirror, starting it on first use.
func (ms *modelShadow) mirrorOf() *shadow.Mirror {
	if m := ms.mirror.Load(); m != nil {
		return m
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if m := ms.mirror.Load(); m != nil {
		return m
	}
	if ms.s.shadowsClosed() {
		return nil
	}
	m, err := shadow.NewMirror(shadow.MirrorConfig{Model: ms.name, SampleRate: ms.settings.sampleRate,
		Observer: shadowObserver{ms}, Logger: ms.s.log})
	if err != nil {
		ms.s.log.Error("shadow: cannot start the mirror; shadow versions get no traffic", "model", ms.name, "err", err)
		return nil
	}
	if ms.settings.sampleRate == 0 {
		_ = m.SetSampleRate(0) // the config reads 0 as "every answer"
	}
	ms.mirror.Store(m)
	return m
}

// closeMirror stops the model's mirror, if any, keeping its counters.
func (ms *modelShadow) closeMirror() {
	ms.mu.Lock()
	m := ms.mirror.Swap(nil)
	ms.mu.Unlock()
	if m == nil {
		return
	}
	_ = m.Close()
	st := m.Stats()
	ms.mu.Lock()
	addStats(&ms.closedTotals, st)
	ms.mu.Unlock()
}

func addStats(a *shadow.MirrorStats, b shadow.MirrorStats) {
	a.Served += b.Served
	a.SampledOut += b.SampledOut
	a.Enqueued += b.Enqueued
	a.Dropped += b.Dropped
	a.Mirrored += b.Mirrored
	a.Runs += b.Runs
	a.Errors += b.Errors
	a.Panics += b.Panics
	a.Retired += b.Retired
}

// stats returns the model's mirror counters since the node started.
func (ms *modelShadow) stats() shadow.MirrorStats {
	ms.mu.Lock()
	st := ms.closedTotals
	m := ms.mirror.Load()
	ms.mu.Unlock()
	if m != nil {
		cur := m.Stats()
		addStats(&st, cur)
		st.Queued = cur.Queued
	}
	return st
}

// shadowRuns returns the shadow runs of version on this node.
func (ms *modelShadow) shadowRuns(version int) uint64 {
	ms.runsMu.Lock()
	defer ms.runsMu.Unlock()
	if c := ms.runs[version]; c != nil {
		return c.Load()
	}
	return 0
}

func (ms *modelShadow) countRun(version int) {
	ms.runsMu.Lock()
	c := ms.runs[version]
	if c == nil {
		c = new(atomic.Uint64)
		ms.runs[version] = c
	}
	ms.runsMu.Unlock()
	c.Add(1)
}

// mirror hands a champion answer to the model's mirror. It runs on the
// scoring path after the response is decided: it never blocks and, once
// the state and the pooled request exist, never allocates.
func (s *Server) mirror(st *inferState, r *route, v *routed, id []byte, start time.Time, elapsed time.Duration) {
	ms := v.Attach.shadow.Load()
	if ms == nil {
		if ms = s.shadowState(r.Name); ms == nil {
			return
		}
		v.Attach.shadow.Store(ms)
	}
	m := ms.mirrorOf()
	if m == nil {
		return
	}
	st.targets = st.targets[:0]
	for _, sv := range r.Shadows {
		st.targets = append(st.targets, shadow.Target{Version: sv.Attach.num, Slot: sv.Slot})
	}
	st.mreq = shadow.Request{ID: b2s(id), Time: start, Champion: v.Attach.num, ChampionLatency: elapsed,
		Inputs: st.call.Inputs, ChampionOutputs: st.call.Outputs, Shadows: st.targets}
	m.Enqueue(&st.mreq)
	st.mreq = shadow.Request{}
	clear(st.targets) // no slot stays reachable from the pool
}

// shadowObserver counts every shadow outcome in the model's comparisons
// and logs the successful ones with role shadow, under the request's id.
type shadowObserver struct{ ms *modelShadow }

func (o shadowObserver) ObserveShadow(out *shadow.Outcome) {
	ms := o.ms
	ms.countRun(out.Version)
	if c := ms.cmp.Load(); c != nil {
		c.ObserveShadow(out)
	}
	s := ms.s
	if out.Err == nil {
		// The shadow's scores, beside the champion's that the scoring path
		// counts: the score-shift trigger of a shadow step compares them.
		if p := s.Metrics.perfOf(ms.name, strconv.Itoa(out.Version)); p != nil {
			p.recordScores(out.Time, out.Outputs)
		}
	}
	if out.Err != nil || s.predlog == nil {
		return
	}
	if r := s.Catalog.table().Model(ms.name); r == nil || r.LogMode == routing.LogOff {
		return
	}
	ms.recMu.Lock()
	defer ms.recMu.Unlock()
	rec := &ms.rec
	rec.RequestID, rec.Model, rec.Version, rec.Role = b2s(out.RequestID), ms.name, strconv.Itoa(out.Version), predlog.RoleShadow
	rec.Time, rec.Node, rec.Latency = out.Time.UnixNano(), s.cfg.Node, int64(out.Latency)
	rec.Inputs, rec.Outputs = appendTensors(rec.Inputs[:0], out.Inputs), appendTensors(rec.Outputs[:0], out.Outputs)
	// Async even for a durable model: a shadow answers no one, so there is
	// no response to hold back; a drop is counted by the log.
	_ = s.predlog.Append(rec)
	clear(rec.Inputs)
	clear(rec.Outputs)
	rec.RequestID = ""
}

func (s *Server) shadowsClosed() bool {
	s.shadows.mu.Lock()
	defer s.shadows.mu.Unlock()
	return s.shadows.closed
}

// SyncShadows closes the mirrors of models that no longer have shadows,
// applies policy changes, and registers gauges for new pairs and versions.
// The node calls it at every registry change and once a second.
func (s *Server) SyncShadows() {
	tab := s.Catalog.table()
	for _, m := range tab.Models() {
		if len(m.Shadows) > 0 {
			s.shadowState(m.Name)
		}
		// Every version's score histogram reads the score the model's
		// evaluation policy names.
		spec := s.shadowSettingsOf(m.Name).score()
		for _, v := range m.Versions() {
			v.Attach.stats.perf.setSpec(spec)
		}
	}
	s.shadows.mu.Lock()
	all := make([]*modelShadow, 0, len(s.shadows.models))
	for _, ms := range s.shadows.models {
		all = append(all, ms)
	}
	s.shadows.mu.Unlock()
	for _, ms := range all {
		if r := tab.Model(ms.name); r == nil || len(r.Shadows) == 0 {
			ms.closeMirror()
		}
		ms.apply(s.shadowSettingsOf(ms.name))
		s.Metrics.watchShadowPairs(ms)
	}
}

// closeShadows stops every mirror, waiting for their running shadow runs
// until ctx's deadline; a stuck shadow run is abandoned, not waited for.
func (s *Server) closeShadows(deadline <-chan struct{}) {
	s.shadows.mu.Lock()
	s.shadows.closed = true
	all := make([]*modelShadow, 0, len(s.shadows.models))
	for _, ms := range s.shadows.models {
		all = append(all, ms)
	}
	s.shadows.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, ms := range all {
			ms.closeMirror()
		}
	}()
	select {
	case <-done:
	case <-deadline:
		s.log.Warn("shadow runs still running at the shutdown deadline; abandoning them")
	}
}

// outputTensors views logged tensors as runtime tensors, for ScoreSpec.
// The views share the record's buffers.
func outputTensors(dst []runtime.Tensor, ts []predlog.Tensor) []runtime.Tensor {
	dst = dst[:0]
	for i := range ts {
		t := &ts[i]
		dst = append(dst, runtime.Tensor{Name: t.Name, DataType: runtime.ParseDataType([]byte(t.DataType)), Shape: t.Shape, Data: t.Data, Strings: t.Strings})
	}
	return dst
}

// finite turns NaN and infinities (empty metrics) into 0 for JSON.
func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}
