package main

import (
	"math"
	"testing"

	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/fraud"
	"github.com/modelgate/modelgate/internal/train"
	"github.com/modelgate/modelgate/lifecycle"
	"github.com/modelgate/modelgate/registry"
)

// drawWorld draws n transactions as the demo's traffic does, calm or
// drifted.
func drawWorld(seed int64, n int, drifted bool) train.Data {
	cfg := DefaultConfig()
	cfg.Seed = seed
	tr := newTraffic(&cfg, &node{}, nil)
	if drifted {
		tr.drift()
	}
	d := train.Data{X: make([]float32, 0, n*fraud.NumFeatures), Y: make([]bool, n), Features: fraud.NumFeatures}
	row := make([]float32, fraud.NumFeatures)
	for i := range n {
		tr.genMu.Lock()
		g := tr.generator()
		d.Y[i] = g.Next(row)
		tr.n++
		tr.genMu.Unlock()
		d.X = append(d.X, row...)
	}
	return d
}

// hanleyMcNeil is the variance of an AUC estimate with pos positives and
// neg negatives (Hanley and McNeil, 1982).
func hanleyMcNeil(auc float64, pos, neg int) float64 {
	q1, q2 := auc/(2-auc), 2*auc*auc/(1+auc)
	return (auc*(1-auc) + float64(pos-1)*(q1-auc*auc) + float64(neg-1)*(q2-auc*auc)) / float64(pos*neg)
}

// scorePSI is the population stability index of b's scores against a's,
// over 20 equal-width bins.
func scorePSI(a, b []float32) float64 {
	const bins = 20
	var ca, cb [bins]float64
	for i := range a {
		ca[min(bins-1, int(a[i]*bins))]++
		cb[min(bins-1, int(b[i]*bins))]++
	}
	var psi float64
	for i := range ca {
		p, q := (ca[i]+0.5)/(float64(len(a))+bins/2), (cb[i]+0.5)/(float64(len(b))+bins/2)
		psi += (q - p) * math.Log(q/p)
	}
	return psi
}

// TestDemoWorldRewardsRetraining checks, offline and in a second, what the
// demo's rollout policy relies on: in the drifted world a model retrained
// as the job retrains it (on the calm and drifted labelled rows the export
// holds when the alert fires: about 2,400 and 3,000) beats the champion on
// AUC by more than the policy's min_effect, and the always-valid
// superiority test (lifecycle.Superiority, at the policy's confidence)
// passes within 10,000 labelled predictions of each version, while its
// scores shift less than the policy's max_score_shift; the inverted model,
// against the retrained champion, shifts them far past it and is far
// worse on AUC than the label-regression tolerance.
func TestDemoWorldRewardsRetraining(t *testing.T) {
	champ, err := demo.TrainFraudModel(demo.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	calm, drifted := drawWorld(1, 2400, false), drawWorld(11, 3000, true)
	mixed := train.Data{X: append(calm.X, drifted.X...), Y: append(calm.Y, drifted.Y...), Features: fraud.NumFeatures}
	cand, err := train.FitLogistic(mixed, train.DefaultLogisticConfig())
	if err != nil {
		t.Fatal(err)
	}
	inv := *champ.Model
	inv.Weights = make([]float32, len(champ.Model.Weights))
	for i, w := range champ.Model.Weights {
		inv.Weights[i] = -w
	}
	inv.Bias = -champ.Model.Bias

	p := demoPolicy(registry.DefaultPolicy(), "http://127.0.0.1:9/webhook")
	rp := p.Rollout
	const n = 10_000
	live := drawWorld(100, n, true)
	pos := 0
	for _, y := range live.Y {
		if y {
			pos++
		}
	}
	sh, sc, si := train.Scores(champ.Model, live), train.Scores(cand, live), train.Scores(&inv, live)
	ah, ac, ai := train.AUC(sh, live.Y), train.AUC(sc, live.Y), train.AUC(si, live.Y)
	gain := ac - ah
	r := lifecycle.Superiority(gain, hanleyMcNeil(ac, pos, n-pos)+hanleyMcNeil(ah, pos, n-pos), rp.MinEffect, 1-rp.Confidence)
	t.Logf("on %d drifted transactions (%d fraud): AUC champion %.3f, retrained %.3f, inverted %.3f; superiority p = %.3g; score PSI retrained %.3f, inverted %.3f",
		n, pos, ah, ac, ai, r.PValue, scorePSI(sh, sc), scorePSI(sc, si))
	if !(gain > rp.MinEffect) || !r.Rejected {
		t.Fatalf("the retrained model gains %.3f AUC (p = %.3g): the demo's candidate would not be promoted within %d labelled predictions", gain, r.PValue, n)
	}
	if psi := scorePSI(sh, sc); !(psi < rp.Triggers.MaxScoreShift) {
		t.Fatalf("the retrained model's scores shift %.3f (PSI), over the policy's %g: it would be pulled back", psi, rp.Triggers.MaxScoreShift)
	}
	// By then the retrained model is champion: the bad candidate is
	// judged against it.
	if psi := scorePSI(sc, si); !(psi > rp.Triggers.MaxScoreShift) || !(ac-ai > *rp.Triggers.MaxLabelRegression) {
		t.Fatalf("the inverted model: score PSI %.3f, AUC %.3f against the retrained champion's %.3f: no trigger of the policy would fire", psi, ai, ac)
	}
}
