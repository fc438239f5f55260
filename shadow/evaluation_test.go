package shadow

import (
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"
	"time"
)

// labelledRows returns n (score, label) rows: float32-rounded scores as a
// model gives them, positives scoring higher on average, with exact 0, 1
// and threshold scores mixed in to exercise the edges.
func labelledRows(seed uint64, n int) (scores, labels []float64) {
	r := rand.New(rand.NewPCG(seed, 7))
	for i := range n {
		y := 0.0
		if r.Float64() < 0.3 {
			y = 1
		}
		s := 1 / (1 + math.Exp(-(r.NormFloat64() + 1.5*y - 0.7)))
		switch i % 97 {
		case 0:
			s = 0
		case 1:
			s = 1
		case 2:
			s = 0.5
		}
		scores = append(scores, float64(float32(s)))
		labels = append(labels, y)
	}
	return scores, labels
}

// exactAUC counts every positive/negative pair, ties as one half.
func exactAUC(scores, labels []float64) float64 {
	var pos, neg []float64
	for i, s := range scores {
		if labels[i] == 1 {
			pos = append(pos, s)
		} else {
			neg = append(neg, s)
		}
	}
	sort.Float64s(neg)
	var wins float64
	for _, p := range pos {
		lo := sort.SearchFloat64s(neg, p)
		hi := sort.Search(len(neg), func(i int) bool { return neg[i] > p })
		wins += float64(lo) + float64(hi-lo)/2
	}
	return wins / float64(len(pos)*len(neg))
}

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol*max(1, math.Abs(want)) {
		t.Errorf("%s = %.15g, want %.15g (tolerance %g)", what, got, want, tol)
	}
}

