package lifecycle

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/modelgate/modelgate/registry"
	"github.com/modelgate/modelgate/shadow"
)

// The simulations run hundreds of rollouts through Decide, one decision
// per simulated window, on an injected clock: each window's traffic is
// split by the step's weight, every answered request is labelled from a
// known distribution (a fraud-like 10% positives), and the cumulative
// counts are the evidence. Seeds are fixed, so every run draws the same
// rollouts and the rates below are exact for them.

// simModel is a version's true behaviour.
type simModel struct {
	recall  float64 // P(decided positive | positive)
	fpr     float64 // P(decided positive | negative)
	errRate float64 // P(request fails)
	// p99 scales the latency distribution (1: the champion's).
	latencyScale float64
	// sep is how far apart the classes' score logits are, for the runs
	// that score rows (simConfig.rows): AUC = Φ(sep/√2).
	sep float64
}

type simConfig struct {
	policy     registry.Policy
	window     time.Duration
	traffic    uint64  // the model's requests per window
	posRate    float64 // share of positive labels
	champion   simModel
	candidate  simModel
	maxWindows int
	latency    bool // record latency histograms (slower; only the latency runs need them)
	// rows scores every labelled row into a real shadow.Evaluation per
	// version and reads the evidence back with LabelsFromMetrics (for
	// AUC, log-loss and Brier), the champion's from a sample of
	// championRows rows a window, as when labels come for a sample.
	rows         bool
	championRows uint64
}

// simOutcome is how one rollout ended.
type simOutcome struct {
	action    Action // promote, roll_back, or hold (undecided at maxWindows)
	reason    string
	windows   int
	weight    float64 // the candidate's weight when it ended (0 in shadow)
	maxWeight float64 // the largest weight it reached
	labelled  uint64  // the candidate's labelled predictions when it ended
	requests  uint64  // the candidate's requests when it ended
	fired     []string
	// naive is whether a fixed-sample one-sided z-test at the policy's
	// confidence, repeated on the same evidence every window, would have
	// declared the candidate better at some window.
	naive bool
}

// binomial draws Bin(n, p): exactly by counting for small n, by geometric
// skips when successes are few, else by the normal approximation (np and
// n(1-p) both above 20, where it is accurate to far below what the rates
// here resolve).
func binomial(r *rand.Rand, n uint64, p float64) uint64 {
	switch {
	case n == 0 || p <= 0:
		return 0
	case p >= 1:
		return n
	case p > 0.5:
		return n - binomial(r, n, 1-p)
	case n < 64:
		var k uint64
		for range n {
			if r.Float64() < p {
				k++
			}
		}
		return k
	case float64(n)*p < 20:
		// Positions of successes are geometric skips apart.
		var k, pos uint64
		lq := math.Log1p(-p)
		for {
			skip := math.Floor(math.Log(1-r.Float64()) / lq)
			pos += uint64(skip) + 1
			if pos > n {
				return k
			}
			k++
		}
	}
	mean, sd := float64(n)*p, math.Sqrt(float64(n)*p*(1-p))
	return uint64(min(float64(n), max(0, math.Round(mean+sd*r.NormFloat64()))))
}

// draw adds n labelled requests of model m to s (and returns its errors).
func (m simModel) draw(r *rand.Rand, n uint64, posRate float64, s *LabelStats) {
	pos := binomial(r, n, posRate)
	tp := binomial(r, pos, m.recall)
	fp := binomial(r, n-pos, m.fpr)
	s.N += n
	s.TP += tp
	s.FN += pos - tp
	s.FP += fp
	s.TN += n - pos - fp
}

// score adds n labelled rows of m to e: a score is the logistic of
// −2.5 + sep·label + N(0, 1).
func (m simModel) score(r *rand.Rand, n uint64, posRate float64, e *shadow.Evaluation) {
	for range n {
		label := 0.0
		if r.Float64() < posRate {
			label = 1
		}
		if err := e.Add(1/(1+math.Exp(2.5-m.sep*label-r.NormFloat64())), label); err != nil {
			panic(err)
		}
	}
}

