package shadow

import (
	"fmt"
	"math"
)

// DefaultConfidence is the confidence of the intervals when Metrics is
// given 0.
const DefaultConfidence = 0.95

// Interval is a confidence interval [Low, High].
type Interval struct {
	Low  float64 `json:"low"`
	High float64 `json:"high"`
}

// CalibrationBin is one equal-width bin of scores: how many predictions
// fell in it, their mean score and the share that were positive. A
// calibrated model has MeanScore ≈ PositiveRate in every bin.
type CalibrationBin struct {
	Low          float64 `json:"low"`
	High         float64 `json:"high"`
	Count        uint64  `json:"count"`
	MeanScore    float64 `json:"mean_score"`
	PositiveRate float64 `json:"positive_rate"`
}

// Metrics are an Evaluation's numbers with confidence intervals:
//
//   - precision, recall, accuracy: Wilson score intervals (binomial
//     proportions; sound near 0 and 1 and for small counts);
//   - AUC: Hanley & McNeil (1982) standard error, normal interval;
//   - log-loss, Brier, MAE: normal approximation to the mean of per-row
//     values (mean ± z·s/√n, s from the sum of squares);
//   - RMSE: the normal interval of the mean squared error, square-rooted
//     at both ends (delta method);
//   - F1 has no interval: it is a ratio of dependent counts with no
//     closed form a report should pretend to.
//
// A ratio with an empty denominator (precision with no positive
// decision, AUC with one class only) is 0 with the interval [0, 1]: there
// is no evidence either way. Intervals are clamped to the metric's range.
type Metrics struct {
	Task       string  `json:"task"`
	Threshold  float64 `json:"threshold,omitempty"`
	Confidence float64 `json:"confidence"`
	Labelled   uint64  `json:"labelled"`

	Positives uint64 `json:"positives,omitempty"`
	Negatives uint64 `json:"negatives,omitempty"`
	TP        uint64 `json:"tp,omitempty"`
	FP        uint64 `json:"fp,omitempty"`
	FN        uint64 `json:"fn,omitempty"`
	TN        uint64 `json:"tn,omitempty"`

	Precision   float64          `json:"precision"`
	PrecisionCI Interval         `json:"precision_ci"`
	Recall      float64          `json:"recall"`
	RecallCI    Interval         `json:"recall_ci"`
	F1          float64          `json:"f1"`
	Accuracy    float64          `json:"accuracy"`
	AccuracyCI  Interval         `json:"accuracy_ci"`
	AUC         float64          `json:"auc"`
	AUCCI       Interval         `json:"auc_ci"`
	LogLoss     float64          `json:"log_loss"`
	LogLossCI   Interval         `json:"log_loss_ci"`
	Brier       float64          `json:"brier"`
	BrierCI     Interval         `json:"brier_ci"`
	Calibration []CalibrationBin `json:"calibration,omitempty"`

	MAE    float64  `json:"mae,omitempty"`
	MAECI  Interval `json:"mae_ci"`
	RMSE   float64  `json:"rmse,omitempty"`
	RMSECI Interval `json:"rmse_ci"`
}

// zOf is the two-sided normal quantile of a confidence level.
func zOf(confidence float64) float64 { return math.Sqrt2 * math.Erfinv(confidence) }

