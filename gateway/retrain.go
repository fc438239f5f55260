package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/lifecycle"
	"github.com/modelgate/modelgate/predlog"
	"github.com/modelgate/modelgate/registry"
)

// leader is what a Control may also tell: whether this node leads. Drift
// alerts and retraining requests are the leader's job, so one episode is
// acted on once in a cluster.
type leader interface{ IsLeader() bool }

func (s *Server) isLeader() bool {
	if l, ok := s.control.(leader); ok {
		return l.IsLeader()
	}
	return true
}

// runDriftAlerts judges every champion's recent drift windows once a
// window, on the leader: a sustained breach of the model's policy is a drift
// alert in the audit log and the metrics and, when the policy enables it, a
// signed retraining request to the model's webhook — once per episode
// (the policy's cooldown, kept in the replicated registry).
func (s *Server) runDriftAlerts(stop <-chan struct{}) {
	t := time.NewTicker(s.cfg.DriftWindow)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if s.isLeader() {
				s.evaluateDrift(time.Now())
			}
		case <-stop:
			return
		}
	}
}

func (s *Server) evaluateDrift(now time.Time) {
	for _, r := range s.Catalog.table().Models() {
		if r.Champion == nil {
			continue
		}
		name, champion := r.Name, r.Champion.Slot.Version
		d := r.Champion.Attach.drift.Load()
		if d == nil {
			continue
		}
		w := d.windows.Load()
		if w == nil {
			continue
		}
		var (
			pol     registry.Policy
			model   registry.Model
			version registry.Version
			err     error
		)
		n, _ := strconv.Atoi(champion)
		s.control.View(func(st *registry.State) {
			if model, err = st.Model(name); err == nil {
				pol = model.Policy
				version, err = st.Version(name, n)
			}
		})
		if err != nil {
			continue
		}
		th := thresholds(pol.Drift)
		alerts, reports, err := drift.EvaluateRecent(w, th)
		if err != nil || len(alerts) == 0 {
			continue
		}
		cooldown := time.Duration(pol.Retraining.Cooldown)
		if !lifecycle.ShouldFire(model.LastAlerts[lifecycle.KindDrift], now, cooldown, alerts) {
			continue
		}
		s.Metrics.driftAlert(name, champion)
		episode := episodeStart(w, th)
		exportURL := s.cfg.AdminURL + "/api/v1/models/" + url.PathEscape(name) + "/export?labelled=true&since=" +
			url.QueryEscape(string(predlog.CursorAt(version.Created, true)))
		ev, err := lifecycle.NewDriftEvent(name, n, episode, now, reports[len(reports)-1], exportURL, alerts)
		if err != nil {
			s.log.Error("cannot build the drift event", "model", name, "err", err)
			continue
		}
		evJSON, _ := json.Marshal(ev)
		alertsJSON, _ := json.Marshal(alerts)
		if !s.recordAlert(name, n, lifecycle.KindDrift, ev.ID, fmt.Sprintf("%d drift statistics over the policy for %d windows in a row", len(alerts), maxConsecutive(th)), alertsJSON) {
			continue
		}
		s.log.Warn("drift alert", "model", name, "version", n, "alerts", len(alerts), "id", ev.ID)
		if !pol.Retraining.Enabled || pol.Retraining.URL == "" {
			continue
		}
		if !s.recordAlert(name, n, lifecycle.KindRetrainingRequested, ev.ID+"/requested", "retraining requested from "+pol.Retraining.URL, evJSON) {
			continue
		}
		s.goDeliver(name, n, pol.Retraining, ev)
	}
}

// goDeliver sends a retraining request in the background; Shutdown
// cancels it and waits for it (within its deadline).
func (s *Server) goDeliver(model string, version int, p registry.RetrainingPolicy, ev lifecycle.Event) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.deliver(model, version, p, ev)
	}()
}

// deliver sends a retraining request and records how it went.
func (s *Server) deliver(model string, version int, p registry.RetrainingPolicy, ev lifecycle.Event) {
	secret := s.cfg.Secrets[p.SecretRef]
	if p.SecretRef != "" && secret == nil {
		s.recordAlert(model, version, lifecycle.KindRetrainingFailed, ev.ID+"/failed", "no secret named "+strconv.Quote(p.SecretRef)+" on this node (serve --secret NAME=VALUE)", nil)
		return
	}
	hook, err := lifecycle.WebhookFromPolicy(p, secret)
	if err == nil {
		// Under the server's context: Shutdown cancels a delivery still
		// retrying (or waiting on a receiver that never answers), so it
		// cannot hold the process past its drain deadline.
		ctx, cancel := context.WithTimeout(s.ctx, 5*time.Minute)
		var attempts int
		attempts, err = hook.Send(ctx, ev)
		cancel()
		if err == nil {
			s.recordAlert(model, version, lifecycle.KindRetrainingDelivered, ev.ID+"/delivered", fmt.Sprintf("delivered to %s after %d attempt(s)", p.URL, attempts), nil)
			return
		}
	}
	s.log.Error("retraining request not delivered", "model", model, "url", p.URL, "err", err)
	s.recordAlert(model, version, lifecycle.KindRetrainingFailed, ev.ID+"/failed", truncate(err.Error(), 2000), nil)
}

// recordAlert writes an alert into the registry's audit log.
func (s *Server) recordAlert(model string, version int, kind, key, reason string, evidence json.RawMessage) bool {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ApplyTimeout)
	defer cancel()
	_, err := s.control.Apply(ctx, registry.Command{Time: time.Now().UTC(), Actor: "drift", IdempotencyKey: key,
		Args: &registry.RecordAlertArgs{Model: model, Version: version, Kind: kind, Reason: reason, Evidence: evidence}})
	if err != nil {
		s.log.Error("cannot record an alert", "model", model, "kind", kind, "err", err)
		return false
	}
	return true
}

// episodeStart is the start of the first window of the breaching run: every
// node computes the same instant, so the event's idempotency key agrees.
func episodeStart(w *drift.Windows, th drift.Thresholds) time.Time {
	_, start := w.Current()
	return start.Add(-time.Duration(maxConsecutive(th)) * w.Config().Window)
}

func maxConsecutive(th drift.Thresholds) int {
	k := 1
	for _, t := range []drift.Threshold{th.PSI, th.JS, th.KS, th.Wasserstein, th.Chi2P} {
		if t.Enabled {
			k = max(k, t.ConsecutiveWindows)
		}
	}
	return k
}
