package shadow

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Latency histograms: microseconds from 1 µs to 60 s at 2 significant
// digits (1% resolution, about 20 KB each). Fixed, so every node's
// histograms merge.
const (
	latencyLowest  = 1
	latencyHighest = 60_000_000
	latencyDigits  = 2
)

func newLatency() *hdrhistogram.Histogram {
	return hdrhistogram.New(latencyLowest, latencyHighest, latencyDigits)
}

// latencyCounts is the length of a latency histogram's counts.
var latencyCounts = len(newLatency().Export().Counts)

// Agreement is the 2×2 table of decisions at the policy threshold (a row is
// positive when its score is at or above the threshold).
type Agreement struct {
	BothPositive uint64 `json:"both_positive"`
	ChampionOnly uint64 `json:"champion_only"`
	ShadowOnly   uint64 `json:"shadow_only"`
	BothNegative uint64 `json:"both_negative"`
}

// Total is the number of rows in the table.
func (a Agreement) Total() uint64 {
	return a.BothPositive + a.ChampionOnly + a.ShadowOnly + a.BothNegative
}

// Rate is the share of rows on which both decided alike (0 when empty).
func (a Agreement) Rate() float64 {
	n := a.Total()
	if n == 0 {
		return 0
	}
	return float64(a.BothPositive+a.BothNegative) / float64(n)
}

// Comparison is what one champion/shadow pair did over one window (or the
// merge of several windows or nodes): the distribution of per-row score
// differences (shadow − champion), decision agreement at the threshold,
// both latencies and the shadow's failures. Merge adds; Export/Import carry
// it between nodes. It is not safe for concurrent use (Comparisons
// serialises access).
type Comparison struct {
	threshold float64
	// Runs counts the mirrored requests that reached the shadow (failed
	// runs included); Errors the runs that failed (an error or a panic);
	// Unscored the successful runs whose outputs could not be compared with
	// the champion's (see ErrScore).
	Runs, Errors, Unscored uint64
	// Diff is the distribution of per-row differences, shadow − champion.
	Diff *DiffSketch
	// Agreement is the decision table of the same rows.
	Agreement Agreement
	// ChampionLatency and ShadowLatency are per request, in microseconds.
	ChampionLatency, ShadowLatency *hdrhistogram.Histogram
}

// NewComparison returns an empty comparison that decides at threshold.
func NewComparison(threshold float64) *Comparison {
	return &Comparison{
		threshold:       threshold,
		Diff:            NewDiffSketch(),
		ChampionLatency: newLatency(),
		ShadowLatency:   newLatency(),
	}
}

// Threshold is the decision threshold the agreement table was counted at.
func (c *Comparison) Threshold() float64 { return c.threshold }

// Reset empties c, keeping its memory and threshold.
func (c *Comparison) Reset() {
	c.Runs, c.Errors, c.Unscored = 0, 0, 0
	c.Diff.Reset()
	c.Agreement = Agreement{}
	c.ChampionLatency.Reset()
	c.ShadowLatency.Reset()
}

// RecordRow counts one row scored by both. NaN or infinite scores are
// refused with ErrOutOfRange and nothing is counted. It does not allocate.
func (c *Comparison) RecordRow(champion, shadow float64) error {
	if err := c.Diff.Record(shadow - champion); err != nil {
		return err
	}
	switch cp, sp := champion >= c.threshold, shadow >= c.threshold; {
	case cp && sp:
		c.Agreement.BothPositive++
	case cp:
		c.Agreement.ChampionOnly++
	case sp:
		c.Agreement.ShadowOnly++
	default:
		c.Agreement.BothNegative++
	}
	return nil
}

// RecordRun counts one shadow run: its latency and the champion's on the
// same request, and whether it failed. Latencies are clamped into the
// histograms' range [1 µs, 60 s]; a negative one is refused with
// ErrOutOfRange.
func (c *Comparison) RecordRun(champion, shadow time.Duration, failed bool) error {
	if champion < 0 || shadow < 0 {
		return ErrOutOfRange
	}
	c.Runs++
	if failed {
		c.Errors++
	}
	_ = c.ChampionLatency.RecordValue(clampMicros(champion))
	_ = c.ShadowLatency.RecordValue(clampMicros(shadow))
	return nil
}

