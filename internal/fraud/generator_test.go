package fraud_test

import (
	"errors"
	"math"
	"regexp"
	"slices"
	"testing"

	"github.com/modelgate/modelgate/internal/fraud"
	"github.com/modelgate/modelgate/internal/train"
)

const nf = fraud.NumFeatures

// stats returns each feature's mean and standard deviation over x.
func stats(x []float32) (mean, std [nf]float64) {
	n := float64(len(x) / nf)
	for i, v := range x {
		mean[i%nf] += float64(v)
	}
	for j := range nf {
		mean[j] /= n
	}
	for i, v := range x {
		d := float64(v) - mean[i%nf]
		std[i%nf] += d * d
	}
	for j := range nf {
		std[j] = math.Sqrt(std[j] / n)
	}
	return mean, std
}

func rate(y []bool) float64 {
	k := 0
	for _, b := range y {
		if b {
			k++
		}
	}
	return float64(k) / float64(len(y))
}

func TestDeterministicPerSeed(t *testing.T) {
	x1, y1 := fraud.NewGenerator(5).Batch(2_000)
	x2, y2 := fraud.NewGenerator(5).Batch(2_000)
	if !slices.Equal(x1, x2) || !slices.Equal(y1, y2) {
		t.Fatal("two generators with seed 5 drew different data")
	}
	x3, _ := fraud.NewGenerator(6).Batch(2_000)
	if slices.Equal(x1, x3) {
		t.Fatal("seeds 5 and 6 drew the same data")
	}
}

func TestFraudRate(t *testing.T) {
	for _, d := range []fraud.Drift{{}, {Kind: fraud.ConceptDrift}} {
		_, y := fraud.NewGenerator(1, fraud.WithDrift(d)).Batch(100_000)
		if r := rate(y); r < 0.01 || r > 0.03 {
			t.Errorf("%v: fraud rate %.4f, want in [0.01, 0.03]", d, r)
		}
	}
}

func TestFeatureNames(t *testing.T) {
	snake := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	seen := map[string]bool{}
	for i, name := range fraud.FeatureNames {
		if !snake.MatchString(name) {
			t.Errorf("feature %d name %q is not snake_case", i, name)
		}
		if seen[name] {
			t.Errorf("feature name %q appears twice", name)
		}
		seen[name] = true
	}
	if fraud.FeatureNames[fraud.FeatureCategoryOther] != "mcc_other" || fraud.FeatureCategoryOther != nf-1 {
		t.Errorf("the last feature should be mcc_other, got %q at %d", fraud.FeatureNames[nf-1], fraud.FeatureCategoryOther)
	}
	for c := range fraud.Category(fraud.NumCategories) {
		if want := "mcc_" + c.String(); fraud.FeatureNames[fraud.FeatureCategory0+int(c)] != want {
			t.Errorf("category %d slot is %q, want %q", c, fraud.FeatureNames[fraud.FeatureCategory0+int(c)], want)
		}
	}
}

// TestEncoding checks the undrifted encoding: numeric features roughly
// standardised, flags and one-hot slots 0/1 with exactly one category set,
// mcc_other never set.
func TestEncoding(t *testing.T) {
	x, _ := fraud.NewGenerator(2).Batch(20_000)
	mean, std := stats(x)
	for j := fraud.FeatureAmount; j <= fraud.FeatureCreditUtilization; j++ {
		if math.Abs(mean[j]) > 0.1 || std[j] < 0.8 || std[j] > 1.25 {
			t.Errorf("%s: mean %.3f std %.3f, want about 0 and 1", fraud.FeatureNames[j], mean[j], std[j])
		}
	}
	for r := 0; r < len(x); r += nf {
		row := x[r : r+nf]
		for j := fraud.FeatureCardPresent; j < nf; j++ {
			if row[j] != 0 && row[j] != 1 {
				t.Fatalf("row %d: %s = %v, want 0 or 1", r/nf, fraud.FeatureNames[j], row[j])
			}
		}
		var hot float32
		for j := fraud.FeatureCategory0; j <= fraud.FeatureCategoryOther; j++ {
			hot += row[j]
		}
		if hot != 1 || row[fraud.FeatureCategoryOther] != 0 {
			t.Fatalf("row %d: category slots %v, want one-hot outside mcc_other", r/nf, row[fraud.FeatureCategory0:])
		}
		if s, c := row[fraud.FeatureHourSin], row[fraud.FeatureHourCos]; math.Abs(float64(s*s+c*c)-1) > 1e-5 {
			t.Fatalf("row %d: hour sin²+cos² = %v", r/nf, s*s+c*c)
		}
	}
}

