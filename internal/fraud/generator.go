package fraud

import (
	"fmt"
	"math"
)

// pcgStream is the second PCG word; the seed is the first. Fixed so that a
// seed means the same data in every build.
const pcgStream = 0x6d6f64656c676174 // "modelgat"

// hourCDF is the cumulative share of transactions by local hour: quiet at
// night, peaks at lunch and early evening.
var hourCDF = func() (c [24]float64) {
	w := [24]float64{
		0.8, 0.5, 0.4, 0.3, 0.3, 0.5, 1.0, 2.0, 3.5, 4.5, 5.0, 5.5,
		6.5, 6.0, 5.0, 4.8, 5.2, 6.0, 6.5, 6.0, 5.0, 3.8, 2.5, 1.5,
	}
	var total, acc float64
	for _, x := range w {
		total += x
	}
	for i, x := range w {
		acc += x
		c[i] = acc / total
	}
	c[23] = 1
	return c
}()

// Generator draws synthetic transactions. It is deterministic for a seed
// and a drift, and not safe for concurrent use (give each goroutine its own).
type Generator struct {
	src   source
	drift Drift // defaults applied
	proc  *process
}

// Option configures a Generator.
type Option func(*Generator)

// WithDrift makes the generator draw a drifted population from the start.
// NewGenerator panics if d does not Validate; check untrusted drifts first.
func WithDrift(d Drift) Option {
	return func(g *Generator) {
		if err := g.SetDrift(d); err != nil {
			panic(err)
		}
	}
}

// NewGenerator returns a generator seeded with seed.
func NewGenerator(seed int64, opts ...Option) *Generator {
	g := &Generator{proc: &baseProcess}
	g.src.pcg.Seed(uint64(seed), pcgStream)
	for _, o := range opts {
		o(g)
	}
	return g
}

// SetDrift switches the population from the next transaction on, so a
// stream can start clean and drift part-way through.
func (g *Generator) SetDrift(d Drift) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("fraud: cannot set drift: %w", err)
	}
	g.drift = d.withDefaults()
	g.proc = &baseProcess
	if d.Kind == ConceptDrift {
		g.proc = &driftedProcess
	}
	return nil
}

// Drift returns the generator's current drift, with defaults filled in.
func (g *Generator) Drift() Drift { return g.drift }

// Next draws one transaction, writes its NumFeatures features into row
// (which must have at least NumFeatures elements) and returns its label.
// It does not allocate.
func (g *Generator) Next(row []float32) (fraud bool) {
	var t Transaction
	g.NextTransaction(&t)
	t.Encode(row)
	return t.Fraud
}

// Batch draws n transactions and returns them as a row-major matrix of
// n×NumFeatures features and their labels.
func (g *Generator) Batch(n int) (x []float32, y []bool) {
	x = make([]float32, n*NumFeatures)
	y = make([]bool, n)
	for i := range n {
		y[i] = g.Next(x[i*NumFeatures : (i+1)*NumFeatures])
	}
	return x, y
}

// NextTransaction draws one transaction into t, overwriting all of it.
//
// Every draw below happens for every transaction, in the same order, even
// when its value is not used (a card-present PIN draw for an online
// purchase), so CovariateShift and ConceptDrift, which only transform what
// was drawn, keep the stream aligned with an undrifted one of the same seed.
func (g *Generator) NextTransaction(t *Transaction) {
	r := &g.src
	*t = Transaction{}

	t.Category = drawCategory(r.uniform())
	if g.drift.Kind == NewCategory && r.uniform() < g.drift.Share {
		t.Category = CategoryCrypto
	}
	prof := &categories[t.Category]

	t.Online = r.uniform() < prof.online
	present := r.uniform() < 0.97 // mail and phone orders are offline but card-not-present
	t.CardPresent = !t.Online && present
	// Whole cents, and at least 0.50 (a card network's smallest purchase),
	// which also keeps ln(amount / average) finite.
	t.Amount = max(math.Round(math.Exp(prof.logMu+prof.logSigma*r.normal())*100)/100, 0.5)
	t.CardAvgAmount = math.Exp(3.9 + 0.5*r.normal())

	t.Hour = drawHour(r.uniform()) + r.uniform()
	t.Weekend = r.uniform() < 2.0/7

	near := math.Exp(math.Log(4) + 1.1*r.normal()) // in person: near home
	far := math.Exp(math.Log(40) + 1.4*r.normal()) // online: where the IP geolocates
	t.DistanceKm = near
	if t.Online {
		t.DistanceKm = far
	}
	pMismatch := 0.02
	if t.Online {
		pMismatch = 0.08
	}
	t.CountryMismatch = r.uniform() < pMismatch
	abroad := 300 + 2000*r.exponential()
	if t.CountryMismatch {
		t.DistanceKm += abroad
	}

	t.Velocity1h = poisson(0.6, r.uniform())
	t.MinutesSinceLast = 1 + 600*r.exponential()
	t.Merchants24h = poisson(2.1, r.uniform())
	spendNoise := math.Exp(0.4 * r.normal())
	t.Spend24h = t.CardAvgAmount * float64(t.Merchants24h) * spendNoise

	t.DeviceAgeDays = 250 * r.exponential()
	t.AccountAgeDays = math.Exp(math.Log(700) + 1.0*r.normal())
	pin := poisson(0.05, r.uniform())
	if t.CardPresent {
		t.FailedPIN = pin
	}
	t.CreditUtilization = math.Pow(r.uniform(), 1.3)
	t.NewMerchant = r.uniform() < 0.15
	t.AddressMismatch = r.uniform() < 0.10 && t.Online

	if g.drift.Kind == CovariateShift {
		switch g.drift.Field {
		case FieldAmount:
			t.Amount *= g.drift.Factor
		case FieldDistance:
			t.DistanceKm *= g.drift.Factor
		case FieldDeviceAge:
			t.DeviceAgeDays *= g.drift.Factor
		case FieldAccountAge:
			t.AccountAgeDays *= g.drift.Factor
		}
	}

	t.FraudProb = g.proc.prob(t)
	t.Fraud = r.uniform() < t.FraudProb
}

// drawCategory maps a uniform draw to an undrifted category.
func drawCategory(u float64) Category {
	for i, c := range categoryCDF {
		if u < c {
			return Category(i)
		}
	}
	return NumCategories - 1
}

// drawHour maps a uniform draw to a whole hour of day.
func drawHour(u float64) float64 {
	for i, c := range hourCDF {
		if u < c {
			return float64(i)
		}
	}
	return 23
}

// poisson maps a uniform draw to a Poisson(lambda) count by inverting its
// CDF, so that every count costs exactly one draw.
func poisson(lambda, u float64) int {
	p := math.Exp(-lambda)
	cdf := p
	k := 0
	for u >= cdf && k < 50 {
		k++
		p *= lambda / float64(k)
		cdf += p
	}
	return k
}
