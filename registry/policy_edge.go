package registry

import "math"

// EdgePolicy is what an edge site (a non-voter far from the center, on a
// poor link) sends back of the rows it scores: store-and-forward to the
// center's prediction log, where the export that retraining pulls finds
// them. A row is sent when any rule selects it; a policy that selects
// nothing sends nothing. Selection is a pure function of the row, the
// version's reference profile and this policy (the sample is a hash of the
// request id, not a die roll), so a site that restarts selects the same
// rows again and none is sent twice or lost between the two runs.
//
// Nil (the default): an edge site sends nothing back.
type EdgePolicy struct {
	// LowConfidence selects rows whose score is near the decision
	// threshold: |score − threshold| ≤ margin. The score is the
	// evaluation's (policy.evaluation.output, first element).
	LowConfidence *EdgeBand `json:"low_confidence,omitempty"`
	// OutOfProfile selects rows with a numeric feature outside its
	// reference: not finite, or more than OutOfProfileZ reference standard
	// deviations from the reference mean. Versions without a reference
	// profile select nothing by this rule.
	OutOfProfile bool `json:"out_of_profile,omitempty"`
	// OutOfProfileZ is that distance in standard deviations (0: 4).
	OutOfProfileZ float64 `json:"out_of_profile_z,omitempty"`
	// SampleRate selects this share of all rows (by request id hash), in
	// [0, 1]: a calibration sample of ordinary traffic.
	SampleRate float64 `json:"sample_rate,omitempty"`
	// MaxBytesPerSecond caps the bandwidth the site's uploads use on
	// average (0: DefaultEdgeBytesPerSecond). Rows wait in the site's own
	// log until the cap lets them go; none is dropped for it.
	MaxBytesPerSecond int64 `json:"max_bytes_per_second,omitempty"`
}

// EdgeBand is a band around a decision threshold.
type EdgeBand struct {
	Threshold float64 `json:"threshold"`
	Margin    float64 `json:"margin"`
}

// Edge policy defaults.
const (
	// DefaultEdgeBytesPerSecond is the upload cap when the policy sets
	// none: 64 KiB/s, a fraction of a poor site link.
	DefaultEdgeBytesPerSecond = 64 << 10
	// DefaultOutOfProfileZ is OutOfProfileZ's default.
	DefaultOutOfProfileZ = 4
)

// BytesPerSecond is the effective upload cap.
func (e *EdgePolicy) BytesPerSecond() int64 {
	if e.MaxBytesPerSecond > 0 {
		return e.MaxBytesPerSecond
	}
	return DefaultEdgeBytesPerSecond
}

// Z is the effective out-of-profile distance.
func (e *EdgePolicy) Z() float64 {
	if e.OutOfProfileZ > 0 {
		return e.OutOfProfileZ
	}
	return DefaultOutOfProfileZ
}

// Selects reports whether any rule can select a row.
func (e *EdgePolicy) Selects() bool {
	return e.LowConfidence != nil || e.OutOfProfile || e.SampleRate > 0
}

func (e *EdgePolicy) validate(path string) error {
	if b := e.LowConfidence; b != nil {
		if math.IsNaN(b.Threshold) || math.IsInf(b.Threshold, 0) {
			return fieldErr(path+".low_confidence.threshold", b.Threshold, "must be a finite number")
		}
		if !(b.Margin > 0) || math.IsInf(b.Margin, 0) {
			return fieldErr(path+".low_confidence.margin", b.Margin, "must be > 0 (the half-width of the band around the threshold)")
		}
	}
	if !(e.OutOfProfileZ >= 0) || math.IsInf(e.OutOfProfileZ, 0) {
		return fieldErr(path+".out_of_profile_z", e.OutOfProfileZ, "must be >= 0 (0: 4 standard deviations)")
	}
	if !(e.SampleRate >= 0 && e.SampleRate <= 1) {
		return fieldErr(path+".sample_rate", e.SampleRate, "must be in [0, 1]")
	}
	if e.MaxBytesPerSecond < 0 {
		return fieldErr(path+".max_bytes_per_second", e.MaxBytesPerSecond, "must be >= 0 (0: 65536)")
	}
	return nil
}
