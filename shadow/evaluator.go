package shadow

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Role is how a version answered a prediction.
type Role string

// Roles, as the prediction log spells them.
const (
	RoleChampion Role = "champion"
	RoleCanary   Role = "canary"
	RoleShadow   Role = "shadow"
)

// Labelled is one logged prediction joined with its label. The caller does
// the joining and the deduplication: the prediction log stores labels by
// request id, and it must hand each (prediction, label) pair here once,
// for a label sent twice would otherwise count twice. Every version that
// scored the request (champion, canary, shadows) gives one Labelled.
type Labelled struct {
	// Time is the prediction's time, not the label's: windows are cut by
	// it, so labels arriving days later land beside their predictions and
	// label delay does not skew a window.
	Time    time.Time
	Version int
	Role    Role
	Score   float64
	Label   float64
}

// Evaluator keeps one model's online evaluation: per version, a ring of
// per-window Evaluations by prediction time. Safe for concurrent use (a
// mutex; labels arrive in batches off the hot path).
type Evaluator struct {
	cfg EvalConfig

	mu       sync.Mutex
	versions map[int]*versionEval

	late, refused atomic.Uint64
}

type versionEval struct {
	role Role // of the latest labelled prediction
	ring *ring[Evaluation]
}

// NewEvaluator returns an empty evaluator.
func NewEvaluator(cfg EvalConfig) (*Evaluator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Evaluator{cfg: cfg.withDefaults(), versions: map[int]*versionEval{}}, nil
}

// Config returns the configuration with defaults filled in.
func (ev *Evaluator) Config() EvalConfig { return ev.cfg }

// Add counts one labelled prediction in its version's window of the
// prediction's time. It returns ErrOutOfRange, counting nothing, for a
// score or label the task cannot count (Refused) or a prediction older
// than the ring reaches (Late).
func (ev *Evaluator) Add(l Labelled) error {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	v := ev.versions[l.Version]
	if v == nil {
		cfg := ev.cfg
		v = &versionEval{ring: newRing(cfg.Windows, func() *Evaluation { return newEvaluation(cfg) }, (*Evaluation).Reset)}
		ev.versions[l.Version] = v
	}
	e := v.ring.at(l.Time)
	if e == nil {
		ev.late.Add(1)
		return ErrOutOfRange
	}
	if err := e.Add(l.Score, l.Label); err != nil {
		ev.refused.Add(1)
		return err
	}
	if l.Role != "" {
		v.role = l.Role
	}
	return nil
}

// Late is the number of labelled predictions older than the ring.
func (ev *Evaluator) Late() uint64 { return ev.late.Load() }

// Refused is the number of labelled predictions with a score or label the
// task cannot count.
func (ev *Evaluator) Refused() uint64 { return ev.refused.Load() }

// VersionRole is a version and the role of its latest labelled prediction.
type VersionRole struct {
	Version int  `json:"version"`
	Role    Role `json:"role"`
}

// Versions returns the versions evaluated, by number.
func (ev *Evaluator) Versions() []VersionRole {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	out := make([]VersionRole, 0, len(ev.versions))
	for n, v := range ev.versions {
		out = append(out, VersionRole{n, v.role})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out
}

// Snapshot returns a new Evaluation, the merge of version's windows of the
// last horizon (by prediction time: the live window and those that started
// within horizon of now). It is empty when the version has none.
func (ev *Evaluator) Snapshot(version int, horizon time.Duration) *Evaluation {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	out := newEvaluation(ev.cfg)
	if v := ev.versions[version]; v != nil {
		v.ring.each(horizon, func(_ int64, e *Evaluation) { _ = out.Merge(e) })
	}
	return out
}

// Window returns a copy of version's window number k (time k×Window since
// the Unix epoch), or nil when it is not kept.
func (ev *Evaluator) Window(version int, k int64) *Evaluation {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if v := ev.versions[version]; v != nil {
		if e := v.ring.get(k); e != nil {
			return e.Clone()
		}
	}
	return nil
}

// WindowOf is the number of the window time t falls in.
func (ev *Evaluator) WindowOf(t time.Time) int64 {
	return floorDiv(t.UnixNano(), int64(ev.cfg.Windows.Window))
}
