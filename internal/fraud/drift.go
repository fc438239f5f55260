package fraud

import (
	"fmt"
	"math"
)

// DriftKind says how a generator departs from the population the demo model
// was trained on.
type DriftKind uint8

// The kinds of drift.
const (
	// NoDrift draws the training population.
	NoDrift DriftKind = iota
	// CovariateShift scales one raw field (Drift.Field) by Drift.Factor
	// before the label is drawn: the inputs move, the fraud process given
	// the inputs does not.
	CovariateShift
	// NewCategory sends a share (Drift.Share) of transactions to
	// CategoryCrypto, a merchant category undrifted data never has. It shows
	// in feature space as a non-zero "mcc_other" slot (and fewer of the
	// others).
	NewCategory
	// ConceptDrift changes the fraud process (fraudsters moved to small,
	// card-present, low-risk-category purchases) while every input is drawn
	// exactly as without drift.
	ConceptDrift
)

// String returns the kind's snake_case name.
func (k DriftKind) String() string {
	switch k {
	case NoDrift:
		return "none"
	case CovariateShift:
		return "covariate_shift"
	case NewCategory:
		return "new_category"
	case ConceptDrift:
		return "concept_drift"
	}
	return fmt.Sprintf("drift_kind(%d)", uint8(k))
}

// Field is a raw transaction field CovariateShift can scale.
type Field uint8

// The fields CovariateShift can scale.
const (
	FieldAmount     Field = iota // Transaction.Amount (the card average stays, so the ratio moves too)
	FieldDistance                // Transaction.DistanceKm
	FieldDeviceAge               // Transaction.DeviceAgeDays
	FieldAccountAge              // Transaction.AccountAgeDays
	numFields
)

// String returns the field's snake_case name.
func (f Field) String() string {
	switch f {
	case FieldAmount:
		return "amount"
	case FieldDistance:
		return "distance_km"
	case FieldDeviceAge:
		return "device_age_days"
	case FieldAccountAge:
		return "account_age_days"
	}
	return fmt.Sprintf("field(%d)", uint8(f))
}

// Features returns the indexes of the encoded features that depend on f.
func (f Field) Features() []int {
	switch f {
	case FieldAmount:
		return []int{FeatureAmount, FeatureAmountRatio}
	case FieldDistance:
		return []int{FeatureDistance}
	case FieldDeviceAge:
		return []int{FeatureDeviceAge}
	case FieldAccountAge:
		return []int{FeatureAccountAge}
	}
	return nil
}

// Defaults for a Drift's zero values.
const (
	DefaultShiftFactor   = 3.0
	DefaultCategoryShare = 0.2
)

// Drift configures how a Generator's population departs from the training
// one. The zero value is NoDrift; zero Factor and Share mean their defaults.
type Drift struct {
	Kind DriftKind
	// Field is the raw field CovariateShift scales.
	Field Field
	// Factor multiplies Field under CovariateShift; 0 means
	// DefaultShiftFactor.
	Factor float64
	// Share is the fraction of transactions NewCategory sends to
	// CategoryCrypto, in (0, 1]; 0 means DefaultCategoryShare.
	Share float64
}

// Validate reports a drift the generator cannot apply, naming the bad value.
func (d Drift) Validate() error {
	if d.Kind > ConceptDrift {
		return fmt.Errorf("%w: unknown kind %d", ErrInvalidDrift, d.Kind)
	}
	if d.Field >= numFields {
		return fmt.Errorf("%w: unknown field %d", ErrInvalidDrift, d.Field)
	}
	if d.Factor < 0 || math.IsNaN(d.Factor) || math.IsInf(d.Factor, 0) {
		return fmt.Errorf("%w: factor %v must be positive (0 means %v)", ErrInvalidDrift, d.Factor, DefaultShiftFactor)
	}
	if d.Share < 0 || d.Share > 1 || math.IsNaN(d.Share) {
		return fmt.Errorf("%w: share %v must be in (0, 1] (0 means %v)", ErrInvalidDrift, d.Share, DefaultCategoryShare)
	}
	return nil
}

// withDefaults fills the zero Factor and Share.
func (d Drift) withDefaults() Drift {
	if d.Factor == 0 {
		d.Factor = DefaultShiftFactor
	}
	if d.Share == 0 {
		d.Share = DefaultCategoryShare
	}
	return d
}

// Features returns the indexes of the encoded features whose distribution
// the drift changes: the shifted field's features for CovariateShift, the
// category slots for NewCategory, none for NoDrift and ConceptDrift (whose
// inputs are unchanged). NewCategory also changes amount, channel and the
// features that depend on them, through the new category's profile.
func (d Drift) Features() []int {
	switch d.Kind {
	case CovariateShift:
		return d.Field.Features()
	case NewCategory:
		idx := make([]int, 0, NumCategories+1)
		for i := FeatureCategory0; i <= FeatureCategoryOther; i++ {
			idx = append(idx, i)
		}
		return idx
	}
	return nil
}

// String describes the drift ("covariate_shift(amount x3)").
func (d Drift) String() string {
	d = d.withDefaults()
	switch d.Kind {
	case CovariateShift:
		return fmt.Sprintf("%s(%s x%g)", d.Kind, d.Field, d.Factor)
	case NewCategory:
		return fmt.Sprintf("%s(%s %g)", d.Kind, CategoryCrypto, d.Share)
	}
	return d.Kind.String()
}