// record adds n latencies of m (lognormal, median 2 ms, σ 0.5: p99 ≈ 6.4 ms).
func (m simModel) record(r *rand.Rand, n uint64, h *hdrhistogram.Histogram) {
	for range n {
		_ = h.RecordValue(int64(2000 * m.latencyScale * math.Exp(0.5*r.NormFloat64())))
	}
}

// simulate runs one rollout.
func simulate(cfg simConfig, seed uint64) simOutcome {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	rp := cfg.policy.EffectiveRollout()
	t0 := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	st := RolloutState{StepStarted: t0}
	ev := Evidence{Candidate: Arm{Version: 2}, Champion: Arm{Version: 1}}
	if cfg.latency {
		ev.Candidate.Latency = hdrhistogram.New(1, 60_000_000, 2)
		ev.Champion.Latency = hdrhistogram.New(1, 60_000_000, 2)
	}
	var evalC, evalH *shadow.Evaluation
	if cfg.rows {
		evalC, _ = shadow.NewEvaluation(shadow.EvalConfig{})
		evalH, _ = shadow.NewEvaluation(shadow.EvalConfig{})
	}
	out := simOutcome{action: ActionHold}
	z := math.Sqrt2 * math.Erfinv(2*rp.Confidence-1)
	for w := 1; w <= cfg.maxWindows; w++ {
		step := rp.Steps[st.Step]
		var nc, nh uint64
		if step.Stage == registry.StageShadow {
			nc, nh = cfg.traffic, cfg.traffic // every champion answer is mirrored
		} else {
			nc = uint64(math.Round(float64(cfg.traffic) * step.Weight / 100))
			nh = cfg.traffic - nc
		}
		if cfg.rows {
			cfg.candidate.score(r, nc, cfg.posRate, evalC)
			cfg.champion.score(r, min(nh, cfg.championRows), cfg.posRate, evalH)
			mc, _ := evalC.Metrics(0)
			mh, _ := evalH.Metrics(0)
			ev.Candidate.Labels, ev.Champion.Labels = LabelsFromMetrics(mc), LabelsFromMetrics(mh)
		} else {
			cfg.candidate.draw(r, nc, cfg.posRate, &ev.Candidate.Labels)
			cfg.champion.draw(r, nh, cfg.posRate, &ev.Champion.Labels)
		}
		ev.Candidate.Requests += nc
		ev.Champion.Requests += nh
		ev.Candidate.Errors += binomial(r, nc, cfg.candidate.errRate)
		ev.Champion.Errors += binomial(r, nh, cfg.champion.errRate)
		if cfg.latency {
			cfg.candidate.record(r, nc, ev.Candidate.Latency)
			// The champion's p99 is estimated well from a sample of its
			// traffic; recording all of it would only slow the test.
			cfg.champion.record(r, min(nh, 2000), ev.Champion.Latency)
		}
		st.StepRequests += nc
		now := t0.Add(time.Duration(w) * cfg.window)

		if g, v, ok := Gain(rp.Metric, ev.Candidate.Labels, ev.Champion.Labels); ok && g/math.Sqrt(v) > z {
			out.naive = true
		}
		d := Decide(&cfg.policy, st, ev, now)
		out.windows, out.labelled, out.requests = w, ev.Candidate.Labels.N, ev.Candidate.Requests
		out.weight = step.Weight
		switch d.Action {
		case ActionAwaitApproval:
			if d.Stage == registry.StageChampion {
				out.action, out.reason = d.Action, d.Reason
				return out
			}
			// A person approves each step at once: the simulations judge
			// the promotion.
			fallthrough
		case ActionAdvance:
			st = RolloutState{Step: d.Step, StepStarted: now}
			out.maxWeight = max(out.maxWeight, d.Weight)
		case ActionPromote, ActionRollBack:
			out.action, out.reason = d.Action, d.Reason
			for _, c := range d.Checks {
				if c.Status == StatusFired {
					out.fired = append(out.fired, c.Name)
				}
			}
			return out
		}
	}
	return out
}

