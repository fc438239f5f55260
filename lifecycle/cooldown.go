package lifecycle

import (
	"time"

	"github.com/modelgate/modelgate/drift"
)

// ShouldFire decides whether the retraining trigger fires now: when there
// are alerts (drift.Sustained's, for the windows just closed) and the last
// firing, if any (zero lastFired: never), is at least cooldown ago.
//
// drift.Sustained raises alerts in every window a drift episode lasts; the
// cooldown makes the episode one request. An episode that outlasts the
// cooldown fires again, as a reminder that retraining has not fixed it, so
// set the cooldown (the registry's RetrainingPolicy.Cooldown, 6h by
// default) longer than a retraining takes. A now before lastFired (clocks
// of two leaders that disagree) is inside the cooldown: it never fires
// twice because of skew.
//
// It is pure: the caller keeps lastFired in the replicated registry
// (LastAlerts[KindRetrainingRequested]), so it survives a leader change.
func ShouldFire(lastFired, now time.Time, cooldown time.Duration, alerts []drift.Alert) bool {
	if len(alerts) == 0 {
		return false
	}
	if lastFired.IsZero() {
		return true
	}
	if now.Before(lastFired) {
		return false
	}
	return now.Sub(lastFired) >= cooldown
}
