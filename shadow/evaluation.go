package shadow

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Task is what a model's score means.
type Task uint8

// Tasks.
const (
	// Binary: the score is P(positive) in [0, 1], the label 0 or 1; a row
	// is decided positive when its score is at or above the threshold.
	Binary Task = 1
	// Regression: the score predicts the label, any finite number.
	Regression Task = 2
)

// String names the task as policies spell it.
func (t Task) String() string {
	switch t {
	case Binary:
		return "binary"
	case Regression:
		return "regression"
	}
	return fmt.Sprintf("task(%d)", uint8(t))
}

// Defaults of EvalConfig's zero values.
const (
	DefaultBins            = 1000
	DefaultCalibrationBins = 10
	maxBins                = 10000
	maxCalibrationBins     = 100
	// logLossEps clips probabilities as scikit-learn does, so a confident
	// wrong answer costs ln(1e15) ≈ 34.5 rather than infinity.
	logLossEps = 1e-15
)

// EvalConfig configures evaluation. Zero values mean the defaults.
type EvalConfig struct {
	// Task is Binary (the default) or Regression.
	Task Task
	// Threshold decides a binary row (DefaultThreshold when 0).
	Threshold float64
	// Bins is the resolution of the per-class score histograms AUC is
	// computed from (DefaultBins, at most 10000). AUC counts two scores in
	// one bin as a tie, so it is off from the exact pairwise AUC by at most
	// half the share of positive/negative pairs that share a bin: with
	// 1000 bins and scores spread over [0, 1], well under 0.005.
	Bins int
	// CalibrationBins is the number of equal-width calibration bins
	// (DefaultCalibrationBins, at most 100). It must divide Bins: a
	// calibration bin is a run of histogram bins, so its counts come from
	// the histograms and always agree with them.
	CalibrationBins int
	// Windows cuts evaluation into tumbling windows by prediction time.
	Windows WindowConfig
}

func (c EvalConfig) withDefaults() EvalConfig {
	if c.Task == 0 {
		c.Task = Binary
	}
	if c.Threshold == 0 {
		c.Threshold = DefaultThreshold
	}
	if c.Bins == 0 {
		c.Bins = DefaultBins
	}
	if c.CalibrationBins == 0 {
		c.CalibrationBins = DefaultCalibrationBins
	}
	c.Windows = c.Windows.withDefaults()
	return c
}

// Validate returns an ErrInvalidConfig error naming the first bad field.
func (c EvalConfig) Validate() error {
	d := c.withDefaults()
	switch {
	case d.Task != Binary && d.Task != Regression:
		return configErr("task", c.Task, "must be binary or regression")
	case math.IsNaN(d.Threshold) || d.Threshold < 0 || d.Threshold > 1:
		return configErr("threshold", c.Threshold, "must be in [0, 1] (a probability)")
	case d.Bins < 2 || d.Bins > maxBins:
		return configErr("bins", c.Bins, "must be in [2, 10000]")
	case d.CalibrationBins < 1 || d.CalibrationBins > maxCalibrationBins:
		return configErr("calibration_bins", c.CalibrationBins, "must be in [1, 100]")
	case d.Bins%d.CalibrationBins != 0:
		return configErr("calibration_bins", c.CalibrationBins, fmt.Sprintf("must divide bins (%d)", d.Bins))
	}
	return c.Windows.Validate()
}

// Evaluation is one version's labelled predictions over one window (or
// the merge of windows or nodes): for Binary, the confusion counts at the
// threshold, log-loss and Brier sums, per-class score histograms (AUC) and
// calibration bins; for Regression, absolute and squared error sums. Every
// part is a sum, so Merge adds and Export/Import carry it between nodes.
// Not safe for concurrent use (Evaluator serialises access).
type Evaluation struct {
	task      Task
	threshold float64

	// N is the number of labelled predictions counted.
	N uint64
	// Confusion counts at the threshold (Binary).
	TP, FP, FN, TN uint64

	// Sums of per-row values and of their squares, for means and their
	// normal-approximation intervals.
	logLoss, logLossSq float64
	brier, brierSq     float64
	absErr, sqErr      float64 // Regression
	sqErrSq            float64 // Σ e⁴, for RMSE's interval

	pos, neg []uint64  // score histograms by class (Binary)
	calSum   []float64 // sum of scores per calibration bin
}

// NewEvaluation returns an empty evaluation.
func NewEvaluation(cfg EvalConfig) (*Evaluation, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return newEvaluation(cfg.withDefaults()), nil
}

func newEvaluation(cfg EvalConfig) *Evaluation {
	e := &Evaluation{task: cfg.Task, threshold: cfg.Threshold}
	if cfg.Task == Binary {
		e.pos = make([]uint64, cfg.Bins)
		e.neg = make([]uint64, cfg.Bins)
		e.calSum = make([]float64, cfg.CalibrationBins)
	}
	return e
}

