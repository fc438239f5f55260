package drift

import (
	"slices"
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/fraud"
)

// TestDetectCovariateShift: a shift of one raw field is flagged, within
// 5,000 rows, on exactly the features derived from that field.
func TestDetectCovariateShift(t *testing.T) {
	p, _, _ := reference(t)
	for i, field := range []fraud.Field{fraud.FieldAmount, fraud.FieldDistance, fraud.FieldDeviceAge, fraud.FieldAccountAge} {
		t.Run(field.String(), func(t *testing.T) {
			d := fraud.Drift{Kind: fraud.CovariateShift, Field: field}
			rows, scores := gen(int64(200+i), 5000, d)
			rep := mustCompare(t, p, feed(t, p, rows, scores), DefaultThresholds())
			shifted := d.Features()
			for k, f := range rep.Features {
				if f.Output {
					continue // the score moves with its inputs; that is not an input's drift
				}
				want := slices.Contains(shifted, k)
				if f.Breach != want {
					t.Errorf("%s: breach %v (%v), want %v; psi %.3f js %.3f ks %.3f", f.Label(), f.Breach, f.Breaches, want, *f.PSI, *f.JS, deref(f.KS))
				}
			}
		})
	}
}

func deref(p *float64) float64 {
	if p == nil {
		return -1
	}
	return *p
}

// TestDetectNewCategory: a merchant category the reference never had shows
// in the "mcc_other" slot, which the profile declared categorical with the
// single value 0, so the new value lands in "other".
func TestDetectNewCategory(t *testing.T) {
	p, _, _ := reference(t)
	rows, scores := gen(300, 5000, fraud.Drift{Kind: fraud.NewCategory})
	rep := mustCompare(t, p, feed(t, p, rows, scores), DefaultThresholds())
	f := rep.Features[fraud.FeatureCategoryOther]
	if f.Name != "mcc_other" || f.Kind != Categorical {
		t.Fatalf("feature %d is %s (%s), want mcc_other (categorical)", fraud.FeatureCategoryOther, f.Name, f.Kind)
	}
	for _, stat := range []string{StatPSI, StatJS, StatChi2P} {
		if !breached(&f, stat) {
			t.Errorf("mcc_other: %s did not breach: %+v", stat, f)
		}
	}
	if other := f.Current.Shares[len(f.Current.Shares)-1]; other < 0.15 || other > 0.25 {
		t.Errorf("mcc_other: share of other = %v, want about 0.2", other)
	}
}

// TestConceptDriftIsNotDataDrift: concept drift changes how labels depend
// on the inputs, not the inputs; with the same seed the generator draws the
// very same rows, so a data-drift monitor must (and does) stay silent.
// Label-based evaluation catches it (see doc.go).
func TestConceptDriftIsNotDataDrift(t *testing.T) {
	p, _, _ := reference(t)
	rows, scores := gen(400, 5000, fraud.Drift{Kind: fraud.ConceptDrift})
	plain, _ := gen(400, 5000, fraud.Drift{})
	for i := range rows {
		if !slices.Equal(rows[i], plain[i]) {
			t.Fatalf("row %d differs from the undrifted stream: the generator's invariant broke", i)
		}
	}
	rep := mustCompare(t, p, feed(t, p, rows, scores), DefaultThresholds())
	if rep.Breach {
		for _, f := range rep.Features {
			if f.Breach {
				t.Errorf("%s breached %v under concept drift", f.Label(), f.Breaches)
			}
		}
	}
}

// TestNoFalseAlarms: 20 one-minute windows of 1,000 undrifted rows each,
// judged at the default thresholds as the alert path does (Sustained over
// the last windows after each window closes): no alert, and no window
// breaches on an effect size (PSI, JS, KS).
func TestNoFalseAlarms(t *testing.T) {
	p, _, _ := reference(t)
	clock := newFakeClock()
	w, err := NewWindows(p, WindowConfig{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	th := DefaultThresholds()
	g := fraud.NewGenerator(500)
	row := make([]float32, fraud.NumFeatures)
	alerts, chi2 := 0, 0
	for win := range 20 {
		for range 1000 {
			g.Next(row)
			if err := w.Observe(row, score(row)); err != nil {
				t.Fatal(err)
			}
		}
		clock.Add(time.Minute)
		a, reports, err := EvaluateRecent(w, th)
		if err != nil {
			t.Fatal(err)
		}
		alerts += len(a)
		for _, al := range a {
			t.Errorf("window %d: false alarm %+v", win, al)
		}
		last := reports[len(reports)-1]
		if last.Rows != 1000 {
			t.Fatalf("window %d has %d rows, want 1000", win, last.Rows)
		}
		for _, f := range last.Features {
			for _, b := range f.Breaches {
				if b == StatChi2P {
					chi2++ // a p-value: breaches at its rate, which Sustained absorbs
					continue
				}
				t.Errorf("window %d: %s breached %s", win, f.Label(), b)
			}
		}
	}
	t.Logf("20 windows: %d alerts, %d single-window chi2_p breaches", alerts, chi2)
}

// TestDriftAlertAfterConsecutiveWindows: drift that starts mid-stream
// alerts once it has lasted ConsecutiveWindows windows, on the drifted
// features.
func TestDriftAlertAfterConsecutiveWindows(t *testing.T) {
	p, _, _ := reference(t)
	clock := newFakeClock()
	w, err := NewWindows(p, WindowConfig{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	th := DefaultThresholds()
	g := fraud.NewGenerator(600)
	row := make([]float32, fraud.NumFeatures)
	first := -1
	for win := range 10 {
		if win == 5 {
			if err := g.SetDrift(fraud.Drift{Kind: fraud.CovariateShift, Field: fraud.FieldAmount}); err != nil {
				t.Fatal(err)
			}
		}
		for range 1200 {
			g.Next(row)
			if err := w.Observe(row, score(row)); err != nil {
				t.Fatal(err)
			}
		}
		clock.Add(time.Minute)
		alerts, _, err := EvaluateRecent(w, th)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range alerts {
			if a.Name != "amount_log" && a.Name != "amount_to_avg_ratio_log" && !a.Output {
				t.Errorf("window %d: alert on %s", win, a.Name)
			}
		}
		if len(alerts) > 0 && first < 0 {
			first = win
		}
	}
	if first != 7 {
		t.Errorf("first alert after window %d, want 7 (drift from window 5, 3 windows in a row)", first)
	}
}
