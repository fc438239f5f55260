package drift

import (
	"encoding/json"
	"math"
	"os"
	"testing"
)

// golden are p-values computed by scipy (testdata/golden.py), so the tests
// need no Python.
type golden struct {
	Scipy string `json:"scipy"`
	KS    []struct {
		N, M int64
		D, P float64
	} `json:"ks_asymp"`
	Fisher []struct {
		Table [2][2]int64 `json:"table"`
		P     float64     `json:"p"`
	} `json:"fisher_two_sided"`
}

func loadGolden(t *testing.T) golden {
	t.Helper()
	b, err := os.ReadFile("testdata/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.KS) < 100 || len(g.Fisher) < 5 {
		t.Fatalf("testdata/golden.json holds %d KS and %d Fisher cases: regenerate it", len(g.KS), len(g.Fisher))
	}
	return g
}

// TestKSPValueMatchesScipy: KSPValue agrees with scipy.stats.ks_2samp's
// asymptotic mode to 1e-3 over effective sizes from 148 to 20,000 and
// statistics from p ≈ 1 to p ≈ 1e-7.
func TestKSPValueMatchesScipy(t *testing.T) {
	g := loadGolden(t)
	worst := 0.0
	for _, c := range g.KS {
		got := KSPValue(c.D, c.N, c.M)
		diff := math.Abs(got - c.P)
		worst = max(worst, diff)
		if !(diff <= 1e-3) {
			t.Errorf("KSPValue(%.6f, %d, %d) = %.6g, scipy %s says %.6g", c.D, c.N, c.M, got, g.Scipy, c.P)
		}
	}
	t.Logf("%d cases, largest difference from scipy %s: %.2g", len(g.KS), g.Scipy, worst)
}

// TestFisherExactMatchesScipy: FisherExact is scipy.stats.fisher_exact's
// two-sided p-value, among them the example (2 of 1,200 rows in a
// category the 10,000-row reference never had: p = 0.0115).
func TestFisherExactMatchesScipy(t *testing.T) {
	g := loadGolden(t)
	for _, c := range g.Fisher {
		tb := c.Table
		got := FisherExact(tb[0][0], tb[0][1], tb[1][0], tb[1][1])
		if math.Abs(got-c.P) > 1e-9*max(1, c.P) && math.Abs(got-c.P)/c.P > 1e-6 {
			t.Errorf("FisherExact(%v) = %.10g, scipy says %.10g", tb, got, c.P)
		}
	}
	if p := FisherExact(0, 10000, 2, 1198); math.Abs(p-0.0115) > 5e-5 {
		t.Errorf("FisherExact for 2 of 1,200 new rows = %.5f, want 0.0115", p)
	}
}
