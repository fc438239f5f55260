package fraud

import "math"

// process is the latent logistic fraud model: the log-odds of fraud are a
// weighted sum of (transformed) raw fields. Most terms are monotone in an
// encoded feature, so logistic regression can learn them; the night-time
// bump and the online×device-age interaction are not, which leaves room for
// a non-linear model to do better.
type process struct {
	intercept    float64
	amountRatio  float64 // × ln(amount / card average)
	distance     float64 // × ln(1 + km)
	velocity     float64 // × transactions in the last hour
	country      float64 // × country mismatch
	notPresent   float64 // × card not present
	newMerchant  float64 // × new merchant
	address      float64 // × address mismatch
	deviceOnline float64 // × ln(1 + device age days), online only
	accountAge   float64 // × ln(1 + account age days)
	failedPIN    float64 // × failed PIN attempts
	night        float64 // × [hour in 0:00–5:00)
	weekend      float64 // × weekend
	utilization  float64 // × credit utilisation
	minutesSince float64 // × ln(1 + minutes since last)
	merchants24h float64 // × distinct merchants in 24 h
	conceptDrift bool    // use the categories' riskCD instead of risk
}

// baseProcess is the fraud process of the training population. Its
// intercept puts the fraud rate near 2%.
var baseProcess = process{
	intercept:    -3.75,
	amountRatio:  1.0,
	distance:     0.35,
	velocity:     0.55,
	country:      1.3,
	notPresent:   0.7,
	newMerchant:  0.8,
	address:      1.0,
	deviceOnline: -0.35,
	accountAge:   -0.35,
	failedPIN:    1.1,
	night:        1.1,
	weekend:      0.1,
	utilization:  1.2,
	minutesSince: -0.2,
	merchants24h: 0.15,
}

// driftedProcess is the fraud process under ConceptDrift: small-amount card
// testing, skimmed cards used in person, old accounts taken over, in
// categories that used to be safe. Its fraud rate is close to the base one,
// so the drift shows in what predicts fraud rather than in how much there is.
var driftedProcess = process{
	intercept:    -5.6,
	amountRatio:  -0.6,
	distance:     0.1,
	velocity:     0.9,
	country:      0.2,
	notPresent:   -0.6,
	newMerchant:  0.1,
	accountAge:   0.25,
	failedPIN:    1.6,
	weekend:      0.6,
	minutesSince: -0.35,
	conceptDrift: true,
}

// prob returns the probability of fraud of t under p.
func (p *process) prob(t *Transaction) float64 {
	z := p.intercept +
		p.amountRatio*math.Log(t.Amount/t.CardAvgAmount) +
		p.distance*math.Log1p(t.DistanceKm) +
		p.velocity*float64(t.Velocity1h) +
		p.country*b2f(t.CountryMismatch) +
		p.notPresent*b2f(!t.CardPresent) +
		p.newMerchant*b2f(t.NewMerchant) +
		p.address*b2f(t.AddressMismatch) +
		p.deviceOnline*b2f(t.Online)*math.Log1p(t.DeviceAgeDays) +
		p.accountAge*math.Log1p(t.AccountAgeDays) +
		p.failedPIN*float64(t.FailedPIN) +
		p.night*b2f(t.Hour < 5) +
		p.weekend*b2f(t.Weekend) +
		p.utilization*t.CreditUtilization +
		p.minutesSince*math.Log1p(t.MinutesSinceLast) +
		p.merchants24h*float64(t.Merchants24h)
	if p.conceptDrift {
		z += categories[t.Category].riskCD
	} else {
		z += categories[t.Category].risk
	}
	return 1 / (1 + math.Exp(-z))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