func TestEvaluationMatchesDirectComputation(t *testing.T) {
	scores, labels := labelledRows(1, 5000)
	e, err := NewEvaluation(EvalConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var tp, fp, fn, tn float64
	var ll, brier float64
	for i, s := range scores {
		if err := e.Add(s, labels[i]); err != nil {
			t.Fatalf("row %d (%v, %v): %v", i, s, labels[i], err)
		}
		y := labels[i]
		switch {
		case s >= 0.5 && y == 1:
			tp++
		case s >= 0.5:
			fp++
		case y == 1:
			fn++
		default:
			tn++
		}
		p := min(max(s, 1e-15), 1-1e-15)
		ll += -(y*math.Log(p) + (1-y)*math.Log(1-p))
		brier += (s - y) * (s - y)
	}
	m, err := e.Metrics(0)
	if err != nil {
		t.Fatal(err)
	}
	n := float64(len(scores))
	if float64(m.TP) != tp || float64(m.FP) != fp || float64(m.FN) != fn || float64(m.TN) != tn {
		t.Fatalf("confusion %d/%d/%d/%d, want %v/%v/%v/%v", m.TP, m.FP, m.FN, m.TN, tp, fp, fn, tn)
	}
	near(t, "precision", m.Precision, tp/(tp+fp), 1e-15)
	near(t, "recall", m.Recall, tp/(tp+fn), 1e-15)
	near(t, "f1", m.F1, 2*tp/(2*tp+fp+fn), 1e-15)
	near(t, "accuracy", m.Accuracy, (tp+tn)/n, 1e-15)
	near(t, "log-loss", m.LogLoss, ll/n, 1e-12)
	near(t, "brier", m.Brier, brier/n, 1e-12)
	want := exactAUC(scores, labels)
	if math.Abs(m.AUC-want) > 0.005 {
		t.Fatalf("AUC %.5f, exact %.5f: off by more than 0.005", m.AUC, want)
	}
	for name, iv := range map[string]struct {
		v  float64
		ci Interval
	}{"precision": {m.Precision, m.PrecisionCI}, "recall": {m.Recall, m.RecallCI}, "accuracy": {m.Accuracy, m.AccuracyCI},
		"auc": {m.AUC, m.AUCCI}, "log_loss": {m.LogLoss, m.LogLossCI}, "brier": {m.Brier, m.BrierCI}} {
		if !(iv.ci.Low < iv.v && iv.v < iv.ci.High) || iv.ci.High-iv.ci.Low > 0.2 {
			t.Errorf("%s %v: interval %+v does not bracket it tightly", name, iv.v, iv.ci)
		}
	}
	var calN uint64
	for _, b := range m.Calibration {
		calN += b.Count
		if b.Count > 0 && (b.MeanScore < b.Low || b.MeanScore > b.High) {
			t.Errorf("calibration bin %+v: mean score outside the bin", b)
		}
	}
	if calN != uint64(n) || len(m.Calibration) != DefaultCalibrationBins {
		t.Fatalf("calibration holds %d rows in %d bins, want %d in %d", calN, len(m.Calibration), len(scores), DefaultCalibrationBins)
	}
}

// TestWilsonInterval checks the interval against the published value for
// 50 of 100 at 95% (0.4038, 0.5962).
func TestWilsonInterval(t *testing.T) {
	p, iv := proportion(50, 100, zOf(0.95))
	if p != 0.5 || math.Abs(iv.Low-0.4038) > 1e-4 || math.Abs(iv.High-0.5962) > 1e-4 {
		t.Fatalf("Wilson 50/100 = %v %+v, want 0.5 (0.4038, 0.5962)", p, iv)
	}
	if _, iv := proportion(0, 0, 1.96); iv != (Interval{0, 1}) {
		t.Fatalf("an empty proportion's interval is %+v, want [0, 1]", iv)
	}
}

// TestHanleyMcNeil checks the AUC standard error against Hanley and
// McNeil's (1982) formula evaluated by hand for A = 0.75 with 10 positives
// and 10 negatives: Q1 = 0.6, Q2 = 0.642857,
// SE = √((0.1875 + 9·0.0375 + 9·0.080357)/100) ≈ 0.11172.
func TestHanleyMcNeil(t *testing.T) {
	e, _ := NewEvaluation(EvalConfig{Bins: 10, CalibrationBins: 10})
	for range 10 {
		_ = e.Add(0.55, 1)
	}
	for i := range 10 {
		s := 0.05
		if i < 5 {
			s = 0.55 // ties count one half: 5 × ½ + 5 = 7.5 per positive
		}
		_ = e.Add(s, 0)
	}
	m, _ := e.Metrics(0.95)
	if m.AUC != 0.75 {
		t.Fatalf("AUC %v, want 0.75", m.AUC)
	}
	a := 0.75
	q1, q2 := a/(2-a), 2*a*a/(1+a)
	se := math.Sqrt((a*(1-a) + 9*(q1-a*a) + 9*(q2-a*a)) / 100)
	near(t, "SE", se, 0.11172, 1e-4)
	z := zOf(0.95)
	near(t, "AUC low", m.AUCCI.Low, a-z*se, 1e-12)
	near(t, "AUC high", m.AUCCI.High, min(1, a+z*se), 1e-12)
}

func TestEvaluationMergeOfHalvesEqualsWhole(t *testing.T) {
	scores, labels := labelledRows(2, 4000)
	whole, _ := NewEvaluation(EvalConfig{})
	a, _ := NewEvaluation(EvalConfig{})
	b, _ := NewEvaluation(EvalConfig{})
	for i, s := range scores {
		_ = whole.Add(s, labels[i])
		half := a
		if i%2 == 1 {
			half = b
		}
		_ = half.Add(s, labels[i])
	}
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	sameEvaluation(t, a, whole)
	// Through the wire as a node would send it.
	c, err := ImportEvaluation(b.Export())
	if err != nil {
		t.Fatal(err)
	}
	d, _ := ImportEvaluation(whole.Export())
	_ = d // the whole's export decodes
	x, _ := NewEvaluation(EvalConfig{})
	for i := 0; i < len(scores); i += 2 {
		_ = x.Add(scores[i], labels[i])
	}
	if err := x.Merge(c); err != nil {
		t.Fatal(err)
	}
	sameEvaluation(t, x, whole)
}

func sameEvaluation(t *testing.T, got, want *Evaluation) {
	t.Helper()
	gm, _ := got.Metrics(0)
	wm, _ := want.Metrics(0)
	if gm.TP != wm.TP || gm.FP != wm.FP || gm.FN != wm.FN || gm.TN != wm.TN || gm.AUC != wm.AUC {
		t.Fatalf("merged %s, whole %s", gm, wm)
	}
	near(t, "log-loss", gm.LogLoss, wm.LogLoss, 1e-12)
	near(t, "brier", gm.Brier, wm.Brier, 1e-12)
	for i := range gm.Calibration {
		if gm.Calibration[i].Count != wm.Calibration[i].Count {
			t.Fatalf("calibration bin %d: %+v vs %+v", i, gm.Calibration[i], wm.Calibration[i])
		}
		near(t, "calibration mean", gm.Calibration[i].MeanScore, wm.Calibration[i].MeanScore, 1e-12)
	}
}

func TestEvaluationRefusesWhatItCannotCount(t *testing.T) {
	f := func(task Task, score, label float64) {
		t.Helper()
		e, _ := NewEvaluation(EvalConfig{Task: task})
		if err := e.Add(score, label); !errors.Is(err, ErrOutOfRange) {
			t.Fatalf("%s Add(%v, %v) = %v, want ErrOutOfRange", task, score, label, err)
		}
		if e.N != 0 {
			t.Fatalf("%s Add(%v, %v) counted a row it refused", task, score, label)
		}
	}
	f(Binary, 1.5, 1)
	f(Binary, -0.1, 0)
	f(Binary, math.NaN(), 0)
	f(Binary, 0.3, 2)
	f(Binary, 0.3, 0.5)
	f(Regression, math.Inf(1), 3)
	f(Regression, 2, math.NaN())
}

func TestRegressionMetrics(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	e, err := NewEvaluation(EvalConfig{Task: Regression})
	if err != nil {
		t.Fatal(err)
	}
	var abs, sq float64
	const n = 3000
	for range n {
		y := r.NormFloat64() * 10
		p := y + r.NormFloat64()
		if err := e.Add(p, y); err != nil {
			t.Fatal(err)
		}
		abs += math.Abs(p - y)
		sq += (p - y) * (p - y)
	}
	m, _ := e.Metrics(0)
	near(t, "MAE", m.MAE, abs/n, 1e-12)
	near(t, "RMSE", m.RMSE, math.Sqrt(sq/n), 1e-12)
	if !(m.MAECI.Low < m.MAE && m.MAE < m.MAECI.High && m.RMSECI.Low < m.RMSE && m.RMSE < m.RMSECI.High) {
		t.Fatalf("intervals do not bracket: %+v", m)
	}
	got, err := ImportEvaluation(e.Export())
	if err != nil {
		t.Fatal(err)
	}
	gm, _ := got.Metrics(0)
	if !reflect.DeepEqual(gm, m) {
		t.Fatalf("round trip changed the metrics: %+v vs %+v", gm, m)
	}
}

func TestEvaluationConfigErrorsNameTheField(t *testing.T) {
	f := func(cfg EvalConfig, field string) {
		t.Helper()
		_, err := NewEvaluator(cfg)
		if !errors.Is(err, ErrInvalidConfig) || !contains(err.Error(), field) {
			t.Fatalf("%+v: %v, want ErrInvalidConfig naming %s", cfg, err, field)
		}
	}
	f(EvalConfig{Task: 9}, "task")
	f(EvalConfig{Threshold: 2}, "threshold")
	f(EvalConfig{Bins: 1}, "bins")
	f(EvalConfig{Bins: 20000}, "bins")
	f(EvalConfig{Bins: 1000, CalibrationBins: 7}, "calibration_bins")
	f(EvalConfig{Windows: WindowConfig{Window: time.Microsecond}}, "window")
	f(EvalConfig{Windows: WindowConfig{Windows: -1}}, "windows")
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// fakeClock is the injected clock of the window tests.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// TestEvaluatorWindowsByPredictionTime posts labels long after their
// predictions and checks each lands in the window of its prediction's
// time, and that a prediction older than the ring is refused and counted.
func TestEvaluatorWindowsByPredictionTime(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0).Truncate(time.Minute)}
	ev, err := NewEvaluator(EvalConfig{Windows: WindowConfig{Window: time.Minute, Windows: 10, Now: clock.now}})
	if err != nil {
		t.Fatal(err)
	}
	t0 := clock.t
	k0 := ev.WindowOf(t0)
	// Predictions made in minutes 0, 1 and 2; labels arrive at minute 5.
	clock.advance(5 * time.Minute)
	add := func(at time.Time, v int, role Role, score, label float64) {
		t.Helper()
		if err := ev.Add(Labelled{Time: at, Version: v, Role: role, Score: score, Label: label}); err != nil {
			t.Fatal(err)
		}
	}
	add(t0.Add(10*time.Second), 1, RoleChampion, 0.9, 1)
	add(t0.Add(70*time.Second), 1, RoleChampion, 0.2, 1)
	add(t0.Add(71*time.Second), 2, RoleShadow, 0.8, 1)
	add(t0.Add(130*time.Second), 1, RoleChampion, 0.7, 0)
	for _, c := range []struct {
		v    int
		k    int64
		n    uint64
		tp   uint64
		fn   uint64
		fp   uint64
		none bool
	}{{1, k0, 1, 1, 0, 0, false}, {1, k0 + 1, 1, 0, 1, 0, false}, {1, k0 + 2, 1, 0, 0, 1, false},
		{2, k0 + 1, 1, 1, 0, 0, false}, {2, k0, 0, 0, 0, 0, true}, {1, k0 + 5, 0, 0, 0, 0, true}} {
		e := ev.Window(c.v, c.k)
		if c.none {
			if e != nil {
				t.Fatalf("version %d window %d holds %d rows, want none", c.v, c.k-k0, e.N)
			}
			continue
		}
		if e == nil || e.N != c.n || e.TP != c.tp || e.FN != c.fn || e.FP != c.fp {
			t.Fatalf("version %d window +%d = %+v, want n=%d tp=%d fn=%d fp=%d", c.v, c.k-k0, e, c.n, c.tp, c.fn, c.fp)
		}
	}
	if got := ev.Snapshot(1, 6*time.Minute).N; got != 3 {
		t.Fatalf("6-minute snapshot of version 1 holds %d rows, want 3", got)
	}
	if got := ev.Snapshot(1, time.Minute).N; got != 0 {
		t.Fatalf("the live window of version 1 holds %d rows, want 0 (all predictions are older)", got)
	}
	vs := ev.Versions()
	if len(vs) != 2 || vs[0] != (VersionRole{1, RoleChampion}) || vs[1] != (VersionRole{2, RoleShadow}) {
		t.Fatalf("versions %+v", vs)
	}
	// Ten minutes on, the minute-0 prediction has left the ring.
	clock.advance(5 * time.Minute)
	if err := ev.Add(Labelled{Time: t0, Version: 1, Score: 0.9, Label: 1}); !errors.Is(err, ErrOutOfRange) || ev.Late() != 1 {
		t.Fatalf("a label for a prediction older than the ring: %v, late %d; want ErrOutOfRange and 1", err, ev.Late())
	}
	if ev.Window(1, k0) != nil {
		t.Fatal("window 0 is still readable after leaving the ring")
	}
}
