package lifecycle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/modelgate/modelgate/registry"
)

// The kinds of alert: the decisions a person must know about.
const (
	// AlertRollback: a canary was pulled back, or a champion in its watch
	// rolled back to the standby.
	AlertRollback = "rollback"
	// AlertApproval: a move the rollout proposed waits for a person
	// (modelgate model approve / reject).
	AlertApproval = "approval_waiting"
	// AlertDrift: a drift alert was recorded.
	AlertDrift = "drift"
)

// Alert is the body of an alert webhook in the json format. The same
// decision always has the same ID (it is derived from the registry's
// record of it), on every attempt and every leader: receivers deduplicate
// by it, as by the Modelgate-Idempotency-Key header that carries it.
type Alert struct {
	Event   string    `json:"event"` // "alert"
	ID      string    `json:"id"`
	Kind    string    `json:"kind"`
	Time    time.Time `json:"time"`
	Model   string    `json:"model"`
	Version int       `json:"version"`
	// Text is one readable line; Reason the decision's own sentence.
	Text   string `json:"text"`
	Reason string `json:"reason"`
	// Evidence is the audit record's evidence (Decision.Evidence, or the
	// drift alerts).
	Evidence json.RawMessage `json:"evidence,omitempty"`
}

// alertID derives an alert's id from what identifies the decision.
func alertID(kind, model string, version int, key string) string {
	h := sha256.Sum256([]byte(kind + "\x00" + model + "\x00" + strconv.Itoa(version) + "\x00" + key))
	return "alert-" + kind + "-" + hex.EncodeToString(h[:12])
}

// alertText is the alert's one line for a person.
func alertText(kind, model string, version int, reason string) string {
	var what string
	switch kind {
	case AlertRollback:
		what = "rolled back"
	case AlertApproval:
		what = "waiting for approval (modelgate model approve " + model + " " + strconv.Itoa(version) + ", or reject)"
	case AlertDrift:
		what = "drift alert"
	default:
		what = kind
	}
	return "modelgate: " + model + " v" + strconv.Itoa(version) + " " + what + ": " + reason
}

// body encodes a in the policy's format.
func (a *Alert) body(format string) ([]byte, error) {
	if format == registry.AlertFormatSlack {
		return json.Marshal(struct {
			Text string `json:"text"`
		}{a.Text})
	}
	return json.Marshal(a)
}

// alert sends a rollout decision to the model's alert webhook.
func (c *Controller) alert(now time.Time, kind, model string, version int, d Decision) {
	key := strconv.Itoa(d.Step) + "/" + string(d.Action) + "/" + now.UTC().Format(time.RFC3339Nano)
	c.sendAlert(Alert{Event: "alert", ID: alertID(kind, model, version, key), Kind: kind, Time: now.UTC(), Model: model, Version: version,
		Text: alertText(kind, model, version, d.Reason), Reason: d.Reason, Evidence: d.Evidence()})
}

// alertDrift sends a recorded drift alert to the model's alert webhook;
// the drift event's id identifies it.
func (c *Controller) alertDrift(now time.Time, model string, version int, eventID, reason string, evidence json.RawMessage) {
	c.sendAlert(Alert{Event: "alert", ID: alertID(AlertDrift, model, version, eventID), Kind: AlertDrift, Time: now.UTC(), Model: model, Version: version,
		Text: alertText(AlertDrift, model, version, reason), Reason: reason, Evidence: evidence})
}

// alertMaxAge is how old an alert may be and still be sent by a leader
// that finds it undelivered: past it, it is recorded failed. A day-old
// rollback is in the audit log; a page about it now would mislead.
const alertMaxAge = 24 * time.Hour

