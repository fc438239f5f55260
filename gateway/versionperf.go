package gateway

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/modelgate/modelgate/runtime"
	"github.com/modelgate/modelgate/shadow"
)

// Per-version served latency and score histograms: what the rollout's p99
// and score-shift triggers compare between a candidate and its champion.
//
// Every version keeps them in tumbling windows of the drift window's
// length, aligned on multiples of it since the Unix epoch (as drift and
// shadow windows are), so any run of windows merges into the numbers of a
// period. The scoring path records into one of a few shards, each a mutex
// and its own live window, picked round-robin: requests on different cores
// rarely meet on a lock, and there is no lock shared by every request. A
// shard folds its live window into the version's ring of closed windows
// the first time it records into a later window, so the shared lock is
// taken once per shard and window, not per request.

// ScoreBins is how many equal-width bins over [0, 1] a version's score
// histogram has: lifecycle's PSI compares two histograms bin by bin.
// Ten bins is the usual PSI practice; twenty resolve a shift within the
// crowded low end of a fraud score without leaving most bins empty.
const ScoreBins = 20

// Latencies are kept as shadow keeps them (microseconds, 1 µs to 60 s,
// two significant digits), so a comparison's and a version's histograms
// merge and read alike.
const (
	perfLatencyLowest  = 1
	perfLatencyHighest = 60_000_000
	perfLatencyDigits  = 2
)

// perfShards is how many shards record a version's requests: enough that
// the cores of a node rarely wait on each other.
const perfShards = 8

// perfHorizon is how far back a version's windows are kept: a default
// rollout (five ten-minute steps) plus a watch of an hour, and the
// standby's hour before it, fit. The ring never holds more than
// perfMaxWindows windows (a busy window holds a ~20 KB latency
// histogram), so with short windows the horizon is shorter.
const (
	perfHorizon    = 6 * time.Hour
	perfMaxWindows = 720
)

func newPerfLatency() *hdrhistogram.Histogram {
	return hdrhistogram.New(perfLatencyLowest, perfLatencyHighest, perfLatencyDigits)
}

// perfWindow is one window's numbers.
type perfWindow struct {
	lat    *hdrhistogram.Histogram
	scores [ScoreBins]uint64
}

func (w *perfWindow) reset() {
	w.lat.Reset()
	w.scores = [ScoreBins]uint64{}
}

func (w *perfWindow) merge(o *perfWindow) {
	w.lat.Merge(o.lat)
	for i, c := range o.scores {
		w.scores[i] += c
	}
}

func (w *perfWindow) addScores(scores []float64) {
	for _, v := range scores {
		if math.IsNaN(v) {
			continue
		}
		// A score outside [0, 1] (a regression model, a logit) lands in an
		// edge bin: still counted, so a shift towards it still shows.
		i := int(min(max(v, 0), 1) * ScoreBins)
		w.scores[min(i, ScoreBins-1)]++
	}
}

// perfShard is one shard's live window, padded so that shards written by
// different cores do not share a cache line.
type perfShard struct {
	mu sync.Mutex
	id int64 // window number of w; meaningful once w.lat is set
	w  perfWindow
	_  [64]byte
}

type perfSlot struct {
	id int64
	w  *perfWindow // nil until a shard first folds a window into the slot
}

// versionPerf is one version's windowed latency and score histograms.
type versionPerf struct {
	win  int64 // window length in ns
	now  func() time.Time
	next atomic.Uint32
	// spec is where the version's score is in its outputs (the model's
	// evaluation policy), set by Server.SyncShadows; nil records latency
	// only.
	spec   atomic.Pointer[shadow.ScoreSpec]
	shards [perfShards]perfShard

	mu     sync.Mutex // guards closed
	closed []perfSlot // by window number mod len
}

func newVersionPerf(window time.Duration, now func() time.Time) *versionPerf {
	if window <= 0 {
		window = time.Minute
	}
	if now == nil {
		now = time.Now
	}
	n := int((perfHorizon + window - 1) / window)
	n = min(max(n, 2), perfMaxWindows)
	return &versionPerf{win: int64(window), now: now, closed: make([]perfSlot, n)}
}

// setSpec makes later scores be read as spec says. Windows already
// counted keep what they counted: a policy that moves the score to another
// output is rare, and the windows age out.
func (p *versionPerf) setSpec(spec shadow.ScoreSpec) {
	if cur := p.spec.Load(); cur != nil && *cur == spec {
		return
	}
	p.spec.Store(&spec)
}