// simPolicy is the policy the simulations roll out under: automatic
// promotion (no approval at any step), a canary-only ramp 1% → 5% → 25%
// → 50% of 10-minute steps, promotion on recall at 95% with a 0.02
// minimum effect within 100,000 labelled predictions, rollback on 1%
// errors, 1.5× the champion's p99 or a recall regression beyond 0.01.
// The 25% step is sized (30,000 requests, ~3,000 labelled positives at
// 10%) so that a 5-point regression, 4 points beyond the tolerance, is
// about five standard errors out when the step ends, and the trigger has
// all but certainly fired before the candidate may reach 50%.
func simPolicy() registry.Policy {
	p := registry.DefaultPolicy()
	p.Promotion.Champion.RequireApproval = false
	r := registry.DefaultRollout()
	step := func(w float64, n int64) registry.RolloutStep {
		return registry.RolloutStep{Stage: registry.StageCanary, Weight: w, MinDuration: registry.Duration(10 * time.Minute), MinSamples: n}
	}
	r.Steps = []registry.RolloutStep{step(1, 1000), step(5, 5000), step(25, 30000), step(50, 20000)}
	r.Metric, r.MinEffect, r.MaxSamples = registry.MetricRecall, 0.02, 100000
	p.Rollout = &r
	if err := p.Validate(); err != nil {
		panic(err)
	}
	return p
}

func baseSim() simConfig {
	champ := simModel{recall: 0.80, fpr: 0.05, errRate: 0.001, latencyScale: 1}
	return simConfig{
		policy: simPolicy(), window: time.Minute, traffic: 10000, posRate: 0.10,
		champion: champ, candidate: champ, maxWindows: 400,
	}
}

// runSims runs n rollouts of cfg with seeds 1..n.
func runSims(cfg simConfig, n int) []simOutcome {
	out := make([]simOutcome, n)
	for i := range out {
		out[i] = simulate(cfg, uint64(i+1))
	}
	return out
}

func share(outs []simOutcome, f func(o simOutcome) bool) float64 {
	k := 0
	for _, o := range outs {
		if f(o) {
			k++
		}
	}
	return float64(k) / float64(len(outs))
}

func simCount(t *testing.T, full int) int {
	if testing.Short() {
		return full / 4
	}
	return full
}

// TestSimIdenticalModelsRarelyPromoted: a candidate identical to the
// champion, judged every window, is promoted in at most 5% of rollouts at
// 95% confidence: until the policy's budget ends the rollout, with no
// budget over 400 windows (two million labelled predictions), and at a
// hundredth of the traffic, where the test starts judging on few rows.
func TestSimIdenticalModelsRarelyPromoted(t *testing.T) {
	noBudget := baseSim()
	noBudget.policy.Rollout.MaxSamples = 0
	low := baseSim()
	low.traffic = 1000
	low.policy.Rollout.MaxSamples = 50000
	for _, c := range []struct {
		name string
		cfg  simConfig
	}{{"budget", baseSim()}, {"no budget", noBudget}, {"low traffic", low}} {
		t.Run(c.name, func(t *testing.T) {
			outs := runSims(c.cfg, simCount(t, 600))
			promoted := share(outs, func(o simOutcome) bool { return o.action == ActionPromote })
			budget := share(outs, func(o simOutcome) bool {
				return o.action == ActionRollBack && len(o.fired) == 1 && o.fired[0] == CheckBudget
			})
			undecided := share(outs, func(o simOutcome) bool { return o.action == ActionHold })
			t.Logf("identical: promoted %.1f%%, ended by the budget %.1f%%, other rollbacks %.1f%%, undecided after %d windows %.1f%% of %d",
				100*promoted, 100*budget, 100*(1-promoted-budget-undecided), c.cfg.maxWindows, 100*undecided, len(outs))
			if promoted > 0.05 {
				t.Fatalf("identical models promoted in %.1f%% of rollouts; the bound is 5%%", 100*promoted)
			}
			if c.cfg.policy.Rollout.MaxSamples > 0 && undecided > 0 {
				t.Fatalf("%.1f%% of rollouts never ended: the budget must end them", 100*undecided)
			}
		})
	}
}