// Task is what the evaluation counts.
func (e *Evaluation) Task() Task { return e.task }

// Threshold is the binary decision threshold.
func (e *Evaluation) Threshold() float64 { return e.threshold }

// Bins is the score histograms' resolution (0 for Regression).
func (e *Evaluation) Bins() int { return len(e.pos) }

// Reset empties e, keeping its memory and settings.
func (e *Evaluation) Reset() {
	*e = Evaluation{task: e.task, threshold: e.threshold, pos: e.pos, neg: e.neg, calSum: e.calSum}
	clear(e.pos)
	clear(e.neg)
	clear(e.calSum)
}

func binOf(score float64, n int) int { return min(int(score*float64(n)), n-1) }

// Add counts one labelled prediction. For Binary, score must be in [0, 1]
// and label 0 or 1; for Regression both finite. Otherwise it returns
// ErrOutOfRange and counts nothing. It does not allocate.
func (e *Evaluation) Add(score, label float64) error {
	if math.IsNaN(score) || math.IsInf(score, 0) || math.IsNaN(label) || math.IsInf(label, 0) {
		return ErrOutOfRange
	}
	if e.task == Regression {
		d := score - label
		e.N++
		e.absErr += math.Abs(d)
		e.sqErr += d * d
		e.sqErrSq += d * d * d * d
		return nil
	}
	if score < 0 || score > 1 || (label != 0 && label != 1) {
		return ErrOutOfRange
	}
	positive := label == 1
	decided := score >= e.threshold
	switch {
	case decided && positive:
		e.TP++
	case decided:
		e.FP++
	case positive:
		e.FN++
	default:
		e.TN++
	}
	e.N++
	p := min(max(score, logLossEps), 1-logLossEps)
	var ll float64
	if positive {
		ll = -math.Log(p)
	} else {
		ll = -math.Log(1 - p)
	}
	e.logLoss += ll
	e.logLossSq += ll * ll
	b := (score - label) * (score - label)
	e.brier += b
	e.brierSq += b * b
	fb := binOf(score, len(e.pos))
	e.calSum[fb/(len(e.pos)/len(e.calSum))] += score
	if positive {
		e.pos[fb]++
	} else {
		e.neg[fb]++
	}
	return nil
}

func (e *Evaluation) sameSettings(o *Evaluation) error {
	if e.task != o.task || e.threshold != o.threshold || len(e.pos) != len(o.pos) || len(e.calSum) != len(o.calSum) {
		return fmt.Errorf("%w: %s at %v with %d bins and %d calibration bins vs %s at %v with %d and %d",
			ErrMismatch, e.task, e.threshold, len(e.pos), len(e.calSum), o.task, o.threshold, len(o.pos), len(o.calSum))
	}
	return nil
}

// Merge adds o into e; both must have the same settings (ErrMismatch).
func (e *Evaluation) Merge(o *Evaluation) error {
	if err := e.sameSettings(o); err != nil {
		return err
	}
	e.N += o.N
	e.TP += o.TP
	e.FP += o.FP
	e.FN += o.FN
	e.TN += o.TN
	e.logLoss += o.logLoss
	e.logLossSq += o.logLossSq
	e.brier += o.brier
	e.brierSq += o.brierSq
	e.absErr += o.absErr
	e.sqErr += o.sqErr
	e.sqErrSq += o.sqErrSq
	for i := range e.pos {
		e.pos[i] += o.pos[i]
		e.neg[i] += o.neg[i]
	}
	for i := range e.calSum {
		e.calSum[i] += o.calSum[i]
	}
	return nil
}

// Clone returns a deep copy.
func (e *Evaluation) Clone() *Evaluation {
	d := &Evaluation{task: e.task, threshold: e.threshold}
	if e.pos != nil {
		d.pos = make([]uint64, len(e.pos))
		d.neg = make([]uint64, len(e.neg))
		d.calSum = make([]float64, len(e.calSum))
	}
	_ = d.Merge(e)
	return d
}

const evaluationMagic = "MGSE"

// Export returns e in the binary form ImportEvaluation reads.
func (e *Evaluation) Export() []byte { return e.AppendExport(nil) }

// AppendExport appends e's export to dst. The body, after the framing in
// encode.go:
//
//	task           1 byte
//	threshold      8 bytes
//	bins, calibration bins               uvarint each (0 for Regression)
//	n, tp, fp, fn, tn                    uvarint each
//	log-loss, its squares, brier, its squares, |e|, e², e⁴   8 bytes each
//	positive and negative histograms     sparse
//	calibration score sums               8 bytes each
func (e *Evaluation) AppendExport(dst []byte) []byte {
	dst = append(dst, evaluationMagic...)
	dst = append(dst, exportVersion, byte(e.task))
	dst = appendF64(dst, e.threshold)
	dst = binary.AppendUvarint(dst, uint64(len(e.pos)))
	dst = binary.AppendUvarint(dst, uint64(len(e.calSum)))
	for _, v := range []uint64{e.N, e.TP, e.FP, e.FN, e.TN} {
		dst = binary.AppendUvarint(dst, v)
	}
	for _, v := range []float64{e.logLoss, e.logLossSq, e.brier, e.brierSq, e.absErr, e.sqErr, e.sqErrSq} {
		dst = appendF64(dst, v)
	}
	dst = appendSparse(dst, e.pos)
	dst = appendSparse(dst, e.neg)
	for _, v := range e.calSum {
		dst = appendF64(dst, v)
	}
	return dst
}

