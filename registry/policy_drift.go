package registry

import (
	"math"
	"strconv"
	"time"
)

// DriftPolicy is how a model's drift is judged (drift.Policy, built by
// lifecycle.DriftPolicy; drift/doc.go explains the tests): one entry per
// statistic, the family-wise false-alarm rate of a judgement, the share of
// drifted features that makes the model as a whole drifted, and how a
// version registered without a reference profile gets one.
//
// Every field added after wire version 1 is omitted when zero (nil), so a
// policy written before them decodes and re-encodes byte for byte and
// judges as before: alpha from chi2_p's threshold, drift_share 0.5.
type DriftPolicy struct {
	// ReferenceSampleSize is how many scored rows become the reference when
	// a version was registered without a reference profile.
	ReferenceSampleSize int64 `json:"reference_sample_size"`
	// A statistic breaches when its size-aware test rejects (Holm-corrected
	// at Alpha across every feature and statistic) and its value reaches
	// its MinEffect. For psi, js and ks the Threshold field of policies
	// written before size-aware judging is kept but no longer decides (as
	// a floor it would bring back the dependence on window size); for
	// wasserstein, which has no test of its own, Threshold is its minimum
	// effect; for chi2_p it is the false-alarm rate when Alpha is unset.
	PSI         DriftThreshold `json:"psi"`         // population stability index
	JS          DriftThreshold `json:"js"`          // Jensen–Shannon distance (base 2, in [0, 1])
	KS          DriftThreshold `json:"ks"`          // Kolmogorov–Smirnov statistic (in [0, 1])
	Wasserstein DriftThreshold `json:"wasserstein"` // Wasserstein-1 distance in reference standard deviations
	Chi2P       DriftThreshold `json:"chi2_p"`      // χ² test of homogeneity (categorical features)
	// Alpha is the probability that one judgement of an undrifted model
	// breaches anywhere, in (0, 0.5]; 0: chi2_p's threshold when chi2_p is
	// enabled, else 0.01.
	Alpha float64 `json:"alpha,omitempty"`
	// DriftShare is the share of judged input features that must breach
	// for the model as a whole to count as drifted (a "drift_share" alert
	// when sustained), in (0, 1]; 0: 0.5.
	DriftShare float64 `json:"drift_share,omitempty"`
	// MaxWindows caps how many recent drift windows a judgement may pool
	// to reach min_count (0: every window kept one by one, an hour of
	// 1-minute windows).
	MaxWindows int `json:"max_windows,omitempty"`
	// ReferencePeriod is how long a bootstrapped reference is sampled for:
	// a uniform (reservoir) sample of ReferenceSampleSize rows out of every
	// row scored over the period, so the reference spans the day rather
	// than the hour the version was deployed in. Nil: DefaultReferencePeriod;
	// "0s": the first ReferenceSampleSize rows, as soon as they are scored.
	ReferencePeriod *Duration `json:"reference_period,omitempty"`
	// Constraints are hard rules a scored row must meet, or the request is
	// refused (400, naming the feature and the rule) and counted. Nil:
	// none, and the scoring path does not look.
	Constraints *DriftConstraints `json:"constraints,omitempty"`
}

// DriftConstraints are hard constraints on the rows a model scores, checked
// on the monitored input columns (the drift monitor's; with drift off
// there are none).
type DriftConstraints struct {
	// RefuseNonFinite refuses a row with NaN or ±Inf in any column.
	RefuseNonFinite bool `json:"refuse_non_finite,omitempty"`
	// RefuseUnseenCategories refuses a row whose categorical feature holds
	// a value the reference profile does not declare (checked once the
	// version has a profile).
	RefuseUnseenCategories bool `json:"refuse_unseen_categories,omitempty"`
	// Ranges refuse rows with a feature outside a declared [min, max].
	Ranges []FeatureRange `json:"ranges,omitempty"`
}

// FeatureRange declares the values a feature may take: [Min, Max], either
// bound optional.
type FeatureRange struct {
	// Feature is the feature's name (the model's feature_names, or the
	// profile's) or "input[index]".
	Feature string   `json:"feature"`
	Min     *float64 `json:"min,omitempty"`
	Max     *float64 `json:"max,omitempty"`
}

// MaxFeatureRanges bounds the ranges of one policy.
const MaxFeatureRanges = 4096

// DefaultReferencePeriod is the reference period of a drift policy that
// sets none: a day, so every hour of the day is in the reference.
const DefaultReferencePeriod = 24 * time.Hour

// MaxReferencePeriod bounds a reference period: the bootstrap holds its
// sample in memory until the period ends.
const MaxReferencePeriod = 30 * 24 * time.Hour

// Period returns the reference period in force.
func (d *DriftPolicy) Period() time.Duration {
	if d.ReferencePeriod == nil {
		return DefaultReferencePeriod
	}
	return time.Duration(*d.ReferencePeriod)
}

// DriftThreshold is how one drift statistic is judged.
type DriftThreshold struct {
	Enabled bool `json:"enabled"`
	// Threshold: see DriftPolicy for what it means per statistic.
	Threshold float64 `json:"threshold"`
	// MinCount is the number of rows a judgement needs; windows are pooled
	// (newest backwards) until they hold it.
	MinCount int64 `json:"min_count"`
	// ConsecutiveWindows is how many judgements in a row, over disjoint
	// runs of pooled windows, must breach before the alert fires.
	ConsecutiveWindows int `json:"consecutive_windows"`
	// MinEffect is the least value of psi, js or ks that may breach once
	// its test rejects: for very high traffic, where every real but
	// negligible shift is significant (0: any significant change). Not
	// used by wasserstein (its Threshold is its minimum effect) nor chi2_p.
	MinEffect float64 `json:"min_effect,omitempty"`
}