// TestSimManualNonInferiority: in manual mode the promotion is put to a
// person once the candidate is shown not worse than the champion by the
// minimum effect. A candidate exactly that much worse is put forward in
// at most 5% of rollouts; an identical one in most (the rest spend the
// budget before the test passes).
func TestSimManualNonInferiority(t *testing.T) {
	cfg := baseSim()
	cfg.policy.Promotion.Mode = registry.PromotionManual
	margin := cfg.policy.Rollout.MinEffect
	equal := runSims(cfg, simCount(t, 400))
	cfg.candidate.recall -= margin
	worse := runSims(cfg, simCount(t, 400))
	asked := func(o simOutcome) bool { return o.action == ActionAwaitApproval }
	t.Logf("manual: promotion asked for %.1f%% of identical candidates, %.1f%% of candidates %g worse (of %d each)",
		100*share(equal, asked), 100*share(worse, asked), margin, len(equal))
	if share(worse, asked) > 0.05 {
		t.Fatalf("a candidate at the margin was put forward in %.1f%% of rollouts; the bound is 5%%", 100*share(worse, asked))
	}
	if share(equal, asked) < 0.85 {
		t.Fatalf("an identical candidate was put forward in %.1f%% of rollouts; expected at least 85%%", 100*share(equal, asked))
	}
}

// TestSimScoredMetrics runs rollouts on metrics that are not counts,
// through real shadow evaluations of scored rows: identical models are
// promoted in at most 5% of rollouts on AUC (the default metric) and on
// log-loss, and a candidate 4 points of AUC better in at least 90%.
func TestSimScoredMetrics(t *testing.T) {
	base := func(m registry.Metric) simConfig {
		cfg := baseSim()
		cfg.rows, cfg.championRows = true, 2000
		cfg.champion.sep, cfg.candidate.sep = 2, 2 // AUC 0.92
		cfg.policy.Rollout.Metric, cfg.policy.Rollout.MinEffect, cfg.policy.Rollout.MaxSamples = m, 0.01, 60000
		return cfg
	}
	for _, c := range []struct {
		name    string
		metric  registry.Metric
		sep     float64
		promote func(share float64) bool
		want    string
	}{
		{"identical on auc", registry.MetricAUC, 2, func(s float64) bool { return s <= 0.05 }, "at most 5%"},
		{"identical on logloss", registry.MetricLogLoss, 2, func(s float64) bool { return s <= 0.05 }, "at most 5%"},
		{"4 points of auc better", registry.MetricAUC, 2.5, func(s float64) bool { return s >= 0.90 }, "at least 90%"}, // AUC 0.96
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := base(c.metric)
			cfg.candidate.sep = c.sep
			outs := runSims(cfg, simCount(t, 120)) // every row scored: fewer rollouts
			promoted := share(outs, func(o simOutcome) bool { return o.action == ActionPromote })
			t.Logf("%s: promoted in %.1f%% of %d rollouts", c.name, 100*promoted, len(outs))
			if !c.promote(promoted) {
				t.Fatalf("promoted in %.1f%% of rollouts; the bound is %s", 100*promoted, c.want)
			}
		})
	}
}

// TestSimNaiveRepeatedTestInflatesErrors documents why the promotion test
// is sequential: a fixed-sample one-sided z-test at 95%, repeated on the
// same identical-model rollouts every window, declares the candidate
// better far more often than 5%.
func TestSimNaiveRepeatedTestInflatesErrors(t *testing.T) {
	outs := runSims(baseSim(), simCount(t, 600))
	naive := share(outs, func(o simOutcome) bool { return o.naive })
	seq := share(outs, func(o simOutcome) bool { return o.action == ActionPromote })
	t.Logf("identical models: the naive test rejects in %.1f%% of rollouts, the sequential test promotes %.1f%%", 100*naive, 100*seq)
	if naive <= 0.10 {
		t.Fatalf("the naive repeated test rejected in only %.1f%% of rollouts; expected well above 5%%", 100*naive)
	}
}

// TestSimBetterCandidatePromoted: a candidate 5 points of recall better is
// promoted in at least 90% of rollouts within the policy's budget of
// labelled predictions.
func TestSimBetterCandidatePromoted(t *testing.T) {
	cfg := baseSim()
	cfg.candidate.recall += 0.05
	outs := runSims(cfg, simCount(t, 400))
	budget := uint64(cfg.policy.Rollout.MaxSamples)
	promoted := share(outs, func(o simOutcome) bool { return o.action == ActionPromote && o.labelled <= budget })
	var maxLabelled uint64
	for _, o := range outs {
		maxLabelled = max(maxLabelled, o.labelled)
	}
	t.Logf("5 points better: promoted within the budget of %d in %.1f%% of %d rollouts (largest labelled at the end: %d)", budget, 100*promoted, len(outs), maxLabelled)
	if promoted < 0.90 {
		t.Fatalf("promoted in %.1f%% of rollouts; the bound is 90%%", 100*promoted)
	}
}

