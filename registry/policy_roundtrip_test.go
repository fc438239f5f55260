package registry

import (
	"encoding/json"
	"testing"
	"time"
)

// distinctPolicy is a valid policy whose drift thresholds all differ from
// the defaults and from each other, so a field dropped or mixed up on its
// way through the registry shows.
func distinctPolicy() Policy {
	p := DefaultPolicy()
	th := func(i int) DriftThreshold {
		return DriftThreshold{Enabled: i%2 == 0, Threshold: 0.01 * float64(i+1), MinCount: int64(100 * (i + 1)), ConsecutiveWindows: i + 2}
	}
	p.Drift = DriftPolicy{ReferenceSampleSize: 4321, PSI: th(0), JS: th(1), KS: th(2), Wasserstein: th(3), Chi2P: th(4)}
	p.Retraining = RetrainingPolicy{Enabled: true, URL: "https://ci.example/retrain", SecretRef: "retrain-hmac", Cooldown: Duration(90 * time.Minute)}
	return p
}

// TestPolicyFieldsSurviveTheLog: a set_policy command goes through the
// wire encoding, Apply, a snapshot and a restore, and the model's policy
// read at the end is the one sent, every drift field included
// (consecutive_windows, min_count).
func TestPolicyFieldsSurviveTheLog(t *testing.T) {
	want := distinctPolicy()
	if err := want.Validate(); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t)
	h.must(&CreateModelArgs{Model: "fraud", Reason: "new"})
	c := h.cmd(&SetPolicyArgs{Model: "fraud", Policy: want, Reason: "tune drift"})
	b, err := EncodeCommand(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeCommand(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.Apply(back); err != nil {
		t.Fatal(err)
	}
	restored, err := RestoreSnapshot(h.snapshot())
	if err != nil {
		t.Fatal(err)
	}
	wantJSON, _ := json.Marshal(want)
	for name, st := range map[string]*State{"applied": h.s, "restored": restored} {
		got, err := st.Policy("fraud")
		if err != nil {
			t.Fatal(err)
		}
		if gotJSON, _ := json.Marshal(got); string(gotJSON) != string(wantJSON) {
			t.Errorf("%s policy:\n got  %s\n want %s", name, gotJSON, wantJSON)
		}
		if got.Drift.KS.ConsecutiveWindows != 4 || got.Drift.Chi2P.MinCount != 500 {
			t.Errorf("%s: ks.consecutive_windows %d (want 4), chi2_p.min_count %d (want 500)", name, got.Drift.KS.ConsecutiveWindows, got.Drift.Chi2P.MinCount)
		}
	}
}