func (p *versionPerf) number(t time.Time) int64 {
	q := t.UnixNano() / p.win
	if t.UnixNano()%p.win < 0 {
		q--
	}
	return q
}

// record counts one served request that started at start and took
// elapsed, with the scores of its outputs. buf is the caller's pooled
// score buffer, returned grown. It allocates nothing once the shard's
// histogram exists (its first sample).
func (p *versionPerf) record(start time.Time, elapsed time.Duration, outputs []runtime.Tensor, buf []float64) []float64 {
	scores := buf[:0]
	if spec := p.spec.Load(); spec != nil {
		var err error
		// A version whose outputs lack the policy's score keeps no score
		// histogram; its score-shift trigger then says not_judged.
		if scores, err = spec.AppendScores(scores, outputs); err != nil {
			scores = scores[:0]
		}
	}
	p.add(start, clampMicros(elapsed), scores)
	return scores
}

// recordScores counts a shadow run's scores: a shadow answers no one, so
// its latency is not a served latency (the comparison keeps it).
func (p *versionPerf) recordScores(t time.Time, outputs []runtime.Tensor) {
	spec := p.spec.Load()
	if spec == nil {
		return
	}
	var buf [16]float64
	scores, err := spec.AppendScores(buf[:0], outputs)
	if err != nil || len(scores) == 0 {
		return
	}
	p.add(t, 0, scores)
}

// add counts a latency (none when micros is 0) and scores in t's window.
func (p *versionPerf) add(t time.Time, micros int64, scores []float64) {
	k := p.number(t)
	sh := &p.shards[p.next.Add(1)%perfShards]
	sh.mu.Lock()
	switch {
	case sh.w.lat == nil:
		sh.w.lat, sh.id = newPerfLatency(), k
	case k > sh.id:
		p.fold(sh.id, &sh.w)
		sh.w.reset()
		sh.id = k
	case k < sh.id:
		// A request that started before the shard's window and finished
		// after another one opened it: counted in its own window.
		sh.mu.Unlock()
		p.addClosed(k, micros, scores)
		return
	}
	if micros > 0 {
		_ = sh.w.lat.RecordValue(micros)
	}
	sh.w.addScores(scores)
	sh.mu.Unlock()
}

// slot returns the closed ring's window k, or nil when k has left the
// ring. p.mu is held.
func (p *versionPerf) slot(k int64) *perfWindow {
	s := &p.closed[mod(k, int64(len(p.closed)))]
	switch {
	case s.w == nil:
		s.w, s.id = &perfWindow{lat: newPerfLatency()}, k
	case s.id < k:
		s.w.reset()
		s.id = k
	case s.id > k:
		return nil
	}
	return s.w
}

func (p *versionPerf) fold(k int64, w *perfWindow) {
	p.mu.Lock()
	if dst := p.slot(k); dst != nil {
		dst.merge(w)
	}
	p.mu.Unlock()
}

func (p *versionPerf) addClosed(k int64, micros int64, scores []float64) {
	p.mu.Lock()
	if dst := p.slot(k); dst != nil {
		if micros > 0 {
			_ = dst.lat.RecordValue(micros)
		}
		dst.addScores(scores)
	}
	p.mu.Unlock()
}

// between merges the windows that overlap [from, to] and are still kept:
// the latencies (µs) and the score histogram of the period.
func (p *versionPerf) between(from, to time.Time) (*hdrhistogram.Histogram, []uint64) {
	out := perfWindow{lat: newPerfLatency()}
	first, last := p.number(from), p.number(to)
	if oldest := p.number(p.now()) - int64(len(p.closed)) + 1; first < oldest {
		first = oldest
	}
	in := func(k int64) bool { return k >= first && k <= last }
	p.mu.Lock()
	for i := range p.closed {
		if s := &p.closed[i]; s.w != nil && in(s.id) {
			out.merge(s.w)
		}
	}
	p.mu.Unlock()
	for i := range p.shards {
		sh := &p.shards[i]
		sh.mu.Lock()
		if sh.w.lat != nil && in(sh.id) {
			out.merge(&sh.w)
		}
		sh.mu.Unlock()
	}
	return out.lat, out.scores[:]
}

func mod(a, n int64) int64 { return ((a % n) + n) % n }

// clampMicros is d in whole microseconds within the histogram's range.
func clampMicros(d time.Duration) int64 {
	return min(max(d.Microseconds(), perfLatencyLowest), perfLatencyHighest)
}
