package shadow

import (
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultThreshold is the decision threshold when a config leaves it zero.
const DefaultThreshold = 0.5

// CompareConfig configures Comparisons. Zero values mean the defaults.
type CompareConfig struct {
	// Threshold decides a row: positive when its score is at or above it
	// (DefaultThreshold when 0). It is fixed for the life of a Comparisons:
	// windows counted at different thresholds do not merge, so a policy
	// change means a new Comparisons.
	Threshold float64
	// Score says where the score is in the outputs of both versions.
	Score ScoreSpec
	// Windows cuts the statistics into tumbling windows.
	Windows WindowConfig
}

func (c CompareConfig) withDefaults() CompareConfig {
	if c.Threshold == 0 {
		c.Threshold = DefaultThreshold
	}
	c.Windows = c.Windows.withDefaults()
	return c
}

// Validate returns an ErrInvalidConfig error naming the first bad field.
func (c CompareConfig) Validate() error {
	if math.IsNaN(c.Threshold) || math.IsInf(c.Threshold, 0) {
		return configErr("threshold", c.Threshold, "must be a finite number")
	}
	if c.Score.Column < 0 {
		return configErr("score.column", c.Score.Column, "must be >= 0")
	}
	return c.Windows.Validate()
}

// Pair names a champion and one of its shadows by registry version number.
type Pair struct {
	Champion int `json:"champion"`
	Shadow   int `json:"shadow"`
}

// Comparisons keeps, per champion/shadow pair, a ring of per-window
// Comparisons of one model. It is an Observer: hand it to a Mirror (or
// call ObserveShadow from one) and it counts every shadow outcome in the
// window of the champion's answer. Safe for concurrent use; a mutex guards
// it, which is fine off the hot path (mirror workers only).
type Comparisons struct {
	cfg CompareConfig

	mu     sync.Mutex
	pairs  map[Pair]*ring[Comparison]
	champ  []float64 // scratch scores, reused under mu
	shadow []float64

	late atomic.Uint64
}

// NewComparisons returns empty comparisons.
func NewComparisons(cfg CompareConfig) (*Comparisons, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Comparisons{cfg: cfg.withDefaults(), pairs: map[Pair]*ring[Comparison]{}}, nil
}

// Config returns the configuration with defaults filled in.
func (cs *Comparisons) Config() CompareConfig { return cs.cfg }

func (cs *Comparisons) window(p Pair, t time.Time) *Comparison {
	r := cs.pairs[p]
	if r == nil {
		th := cs.cfg.Threshold
		r = newRing(cs.cfg.Windows, func() *Comparison { return NewComparison(th) }, (*Comparison).Reset)
		cs.pairs[p] = r
	}
	c := r.at(t)
	if c == nil {
		cs.late.Add(1)
	}
	return c
}

// ObserveShadow counts one shadow outcome: its run and latencies, and, when
// it succeeded, every row's score against the champion's. Outputs whose
// scores cannot be read, differ in row count or hold NaN count as Unscored.
// An outcome older than the ring is counted by Late and dropped.
func (cs *Comparisons) ObserveShadow(o *Outcome) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c := cs.window(Pair{o.Champion, o.Version}, o.Time)
	if c == nil {
		return
	}
	_ = c.RecordRun(max(o.ChampionLatency, 0), max(o.Latency, 0), o.Err != nil)
	if o.Err != nil {
		return
	}
	var err1, err2 error
	cs.champ, err1 = cs.cfg.Score.AppendScores(cs.champ[:0], o.ChampionOutputs)
	cs.shadow, err2 = cs.cfg.Score.AppendScores(cs.shadow[:0], o.Outputs)
	if err1 != nil || err2 != nil || len(cs.champ) != len(cs.shadow) {
		c.Unscored++
		return
	}
	for i := range cs.champ {
		if d := cs.shadow[i] - cs.champ[i]; math.IsNaN(d) || math.IsInf(d, 0) {
			c.Unscored++
			return
		}
	}
	for i := range cs.champ {
		_ = c.RecordRow(cs.champ[i], cs.shadow[i])
	}
}

// RecordRow counts one row of pair p at time t (for callers that score
// outside a Mirror, and for tests and benchmarks). It returns ErrOutOfRange
// for a non-finite score or a time older than the ring.
func (cs *Comparisons) RecordRow(t time.Time, p Pair, champion, shadow float64) error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c := cs.window(p, t)
	if c == nil {
		return ErrOutOfRange
	}
	return c.RecordRow(champion, shadow)
}

// Late is the number of outcomes dropped because their time was older than
// the ring reaches.
func (cs *Comparisons) Late() uint64 { return cs.late.Load() }

// Pairs returns the pairs seen, sorted.
func (cs *Comparisons) Pairs() []Pair {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	out := make([]Pair, 0, len(cs.pairs))
	for p := range cs.pairs {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Champion != out[j].Champion {
			return out[i].Champion < out[j].Champion
		}
		return out[i].Shadow < out[j].Shadow
	})
	return out
}

// Snapshot returns a new Comparison, the merge of pair p's windows of the
// last horizon (the live window and those that started within horizon of
// now). It is empty when the pair has none.
func (cs *Comparisons) Snapshot(p Pair, horizon time.Duration) *Comparison {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	out := NewComparison(cs.cfg.Threshold)
	if r := cs.pairs[p]; r != nil {
		r.each(horizon, func(_ int64, c *Comparison) { _ = out.Merge(c) })
	}
	return out
}

// Window returns a copy of pair p's window number k (time k×Window since
// the Unix epoch), or nil when it is not kept: what a node exports for the
// leader to merge window by window.
func (cs *Comparisons) Window(p Pair, k int64) *Comparison {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if r := cs.pairs[p]; r != nil {
		if c := r.get(k); c != nil {
			return c.Clone()
		}
	}
	return nil
}

// WindowOf is the number of the window time t falls in.
func (cs *Comparisons) WindowOf(t time.Time) int64 {
	return floorDiv(t.UnixNano(), int64(cs.cfg.Windows.Window))
}
