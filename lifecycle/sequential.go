package lifecycle

import (
	"math"
)

// The sequential tests the rollout gates use (the package doc's "Why a
// sequential test" says why these). Each returns a TestResult whose
// Rejected may be acted on at any look, as often as the controller looks,
// with the chance of ever rejecting a true null at most alpha (Ville's
// inequality on a non-negative supermartingale).

// The hypotheses a TestResult names.
const (
	// HypothesisSuperiority: null "the candidate is not better"
	// (gain <= 0); rejected, the candidate is better.
	HypothesisSuperiority = "superiority"
	// HypothesisNonInferiority: null "the candidate is worse by the
	// margin or more" (gain <= -margin); rejected, it is not worse than
	// the margin.
	HypothesisNonInferiority = "non_inferiority"
	// HypothesisRegression: null "the candidate is not worse by more than
	// the tolerance" (gain >= -tolerance); rejected, it has regressed.
	HypothesisRegression = "regression"
	// HypothesisExceedance: null "the share of events is at most p0";
	// rejected, it is above.
	HypothesisExceedance = "exceedance"
)

// TestResult is one look of a sequential test, with the numbers behind it
// (it goes into audit records as evidence).
type TestResult struct {
	Hypothesis string `json:"hypothesis"`
	// Null is the boundary of the null hypothesis: a gain for the label
	// tests, a share for exceedance.
	Null float64 `json:"null"`
	// Estimate is the observed gain (candidate minus champion, the sign
	// flipped for metrics where lower is better) or share, and StdErr its
	// standard error (label tests).
	Estimate float64 `json:"estimate"`
	StdErr   float64 `json:"std_err,omitempty"`
	// LogLR is the log of the mixture likelihood ratio, and Bound the log
	// of 1/alpha it must reach.
	LogLR float64 `json:"log_lr"`
	Bound float64 `json:"bound"`
	// PValue is min(1, 1/LR) at this look; the always-valid p-value is
	// the least of these over the looks so far, and at the look that
	// first rejects, the two agree.
	PValue   float64 `json:"p_value"`
	Rejected bool    `json:"rejected"`
}

// mixtureLogLR is the log of the one-sided normal-mixture likelihood ratio
// (mSPRT, Johari et al. 2017) for an estimate whose distance from the null
// boundary is d (positive towards the alternative) and whose variance is
// v, the effect mixed over a half-normal of scale tau on the alternative's
// side:
//
//	Λ = 2·sqrt(v/(v+τ²)) · exp(d²τ²/(2v(v+τ²))) · Φ(dτ/sqrt(v(v+τ²)))
//
// As the information 1/v grows, d/v is a Brownian motion in information
// time with drift the true distance, so Λ is a martingale at the null
// boundary and a supermartingale inside the null (each mixed component
// points away from it).
func mixtureLogLR(d, v, tau float64) float64 {
	s := v + tau*tau
	x := d * tau / math.Sqrt(v*s)
	return math.Ln2 + 0.5*math.Log(v/s) + d*d*tau*tau/(2*v*s) + logPhi(x)
}

// logPhi is log Φ(x), the standard normal CDF, accurate far into the left
// tail where Φ itself underflows.
func logPhi(x float64) float64 {
	if x > -30 {
		return math.Log(0.5 * math.Erfc(-x/math.Sqrt2))
	}
	// Mills ratio: Φ(x) ≈ φ(x)/|x| for large negative x.
	return -x*x/2 - math.Log(-x) - 0.5*math.Log(2*math.Pi)
}

// mixtureScales are the multiples of the policy's effect the label tests
// mix the effect over, with equal weights. One scale tuned to the
// minimum effect is slow to see an effect many times larger while its
// standard error is still wide (a 10-point regression on a 1% canary);
// an average of the three martingales is a martingale, and costs at most
// ln 3 of evidence against the best of them.
var mixtureScales = [...]float64{1, 4, 16}