// sendAlert records a as requested (kind alert_requested, the alert in
// its evidence, keyed by its id) and delivers it in the background, when
// the model's policy has an alert webhook. Like a retraining request it is
// recorded before it is sent: a leader that stops while sending leaves it
// without an outcome, and the next leader sends it (resumeAlerts), with
// the same id. How it ended is recorded as alert_delivered or alert_failed.
func (c *Controller) sendAlert(a Alert) {
	var has bool
	c.cfg.Registry.View(func(st *registry.State) {
		if p, err := st.Policy(a.Model); err == nil && p.Alerts != nil {
			has = true
		}
	})
	if !has {
		return
	}
	b, err := json.Marshal(a)
	if err != nil {
		c.log.Error("cannot encode an alert", "model", a.Model, "kind", a.Kind, "err", err)
		return
	}
	if _, ok := c.recordAs(actorRollout, a.Time, a.Model, a.Version, KindAlertRequested, a.ID+keyRequested,
		"alert "+a.Kind+" to the model's alert webhook: "+truncate(a.Text, 1000), b); ok {
		c.startAlert(a)
	}
}

// resumeAlerts sends the alerts recorded without an outcome that this
// controller is not sending; one older than alertMaxAge is recorded failed.
func (c *Controller) resumeAlerts(now time.Time) {
	for _, a := range c.led.undeliveredAlerts() {
		if now.Sub(a.Time) < alertMaxAge {
			c.startAlert(a)
			continue
		}
		if c.claim(a.ID) {
			c.recordAs(actorRollout, c.cfg.Now(), a.Model, a.Version, KindAlertFailed, a.ID+keyFailed,
				"alert "+a.Kind+" not delivered within "+alertMaxAge.String()+" of the decision: the leader sending it stopped", nil)
			c.release(a.ID, true)
		}
	}
}

func (c *Controller) startAlert(a Alert) {
	if !c.claim(a.ID) {
		return
	}
	go func() { c.release(a.ID, c.deliverAlert(a)) }()
}

// deliverAlert sends a under the model's current alert policy and records
// how it went. It reports whether the alert is settled; one cancelled by
// Close is not, and is left for the next leader.
func (c *Controller) deliverAlert(a Alert) bool {
	var pol *registry.AlertPolicy
	c.cfg.Registry.View(func(st *registry.State) {
		if p, err := st.Policy(a.Model); err == nil && p.Alerts != nil {
			x := *p.Alerts
			pol = &x
		}
	})
	fail := func(url, reason string) bool {
		c.log.Error("alert not delivered", "model", a.Model, "kind", a.Kind, "url", url, "err", reason)
		c.recordAs(actorRollout, c.cfg.Now(), a.Model, a.Version, KindAlertFailed, a.ID+keyFailed,
			"alert "+a.Kind+" to "+url+" not delivered: "+truncate(reason, 2000), nil)
		return true
	}
	if pol == nil {
		return fail("(none)", "the model's policy no longer has an alert webhook")
	}
	secret := c.cfg.Secrets[pol.SecretRef]
	if secret == nil {
		return fail(pol.URL, "no secret named "+strconv.Quote(pol.SecretRef)+" on this node (serve --secret NAME=VALUE)")
	}
	body, err := a.body(pol.Format)
	if err != nil {
		return fail(pol.URL, "cannot encode the alert: "+err.Error())
	}
	hook := &Webhook{URL: pol.URL, Secret: secret}
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.DeliveryTimeout)
	attempts, err := hook.SendBody(ctx, a.ID, body)
	cancel()
	if err == nil {
		c.recordAs(actorRollout, c.cfg.Now(), a.Model, a.Version, KindAlertDelivered, a.ID+keyDelivered,
			fmt.Sprintf("alert %s %s delivered to %s after %d attempt(s)", a.Kind, a.ID, pol.URL, attempts), nil)
		return true
	}
	if c.ctx.Err() != nil {
		c.log.Warn("alert not delivered before shutdown; the next leader sends it", "model", a.Model, "id", a.ID)
		return false
	}
	return fail(pol.URL, err.Error())
}
