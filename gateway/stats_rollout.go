package gateway

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/modelgate/modelgate/shadow"
)

// What a node pushes for the rollout gates beside its drift windows: per
// version its cumulative counters, and window by window its served
// latencies and score histogram (perf), its online evaluation (eval) and
// each champion/shadow pair's comparison (cmp). All are windowed on the
// Unix epoch, so the leader merges them window by window like drift's.
// Unlike a drift window, such a window may still change after it closed
// (labels arrive late, a slow request lands in its own window): a node
// resends a window whenever its export changed, and the leader keeps the
// latest copy of each.

// Kinds of StatWindow.
const (
	StatPerf       = "perf" // a version's served latencies and scores (ExportPerf)
	StatEval       = "eval" // a version's online evaluation (shadow.Evaluation export)
	StatComparison = "cmp"  // a champion/shadow pair's comparison (shadow.Comparison export)
)

// StatWindow is one window of one rollout statistic.
type StatWindow struct {
	Kind    string `json:"kind"`
	Model   string `json:"model"`
	Version int    `json:"version"`
	// Against is the champion of a comparison (StatComparison).
	Against int `json:"against,omitempty"`
	// ID is the window's number, WindowNS its length: it covers
	// [ID×WindowNS, (ID+1)×WindowNS) since the Unix epoch.
	ID       int64  `json:"id"`
	WindowNS int64  `json:"window_ns"`
	Data     []byte `json:"data"`
}

// VersionCount is a version's counters on a node since it loaded it.
type VersionCount struct {
	Model        string `json:"model"`
	Version      int    `json:"version"`
	Served       uint64 `json:"served"`
	Failed       uint64 `json:"failed"`
	ShadowRuns   uint64 `json:"shadow_runs"`
	ShadowErrors uint64 `json:"shadow_errors"`
}

// EachVersionCount calls fn with every version's counters on this node
// (VersionCounts of every version it has served or mirrored).
func (s *Server) EachVersionCount(fn func(VersionCount)) {
	m := s.Metrics
	m.mu.Lock()
	keys := make([][2]string, 0, len(m.versions))
	for k := range m.versions {
		keys = append(keys, k)
	}
	m.mu.Unlock()
	for _, k := range keys {
		v, err := strconv.Atoi(k[1])
		if err != nil || v <= 0 {
			continue
		}
		c := VersionCount{Model: k[0], Version: v}
		c.Served, c.Failed, c.ShadowRuns, c.ShadowErrors = s.VersionCounts(k[0], v)
		fn(c)
	}
}

// EachStatWindow calls fn with every window of rollout statistics this
// node keeps that counted something: each version's perf windows, each
// evaluated version's and each compared pair's windows.
func (s *Server) EachStatWindow(fn func(StatWindow)) {
	m := s.Metrics
	m.mu.Lock()
	type vp struct {
		model   string
		version int
		p       *versionPerf
	}
	var perfs []vp
	for k, sm := range m.versions {
		if v, err := strconv.Atoi(k[1]); err == nil && v > 0 && sm.perf != nil {
			perfs = append(perfs, vp{k[0], v, sm.perf})
		}
	}
	m.mu.Unlock()
	for _, x := range perfs {
		for id, w := range x.p.windows() {
			fn(StatWindow{Kind: StatPerf, Model: x.model, Version: x.version, ID: id, WindowNS: x.p.win, Data: w.appendExport(nil)})
		}
	}
	s.shadows.mu.Lock()
	models := make(map[string]*modelShadow, len(s.shadows.models))
	for name, ms := range s.shadows.models {
		models[name] = ms
	}
	s.shadows.mu.Unlock()
	for name, ms := range models {
		if ev := ms.eval.Load(); ev != nil {
			cfg := ev.Config().Windows
			last := ev.WindowOf(time.Now())
			for _, vr := range ev.Versions() {
				for k := last - int64(cfg.Windows) + 1; k <= last; k++ {
					if e := ev.Window(vr.Version, k); e != nil {
						fn(StatWindow{Kind: StatEval, Model: name, Version: vr.Version, ID: k, WindowNS: int64(cfg.Window), Data: e.Export()})
					}
				}
			}
		}
		if cmp := ms.cmp.Load(); cmp != nil {
			cfg := cmp.Config().Windows
			last := cmp.WindowOf(time.Now())
			for _, p := range cmp.Pairs() {
				for k := last - int64(cfg.Windows) + 1; k <= last; k++ {
					if c := cmp.Window(p, k); c != nil {
						fn(StatWindow{Kind: StatComparison, Model: name, Version: p.Shadow, Against: p.Champion, ID: k, WindowNS: int64(cfg.Window), Data: c.Export()})
					}
				}
			}
		}
	}
}

// windows returns a copy of every window kept that counted something, the
// ring's and the shards' live ones merged by number.
func (p *versionPerf) windows() map[int64]*perfWindow {
	out := map[int64]*perfWindow{}
	add := func(id int64, w *perfWindow) {
		if w.lat.TotalCount() == 0 && w.scores == [ScoreBins]uint64{} {
			return
		}
		dst := out[id]
		if dst == nil {
			dst = &perfWindow{lat: newPerfLatency()}
			out[id] = dst
		}
		dst.merge(w)
	}
	p.mu.Lock()
	for i := range p.closed {
		if s := &p.closed[i]; s.w != nil {
			add(s.id, s.w)
		}
	}
	p.mu.Unlock()
	for i := range p.shards {
		sh := &p.shards[i]
		sh.mu.Lock()
		if sh.w.lat != nil {
			add(sh.id, &sh.w)
		}
		sh.mu.Unlock()
	}
	return out
}

