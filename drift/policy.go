package drift

import "fmt"

// Defaults of Policy's zero values.
const (
	// DefaultAlpha is the family-wise false-alarm rate of one judgement.
	DefaultAlpha = 0.01
	// DefaultDriftShare is the share of drifted features at which the model
	// as a whole counts as drifted (Evidently's drift_share).
	DefaultDriftShare = 0.5
)

// Report statuses: what a judgement could say.
const (
	// StatusNoData: not a single row in the judged stretch. Not "no drift":
	// nothing was looked at.
	StatusNoData = "no_data"
	// StatusNotEnoughData: rows, but fewer than MinCount even after pooling
	// every window within reach; statistics are shown, nothing is judged.
	StatusNotEnoughData = "not_enough_data"
	// StatusNoDrift: judged, and no test rejected "same distribution".
	StatusNoDrift = "no_drift"
	// StatusDrift: judged, and at least one feature breached.
	StatusDrift = "drift"
)

// Policy is how drift is judged: which statistics, at what false-alarm
// rate, on how many rows, and what makes an alert. Zero values of Alpha and
// DriftShare mean the defaults.
//
// Each enabled statistic is a test of "the traffic has the reference's
// distribution" with a p-value that accounts for both sample sizes (see
// doc.go): KS by its asymptotic Kolmogorov distribution, PSI, JS and χ² by
// their χ² null distributions, with rare bins merged or tested exactly. All
// the p-values of one judgement (every feature × every enabled statistic)
// are corrected together by Holm's procedure at Alpha. A statistic breaches
// when its test rejects and its value is at least its Threshold, which is
// therefore a minimum effect worth alerting on (0: any significant change);
// chi2_p's Threshold is not used (Alpha is the level). Wasserstein has no
// test of its own: it breaches when the feature's KS test rejects and the
// distance is at least its Threshold.
//
// MinCount and ConsecutiveWindows keep their meaning per statistic: a
// judgement needs MinCount rows (the largest over the enabled statistics),
// pooled from as many recent windows as that takes, and a statistic alerts
// when it breached in ConsecutiveWindows judgements in a row over disjoint
// runs of windows (see Evaluate).
type Policy struct {
	Thresholds Thresholds `json:"thresholds"`
	// Alpha is the probability that one judgement of an undrifted model
	// breaches anywhere (family-wise, Holm across features and statistics).
	Alpha float64 `json:"alpha"`
	// DriftShare is the share of judged input features that must breach for
	// the report's DatasetDrift (and, sustained, a "drift_share" alert).
	DriftShare float64 `json:"drift_share"`
	// MaxWindows caps how many recent closed windows a judgement may pool
	// (0: every window the Windows keep one by one, Rollup/Window).
	MaxWindows int `json:"max_windows"`
}

// DefaultPolicy is the size-aware default: PSI, JS, KS and χ² enabled with
// no minimum effect, judged at a family-wise α of 0.01 from 1,000 rows
// (pooled from as many windows as that takes), alerting when the same
// statistic of the same feature breaches in 3 judgements in a row;
// Wasserstein reported, not judged; the model drifted as a whole when half
// its features breach.
func DefaultPolicy() Policy {
	t := func(v float64, on bool) Threshold {
		return Threshold{Enabled: on, Threshold: v, MinCount: 1000, ConsecutiveWindows: 3}
	}
	return Policy{
		Thresholds: Thresholds{PSI: t(0, true), JS: t(0, true), KS: t(0, true), Wasserstein: t(0.5, false), Chi2P: t(DefaultAlpha, true)},
		Alpha:      DefaultAlpha, DriftShare: DefaultDriftShare,
	}
}

// PolicyFromThresholds is the Policy of fixed thresholds as the registry's
// drift policy holds them: the same statistics enabled, MinCount and
// ConsecutiveWindows as given, Alpha from chi2_p's threshold (the one
// level the policy already states as a false-alarm rate; DefaultAlpha when
// chi2_p is disabled). The PSI, JS and KS thresholds are not carried over
// as minimum effects: they were cut-offs for 1,000-row windows, and as
// floors they would bring back the size dependence the tests remove (a
// 0.2σ shift, KS ≈ 0.08, would breach often in small windows by noise and
// never in large ones). Wasserstein's threshold, an effect size already,
// is.
func PolicyFromThresholds(th Thresholds) Policy {
	p := Policy{Thresholds: th, Alpha: DefaultAlpha, DriftShare: DefaultDriftShare}
	if th.Chi2P.Enabled && th.Chi2P.Threshold > 0 && th.Chi2P.Threshold < 1 {
		p.Alpha = th.Chi2P.Threshold
	}
	p.Thresholds.PSI.Threshold, p.Thresholds.JS.Threshold, p.Thresholds.KS.Threshold = 0, 0, 0
	return p
}

func (p Policy) withDefaults() Policy {
	if p.Alpha == 0 {
		p.Alpha = DefaultAlpha
	}
	if p.DriftShare == 0 {
		p.DriftShare = DefaultDriftShare
	}
	return p
}

// Validate returns a *FieldError naming the first bad field (after
// defaults).
func (p Policy) Validate() error {
	p = p.withDefaults()
	if err := p.Thresholds.Validate(); err != nil {
		return err
	}
	bad := func(field string, v any, reason string) error {
		return fieldErr(ErrInvalidThresholds, field, v, reason)
	}
	switch {
	case !(p.Alpha > 0 && p.Alpha < 1):
		return bad("alpha", p.Alpha, "must be in (0, 1): it is a false-alarm probability")
	case !(p.DriftShare > 0 && p.DriftShare <= 1):
		return bad("drift_share", p.DriftShare, "must be in (0, 1]")
	case p.MaxWindows < 0:
		return bad("max_windows", p.MaxWindows, "must be >= 0 (0: every window kept)")
	}
	return nil
}

// minCount is the rows a judgement needs: the largest MinCount of the
// enabled statistics (at least 1).
func (p *Policy) minCount() int64 {
	n := int64(1)
	p.Thresholds.each(func(_ string, t *Threshold) bool {
		if t.Enabled {
			n = max(n, t.MinCount)
		}
		return true
	})
	return n
}

// consecutive is the most judgements in a row any enabled statistic needs.
func (p *Policy) consecutive() int {
	k := 1
	p.Thresholds.each(func(_ string, t *Threshold) bool {
		if t.Enabled {
			k = max(k, t.ConsecutiveWindows)
		}
		return true
	})
	return k
}

// String is for logs: "α 0.01, from 1000 rows, 3 in a row".
func (p Policy) String() string {
	p = p.withDefaults()
	return fmt.Sprintf("α %g, from %d rows, %d in a row, drift share %g", p.Alpha, p.minCount(), p.consecutive(), p.DriftShare)
}
