// Package lifecycle decides what happens to a model's versions from what
// the nodes measure: it requests retraining when drift is sustained, and
// (Decide) promotes candidates and rolls back regressions. It runs
// on the Raft leader only and acts by proposing registry commands; it never
// touches runtime slots or routing.
//
// # The controller
//
// A Controller (one per node; internal/node runs it) steps once a drift
// window and acts only while its node leads. It reads statistics through
// small interfaces it declares (DriftSource: each served champion's drift
// windows; RolloutSource: a rollout's evidence from the shadow
// comparisons, the online evaluation and the versions' counters) and acts
// through one, Registry: Apply a registry.Command, read state through View. Everything it must remember
// across a leader change is in the registry's audit log, which it reads
// incrementally (the ledger): the last drift alert of each model and the
// retraining requests without an outcome. Its own state is only what it is
// sending now, so a new leader carries on where the old one stopped.
// Time comes from an injected clock (ControllerConfig.Now), which stamps
// every command it proposes.
//
// # The retraining trigger
//
// After each drift window closes, the leader runs drift.Evaluate on
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
//
// # Rollouts
//
// Decide is the rollout's brain, pure and called once per window by the
// controller with the model's policy (policy.rollout, or
// registry.DefaultRollout), the RolloutState it keeps in the registry
// (step, when it began, requests on it, a pending approval) and the
// Evidence of the period: per version, requests, errors, latencies
// (shadow's HdrHistograms), a score histogram and the label statistics
// (LabelsFromMetrics reads them from shadow.Metrics). Its Decision (hold,
// advance, promote, await approval, roll back, complete) carries every
// check with its numbers; Decision.Evidence is the audit record's
// evidence, for decisions taken and held alike.
//
// Order of judgement: a rollback trigger that fires wins — error rate,
// p99 against the champion's (not in shadow, whose copies run on
// background threads), score PSI against the champion, a label
// regression beyond the tolerance; then a pending approval holds; then
// the step's minimum duration and requests; on the last step the
// promotion test on the policy metric, superiority when the promotion is
// automatic, non-inferiority by min_effect when a person approves it
// (manual mode, or require_approval on the champion gate: the test
// matches who decides); a candidate that spends max_samples labelled
// predictions without passing is pulled back. After promotion the new
// champion is judged by the same triggers against its predecessor's
// numbers until the watch ends, and rolled back to the standby if one
// fires.
//
// # Running a rollout
//
// Each step, for every model whose policy has a rollout section (a model
// without one keeps having its stages moved by people only), the leader
// takes the candidate — the canary, else the newest shadow, else a
// champion the rollout promoted that is still in its watch; with none of
// those, the newest validated version newer than the champion (what a
// retraining job registers) is put on the ramp's first step, once, by an
// automatic set_stage keyed on the version — asks the
// RolloutSource for its Evidence against the champion (in the watch: the
// warm standby), calls Decide and acts through the registry:
//
//	advance          set_stage to the next step's stage and weight (Auto)
//	await_approval   the same command; the policy makes the registry keep
//	                 it as the version's pending approval, which
//	                 `modelgate model approve` carries out (the rollout
//	                 goes on from the new step) and `reject` drops (the
//	                 rollout then stays on its step until a person moves
//	                 the version)
//	promote          promote (Auto)
//	roll_back        on the ramp: set_stage retired; in the watch:
//	                 rollback to the standby
//	complete         the watch ended: a record, and the rollout is over
//
// Every decision is an audit record carrying Decision.Evidence() and the
// state it leaves ("state"): a move is the registry's own record of it
// (set_stage, promote, rollback, approval_requested, actor "rollout");
// a decision that moves nothing is record_alert kind "rollout". A held
// decision is recorded when it differs from the last one recorded for the
// version (its action, step, pending approval or any check's status), not
// every window: a step that waits out its ten minutes writes one record
// when it starts waiting and one when something changes, so the audit log
// stays readable. Idempotency keys name the model, version, step and when
// the step began, so two leaders taking the same decision apply it once.
// A move the registry refuses (a signature the champion's clients cannot
// call) is recorded once and not proposed again on that step.
//
// # Rollout state
//
// RolloutState is not a registry field: it is derived, like the ledger,
// from what the registry already holds, so no new command (and no wire
// version) was needed and old logs replay unchanged. The step is the
// candidate's stage and canary weight, which only registry commands
// change (between two shadow steps, where the stage cannot tell, the last
// rollout record's state does); when it began is the version's last stage
// change (Version.Updated) or that record's time; pending is the
// version's pending approval; the watch is the champion's promote record
// carrying rollout evidence, ended by a complete record or a rollback.
// So a new leader stands exactly where the old one stood: it cannot
// repeat or skip a step. The requests on a step are the last record's
// count plus what this leader counted since from its own node's traffic
// (RolloutSource.Served; a version's first sight counts nothing): a new
// leader may count fewer than its predecessor had, which only makes the
// step last longer.
//
// # Alerts
//
// The decisions a person must know about — a rollback, a move waiting for
// approval, a drift alert — are POSTed to the model's alert webhook
// (policy.alerts: url, secret_ref, format "json" or "slack"), signed and
// retried like the retraining request (Webhook.SendBody), with the
// alert's id as the idempotency key. The json body is an Alert; the slack
// body is {"text": Alert.Text}. Like a retraining request an alert is
// recorded before it is sent (record_alert kind alert_requested) and
// settled by alert_delivered or alert_failed, so a new leader sends the
// ones its predecessor did not finish, once.
//
// # Why a sequential test
//
// The controller looks every window and acts on the first look that
// passes. A fixed-sample test repeated like that is a new chance to err
// at every look: in TestSimNaiveRepeatedTestInflatesErrors a one-sided
// z-test at 95%, looked at every minute of identical-model rollouts,
// declares the candidate better in many times 5% of them. The tests here
// stay valid however often they are looked at:
//
//   - Label metrics: the mixture sequential probability ratio test with a
//     normal mixture (Johari, Pekelis, Walsh, "Always valid inference",
//     2017), one-sided: the gain's estimate, divided by its variance, is a
//     Brownian motion in information time (1/variance), and the
//     likelihood ratio mixed over a half-normal of effects on the
//     alternative's side is a non-negative supermartingale under the
//     null, so by Ville's inequality it ever reaches 1/alpha with
//     probability at most alpha. The scale is mixed over 1, 4 and 16
//     times min_effect, so large effects are seen early without losing
//     the small ones. It needs only each version's estimate and variance,
//     which the mergeable evaluation already has for every metric
//     (precision, recall and F1 from the confusion counts, AUC, log-loss
//     and Brier from their standard errors), and it gives an always-valid
//     p-value for the audit log. Group-sequential alpha spending would
//     need the number of looks fixed in advance, which a rollout that
//     waits for labels does not know; confidence sequences for a
//     difference of means are the same supermartingale read as an
//     interval.
//   - Error rate and latency: requests failing, or slower than max_p99_ratio
//     times the champion's p99, are Bernoulli trials; the share above the
//     limit is tested with an exact mixture of Bernoulli likelihood
//     ratios (1.25 to 10 times the limit), valid for small counts where a
//     normal approximation is not.
//
// The variance of a difference is the sum of the two versions': exact for
// a canary, whose requests are disjoint from the champion's, and an upper
// bound (a conservative test) for a shadow, whose rows are the champion's.
// The error, latency and label triggers each err at most 1 - confidence
// of the time, so a good candidate is pulled back wrongly at most three
// times that: a rollback is the cheap mistake. The score-shift trigger is
// a plain PSI threshold: once min_requests scores are in, the PSI two
// samples of one distribution show by chance (about the number of bins
// over the count) is far below any limit worth setting. The simulations (rollout_sim_test.go:
// hundreds of rollouts each, seeded, on an injected clock) show the
// rates the issue asks for.
package lifecycle
