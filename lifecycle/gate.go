package lifecycle

import (
	"math"
	"strconv"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/modelgate/modelgate/registry"
	"github.com/modelgate/modelgate/shadow"
)

// Evidence is what the rollout gates read for one decision: the candidate
// and the version it is judged against, each over the same period (the
// rollout so far; for a champion in its watch, its time as champion against
// its predecessor's last period as champion). Every count is cumulative
// over that period: the tests are sequential, so the controller may hand
// in a new snapshot every window.
type Evidence struct {
	Candidate Arm `json:"candidate"`
	// Champion is the champion's numbers; in the watch after a promotion,
	// the predecessor's (the warm standby a rollback returns to).
	Champion Arm `json:"champion"`
}

// Arm is one version's numbers.
type Arm struct {
	Version int `json:"version"`
	// Requests it answered (in shadow: ran), and how many of those failed.
	Requests uint64 `json:"requests"`
	Errors   uint64 `json:"errors"`
	// Latency is its latencies in microseconds (shadow's histograms:
	// Comparison.ChampionLatency, ShadowLatency); nil when not measured.
	Latency *hdrhistogram.Histogram `json:"-"`
	// P99Micros is Latency's p99, which Decide fills in for the record.
	P99Micros int64 `json:"p99_us,omitempty"`
	// Scores counts its scores in equal-width bins over [0, 1]; the two
	// arms' must have the same number of bins. Empty when not measured.
	Scores []uint64 `json:"-"`
	// Labels is its online evaluation (LabelsFromMetrics).
	Labels LabelStats `json:"labels"`
}

// SetShadowRuns fills the request numbers of a shadow step from the
// champion/shadow pair's comparison: the candidate's runs, failures and
// latencies, and the champion's latencies on the same requests. (Labels
// come from the evaluation; score histograms from the versions' own
// windows, the shadow's filled by its runs.)
func (ev *Evidence) SetShadowRuns(c *shadow.Comparison) {
	ev.Candidate.Requests, ev.Candidate.Errors = c.Runs, c.Errors
	ev.Candidate.Latency, ev.Champion.Latency = c.ShadowLatency, c.ChampionLatency
	ev.Champion.Requests = max(ev.Champion.Requests, c.Runs)
}

// LabelStats are the sufficient statistics of a version's label metrics:
// the confusion counts at the threshold, from which precision, recall and
// F1 and their variances follow exactly, and the means and standard
// errors of the metrics that are not ratios of counts.
type LabelStats struct {
	N             uint64  `json:"labelled"`
	TP            uint64  `json:"tp"`
	FP            uint64  `json:"fp"`
	FN            uint64  `json:"fn"`
	TN            uint64  `json:"tn"`
	AUC           float64 `json:"auc"`
	AUCStdErr     float64 `json:"auc_std_err"`
	LogLoss       float64 `json:"log_loss"`
	LogLossStdErr float64 `json:"log_loss_std_err"`
	Brier         float64 `json:"brier"`
	BrierStdErr   float64 `json:"brier_std_err"`
}

// LabelsFromMetrics takes a version's sufficient statistics from its
// shadow evaluation (Evaluation.Metrics at any confidence). shadow's
// intervals for AUC, log-loss and Brier are estimate ± z·se clamped to the
// metric's range, so the side that was not clamped gives se back exactly.
func LabelsFromMetrics(m shadow.Metrics) LabelStats {
	z := math.Sqrt2 * math.Erfinv(m.Confidence)
	se := func(v float64, ci shadow.Interval) float64 {
		if !(z > 0) {
			return 0
		}
		return math.Max(ci.High-v, v-ci.Low) / z
	}
	return LabelStats{
		N: m.Labelled, TP: m.TP, FP: m.FP, FN: m.FN, TN: m.TN,
		AUC: m.AUC, AUCStdErr: se(m.AUC, m.AUCCI),
		LogLoss: m.LogLoss, LogLossStdErr: se(m.LogLoss, m.LogLossCI),
		Brier: m.Brier, BrierStdErr: se(m.Brier, m.BrierCI),
	}
}

// minMetricCount is the least number of rows in a metric's denominator
// (positives for recall, positive decisions for precision, labelled rows
// otherwise) before a label test judges it: below it the normal
// approximation the tests rest on is not yet sound.
const minMetricCount = 30

// MetricValue is a label metric's estimate and variance for one version,
// and the count it rests on.
type MetricValue struct {
	Value    float64 `json:"value"`
	Variance float64 `json:"variance"`
	Count    uint64  `json:"count"`
}

