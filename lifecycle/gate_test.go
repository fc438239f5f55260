package lifecycle

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/modelgate/modelgate/registry"
	"github.com/modelgate/modelgate/shadow"
)

// LabelsFromMetrics reads a real shadow evaluation: the counts are its
// confusion counts, and the standard errors recovered from its intervals
// are the sample standard errors computed directly on the same rows, at
// any confidence the metrics were taken at.
func TestLabelsFromMetrics(t *testing.T) {
	e, err := shadow.NewEvaluation(shadow.EvalConfig{Threshold: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	var ll, llSq, br, brSq float64
	const n = 5000
	for range n {
		label := 0.0
		if r.Float64() < 0.2 {
			label = 1
		}
		score := min(1, max(0, 0.3+0.3*label+0.2*r.NormFloat64()))
		if err := e.Add(score, label); err != nil {
			t.Fatal(err)
		}
		p := min(max(score, 1e-15), 1-1e-15)
		l := -math.Log(1 - p)
		if label == 1 {
			l = -math.Log(p)
		}
		ll, llSq = ll+l, llSq+l*l
		b := (score - label) * (score - label)
		br, brSq = br+b, brSq+b*b
	}
	se := func(sum, sq float64) float64 {
		m := sum / n
		return math.Sqrt((sq/n - m*m) * n / (n - 1) / n)
	}
	for _, conf := range []float64{0.9, 0.95, 0.99} {
		m, err := e.Metrics(conf)
		if err != nil {
			t.Fatal(err)
		}
		s := LabelsFromMetrics(m)
		if s.N != n || s.TP != e.TP || s.FP != e.FP || s.FN != e.FN || s.TN != e.TN {
			t.Fatalf("counts: %+v", s)
		}
		near := func(what string, got, want float64) {
			t.Helper()
			if math.Abs(got-want) > 1e-9*math.Max(1, want) {
				t.Fatalf("confidence %g: %s %g, want %g", conf, what, got, want)
			}
		}
		near("log-loss", s.LogLoss, ll/n)
		near("log-loss se", s.LogLossStdErr, se(ll, llSq))
		near("brier se", s.BrierStdErr, se(br, brSq))
		near("auc", s.AUC, m.AUC)
		if !(s.AUCStdErr > 0.002 && s.AUCStdErr < 0.02) {
			t.Fatalf("auc se %g", s.AUCStdErr)
		}
		rec := s.Metric(registry.MetricRecall)
		near("recall", rec.Value, m.Recall)
		prec := s.Metric(registry.MetricPrecision)
		near("precision", prec.Value, m.Precision)
		near("f1", s.Metric(registry.MetricF1).Value, m.F1)
	}
}

// The variances the label tests use are the sampling variances: over
// 4,000 simulated evaluations of 2,000 rows, each metric's empirical
// variance is within 10% of the mean of the variances Metric reports.
func TestMetricVarianceMatchesSampling(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	const reps, rows = 4000, 2000
	for _, m := range []registry.Metric{registry.MetricRecall, registry.MetricPrecision, registry.MetricF1} {
		var sum, sumSq, meanVar float64
		for range reps {
			var s LabelStats
			simModel{recall: 0.7, fpr: 0.05}.draw(r, rows, 0.1, &s)
			v := s.Metric(m)
			sum += v.Value
			sumSq += v.Value * v.Value
			meanVar += v.Variance / reps
		}
		mean := sum / reps
		emp := sumSq/reps - mean*mean
		if math.Abs(emp/meanVar-1) > 0.1 {
			t.Fatalf("%s: empirical variance %g, reported %g", m, emp, meanVar)
		}
	}
}

// Gain orients every metric so that positive is better, and refuses to
// judge on fewer than minMetricCount rows.
func TestGain(t *testing.T) {
	a := LabelStats{N: 1000, TP: 80, FN: 20, FP: 10, TN: 890, LogLoss: 0.20, LogLossStdErr: 0.01, Brier: 0.05, BrierStdErr: 0.002, AUC: 0.9, AUCStdErr: 0.01}
	b := LabelStats{N: 1000, TP: 70, FN: 30, FP: 10, TN: 890, LogLoss: 0.25, LogLossStdErr: 0.01, Brier: 0.06, BrierStdErr: 0.002, AUC: 0.85, AUCStdErr: 0.01}
	f := func(m registry.Metric, want float64) {
		t.Helper()
		g, v, ok := Gain(m, a, b)
		if !ok || math.Abs(g-want) > 1e-9 || !(v > 0) {
			t.Fatalf("%s: gain %g (want %g), variance %g, ok %v", m, g, want, v, ok)
		}
	}
	f(registry.MetricRecall, 0.1)
	f(registry.MetricPrecision, 80.0/90-70.0/80)
	f(registry.MetricAUC, 0.05)
	f(registry.MetricLogLoss, 0.05) // lower is better: a's lower log-loss is a gain
	f(registry.MetricBrier, 0.01)
	small := LabelStats{N: 200, TP: 20, FN: 9, FP: 5, TN: 166}
	if _, _, ok := Gain(registry.MetricRecall, small, b); ok {
		t.Fatal("judged recall on 29 positives")
	}
}

func TestPSI(t *testing.T) {
	same := []uint64{100, 200, 300, 400}
	if psi, na, nb := PSI(same, same); psi != 0 || na != 1000 || nb != 1000 {
		t.Fatal(psi, na, nb)
	}
	a, b := []uint64{500, 500}, []uint64{250, 750}
	pa, pb := 500.5/1001, 250.5/1001
	want := (pa-pb)*math.Log(pa/pb) + (pb-pa)*math.Log((1-pa)/(1-pb))
	if psi, _, _ := PSI(a, b); math.Abs(psi-want) > 1e-12 {
		t.Fatalf("PSI %g, want %g", psi, want)
	}
	if psi, _, _ := PSI([]uint64{10, 0}, []uint64{0, 10}); math.IsInf(psi, 0) || math.IsNaN(psi) || psi < 1 {
		t.Fatalf("disjoint histograms: PSI %g", psi)
	}
}

func latencies(scale float64, n int, seed uint64) *hdrhistogram.Histogram {
	h := hdrhistogram.New(1, 60_000_000, 2)
	simModel{latencyScale: scale}.record(rand.New(rand.NewPCG(seed, 1)), uint64(n), h)
	return h
}

// Each trigger fires for its own reason, and only judges what it can.
func TestTriggers(t *testing.T) {
	rp := registry.DefaultRollout()
	rp.Metric = registry.MetricRecall
	healthy := Evidence{
		Candidate: Arm{Version: 2, Requests: 5000, Errors: 5, Latency: latencies(1, 5000, 1), Scores: []uint64{2500, 2500},
			Labels: LabelStats{N: 5000, TP: 400, FN: 100, FP: 200, TN: 4300}},
		Champion: Arm{Version: 1, Requests: 50000, Errors: 50, Latency: latencies(1, 20000, 2), Scores: []uint64{25000, 25000},
			Labels: LabelStats{N: 50000, TP: 4000, FN: 1000, FP: 2000, TN: 43000}},
	}
	f := func(name string, change func(ev *Evidence, rp *registry.RolloutPolicy), shadowStep bool, want map[string]string) {
		t.Helper()
		ev, p := healthy, rp // the changes below replace fields, never pointees
		change(&ev, &p)
		got := map[string]string{}
		for _, c := range triggers(&p, &ev, shadowStep) {
			got[c.Name] = c.Status
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("%s: %s is %q, want %q (all: %v)", name, k, got[k], v, got)
			}
		}
	}
	quiet := map[string]string{CheckErrorRate: StatusPass, CheckP99Ratio: StatusPass, CheckScoreShift: StatusPass, CheckLabelRegression: StatusPass}
	f("healthy", func(*Evidence, *registry.RolloutPolicy) {}, false, quiet)
	f("2% errors", func(ev *Evidence, _ *registry.RolloutPolicy) { ev.Candidate.Errors = 100 }, false,
		map[string]string{CheckErrorRate: StatusFired, CheckP99Ratio: StatusPass, CheckLabelRegression: StatusPass})
	f("2× latency", func(ev *Evidence, _ *registry.RolloutPolicy) { ev.Candidate.Latency = latencies(2, 5000, 3) }, false,
		map[string]string{CheckP99Ratio: StatusFired, CheckErrorRate: StatusPass})
	f("2× latency in shadow", func(ev *Evidence, _ *registry.RolloutPolicy) { ev.Candidate.Latency = latencies(2, 5000, 3) }, true,
		map[string]string{CheckP99Ratio: StatusDisabled})
	f("few champion latencies", func(ev *Evidence, _ *registry.RolloutPolicy) { ev.Champion.Latency = latencies(1, 999, 4) }, false,
		map[string]string{CheckP99Ratio: StatusNotJudged})
	f("few candidate requests", func(ev *Evidence, _ *registry.RolloutPolicy) {
		ev.Candidate.Requests, ev.Candidate.Errors, ev.Candidate.Scores = 999, 0, []uint64{900, 99}
	}, false, map[string]string{CheckP99Ratio: StatusNotJudged, CheckScoreShift: StatusNotJudged, CheckErrorRate: StatusPass})
	f("shifted scores", func(ev *Evidence, _ *registry.RolloutPolicy) { ev.Candidate.Scores = []uint64{4500, 500} }, false,
		map[string]string{CheckScoreShift: StatusFired, CheckErrorRate: StatusPass})
	f("bins differ", func(ev *Evidence, _ *registry.RolloutPolicy) { ev.Candidate.Scores = []uint64{1, 2, 3} }, false,
		map[string]string{CheckScoreShift: StatusNotJudged})
	f("recall 10 points worse", func(ev *Evidence, _ *registry.RolloutPolicy) {
		ev.Candidate.Labels = LabelStats{N: 5000, TP: 350, FN: 150, FP: 200, TN: 4300}
	}, false, map[string]string{CheckLabelRegression: StatusFired, CheckErrorRate: StatusPass, CheckP99Ratio: StatusPass})
	f("few positives", func(ev *Evidence, _ *registry.RolloutPolicy) {
		ev.Candidate.Labels = LabelStats{N: 100, TP: 5, FN: 5, FP: 10, TN: 80}
	}, false, map[string]string{CheckLabelRegression: StatusNotJudged})
	f("all off", func(ev *Evidence, p *registry.RolloutPolicy) {
		ev.Candidate.Errors = 1000
		p.Triggers = registry.RolloutTriggers{}
	}, false, map[string]string{CheckErrorRate: StatusDisabled, CheckP99Ratio: StatusDisabled, CheckScoreShift: StatusDisabled, CheckLabelRegression: StatusDisabled})
}
