package lifecycle

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The closed form of the one-sided normal mixture equals the mixture it
// stands for, integrated numerically: ∫ LR(θ0+u) · half-normal(u; τ) du.
func TestMixtureLogLRMatchesIntegral(t *testing.T) {
	f := func(d, v, tau float64) {
		t.Helper()
		const steps = 200000
		hi := 12 * tau
		du := hi / steps
		var sum float64
		for i := range steps {
			u := (float64(i) + 0.5) * du
			prior := 2 / (tau * math.Sqrt(2*math.Pi)) * math.Exp(-u*u/(2*tau*tau))
			sum += prior * math.Exp(u*d/v-u*u/(2*v)) * du
		}
		got := mixtureLogLR(d, v, tau)
		if math.Abs(got-math.Log(sum)) > 1e-6 {
			t.Fatalf("d=%g v=%g tau=%g: closed form %g, integral %g", d, v, tau, got, math.Log(sum))
		}
	}
	f(0, 1e-4, 0.02)
	f(0.03, 1e-4, 0.02)
	f(-0.03, 1e-4, 0.02)
	f(0.01, 4e-4, 0.05)
	f(0.002, 1e-6, 0.01)
}

func TestLogPhiTail(t *testing.T) {
	for _, x := range []float64{-40, -35, -31, -29} {
		// Mills' ratio with its next term: Φ(x) ≈ φ(x)/|x| · (1 − 1/x²).
		want := -x*x/2 - math.Log(-x) - 0.5*math.Log(2*math.Pi) + math.Log1p(-1/(x*x))
		if got := logPhi(x); math.Abs(got-want) > 2e-3 {
			t.Fatalf("logPhi(%g) = %g, want %g", x, got, want)
		}
	}
	if got := logPhi(0); math.Abs(got-math.Log(0.5)) > 1e-12 {
		t.Fatal(got)
	}
}

// Each test rejects in its direction only, and never without information.
func TestGainTestsDirections(t *testing.T) {
	const a = 0.05
	v := 1e-5 // se ≈ 0.0032
	f := func(name string, r TestResult, want bool) {
		t.Helper()
		if r.Rejected != want {
			t.Fatalf("%s: rejected %v, want %v (%+v)", name, r.Rejected, want, r)
		}
		if r.Rejected != (r.PValue <= a) {
			t.Fatalf("%s: p-value %g disagrees with the rejection", name, r.PValue)
		}
	}
	f("superiority, 5 points better", Superiority(0.05, v, 0.02, a), true)
	f("superiority, equal", Superiority(0, v, 0.02, a), false)
	f("superiority, worse", Superiority(-0.05, v, 0.02, a), false)
	f("non-inferiority, equal", NonInferiority(0, v, 0.02, a), true)
	f("non-inferiority, 3 points worse", NonInferiority(-0.03, v, 0.02, a), false)
	f("regression, 5 points worse", Regression(-0.05, v, 0.01, 0.02, a), true)
	f("regression, equal", Regression(0, v, 0.01, 0.02, a), false)
	f("regression, better", Regression(0.05, v, 0.01, 0.02, a), false)
	f("no information", Superiority(0.5, 0, 0.02, a), false)
	f("infinite variance", Superiority(0.5, math.Inf(1), 0.02, a), false)
	if r := Regression(-0.05, v, 0.01, 0.02, a); r.Null != -0.01 || r.Hypothesis != HypothesisRegression || math.Abs(r.StdErr-math.Sqrt(v)) > 1e-12 {
		t.Fatalf("%+v", r)
	}
}

// Exceedance against a hand computation, and at the limits of p0.
func TestExceedance(t *testing.T) {
	r := Exceedance(3, 100, 0.01, 0.05)
	var want float64
	for _, c := range exceedanceRatios {
		p1 := 0.01 * c
		want += math.Pow(p1/0.01, 3) * math.Pow((1-p1)/0.99, 97)
	}
	want = math.Log(want / float64(len(exceedanceRatios)))
	if math.Abs(r.LogLR-want) > 1e-9 || r.Estimate != 0.03 {
		t.Fatalf("LogLR %g, want %g (%+v)", r.LogLR, want, r)
	}
	if r := Exceedance(0, 1_000_000, 0.01, 0.05); r.Rejected || r.LogLR > 0 {
		t.Fatalf("no events rejected the null: %+v", r)
	}
	if r := Exceedance(40, 1000, 0.01, 0.05); !r.Rejected {
		t.Fatalf("4%% against a 1%% limit over 1,000 trials not rejected: %+v", r)
	}
	// A high limit keeps one alternative between it and 1.
	if r := Exceedance(95, 100, 0.9, 0.05); !(r.LogLR > 0) {
		t.Fatalf("95 of 100 against 0.9: %+v", r)
	}
	if r := Exceedance(5, 0, 0.01, 0.05); r.Rejected || r.PValue != 1 {
		t.Fatalf("no trials: %+v", r)
	}
}

// TestExceedanceAlwaysValid: requests failing at exactly the limit,
// checked after every 50 requests up to 100,000, fire the trigger in at
// most 5% of runs (Ville's inequality), where a fixed-sample binomial
// z-test checked as often fires far more.
func TestExceedanceAlwaysValid(t *testing.T) {
	const runs, p0, alpha = 400, 0.01, 0.05
	var fired, naive int
	for i := range runs {
		r := rand.New(rand.NewPCG(uint64(i+1), 7))
		var k, n uint64
		var f, nv bool
		for n < 100_000 {
			k += binomial(r, 50, p0)
			n += 50
			if !f && Exceedance(k, n, p0, alpha).Rejected {
				f = true
			}
			if z := (float64(k)/float64(n) - p0) / math.Sqrt(p0*(1-p0)/float64(n)); z > 1.645 {
				nv = true
			}
		}
		if f {
			fired++
		}
		if nv {
			naive++
		}
	}
	t.Logf("errors at the limit: the exceedance test fired in %d of %d runs, a repeated z-test in %d", fired, runs, naive)
	if float64(fired)/runs > alpha {
		t.Fatalf("fired in %d of %d runs at the limit; the bound is %g", fired, runs, alpha)
	}
	if float64(naive)/runs <= 2*alpha {
		t.Fatalf("the repeated z-test fired in only %d of %d runs", naive, runs)
	}
}