func TestNextDoesNotAllocate(t *testing.T) {
	g := fraud.NewGenerator(3)
	row := make([]float32, nf)
	if n := testing.AllocsPerRun(1000, func() { g.Next(row) }); n != 0 {
		t.Fatalf("Next allocates %v times per call, want 0", n)
	}
}

// TestCovariateShift compares a shifted generator with an undrifted one of
// the same seed: the shifted field's features move, every other feature is
// bit-identical row by row.
func TestCovariateShift(t *testing.T) {
	const n = 20_000
	base, _ := fraud.NewGenerator(4).Batch(n)
	baseMean, _ := stats(base)
	f := func(field fraud.Field, factor float64) {
		t.Helper()
		d := fraud.Drift{Kind: fraud.CovariateShift, Field: field, Factor: factor}
		x, _ := fraud.NewGenerator(4, fraud.WithDrift(d)).Batch(n)
		mean, _ := stats(x)
		moved := d.Features()
		if len(moved) == 0 {
			t.Fatalf("%v: no features listed as moved", d)
		}
		for j := range nf {
			if slices.Contains(moved, j) {
				if shift := mean[j] - baseMean[j]; math.Abs(shift) < 0.4 {
					t.Errorf("%v: %s mean moved by %.3f, want at least 0.4", d, fraud.FeatureNames[j], shift)
				}
				continue
			}
			for r := j; r < len(x); r += nf {
				if x[r] != base[r] {
					t.Fatalf("%v: %s changed in row %d (%v -> %v)", d, fraud.FeatureNames[j], r/nf, base[r], x[r])
				}
			}
		}
	}
	f(fraud.FieldAmount, 0) // the default factor, 3
	f(fraud.FieldDistance, 3)
	f(fraud.FieldDeviceAge, 0.2)
	f(fraud.FieldAccountAge, 5)
}

func TestNewCategory(t *testing.T) {
	const n = 20_000
	base, _ := fraud.NewGenerator(5).Batch(n)
	baseMean, _ := stats(base)
	d := fraud.Drift{Kind: fraud.NewCategory, Share: 0.25}
	g := fraud.NewGenerator(5, fraud.WithDrift(d))
	x, _ := g.Batch(n)
	mean, _ := stats(x)
	if got := mean[fraud.FeatureCategoryOther]; math.Abs(got-0.25) > 0.02 {
		t.Errorf("mcc_other mean %.3f, want 0.25 ± 0.02", got)
	}
	if baseMean[fraud.FeatureCategoryOther] != 0 {
		t.Errorf("undrifted mcc_other mean %v, want 0", baseMean[fraud.FeatureCategoryOther])
	}
	// The old categories keep their mix but shrink to make room.
	for j := fraud.FeatureCategory0; j < fraud.FeatureCategoryOther; j++ {
		if want := 0.75 * baseMean[j]; math.Abs(mean[j]-want) > 0.02 {
			t.Errorf("%s mean %.3f, want %.3f ± 0.02", fraud.FeatureNames[j], mean[j], want)
		}
	}
	var tr fraud.Transaction
	for range 1000 {
		if g.NextTransaction(&tr); tr.Category == fraud.CategoryCrypto {
			return
		}
	}
	t.Error("no CategoryCrypto transaction in 1000 draws")
}