func (d *DriftPolicy) validate(path string) error {
	if d.ReferenceSampleSize < 1 {
		return fieldErr(path+".reference_sample_size", d.ReferenceSampleSize, "must be >= 1 (the default is "+strconv.Itoa(DefaultReferenceSampleSize)+")")
	}
	for _, s := range []struct {
		name string
		t    *DriftThreshold
		max  float64 // the largest meaningful threshold (0: unbounded)
		open bool    // max itself is not allowed
		// effect: MinEffect applies (psi, js, ks), bounded by effectMax (0: unbounded)
		effect    bool
		effectMax float64
	}{
		{"psi", &d.PSI, 0, false, true, 0},
		{"js", &d.JS, 1, false, true, 1},
		{"ks", &d.KS, 1, false, true, 1},
		{"wasserstein", &d.Wasserstein, 0, false, false, 0},
		{"chi2_p", &d.Chi2P, 1, true, false, 0}, // a p-value
	} {
		p := path + "." + s.name
		t := s.t
		if math.IsNaN(t.Threshold) || math.IsInf(t.Threshold, 0) {
			return fieldErr(p+".threshold", t.Threshold, "must be a finite number")
		}
		if t.MinCount < 0 {
			return fieldErr(p+".min_count", t.MinCount, "must be >= 0")
		}
		if t.ConsecutiveWindows < 0 {
			return fieldErr(p+".consecutive_windows", t.ConsecutiveWindows, "must be >= 1")
		}
		switch {
		case t.MinEffect != 0 && !s.effect:
			return fieldErr(p+".min_effect", t.MinEffect, "is not used by "+s.name+" (wasserstein's threshold is its minimum effect; chi2_p has none): leave it out")
		case !(t.MinEffect >= 0) || math.IsInf(t.MinEffect, 0):
			return fieldErr(p+".min_effect", t.MinEffect, "must be a finite number >= 0 (0: any significant change)")
		case s.effectMax > 0 && t.MinEffect > s.effectMax:
			return fieldErr(p+".min_effect", t.MinEffect, "must be <= 1")
		}
		if !t.Enabled {
			continue // a disabled statistic's numbers are kept but not judged
		}
		if !(t.Threshold > 0) {
			return fieldErr(p+".threshold", t.Threshold, "must be > 0")
		}
		if s.max > 0 && s.open && t.Threshold >= s.max {
			return fieldErr(p+".threshold", t.Threshold, "must be < 1 (it is a p-value)")
		}
		if s.max > 0 && !s.open && t.Threshold > s.max {
			return fieldErr(p+".threshold", t.Threshold, "must be <= 1")
		}
		if t.ConsecutiveWindows < 1 {
			return fieldErr(p+".consecutive_windows", t.ConsecutiveWindows, "must be >= 1")
		}
	}
	switch {
	case !(d.Alpha >= 0 && d.Alpha <= 0.5):
		return fieldErr(path+".alpha", d.Alpha, "must be in (0, 0.5] (a family-wise false-alarm probability, e.g. 0.01; 0: the default)")
	case !(d.DriftShare >= 0 && d.DriftShare <= 1):
		return fieldErr(path+".drift_share", d.DriftShare, "must be in (0, 1] (0: the default 0.5)")
	case d.MaxWindows < 0 || d.MaxWindows > 100000:
		return fieldErr(path+".max_windows", d.MaxWindows, "must be between 0 and 100000 (0: every window kept)")
	}
	if rp := d.ReferencePeriod; rp != nil && (*rp < 0 || time.Duration(*rp) > MaxReferencePeriod) {
		return fieldErr(path+".reference_period", time.Duration(*rp).String(), "must be between 0s (the first rows) and 720h (30 days)")
	}
	if c := d.Constraints; c != nil {
		if len(c.Ranges) > MaxFeatureRanges {
			return fieldErr(path+".constraints.ranges", len(c.Ranges), "must list at most "+strconv.Itoa(MaxFeatureRanges)+" features")
		}
		seen := make(map[string]bool, len(c.Ranges))
		for i, r := range c.Ranges {
			p := path + ".constraints.ranges[" + strconv.Itoa(i) + "]"
			if err := checkText(p+".feature", r.Feature, 256, true); err != nil {
				return err
			}
			if seen[r.Feature] {
				return fieldErr(p+".feature", r.Feature, "is listed twice")
			}
			seen[r.Feature] = true
			switch {
			case r.Min == nil && r.Max == nil:
				return fieldErr(p, r.Feature, "needs a min, a max or both")
			case r.Min != nil && (math.IsNaN(*r.Min) || math.IsInf(*r.Min, 0)):
				return fieldErr(p+".min", *r.Min, "must be a finite number")
			case r.Max != nil && (math.IsNaN(*r.Max) || math.IsInf(*r.Max, 0)):
				return fieldErr(p+".max", *r.Max, "must be a finite number")
			case r.Min != nil && r.Max != nil && *r.Min > *r.Max:
				return fieldErr(p+".max", *r.Max, "must be >= min ("+strconv.FormatFloat(*r.Min, 'g', -1, 64)+")")
			}
		}
	}
	return nil
}