func clampMicros(d time.Duration) int64 {
	return min(max(d.Microseconds(), latencyLowest), latencyHighest)
}

// Merge adds o into c. Both must decide at the same threshold
// (ErrMismatch otherwise).
func (c *Comparison) Merge(o *Comparison) error {
	if c.threshold != o.threshold {
		return fmt.Errorf("%w: thresholds %v and %v", ErrMismatch, c.threshold, o.threshold)
	}
	c.Runs += o.Runs
	c.Errors += o.Errors
	c.Unscored += o.Unscored
	c.Diff.Merge(o.Diff)
	c.Agreement.BothPositive += o.Agreement.BothPositive
	c.Agreement.ChampionOnly += o.Agreement.ChampionOnly
	c.Agreement.ShadowOnly += o.Agreement.ShadowOnly
	c.Agreement.BothNegative += o.Agreement.BothNegative
	c.ChampionLatency.Merge(o.ChampionLatency)
	c.ShadowLatency.Merge(o.ShadowLatency)
	return nil
}

// Clone returns a deep copy.
func (c *Comparison) Clone() *Comparison {
	d := NewComparison(c.threshold)
	_ = d.Merge(c)
	return d
}

// ComparisonSummary is a Comparison in numbers, for reports and JSON.
type ComparisonSummary struct {
	Threshold     float64   `json:"threshold"`
	Runs          uint64    `json:"runs"`
	Errors        uint64    `json:"errors"`
	Unscored      uint64    `json:"unscored"`
	ErrorRate     float64   `json:"error_rate"`
	Rows          uint64    `json:"rows"`
	MeanDiff      float64   `json:"mean_diff"`
	StdDevDiff    float64   `json:"stddev_diff"`
	MinDiff       float64   `json:"min_diff"`
	MaxDiff       float64   `json:"max_diff"`
	Quantiles     []float64 `json:"quantiles"`      // at SummaryQuantiles
	DiffQuantiles []float64 `json:"diff_quantiles"` // within 1% relative error
	Agreement     Agreement `json:"agreement"`
	AgreementRate float64   `json:"agreement_rate"`
	ChampionP50us int64     `json:"champion_p50_us"`
	ChampionP99us int64     `json:"champion_p99_us"`
	ShadowP50us   int64     `json:"shadow_p50_us"`
	ShadowP99us   int64     `json:"shadow_p99_us"`
}

// SummaryQuantiles are the difference quantiles a summary reports.
var SummaryQuantiles = []float64{0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99}

// Summary computes the headline numbers.
func (c *Comparison) Summary() ComparisonSummary {
	s := ComparisonSummary{
		Threshold: c.threshold, Runs: c.Runs, Errors: c.Errors, Unscored: c.Unscored,
		Rows: c.Diff.Count(), MeanDiff: c.Diff.Mean(), StdDevDiff: c.Diff.StdDev(),
		MinDiff: c.Diff.Min(), MaxDiff: c.Diff.Max(),
		Quantiles: SummaryQuantiles, Agreement: c.Agreement, AgreementRate: c.Agreement.Rate(),
		ChampionP50us: c.ChampionLatency.ValueAtQuantile(50),
		ChampionP99us: c.ChampionLatency.ValueAtQuantile(99),
		ShadowP50us:   c.ShadowLatency.ValueAtQuantile(50),
		ShadowP99us:   c.ShadowLatency.ValueAtQuantile(99),
	}
	if c.Runs > 0 {
		s.ErrorRate = float64(c.Errors) / float64(c.Runs)
	}
	for _, q := range SummaryQuantiles {
		s.DiffQuantiles = append(s.DiffQuantiles, c.Diff.Quantile(q))
	}
	return s
}

const comparisonMagic = "MGSC"

