// Package lifecycle decides what happens to a model's versions from what
// the nodes measure: it requests retraining when drift is sustained (and,
// in later parts, promotes candidates and rolls back regressions). It runs
// on the Raft leader only and acts by proposing registry commands; it never
// touches runtime slots or routing.
//
// # The controller
//
// A Controller (one per node; internal/node runs it) steps once a drift
// window and acts only while its node leads. It reads statistics through
// small interfaces it declares (DriftSource: each served champion's drift
// windows; shadow comparisons and online evaluation will come as
// interfaces of their own) and acts through one, Registry: Apply a
// registry.Command, read state through View. Everything it must remember
// across a leader change is in the registry's audit log, which it reads
// incrementally (the ledger): the last drift alert of each model and the
// retraining requests without an outcome. Its own state is only what it is
// sending now, so a new leader carries on where the old one stopped.
// Time comes from an injected clock (ControllerConfig.Now), which stamps
// every command it proposes.
//
// # The retraining trigger
//
// After each drift window closes, the leader runs drift.EvaluateRecent on
// the champion's windows. When it returns alerts and ShouldFire agrees (no
// retraining request within the policy's cooldown of the last, which the
// registry keeps so it survives a leader change), the leader builds an
// Event (NewDriftEvent) and hands it to a Webhook, which POSTs it to the
// model's retraining URL:
//
//	POST /retrain HTTP/1.1
//	Content-Type: application/json
//	Modelgate-Idempotency-Key: drift-3f0c…
//	Modelgate-Signature: t=1795781400,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd
//	Modelgate-Attempt: 1
//
//	{"event":"drift","id":"drift-3f0c…","time":"…","model":"fraud","version":3,
//	 "report":{…},"export_url":"http://…/api/v1/models/fraud/export?labelled=true","alerts":[…]}
//
// Delivery is at least once: network errors, 408, 429 and 5xx are retried
// with backoff (honouring Retry-After); other 4xx are permanent. The ID is
// the same on every retry and, being derived from the model, version and
// episode start (EventID), on every leader that fires for the same episode,
// so the receiver can deduplicate.
//
// # Writing a receiver
//
// Keep the raw body, verify it before decoding, answer 2xx quickly (start
// the training job asynchronously), and answer 2xx again for an ID already
// seen. A 4xx other than 408/429 tells modelgate not to retry; a 5xx asks it
// to. For example:
//
//	secret := []byte(os.Getenv("RETRAIN_SECRET"))
//	http.HandleFunc("/retrain", func(w http.ResponseWriter, r *http.Request) {
//		body, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
//		if err != nil {
//			http.Error(w, "read error", http.StatusBadRequest)
//			return
//		}
//		err = lifecycle.Verify(secret, r.Header.Get(lifecycle.HeaderSignature), body, time.Now(), 5*time.Minute)
//		if err != nil {
//			http.Error(w, err.Error(), http.StatusUnauthorized) // not retried
//			return
//		}
//		var ev lifecycle.Event
//		if err := json.Unmarshal(body, &ev); err != nil {
//			http.Error(w, "bad event", http.StatusBadRequest)
//			return
//		}
//		if alreadySeen(ev.ID) { // a retry or a second leader: same episode
//			w.WriteHeader(http.StatusOK)
//			return
//		}
//		startTraining(ev.Model, ev.Version, ev.ExportURL) // async
//		w.WriteHeader(http.StatusAccepted)
//	})
//
// A receiver in another language computes hex(HMAC-SHA256(secret, t + "." +
// body)) with t the header's t value as written, compares it in constant
// time with each v1 value, and refuses a t more than a few minutes from
// its clock (replays).
//
// # Idempotency across leaders
//
// The controller records the decision before sending: it proposes
// record_alert{kind: KindRetrainingRequested, evidence: the Event}, then
// sends, then records KindRetrainingDelivered (or KindRetrainingFailed),
// keyed by the event id. A leader that stops while sending records
// nothing more (Close cancels the delivery without recording it failed);
// the next leader finds the request without an outcome and sends the Event
// from the evidence, its ID unchanged, once (a controller never starts a
// second delivery of an event it is sending or has settled). A request
// older than the cooldown is recorded failed instead of sent: the drift
// has been judged again since. ShouldFire reads
// LastAlerts[KindRetrainingRequested] as lastFired.
//
// # The cooldown holds back requests, not alerts
//
// Within the cooldown a drift alert is still recorded (and counted) when it
// is news: another version, a statistic or feature not breached in the
// model's last recorded alert, or one at least twice as far past its
// threshold. The same drift judged again every window is not recorded
// again until the cooldown since the last record passes.
package lifecycle
