package lifecycle

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/modelgate/modelgate/drift"
)

// EventDrift is the Event.Event of a drift-triggered retraining request.
const EventDrift = "drift"

// Alert kinds the controller records in the registry (record_alert) around
// a retraining request. The model's LastAlerts[KindRetrainingRequested] is
// the lastFired that ShouldFire takes.
const (
	// KindDrift: a sustained drift alert was raised (audit only).
	KindDrift = "drift"
	// KindRetrainingRequested: the leader decided to fire; the evidence is
	// the Event, so a new leader can resend it with the same ID.
	KindRetrainingRequested = "retraining_requested"
	// KindRetrainingDelivered: the receiver accepted the Event.
	KindRetrainingDelivered = "retraining_delivered"
	// KindRetrainingFailed: the Event could not be delivered (rejected, or
	// every attempt failed).
	KindRetrainingFailed = "retraining_failed"
)

// Event is the JSON body of a retraining webhook:
//
//	{"event":"drift","id":"drift-…","time":"2026-11-27T12:00:00Z",
//	 "model":"fraud","version":3,"report":{…drift report…},
//	 "export_url":"https://…/api/v1/models/fraud/export?…",
//	 "alerts":[{"input":"features","index":2,"name":"amount_log","statistic":"psi",…}]}
//
// ID is the idempotency key, also sent in the Modelgate-Idempotency-Key
// header: a receiver that has seen it already must answer 2xx and do
// nothing, because a retry (or a new leader) may deliver the same event
// twice.
type Event struct {
	Event   string    `json:"event"`
	ID      string    `json:"id"`
	Time    time.Time `json:"time"`
	Model   string    `json:"model"`
	Version int       `json:"version"`
	// Report is the drift report (drift.Report's JSON) that raised the
	// alerts.
	Report json.RawMessage `json:"report,omitempty"`
	// ExportURL streams the labelled rows logged since the version was
	// trained (the admin API's export, NDJSON): what to retrain on.
	ExportURL string        `json:"export_url,omitempty"`
	Alerts    []drift.Alert `json:"alerts"`
}

// NewDriftEvent builds the event of one drift episode of a model version:
// its ID from EventID(model, version, episodeStart), its time now (UTC),
// the report encoded as JSON.
func NewDriftEvent(model string, version int, episodeStart, now time.Time, report *drift.Report, exportURL string, alerts []drift.Alert) (Event, error) {
	ev := Event{
		Event: EventDrift, ID: EventID(model, version, episodeStart), Time: now.UTC(),
		Model: model, Version: version, ExportURL: exportURL, Alerts: alerts,
	}
	if ev.Alerts == nil {
		ev.Alerts = []drift.Alert{}
	}
	if report != nil {
		b, err := json.Marshal(report)
		if err != nil {
			return Event{}, fmt.Errorf("lifecycle: cannot encode the drift report of %s v%d: %w", model, version, err)
		}
		ev.Report = b
	}
	return ev, nil
}

// EventID returns the idempotency key of a drift episode: a hash of the
// model, the version and the episode's start, so every node that fires for
// the same episode (two leaders around a leader change) sends the same key.
// episodeStart must be computed the same way on every node: the start of
// the first window of the breaching run (drift windows are aligned on the
// Unix epoch, so it is the same instant everywhere). Its location and
// monotonic reading do not matter.
func EventID(model string, version int, episodeStart time.Time) string {
	h := sha256.New()
	h.Write([]byte("modelgate drift event v1\x00"))
	h.Write([]byte(model))
	h.Write([]byte{0})
	h.Write([]byte(strconv.Itoa(version)))
	h.Write([]byte{0})
	h.Write([]byte(strconv.FormatInt(episodeStart.UnixNano(), 10)))
	return "drift-" + hex.EncodeToString(h.Sum(nil)[:16])
}