// ImportEvaluation decodes an export. It returns an ErrCorrupt error for
// anything that is not a valid export and never panics on bad input.
func ImportEvaluation(data []byte) (*Evaluation, error) {
	r := &reader{b: data}
	r.header(evaluationMagic)
	var task Task
	if r.err == nil {
		if len(r.b) == 0 {
			r.err = corrupt("truncated task")
		} else {
			task, r.b = Task(r.b[0]), r.b[1:]
		}
	}
	th := r.f64("threshold")
	bins := r.uvarint("bins")
	cal := r.uvarint("calibration bins")
	if r.err != nil {
		return nil, r.err
	}
	cfg := EvalConfig{Task: task, Threshold: th, Bins: int(min(bins, maxBins+1)), CalibrationBins: int(min(cal, maxCalibrationBins+1))}
	if task == Regression {
		if bins != 0 || cal != 0 {
			return nil, corrupt("a regression evaluation with %d bins", bins)
		}
		cfg.Bins, cfg.CalibrationBins = 0, 0
	}
	if (task != Binary && task != Regression) || th == 0 || cfg.Validate() != nil || (task == Binary && (bins == 0 || cal == 0)) {
		return nil, corrupt("invalid settings: task %d, threshold %v, %d bins, %d calibration bins", task, th, bins, cal)
	}
	e := newEvaluation(cfg.withDefaults())
	e.N = r.count("n")
	e.TP = r.count("tp")
	e.FP = r.count("fp")
	e.FN = r.count("fn")
	e.TN = r.count("tn")
	for _, p := range []*float64{&e.logLoss, &e.logLossSq, &e.brier, &e.brierSq, &e.absErr, &e.sqErr, &e.sqErrSq} {
		*p = r.f64("sum")
		if r.err == nil && *p < 0 {
			r.err = corrupt("negative sum %v", *p)
		}
	}
	np := r.sparse("positive histogram", e.pos)
	nn := r.sparse("negative histogram", e.neg)
	for i := range e.calSum {
		e.calSum[i] = r.f64("calibration sum")
		if r.err == nil && e.calSum[i] < 0 {
			r.err = corrupt("negative calibration sum %v", e.calSum[i])
		}
	}
	r.end()
	if r.err != nil {
		return nil, r.err
	}
	if err := e.check(np, nn); err != nil {
		return nil, err
	}
	return e, nil
}

// check tests that an imported evaluation's counts agree with each other.
func (e *Evaluation) check(np, nn uint64) error {
	if e.task == Regression {
		if e.TP+e.FP+e.FN+e.TN != 0 || e.logLoss+e.logLossSq+e.brier+e.brierSq != 0 {
			return corrupt("a regression evaluation holds binary counts")
		}
		if e.N == 0 && e.absErr+e.sqErr+e.sqErrSq != 0 {
			return corrupt("an empty evaluation has non-zero sums")
		}
		return nil
	}
	if e.absErr+e.sqErr+e.sqErrSq != 0 {
		return corrupt("a binary evaluation holds regression sums")
	}
	switch {
	case e.TP+e.FP+e.FN+e.TN != e.N:
		return corrupt("confusion counts add up to %d, n is %d", e.TP+e.FP+e.FN+e.TN, e.N)
	case np != e.TP+e.FN || nn != e.FP+e.TN:
		return corrupt("histograms hold %d positives and %d negatives, the confusion counts %d and %d", np, nn, e.TP+e.FN, e.FP+e.TN)
	case e.N == 0 && e.logLoss+e.logLossSq+e.brier+e.brierSq != 0:
		return corrupt("an empty evaluation has non-zero sums")
	}
	// Each calibration bin's score sum lies between its count times its
	// bounds (with rounding slack).
	per := len(e.pos) / len(e.calSum)
	for cb, sum := range e.calSum {
		var n uint64
		for b := cb * per; b < (cb+1)*per; b++ {
			n += e.pos[b] + e.neg[b]
		}
		lo := float64(cb*per) / float64(len(e.pos))
		hi := float64((cb+1)*per) / float64(len(e.pos))
		if sum < float64(n)*lo*(1-1e-9)-1e-9 || sum > float64(n)*hi*(1+1e-9)+1e-9 {
			return corrupt("calibration bin %d sums %v over %d scores in [%v, %v]", cb, sum, n, lo, hi)
		}
	}
	return nil
}
