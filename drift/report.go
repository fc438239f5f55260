package drift

import "fmt"

// Report is the comparison of a sketch with its profile: one entry per
// feature, then one for the output score (Output set, Input the output's
// name). It encodes to the JSON of the drift API.
type Report struct {
	// Rows is the number of rows in the sketch; ReferenceRows in the profile.
	Rows          int64 `json:"count"`
	ReferenceRows int64 `json:"reference_count"`
	// Breach is set when any feature breaches.
	Breach   bool            `json:"breach"`
	Features []FeatureReport `json:"features"`
	// The verdict's details follow the features, so the encoding of the
	// fields above (which webhook receivers parse) keeps its order.

	// Status is StatusNoData, StatusNotEnoughData, StatusNoDrift or
	// StatusDrift: "no data" and "not enough data" are never "no drift".
	Status string `json:"status"`
	// MinCount is the rows the policy needs before it judges.
	MinCount int64 `json:"min_count"`
	// Alpha is the family-wise false-alarm rate the tests were corrected to
	// (Holm) and Tests the size of that family (features × statistics).
	Alpha float64 `json:"alpha"`
	Tests int     `json:"tests"`
	// JudgedFeatures are the input features with at least one test,
	// DriftedFeatures those of them that breach, DriftShare their ratio and
	// DatasetDrift whether it reaches the policy's DriftShare. The output
	// score is not counted: it moves with its inputs.
	JudgedFeatures  int     `json:"judged_features"`
	DriftedFeatures int     `json:"drifted_features"`
	DriftShare      float64 `json:"drift_share"`
	DatasetDrift    bool    `json:"dataset_drift"`
	// Quality sums up the data quality of the rows (see FeatureReport's).
	Quality RowQuality `json:"quality"`
}

// RowQuality is how many rows had any data-quality problem in any input
// feature: a missing value (NaN, ±Inf), a numeric value outside the
// profile's range, or a category the profile does not declare.
type RowQuality struct {
	RowsAffected int64   `json:"rows_affected"`
	Share        float64 `json:"share"`
}

// Quality is one feature's data quality in a stretch of traffic.
type Quality struct {
	// Missing counts NaN and ±Inf values.
	Missing int64 `json:"missing"`
	// OutOfRange counts numeric values outside the profile's range: below
	// its grid's low end or at or above its high end, which is the
	// reference's [p0.1, p99.9] widened by a quarter of that span on each
	// side (see doc.go for why not the reference's min and max).
	OutOfRange int64 `json:"out_of_range"`
	// Unseen counts categorical values the profile does not declare.
	Unseen int64 `json:"unseen"`
	// Share is the share of rows with any of these problems in this
	// feature; ReferenceShare the same share in the reference, the rate to
	// expect when nothing is wrong.
	Share          float64 `json:"share"`
	ReferenceShare float64 `json:"reference_share"`
}

// FeatureReport is one feature's (or the output's) statistics. Only the
// statistics that apply are set: numeric features have psi, js, ks and
// wasserstein; categorical ones psi, js and chi2_p. A statistic is absent
// when there is nothing to compare (no rows), and wasserstein when the
// reference has no spread to scale it by. Each test's p-value is beside
// its statistic, uncorrected; breaches are judged Holm-corrected.
type FeatureReport struct {
	Input  string `json:"input"`
	Index  int    `json:"index"`
	Name   string `json:"name,omitempty"`
	Kind   Kind   `json:"kind"`
	Output bool   `json:"output,omitempty"`
	// Count is the rows counted for the feature, Missing how many of them
	// were NaN or ±Inf.
	Count   int64 `json:"count"`
	Missing int64 `json:"missing"`
	// PSI is the population stability index over the coarse bins (plus a
	// missing bin when either side has missing values), PSIP its p-value.
	PSI  *float64 `json:"psi,omitempty"`
	PSIP *float64 `json:"psi_p,omitempty"`
	// JS is the Jensen–Shannon distance (base 2, in [0, 1]) over the same
	// bins, JSP its p-value.
	JS  *float64 `json:"js,omitempty"`
	JSP *float64 `json:"js_p,omitempty"`
	// KS is the Kolmogorov–Smirnov statistic, sup |F_ref − F_cur|, KSP its
	// asymptotic p-value (KSPValue).
	KS  *float64 `json:"ks,omitempty"`
	KSP *float64 `json:"ks_p,omitempty"`
	// Wasserstein is the Wasserstein-1 distance ∫|F_ref − F_cur| in
	// reference standard deviations.
	Wasserstein *float64 `json:"wasserstein,omitempty"`
	// Chi2P is the p-value of the χ² test of homogeneity.
	Chi2P *float64 `json:"chi2_p,omitempty"`
	// Exact is set when the bins' expected counts were too small for the χ²
	// approximation even after merging rare bins, so psi_p, js_p and chi2_p
	// are Fisher's exact test of the remaining 2×2 table.
	Exact bool `json:"exact,omitempty"`
	// PositiveRate is, for the output, the share of scores at or above the
	// threshold, now and in the reference.
	PositiveRate          *float64  `json:"positive_rate,omitempty"`
	ReferencePositiveRate *float64  `json:"reference_positive_rate,omitempty"`
	Quality               Quality   `json:"quality"`
	Reference             Histogram `json:"reference"`
	Current               Histogram `json:"current"`
	// Breach is set when any statistic breaches; Breaches names them.
	Breach   bool     `json:"breach"`
	Breaches []string `json:"breaches,omitempty"`
}

// Label is the feature's name, or "input[index]".
func (f *FeatureReport) Label() string {
	if f.Name != "" {
		return f.Name
	}
	return fmt.Sprintf("%s[%d]", f.Input, f.Index)
}

// Stat returns the named statistic and whether the report has it.
func (f *FeatureReport) Stat(name string) (float64, bool) {
	v, _ := f.fields(name)
	return value(v)
}

// fields returns where f keeps the named statistic and its p-value (nil
// where it has none).
func (f *FeatureReport) fields(name string) (stat, p *float64) {
	switch name {
	case StatPSI:
		return f.PSI, f.PSIP
	case StatJS:
		return f.JS, f.JSP
	case StatKS:
		return f.KS, f.KSP
	case StatWasserstein:
		return f.Wasserstein, nil
	case StatChi2P:
		return f.Chi2P, f.Chi2P
	}
	return nil, nil
}

// value reads an optional statistic.
func value(p *float64) (float64, bool) {
	if p == nil {
		return 0, false
	}
	return *p, true
}

// Histogram is a feature's coarse histogram. For a numeric feature Edges
// are the bin boundaries: the first bin is below Edges[0] (the lower tail),
// bin j is [Edges[j-1], Edges[j]), the last is from the last edge up (the
// upper tail). For a categorical feature Values are the declared values and
// the last bin is "other". Missing values are counted apart.
type Histogram struct {
	Edges   []float64 `json:"edges,omitempty"`
	Values  []float64 `json:"values,omitempty"`
	Counts  []int64   `json:"counts"`
	Shares  []float64 `json:"shares"`
	Missing int64     `json:"missing"`
}