// The perf export, version 1: "MGVP" 0x01, then the score bins and the
// latency histogram's counts (µs, as newPerfLatency makes it), each as a
// count of non-zero entries and a (gap, value) uvarint pair per entry.
const (
	perfMagic   = "MGVP"
	perfVersion = 1
)

// ErrCorruptStat: a pushed statistic's export does not decode.
var ErrCorruptStat = errors.New("gateway: corrupt statistic export")

func (w *perfWindow) appendExport(dst []byte) []byte {
	dst = append(dst, perfMagic...)
	dst = append(dst, perfVersion)
	dst = appendSparseCounts(dst, w.scores[:])
	counts := w.lat.Export().Counts
	u := make([]uint64, len(counts))
	for i, c := range counts {
		u[i] = uint64(max(c, 0))
	}
	return appendSparseCounts(dst, u)
}

func appendSparseCounts(dst []byte, counts []uint64) []byte {
	nz := 0
	for _, c := range counts {
		if c != 0 {
			nz++
		}
	}
	dst = binary.AppendUvarint(dst, uint64(nz))
	prev := -1
	for i, c := range counts {
		if c != 0 {
			dst = binary.AppendUvarint(dst, uint64(i-prev-1))
			dst = binary.AppendUvarint(dst, c)
			prev = i
		}
	}
	return dst
}

// readSparseCounts adds the entries written by appendSparseCounts into
// dst and returns the rest of b.
func readSparseCounts(b []byte, dst []uint64) ([]byte, error) {
	nz, n := binary.Uvarint(b)
	if n <= 0 || nz > uint64(len(dst)) {
		return nil, fmt.Errorf("%w: bad entry count", ErrCorruptStat)
	}
	b = b[n:]
	idx := -1
	for range nz {
		gap, n := binary.Uvarint(b)
		if n <= 0 || gap >= uint64(len(dst)-idx-1) {
			return nil, fmt.Errorf("%w: entry index out of range", ErrCorruptStat)
		}
		b = b[n:]
		c, n := binary.Uvarint(b)
		if n <= 0 || c == 0 || c > 1<<53 {
			return nil, fmt.Errorf("%w: bad count", ErrCorruptStat)
		}
		b = b[n:]
		idx += int(gap) + 1
		dst[idx] += c
	}
	return b, nil
}

// NewPerfLatency returns an empty latency histogram as versions keep them
// (µs, 1 µs to 60 s, two significant digits): what MergePerf adds into.
func NewPerfLatency() *hdrhistogram.Histogram { return newPerfLatency() }

// MergePerf adds a perf export (StatPerf's Data) into lat (from
// NewPerfLatency) and scores (ScoreBins long). Nothing is added when it
// returns an error; it never panics on bad input.
func MergePerf(lat *hdrhistogram.Histogram, scores []uint64, data []byte) error {
	if len(data) < len(perfMagic)+1 || string(data[:len(perfMagic)]) != perfMagic {
		return fmt.Errorf("%w: not a perf export (bad magic)", ErrCorruptStat)
	}
	if data[len(perfMagic)] != perfVersion {
		return fmt.Errorf("%w: perf export version %d, this build reads %d", ErrCorruptStat, data[len(perfMagic)], perfVersion)
	}
	if len(scores) != ScoreBins {
		return fmt.Errorf("gateway: %d score bins, want %d", len(scores), ScoreBins)
	}
	var sc [ScoreBins]uint64
	rest, err := readSparseCounts(data[len(perfMagic)+1:], sc[:])
	if err != nil {
		return err
	}
	counts := newPerfLatency().Export().Counts
	u := make([]uint64, len(counts))
	if rest, err = readSparseCounts(rest, u); err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d bytes after the end", ErrCorruptStat, len(rest))
	}
	for i, c := range u {
		counts[i] = int64(c)
	}
	h := hdrhistogram.Import(&hdrhistogram.Snapshot{
		LowestTrackableValue: perfLatencyLowest, HighestTrackableValue: perfLatencyHighest,
		SignificantFigures: perfLatencyDigits, Counts: counts,
	})
	lat.Merge(h)
	for i, c := range sc {
		scores[i] += c
	}
	return nil
}

// CheckStatWindow decodes a pushed window to check it, as the leader does
// before keeping it.
func CheckStatWindow(w *StatWindow) error {
	switch w.Kind {
	case StatPerf:
		return MergePerf(newPerfLatency(), make([]uint64, ScoreBins), w.Data)
	case StatEval:
		_, err := shadow.ImportEvaluation(w.Data)
		return err
	case StatComparison:
		_, err := shadow.ImportComparison(w.Data)
		return err
	}
	return fmt.Errorf("%w: unknown kind %q", ErrCorruptStat, w.Kind)
}