// TestConceptDrift checks that concept drift leaves the inputs exactly as
// they were and changes what predicts fraud: a model of the training
// process that ranks undrifted fraud well ranks drifted fraud no better than
// chance.
func TestConceptDrift(t *testing.T) {
	g := fraud.NewGenerator(6)
	x, y := g.Batch(40_000)
	m, err := train.FitLogistic(train.Data{X: x, Y: y, Features: nf}, train.LogisticConfig{})
	if err != nil {
		t.Fatal(err)
	}
	heldX, heldY := fraud.NewGenerator(7).Batch(20_000)
	driftX, driftY := fraud.NewGenerator(7, fraud.WithDrift(fraud.Drift{Kind: fraud.ConceptDrift})).Batch(20_000)
	if !slices.Equal(heldX, driftX) {
		t.Fatal("concept drift changed the inputs")
	}
	if slices.Equal(heldY, driftY) {
		t.Fatal("concept drift left every label as it was")
	}
	score := func(x []float32) []float32 {
		s := make([]float32, len(x)/nf)
		for i := range s {
			s[i] = m.Predict(x[i*nf : (i+1)*nf])
		}
		return s
	}
	s := score(heldX)
	before, after := train.AUC(s, heldY), train.AUC(s, driftY)
	t.Logf("AUC of the training-process model: %.3f undrifted, %.3f after concept drift", before, after)
	if before < 0.85 || after > 0.65 {
		t.Errorf("AUC %.3f -> %.3f, want >= 0.85 before and <= 0.65 after", before, after)
	}
}

func TestSetDriftMidStream(t *testing.T) {
	clean, _ := fraud.NewGenerator(8).Batch(200)
	g := fraud.NewGenerator(8)
	first, _ := g.Batch(100)
	if err := g.SetDrift(fraud.Drift{Kind: fraud.CovariateShift, Field: fraud.FieldDistance}); err != nil {
		t.Fatal(err)
	}
	second, _ := g.Batch(100)
	if !slices.Equal(first, clean[:100*nf]) {
		t.Fatal("rows before SetDrift differ from an undrifted stream")
	}
	if slices.Equal(second, clean[100*nf:]) {
		t.Fatal("rows after SetDrift are not drifted")
	}
	if got := g.Drift(); got.Factor != fraud.DefaultShiftFactor {
		t.Fatalf("Drift().Factor = %v, want the default %v", got.Factor, fraud.DefaultShiftFactor)
	}
}

func TestDriftValidate(t *testing.T) {
	f := func(d fraud.Drift, ok bool) {
		t.Helper()
		err := d.Validate()
		if ok && err != nil || !ok && !errors.Is(err, fraud.ErrInvalidDrift) {
			t.Errorf("Validate(%+v) = %v, want ok=%v", d, err, ok)
		}
		if setErr := fraud.NewGenerator(1).SetDrift(d); (setErr == nil) != ok {
			t.Errorf("SetDrift(%+v) = %v, want ok=%v", d, setErr, ok)
		}
	}
	f(fraud.Drift{}, true)
	f(fraud.Drift{Kind: fraud.CovariateShift, Field: fraud.FieldAccountAge, Factor: 0.5}, true)
	f(fraud.Drift{Kind: fraud.NewCategory, Share: 1}, true)
	f(fraud.Drift{Kind: 9}, false)
	f(fraud.Drift{Kind: fraud.CovariateShift, Field: 9}, false)
	f(fraud.Drift{Kind: fraud.CovariateShift, Factor: -1}, false)
	f(fraud.Drift{Kind: fraud.CovariateShift, Factor: math.NaN()}, false)
	f(fraud.Drift{Kind: fraud.NewCategory, Share: 1.5}, false)
}