// Export returns c in the binary form ImportComparison reads.
func (c *Comparison) Export() []byte { return c.AppendExport(nil) }

// AppendExport appends c's export to dst. The body, after the framing in
// encode.go:
//
//	threshold      8 bytes
//	runs, errors, unscored                   uvarint each
//	both+, champion-only, shadow-only, both− uvarint each
//	difference sketch: sum, sum of squares, min, max (8 bytes each), sparse buckets
//	champion latency, shadow latency: sparse counts
func (c *Comparison) AppendExport(dst []byte) []byte {
	dst = append(dst, comparisonMagic...)
	dst = append(dst, exportVersion)
	dst = appendF64(dst, c.threshold)
	for _, v := range []uint64{c.Runs, c.Errors, c.Unscored,
		c.Agreement.BothPositive, c.Agreement.ChampionOnly, c.Agreement.ShadowOnly, c.Agreement.BothNegative} {
		dst = binary.AppendUvarint(dst, v)
	}
	dst = c.Diff.appendTo(dst)
	dst = appendLatency(dst, c.ChampionLatency)
	return appendLatency(dst, c.ShadowLatency)
}

func appendLatency(dst []byte, h *hdrhistogram.Histogram) []byte {
	counts := h.Export().Counts
	u := make([]uint64, len(counts))
	for i, v := range counts {
		u[i] = uint64(v)
	}
	return appendSparse(dst, u)
}

func (r *reader) latency(what string) *hdrhistogram.Histogram {
	u := make([]uint64, latencyCounts)
	r.sparse(what, u)
	if r.err != nil {
		return nil
	}
	counts := make([]int64, len(u))
	for i, v := range u {
		counts[i] = int64(v) // at most 2^53: sparse checked
	}
	return hdrhistogram.Import(&hdrhistogram.Snapshot{
		LowestTrackableValue: latencyLowest, HighestTrackableValue: latencyHighest,
		SignificantFigures: latencyDigits, Counts: counts,
	})
}

// ImportComparison decodes an export. It returns an ErrCorrupt error for
// anything that is not a valid export and never panics on bad input.
func ImportComparison(data []byte) (*Comparison, error) {
	r := &reader{b: data}
	r.header(comparisonMagic)
	th := r.f64("threshold")
	c := NewComparison(th)
	c.Runs = r.count("runs")
	c.Errors = r.count("errors")
	c.Unscored = r.count("unscored")
	c.Agreement.BothPositive = r.count("both-positive")
	c.Agreement.ChampionOnly = r.count("champion-only")
	c.Agreement.ShadowOnly = r.count("shadow-only")
	c.Agreement.BothNegative = r.count("both-negative")
	c.Diff.readFrom(r)
	c.ChampionLatency = r.latency("champion latency")
	c.ShadowLatency = r.latency("shadow latency")
	r.end()
	if r.err != nil {
		return nil, r.err
	}
	switch {
	case c.Errors+c.Unscored > c.Runs:
		return nil, corrupt("%d errors and %d unscored of %d runs", c.Errors, c.Unscored, c.Runs)
	case c.Agreement.Total() != c.Diff.Count():
		return nil, corrupt("agreement table holds %d rows, the differences %d", c.Agreement.Total(), c.Diff.Count())
	case uint64(c.ChampionLatency.TotalCount()) != c.Runs || uint64(c.ShadowLatency.TotalCount()) != c.Runs:
		return nil, corrupt("latency counts (%d, %d) differ from runs %d",
			c.ChampionLatency.TotalCount(), c.ShadowLatency.TotalCount(), c.Runs)
	case math.Abs(c.Diff.Mean()) > diffMaxMean(c.Diff):
		return nil, corrupt("mean difference %v outside [min, max]", c.Diff.Mean())
	}
	return c, nil
}

// diffMaxMean bounds |mean| by the extremes (with rounding slack).
func diffMaxMean(s *DiffSketch) float64 {
	return max(math.Abs(s.min), math.Abs(s.max))*(1+1e-9) + 1e-300
}
