package lifecycle

import (
	"testing"
	"time"

	"github.com/modelgate/modelgate/drift"
)

// TestShouldFireEpisode walks one drift episode window by window: it fires
// once when the alert is first sustained, stays quiet while the episode
// lasts inside the cooldown, and fires again only after it.
func TestShouldFireEpisode(t *testing.T) {
	alerts := []drift.Alert{{Name: "amount_log", Statistic: drift.StatPSI}}
	cooldown := 6 * time.Hour
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	var lastFired time.Time // kept in the registry by the caller
	fired := 0
	for minute := 0; minute < 8*60; minute++ {
		now := t0.Add(time.Duration(minute) * time.Minute)
		var a []drift.Alert
		if minute >= 3 && minute < 7*60 { // the episode: 3 windows to become sustained
			a = alerts
		}
		if ShouldFire(lastFired, now, cooldown, a) {
			fired++
			lastFired = now
			if fired == 1 && minute != 3 || fired == 2 && minute != 3+6*60 {
				t.Fatalf("firing %d at minute %d", fired, minute)
			}
		}
	}
	if fired != 2 { // once at the start, once as a reminder after 6 h
		t.Fatalf("fired %d times in an episode of 7h with a 6h cooldown, want 2", fired)
	}

	f := func(last, now time.Time, cd time.Duration, a []drift.Alert, want bool) {
		t.Helper()
		if got := ShouldFire(last, now, cd, a); got != want {
			t.Fatalf("ShouldFire(%s, %s, %s, %d alerts) = %v", last, now, cd, len(a), got)
		}
	}
	f(time.Time{}, t0, cooldown, nil, false)   // no alerts, nothing to fire
	f(time.Time{}, t0, cooldown, alerts, true) // never fired
	f(t0, t0.Add(cooldown-time.Second), cooldown, alerts, false)
	f(t0, t0.Add(cooldown), cooldown, alerts, true)
	f(t0, t0.Add(-time.Minute), cooldown, alerts, false) // a leader with a slower clock
	f(t0, t0, 0, alerts, true)                           // no cooldown
}
