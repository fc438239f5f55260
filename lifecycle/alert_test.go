package lifecycle

import (
	"testing"
	"time"

	"github.com/modelgate/modelgate/registry"
)

// TestDriftAlertGoesToAlertWebhook: a drift alert the controller records
// is also POSTed, signed, to the model's alert webhook, once however often
// the same drift is judged, and recorded delivered.
func TestDriftAlertGoesToAlertWebhook(t *testing.T) {
	ar, url := newAlertReceiver(t)
	reg := newTestRegistry(t, "http://127.0.0.1:1/unused")
	var pol registry.Policy
	reg.View(func(st *registry.State) { pol, _ = st.Policy(testModel) })
	pol.Retraining = registry.RetrainingPolicy{Cooldown: registry.Duration(time.Hour)}
	pol.Alerts = &registry.AlertPolicy{URL: url, SecretRef: "alerts", Format: registry.AlertFormatJSON}
	if _, err := reg.Apply(t.Context(), registry.Command{Time: t0, Actor: "test", IdempotencyKey: "alerts-policy",
		Args: &registry.SetPolicyArgs{Model: testModel, Policy: pol}}); err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: t0}
	w := windows(t, clock)
	c, err := NewController(ControllerConfig{Registry: reg, Drift: staticDrift{{Model: testModel, Version: 1, Windows: w}}, Now: clock.Now,
		Secrets: map[string][]byte{"alerts": []byte(hookSecret)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	for i := range 3 {
		traffic(t, w, clock, uint64(i+1), 2000, [3]float64{1, 0, 0})
		clock.Add(time.Minute)
		c.Step()
	}
	got := ar.wait(t, 1)
	if got[0].Kind != AlertDrift || got[0].Model != testModel || got[0].Version != 1 || len(got[0].Evidence) == 0 {
		t.Fatalf("alert %+v", got[0])
	}
	waitAlertRecord(t, c, reg, KindAlertDelivered)
	c.Close()
	if n := len(reg.alerts(testModel, KindAlertRequested)); n != 1 || len(reg.alerts(testModel, KindDrift)) != 1 {
		t.Fatalf("%d alert requests for %d drift records, want 1 and 1", n, len(reg.alerts(testModel, KindDrift)))
	}
}
