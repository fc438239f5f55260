package fraud

// Category is a merchant category (a coarse merchant category code).
type Category uint8

// The merchant categories. The first NumCategories are the ones an undrifted
// generator draws; CategoryCrypto appears only under NewCategory drift, so a
// model trained on undrifted data has never seen it.
const (
	CategoryGrocery Category = iota
	CategoryRestaurant
	CategoryFuel
	CategoryRetail
	CategoryElectronics
	CategoryTravel
	CategoryEntertainment
	CategoryHealth
	CategoryDigitalGoods
	CategoryCashWithdrawal
	// CategoryCrypto is the new category of NewCategory drift. It is encoded
	// into the "mcc_other" slot, which is zero for every other category.
	CategoryCrypto
)

// NumCategories is the number of categories an undrifted generator draws.
const NumCategories = 10

// categoryProfile is how transactions look in one category.
type categoryProfile struct {
	name     string
	share    float64 // relative frequency (undrifted)
	logMu    float64 // mean of ln(amount)
	logSigma float64 // std of ln(amount)
	online   float64 // P(online)
	risk     float64 // additive logit term of the base fraud process
	riskCD   float64 // the same under concept drift
}

// categories is indexed by Category; CategoryCrypto is last and has share 0
// because only NewCategory drift draws it.
var categories = [NumCategories + 1]categoryProfile{
	CategoryGrocery:        {"grocery", 0.22, 3.6, 0.7, 0.05, -0.6, 0.9},
	CategoryRestaurant:     {"restaurant", 0.16, 3.3, 0.6, 0.08, -0.4, 0.3},
	CategoryFuel:           {"fuel", 0.10, 3.8, 0.4, 0.02, -0.2, 1.0},
	CategoryRetail:         {"retail", 0.14, 4.1, 0.9, 0.30, 0.0, -0.2},
	CategoryElectronics:    {"electronics", 0.05, 5.3, 0.9, 0.50, 0.8, -0.8},
	CategoryTravel:         {"travel", 0.04, 5.8, 0.8, 0.70, 0.4, -0.6},
	CategoryEntertainment:  {"entertainment", 0.08, 3.7, 0.7, 0.40, 0.0, 0.0},
	CategoryHealth:         {"health", 0.06, 4.2, 0.8, 0.10, -0.5, -0.3},
	CategoryDigitalGoods:   {"digital_goods", 0.09, 2.7, 0.9, 0.95, 0.7, -0.7},
	CategoryCashWithdrawal: {"cash_withdrawal", 0.06, 4.6, 0.6, 0.00, 0.5, 1.2},
	CategoryCrypto:         {"crypto", 0, 5.7, 1.0, 0.98, 1.0, 1.0},
}

// categoryCDF is the cumulative share of the undrifted categories.
var categoryCDF = func() (c [NumCategories]float64) {
	var total, acc float64
	for i := range NumCategories {
		total += categories[i].share
	}
	for i := range NumCategories {
		acc += categories[i].share
		c[i] = acc / total
	}
	c[NumCategories-1] = 1
	return c
}()

// String returns the category's snake_case name ("grocery", "crypto").
func (c Category) String() string {
	if int(c) < len(categories) {
		return categories[c].name
	}
	return "unknown"
}
