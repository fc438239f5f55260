package train

import (
	"math"
	"slices"
)

// Predictor is a fitted binary classifier.
type Predictor interface {
	// Predict returns the positive-class probability of one raw row.
	Predict(row []float32) float32
}

// Scores returns m's prediction for every row of d.
func Scores(m Predictor, d Data) []float32 {
	s := make([]float32, d.Rows())
	for i := range s {
		s[i] = m.Predict(d.Row(i))
	}
	return s
}

// AUC returns the area under the ROC curve of scores against labels: the
// probability that a random positive scores above a random negative, ties
// counting half (the Mann–Whitney U statistic). It returns NaN when labels
// hold a single class, and panics when the lengths differ.
func AUC(scores []float32, labels []bool) float64 {
	if len(scores) != len(labels) {
		panic("train: AUC needs one label per score")
	}
	idx := make([]int32, len(scores))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortFunc(idx, func(a, b int32) int {
		switch sa, sb := scores[a], scores[b]; {
		case sa < sb:
			return -1
		case sa > sb:
			return 1
		}
		return 0
	})
	// Sum the (1-based, tie-averaged) ranks of the positives.
	var rankSum, pos float64
	for lo := 0; lo < len(idx); {
		hi := lo + 1
		for hi < len(idx) && scores[idx[hi]] == scores[idx[lo]] {
			hi++
		}
		avg := float64(lo+1+hi) / 2
		for _, i := range idx[lo:hi] {
			if labels[i] {
				rankSum += avg
				pos++
			}
		}
		lo = hi
	}
	neg := float64(len(labels)) - pos
	if pos == 0 || neg == 0 {
		return math.NaN()
	}
	return (rankSum - pos*(pos+1)/2) / (pos * neg)
}

// LogLoss returns the mean binary cross-entropy of probabilities against
// labels, with probabilities clamped to [1e-15, 1-1e-15]. It panics when the
// lengths differ.
func LogLoss(probs []float32, labels []bool) float64 {
	if len(probs) != len(labels) {
		panic("train: LogLoss needs one label per probability")
	}
	var sum float64
	for i, p := range probs {
		q := min(max(float64(p), 1e-15), 1-1e-15)
		if labels[i] {
			sum -= math.Log(q)
		} else {
			sum -= math.Log(1 - q)
		}
	}
	return sum / float64(len(probs))
}

// sigmoid is the logistic function, stable for large |z|.
func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}