// scaleMixtureLogLR is log of the mean of mixtureLogLR over tau·mixtureScales.
func scaleMixtureLogLR(d, v, tau float64) float64 {
	var terms [len(mixtureScales)]float64
	m := math.Inf(-1)
	for i, c := range mixtureScales {
		terms[i] = mixtureLogLR(d, v, tau*c)
		m = math.Max(m, terms[i])
	}
	var sum float64
	for _, t := range terms {
		sum += math.Exp(t - m)
	}
	return m + math.Log(sum/float64(len(terms)))
}

// gainTest runs the one-sided mixture test that the gain exceeds null
// (up) or falls below it (!up).
func gainTest(hyp string, gain, variance, null, tau, alpha float64, up bool) TestResult {
	r := TestResult{Hypothesis: hyp, Null: null, Estimate: gain, Bound: math.Log(1 / alpha), PValue: 1}
	if !(variance > 0) || math.IsInf(variance, 0) {
		return r
	}
	r.StdErr = math.Sqrt(variance)
	d := gain - null
	if !up {
		d = -d
	}
	r.LogLR = scaleMixtureLogLR(d, variance, tau)
	r.PValue = math.Min(1, math.Exp(-r.LogLR))
	r.Rejected = r.LogLR >= r.Bound
	return r
}

// Superiority tests that gain > 0, the mixture scaled by minEffect.
func Superiority(gain, variance, minEffect, alpha float64) TestResult {
	return gainTest(HypothesisSuperiority, gain, variance, 0, minEffect, alpha, true)
}

// NonInferiority tests that gain > -margin (the mixture scaled by the
// margin too: the effects that matter are of its size).
func NonInferiority(gain, variance, margin, alpha float64) TestResult {
	return gainTest(HypothesisNonInferiority, gain, variance, -margin, margin, alpha, true)
}

// Regression tests that gain < -tolerance, the mixture scaled by scale.
func Regression(gain, variance, tolerance, scale, alpha float64) TestResult {
	return gainTest(HypothesisRegression, gain, variance, -tolerance, scale, alpha, false)
}

// exceedanceRatios are the alternatives Exceedance mixes over, as
// multiples of p0, with equal weights: from a quarter above the limit to
// ten times it.
var exceedanceRatios = [...]float64{1.25, 1.5, 2, 3, 5, 10}

// Exceedance tests that the share of events (k of n Bernoulli trials:
// errors among requests, requests slower than a latency limit) is above
// p0. It is exact for any n, small counts included: the statistic is the
// average of the likelihood ratios of p0·c against p0 over the ratios c
// above, each a supermartingale whenever the true share is at most p0.
func Exceedance(k, n uint64, p0, alpha float64) TestResult {
	r := TestResult{Hypothesis: HypothesisExceedance, Null: p0, Bound: math.Log(1 / alpha), PValue: 1}
	if n == 0 || !(p0 > 0 && p0 < 1) {
		return r
	}
	r.Estimate = float64(k) / float64(n)
	kf, mf := float64(k), float64(n-k)
	var terms [len(exceedanceRatios)]float64
	used := 0
	for _, c := range exceedanceRatios {
		if p0*c >= 1 {
			break // ascending: the rest are impossible shares too
		}
		terms[used] = exceedanceLogLR(kf, mf, p0, p0*c)
		used++
	}
	if used == 0 { // p0 >= 0.8: one alternative halfway to 1
		terms[0] = exceedanceLogLR(kf, mf, p0, (p0+1)/2)
		used = 1
	}
	m := math.Inf(-1)
	for _, t := range terms[:used] {
		m = math.Max(m, t)
	}
	var sum float64
	for _, t := range terms[:used] {
		sum += math.Exp(t - m)
	}
	r.LogLR = m + math.Log(sum/float64(used))
	r.PValue = math.Min(1, math.Exp(-r.LogLR))
	r.Rejected = r.LogLR >= r.Bound
	return r
}

// exceedanceLogLR is the log likelihood ratio of k events in k+m trials
// under share p1 against p0.
func exceedanceLogLR(k, m, p0, p1 float64) float64 {
	return k*math.Log(p1/p0) + m*(math.Log1p(-p1)-math.Log1p(-p0))
}
