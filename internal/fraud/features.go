package fraud

import "math"

// NumFeatures is the length of an encoded row.
const NumFeatures = 30

// Indexes of the features in an encoded row. FeatureNames names them.
const (
	FeatureAmount            = iota // ln(1+amount), standardised
	FeatureAmountRatio              // ln(amount / card's average amount), standardised
	FeatureDistance                 // ln(1+km from home), standardised
	FeatureVelocity                 // transactions in the last hour, standardised
	FeatureMinutesSinceLast         // ln(1+minutes since the card's last transaction), standardised
	FeatureSpend24h                 // ln(1+spend in the previous 24 h), standardised
	FeatureMerchants24h             // distinct merchants in the previous 24 h, standardised
	FeatureDeviceAge                // ln(1+device age in days), standardised
	FeatureAccountAge               // ln(1+account age in days), standardised
	FeatureFailedPIN                // failed PIN attempts before this one, standardised
	FeatureCreditUtilization        // share of the credit line in use, standardised
	FeatureHourSin                  // sin(2π·hour/24)
	FeatureHourCos                  // cos(2π·hour/24)
	FeatureCardPresent              // 0/1
	FeatureCountryMismatch          // 0/1: merchant country is not the card's
	FeatureOnline                   // 0/1
	FeatureNewMerchant              // 0/1: first purchase from this merchant
	FeatureAddressMismatch          // 0/1: billing and shipping address differ
	FeatureWeekend                  // 0/1
	FeatureCategory0                // first of the NumCategories one-hot merchant category slots
	// FeatureCategoryOther is the one-hot slot of any category outside the
	// first NumCategories: always zero unless NewCategory drift is on.
	FeatureCategoryOther = FeatureCategory0 + NumCategories
)

// FeatureNames names the encoded features in order: stable snake_case names,
// exported into ONNX metadata and used by drift reports.
var FeatureNames = [NumFeatures]string{
	FeatureAmount:            "amount_log",
	FeatureAmountRatio:       "amount_to_avg_ratio_log",
	FeatureDistance:          "distance_from_home_log",
	FeatureVelocity:          "velocity_1h",
	FeatureMinutesSinceLast:  "minutes_since_last_txn_log",
	FeatureSpend24h:          "spend_24h_log",
	FeatureMerchants24h:      "merchants_24h",
	FeatureDeviceAge:         "device_age_days_log",
	FeatureAccountAge:        "account_age_days_log",
	FeatureFailedPIN:         "failed_pin_attempts",
	FeatureCreditUtilization: "credit_utilization",
	FeatureHourSin:           "hour_sin",
	FeatureHourCos:           "hour_cos",
	FeatureCardPresent:       "card_present",
	FeatureCountryMismatch:   "country_mismatch",
	FeatureOnline:            "online",
	FeatureNewMerchant:       "new_merchant",
	FeatureAddressMismatch:   "address_mismatch",
	FeatureWeekend:           "weekend",
	FeatureCategory0 + 0:     "mcc_grocery",
	FeatureCategory0 + 1:     "mcc_restaurant",
	FeatureCategory0 + 2:     "mcc_fuel",
	FeatureCategory0 + 3:     "mcc_retail",
	FeatureCategory0 + 4:     "mcc_electronics",
	FeatureCategory0 + 5:     "mcc_travel",
	FeatureCategory0 + 6:     "mcc_entertainment",
	FeatureCategory0 + 7:     "mcc_health",
	FeatureCategory0 + 8:     "mcc_digital_goods",
	FeatureCategory0 + 9:     "mcc_cash_withdrawal",
	FeatureCategoryOther:     "mcc_other",
}

// scaling is the fixed centre and scale of a numeric feature, chosen near
// the undrifted population's mean and standard deviation so encoded values
// sit roughly in [-3, 3]. They are constants, not fitted, so that a row
// means the same thing whatever data a model was trained on; trainers
// standardise again on their own data.
type scaling struct{ centre, scale float64 }

func (s scaling) apply(v float64) float32 { return float32((v - s.centre) / s.scale) }

var (
	scaleAmount       = scaling{3.89, 0.97}
	scaleAmountRatio  = scaling{-0.04, 1.12}
	scaleDistance     = scaling{2.36, 1.61}
	scaleVelocity     = scaling{0.60, 0.77}
	scaleMinutesSince = scaling{5.84, 1.24}
	scaleSpend24h     = scaling{4.07, 1.71}
	scaleMerchants24h = scaling{2.09, 1.44}
	scaleDeviceAge    = scaling{4.96, 1.23}
	scaleAccountAge   = scaling{6.55, 1.00}
	scaleFailedPIN    = scaling{0.04, 0.19}
	scaleUtilization  = scaling{0.43, 0.30}
)

// Encode writes t's NumFeatures features into row, which must have at least
// NumFeatures elements. It does not allocate.
func (t *Transaction) Encode(row []float32) {
	row = row[:NumFeatures]
	row[FeatureAmount] = scaleAmount.apply(math.Log1p(t.Amount))
	row[FeatureAmountRatio] = scaleAmountRatio.apply(math.Log(t.Amount / t.CardAvgAmount))
	row[FeatureDistance] = scaleDistance.apply(math.Log1p(t.DistanceKm))
	row[FeatureVelocity] = scaleVelocity.apply(float64(t.Velocity1h))
	row[FeatureMinutesSinceLast] = scaleMinutesSince.apply(math.Log1p(t.MinutesSinceLast))
	row[FeatureSpend24h] = scaleSpend24h.apply(math.Log1p(t.Spend24h))
	row[FeatureMerchants24h] = scaleMerchants24h.apply(float64(t.Merchants24h))
	row[FeatureDeviceAge] = scaleDeviceAge.apply(math.Log1p(t.DeviceAgeDays))
	row[FeatureAccountAge] = scaleAccountAge.apply(math.Log1p(t.AccountAgeDays))
	row[FeatureFailedPIN] = scaleFailedPIN.apply(float64(t.FailedPIN))
	row[FeatureCreditUtilization] = scaleUtilization.apply(t.CreditUtilization)
	angle := 2 * math.Pi * t.Hour / 24
	row[FeatureHourSin] = float32(math.Sin(angle))
	row[FeatureHourCos] = float32(math.Cos(angle))
	row[FeatureCardPresent] = flag(t.CardPresent)
	row[FeatureCountryMismatch] = flag(t.CountryMismatch)
	row[FeatureOnline] = flag(t.Online)
	row[FeatureNewMerchant] = flag(t.NewMerchant)
	row[FeatureAddressMismatch] = flag(t.AddressMismatch)
	row[FeatureWeekend] = flag(t.Weekend)
	for i := FeatureCategory0; i <= FeatureCategoryOther; i++ {
		row[i] = 0
	}
	if t.Category < NumCategories {
		row[FeatureCategory0+int(t.Category)] = 1
	} else {
		row[FeatureCategoryOther] = 1
	}
}

func flag(b bool) float32 {
	if b {
		return 1
	}
	return 0
}