// Metric computes m from the statistics. Ratios of counts get their
// delta-method variance, with the share smoothed by one success and one
// failure so that a perfect small sample does not claim zero variance.
func (s LabelStats) Metric(m registry.Metric) MetricValue {
	ratio := func(k, n uint64) MetricValue {
		if n == 0 {
			return MetricValue{}
		}
		p := float64(k) / float64(n)
		ps := (float64(k) + 1) / (float64(n) + 2)
		return MetricValue{Value: p, Variance: ps * (1 - ps) / float64(n), Count: n}
	}
	mean := func(v, se float64) MetricValue {
		return MetricValue{Value: v, Variance: se * se, Count: s.N}
	}
	switch m {
	case registry.MetricRecall:
		return ratio(s.TP, s.TP+s.FN)
	case registry.MetricPrecision:
		return ratio(s.TP, s.TP+s.FP)
	case registry.MetricF1:
		// F1 = Σa/Σb with a = 2·[TP], b = 2·[TP] + [FP] + [FN] per row:
		// a ratio estimator, Var ≈ Σ(a − F·b)² / (Σb)².
		b := float64(2*s.TP + s.FP + s.FN)
		if b == 0 {
			return MetricValue{}
		}
		f := 2 * float64(s.TP) / b
		fs := (2*float64(s.TP) + 1) / (b + 2)
		v := (float64(s.TP)*(2-2*fs)*(2-2*fs) + float64(s.FP+s.FN)*fs*fs) / (b * b)
		return MetricValue{Value: f, Variance: v, Count: s.TP + s.FP + s.FN}
	case registry.MetricAUC:
		return mean(s.AUC, s.AUCStdErr)
	case registry.MetricLogLoss:
		return mean(s.LogLoss, s.LogLossStdErr)
	case registry.MetricBrier:
		return mean(s.Brier, s.BrierStdErr)
	}
	return MetricValue{}
}

// Gain is the candidate's advantage on m: candidate minus champion, the
// sign flipped where lower is better, with the variance of the difference
// (the arms' variances added: independent for a canary, and an upper bound
// for a shadow's paired rows, whose errors go together). ok is false while
// either arm lacks minMetricCount rows.
func Gain(m registry.Metric, candidate, champion LabelStats) (gain, variance float64, ok bool) {
	c, h := candidate.Metric(m), champion.Metric(m)
	if c.Count < minMetricCount || h.Count < minMetricCount || !(c.Variance+h.Variance > 0) {
		return 0, 0, false
	}
	gain = c.Value - h.Value
	if !m.HigherIsBetter() {
		gain = -gain
	}
	return gain, c.Variance + h.Variance, true
}

// The names of the checks a Decision lists.
const (
	CheckErrorRate       = "error_rate"
	CheckP99Ratio        = "p99_ratio"
	CheckScoreShift      = "score_shift"
	CheckLabelRegression = "label_regression"
	CheckMinDuration     = "min_duration"
	CheckMinSamples      = "min_samples"
	CheckPromotionTest   = "promotion_test"
	CheckBudget          = "budget"
)

// The states of a Check.
const (
	StatusPass      = "pass"       // a gate met, or a trigger judged and quiet
	StatusWait      = "wait"       // a gate not met yet
	StatusFired     = "fired"      // a rollback trigger fired, or the budget is spent
	StatusNotJudged = "not_judged" // too little data, or not measured
	StatusDisabled  = "disabled"   // off in the policy, or not judged on this step
)

// Check is one gate or trigger with its numbers, as it stood at a decision.
type Check struct {
	Name   string  `json:"name"`
	Status string  `json:"status"`
	Value  float64 `json:"value"`
	// Limit is the policy's threshold for Value.
	Limit  float64     `json:"limit"`
	Test   *TestResult `json:"test,omitempty"`
	Detail string      `json:"detail,omitempty"`
}

// p99Share is the share of requests above a p99: the exceedance null of
// the latency trigger.
const p99Share = 0.01

// minChampionLatencies is the least number of champion latencies whose
// p99 the latency trigger will compare against.
const minChampionLatencies = 1000