// Metrics computes the evaluation's metrics with intervals at confidence
// (DefaultConfidence when 0; it must be in (0, 1)).
func (e *Evaluation) Metrics(confidence float64) (Metrics, error) {
	if confidence == 0 {
		confidence = DefaultConfidence
	}
	if !(confidence > 0 && confidence < 1) {
		return Metrics{}, configErr("confidence", confidence, "must be in (0, 1)")
	}
	z := zOf(confidence)
	m := Metrics{Task: e.task.String(), Confidence: confidence, Labelled: e.N}
	if e.task == Regression {
		m.MAE, m.MAECI = meanCI(e.absErr, e.sqErr, e.N, z, 0, math.Inf(1))
		mse, mseCI := meanCI(e.sqErr, e.sqErrSq, e.N, z, 0, math.Inf(1))
		m.RMSE = math.Sqrt(mse)
		m.RMSECI = Interval{math.Sqrt(mseCI.Low), math.Sqrt(mseCI.High)}
		if e.N == 0 {
			m.MAECI, m.RMSECI = Interval{}, Interval{}
		}
		return m, nil
	}
	m.Threshold = e.threshold
	m.TP, m.FP, m.FN, m.TN = e.TP, e.FP, e.FN, e.TN
	m.Positives, m.Negatives = e.TP+e.FN, e.FP+e.TN
	m.Precision, m.PrecisionCI = proportion(e.TP, e.TP+e.FP, z)
	m.Recall, m.RecallCI = proportion(e.TP, e.TP+e.FN, z)
	m.Accuracy, m.AccuracyCI = proportion(e.TP+e.TN, e.N, z)
	if 2*e.TP+e.FP+e.FN > 0 {
		m.F1 = 2 * float64(e.TP) / float64(2*e.TP+e.FP+e.FN)
	}
	m.LogLoss, m.LogLossCI = meanCI(e.logLoss, e.logLossSq, e.N, z, 0, math.Inf(1))
	m.Brier, m.BrierCI = meanCI(e.brier, e.brierSq, e.N, z, 0, 1)
	m.AUC, m.AUCCI = e.auc(z)
	per := len(e.pos) / len(e.calSum)
	for cb, sum := range e.calSum {
		bin := CalibrationBin{
			Low:  float64(cb*per) / float64(len(e.pos)),
			High: float64((cb+1)*per) / float64(len(e.pos)),
		}
		var p uint64
		for b := cb * per; b < (cb+1)*per; b++ {
			bin.Count += e.pos[b] + e.neg[b]
			p += e.pos[b]
		}
		if bin.Count > 0 {
			bin.MeanScore = sum / float64(bin.Count)
			bin.PositiveRate = float64(p) / float64(bin.Count)
		}
		m.Calibration = append(m.Calibration, bin)
	}
	return m, nil
}

// proportion is k/n with its Wilson score interval.
func proportion(k, n uint64, z float64) (float64, Interval) {
	if n == 0 {
		return 0, Interval{0, 1}
	}
	p, nf := float64(k)/float64(n), float64(n)
	d := 1 + z*z/nf
	c := (p + z*z/(2*nf)) / d
	h := z / d * math.Sqrt(p*(1-p)/nf+z*z/(4*nf*nf))
	return p, Interval{max(0, c-h), min(1, c+h)}
}

// meanCI is sum/n with the normal interval of a mean, from the sum of
// squares, clamped to [lo, hi].
func meanCI(sum, sumSq float64, n uint64, z, lo, hi float64) (float64, Interval) {
	if n == 0 {
		if math.IsInf(hi, 1) {
			return 0, Interval{}
		}
		return 0, Interval{lo, hi}
	}
	nf := float64(n)
	mean := sum / nf
	v := max(0, sumSq/nf-mean*mean)
	if n > 1 {
		v *= nf / (nf - 1)
	}
	h := z * math.Sqrt(v/nf)
	return mean, Interval{max(lo, mean-h), min(hi, mean+h)}
}

// auc is the area under the ROC curve from the class histograms, a tie
// (both scores in one bin) counting one half, with the Hanley–McNeil
// interval.
func (e *Evaluation) auc(z float64) (float64, Interval) {
	var np, nn uint64
	for i := range e.pos {
		np += e.pos[i]
		nn += e.neg[i]
	}
	if np == 0 || nn == 0 {
		return 0, Interval{0, 1}
	}
	var wins, below float64
	for i := range e.pos {
		wins += float64(e.pos[i]) * (below + float64(e.neg[i])/2)
		below += float64(e.neg[i])
	}
	P, N := float64(np), float64(nn)
	a := wins / (P * N)
	q1, q2 := a/(2-a), 2*a*a/(1+a)
	se := math.Sqrt(max(0, (a*(1-a)+(P-1)*(q1-a*a)+(N-1)*(q2-a*a))/(P*N)))
	return a, Interval{max(0, a-z*se), min(1, a+z*se)}
}

// String is a one-line summary for logs.
func (m Metrics) String() string {
	if m.Task == Regression.String() {
		return fmt.Sprintf("n=%d mae=%.4g rmse=%.4g", m.Labelled, m.MAE, m.RMSE)
	}
	return fmt.Sprintf("n=%d precision=%.4f recall=%.4f f1=%.4f auc=%.4f log_loss=%.4f",
		m.Labelled, m.Precision, m.Recall, m.F1, m.AUC, m.LogLoss)
}
