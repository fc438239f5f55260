// Package lifecycle decides what happens to a model's versions from what
// the nodes measure: it requests retraining when drift is sustained (and,
// in later parts, promotes candidates and rolls back regressions). It runs
// on the Raft leader only and acts by proposing registry commands; it never
// touches runtime slots or routing.
//
// # The retraining trigger
//
// After each drift window closes, the leader runs drift.EvaluateRecent on
// the champion's windows. When it returns alerts and ShouldFire agrees (no
// firing within the policy's cooldown of the last, which the registry keeps
// so it survives a leader change), the leader builds an Event (NewDriftEvent)
// and hands it to a Webhook, which POSTs it to the model's retraining URL:
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
// The controller should record the decision before sending: propose
// record_alert{kind: KindRetrainingRequested, evidence: the Event}, then
// Send, then record KindRetrainingDelivered (or KindRetrainingFailed). A
// new leader that finds a request without a later delivery resends the
// Event from the evidence, with its ID unchanged. ShouldFire reads
// LastAlerts[KindRetrainingRequested] as lastFired.
package lifecycle