// triggers judges the rollback triggers; shadow says the candidate runs on
// shadow workers, whose latency says nothing about serving.
func triggers(rp *registry.RolloutPolicy, ev *Evidence, shadowStep bool) []Check {
	t := &rp.Triggers
	alpha := 1 - rp.Confidence
	c, h := &ev.Candidate, &ev.Champion
	out := make([]Check, 0, 4)

	errs := Check{Name: CheckErrorRate, Limit: t.MaxErrorRate, Status: StatusDisabled}
	if c.Requests > 0 {
		errs.Value = float64(c.Errors) / float64(c.Requests)
	}
	if t.MaxErrorRate > 0 {
		r := Exceedance(c.Errors, c.Requests, t.MaxErrorRate, alpha)
		errs.Test, errs.Status = &r, status(r.Rejected, c.Requests > 0)
		errs.Detail = strconv.FormatUint(c.Errors, 10) + " of " + strconv.FormatUint(c.Requests, 10) + " requests failed"
	}
	out = append(out, errs)

	lat := Check{Name: CheckP99Ratio, Limit: t.MaxP99Ratio, Status: StatusDisabled}
	switch {
	case t.MaxP99Ratio == 0:
	case shadowStep:
		lat.Detail = "not judged in shadow: shadow copies run on background threads"
	case c.Latency == nil || h.Latency == nil || h.Latency.TotalCount() < minChampionLatencies:
		lat.Status, lat.Detail = StatusNotJudged, "fewer than "+strconv.Itoa(minChampionLatencies)+" champion latencies"
	case c.Requests < uint64(t.MinRequests):
		lat.Status, lat.Detail = StatusNotJudged, "fewer than min_requests candidate requests"
	default:
		hp := h.Latency.ValueAtQuantile(99)
		limit := int64(math.Ceil(t.MaxP99Ratio * float64(hp)))
		slow, n := countAbove(c.Latency, limit)
		if hp > 0 {
			lat.Value = float64(c.Latency.ValueAtQuantile(99)) / float64(hp)
		}
		r := Exceedance(slow, n, p99Share, alpha)
		lat.Test, lat.Status = &r, status(r.Rejected, true)
		lat.Detail = strconv.FormatUint(slow, 10) + " of " + strconv.FormatUint(n, 10) + " requests slower than " +
			strconv.FormatInt(limit, 10) + "µs (" + strconv.FormatFloat(t.MaxP99Ratio, 'g', -1, 64) + "× the champion's p99 of " + strconv.FormatInt(hp, 10) + "µs)"
	}
	out = append(out, lat)

	shift := Check{Name: CheckScoreShift, Limit: t.MaxScoreShift, Status: StatusDisabled}
	switch {
	case t.MaxScoreShift == 0:
	case len(c.Scores) == 0 || len(c.Scores) != len(h.Scores):
		shift.Status, shift.Detail = StatusNotJudged, "no score histograms of equal bins for both versions"
	default:
		psi, nc, nh := PSI(c.Scores, h.Scores)
		shift.Value = psi
		if nc < uint64(t.MinRequests) || nc == 0 || nh == 0 {
			shift.Status, shift.Detail = StatusNotJudged, "fewer than min_requests candidate scores"
		} else {
			shift.Status = status(psi > t.MaxScoreShift, true)
			shift.Detail = "PSI of " + strconv.FormatUint(nc, 10) + " candidate scores against " + strconv.FormatUint(nh, 10) + " champion scores"
		}
	}
	out = append(out, shift)

	reg := Check{Name: CheckLabelRegression, Status: StatusDisabled}
	if tol := t.MaxLabelRegression; tol != nil {
		reg.Limit = -*tol
		gain, v, ok := Gain(rp.Metric, c.Labels, h.Labels)
		reg.Value = gain
		if !ok {
			reg.Status, reg.Detail = StatusNotJudged, "fewer than "+strconv.Itoa(minMetricCount)+" rows behind "+string(rp.Metric)+" for a version"
		} else {
			r := Regression(gain, v, *tol, rp.MinEffect, alpha)
			reg.Test, reg.Status = &r, status(r.Rejected, true)
			reg.Detail = string(rp.Metric) + " gain over the champion (negative: worse)"
		}
	}
	out = append(out, reg)
	return out
}

func status(fired, judged bool) string {
	switch {
	case !judged:
		return StatusNotJudged
	case fired:
		return StatusFired
	}
	return StatusPass
}

// countAbove returns how many values of h are above limit, and its total.
func countAbove(h *hdrhistogram.Histogram, limit int64) (above, total uint64) {
	for _, b := range h.Distribution() {
		total += uint64(b.Count)
		// A bar holds values equivalent to From..To; count it above when
		// its values are, which errs by at most the histogram's precision.
		if b.From > limit {
			above += uint64(b.Count)
		}
	}
	return above, total
}

// PSI is the population stability index of histogram a against b (equal
// bins), each bin's share smoothed by half a count so that an empty bin
// does not make it infinite, with the two totals.
func PSI(a, b []uint64) (psi float64, na, nb uint64) {
	for i := range a {
		na += a[i]
		nb += b[i]
	}
	if na == 0 || nb == 0 || len(a) != len(b) {
		return 0, na, nb
	}
	k := float64(len(a))
	for i := range a {
		p := (float64(a[i]) + 0.5) / (float64(na) + 0.5*k)
		q := (float64(b[i]) + 0.5) / (float64(nb) + 0.5*k)
		psi += (p - q) * math.Log(p/q)
	}
	return psi, na, nb
}
