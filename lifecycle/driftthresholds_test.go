package lifecycle

import (
	"encoding/json"
	"testing"

	"github.com/modelgate/modelgate/registry"
)

// TestDriftThresholdsKeepEveryPolicyField: the registry's drift policy reaches
// drift's judge field for field. Each threshold gets values of its own, so
// a dropped field (consecutive_windows, min_count) or two statistics
// swapped shows; the two types share their JSON names, so comparing the
// encodings also covers fields added later.
func TestDriftThresholdsKeepEveryPolicyField(t *testing.T) {
	th := func(i int) registry.DriftThreshold {
		return registry.DriftThreshold{Enabled: i%2 == 0, Threshold: 0.01 * float64(i+1), MinCount: int64(100 * (i + 1)), ConsecutiveWindows: i + 2}
	}
	p := registry.DriftPolicy{ReferenceSampleSize: 1234, PSI: th(0), JS: th(1), KS: th(2), Wasserstein: th(3), Chi2P: th(4)}
	got := DriftThresholds(p)
	for _, c := range []struct {
		name string
		got  any
		want registry.DriftThreshold
	}{{"psi", got.PSI, p.PSI}, {"js", got.JS, p.JS}, {"ks", got.KS, p.KS}, {"wasserstein", got.Wasserstein, p.Wasserstein}, {"chi2_p", got.Chi2P, p.Chi2P}} {
		g, _ := json.Marshal(c.got)
		w, _ := json.Marshal(c.want)
		if string(g) != string(w) {
			t.Errorf("%s: the policy says %s, drift is given %s", c.name, w, g)
		}
	}
}