// TestSimRecallRegressionRolledBack: a candidate 5 points of recall worse
// is rolled back by the label trigger, before it reached more than 25% of
// the traffic, in at least 95% of rollouts.
func TestSimRecallRegressionRolledBack(t *testing.T) {
	cfg := baseSim()
	cfg.candidate.recall -= 0.05
	outs := runSims(cfg, simCount(t, 400))
	inTime := share(outs, func(o simOutcome) bool {
		return o.action == ActionRollBack && contains(o.fired, CheckLabelRegression) && o.maxWeight <= 25
	})
	byWeight := map[float64]int{}
	for _, o := range outs {
		byWeight[o.weight]++
	}
	t.Logf("5-point recall regression: rolled back by the label trigger at ≤ 25%% traffic in %.1f%% of %d rollouts; ended at weight (%%) → rollouts: %v", 100*inTime, len(outs), byWeight)
	if inTime < 0.95 {
		t.Fatalf("rolled back at ≤ 25%% traffic in %.1f%% of rollouts; the bound is 95%%", 100*inTime)
	}
}

// TestSimFailingCanaryRolledBack: a canary failing 2% of its requests
// (the limit is 1%) is rolled back by the error trigger in at least 95%
// of rollouts within the budget of its first two steps' requests, before
// it reaches 25% of the traffic.
func TestSimFailingCanaryRolledBack(t *testing.T) {
	cfg := baseSim()
	cfg.candidate.errRate = 0.02
	outs := runSims(cfg, simCount(t, 400))
	rp := cfg.policy.Rollout
	budget := uint64(rp.Steps[0].MinSamples + rp.Steps[1].MinSamples)
	ok := share(outs, func(o simOutcome) bool {
		return o.action == ActionRollBack && contains(o.fired, CheckErrorRate) && o.requests <= budget && o.maxWeight <= 5
	})
	t.Logf("2%% errors: rolled back within %d requests at ≤ 5%% traffic in %.1f%% of %d rollouts", budget, 100*ok, len(outs))
	if ok < 0.95 {
		t.Fatalf("rolled back in time in %.1f%% of rollouts; the bound is 95%%", 100*ok)
	}
}

// TestSimSlowCanaryRolledBack: a canary with twice the champion's
// latency (p99 2×, the limit 1.5×) is rolled back by the latency trigger
// in at least 95% of rollouts before leaving its first step.
func TestSimSlowCanaryRolledBack(t *testing.T) {
	cfg := baseSim()
	cfg.latency = true
	cfg.candidate.latencyScale = 2
	outs := runSims(cfg, simCount(t, 300))
	ok := share(outs, func(o simOutcome) bool {
		return o.action == ActionRollBack && contains(o.fired, CheckP99Ratio) && o.maxWeight == 0
	})
	t.Logf("2× p99: rolled back on the 1%% step in %.1f%% of %d rollouts", 100*ok, len(outs))
	if ok < 0.95 {
		t.Fatalf("rolled back on the first step in %.1f%% of rollouts; the bound is 95%%", 100*ok)
	}
}

// TestSimHealthyCanaryNotRolledBackForLatency: the same latency as the
// champion never fires the latency trigger, so the slow runs above fire
// for the right reason.
func TestSimHealthyCanaryNotRolledBackForLatency(t *testing.T) {
	cfg := baseSim()
	cfg.latency = true
	cfg.candidate.recall += 0.05 // promoted: the rollout goes the whole ramp
	outs := runSims(cfg, simCount(t, 100))
	fired := share(outs, func(o simOutcome) bool { return contains(o.fired, CheckP99Ratio) })
	promoted := share(outs, func(o simOutcome) bool { return o.action == ActionPromote })
	t.Logf("equal latency: the latency trigger fired in %.1f%%, promoted %.1f%% of %d", 100*fired, 100*promoted, len(outs))
	if fired > 0.05 {
		t.Fatalf("the latency trigger fired in %.1f%% of rollouts with equal latencies", 100*fired)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
