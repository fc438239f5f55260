package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/lifecycle"
	"github.com/modelgate/modelgate/registry"
)

// timeline follows the model's audit log (GET /api/v1/audit), prints each
// record as it appears, and lets the story wait for records.
type timeline struct {
	admin *admin
	out   io.Writer
	start time.Time

	pollMu sync.Mutex // one poll at a time, or two would append the same records

	mu      sync.Mutex
	records []registry.AuditRecord
	next    uint64
	err     error         // the last poll's failure, for a chapter that times out
	changed chan struct{} // closed and replaced when records arrive
}

func newTimeline(a *admin, out io.Writer, start time.Time) *timeline {
	return &timeline{admin: a, out: out, start: start, changed: make(chan struct{})}
}

// follow polls the audit log until ctx ends.
func (tl *timeline) follow(ctx context.Context) {
	tk := time.NewTicker(200 * time.Millisecond)
	defer tk.Stop()
	for {
		tl.poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
	}
}

// poll reads the records after the last one seen and prints them.
func (tl *timeline) poll(ctx context.Context) {
	tl.pollMu.Lock()
	defer tl.pollMu.Unlock()
	tl.mu.Lock()
	since := tl.next
	tl.mu.Unlock()
	recs, err := tl.admin.audit(ctx, since)
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.err = err
	if err != nil || len(recs) == 0 {
		return
	}
	for _, r := range recs {
		fmt.Fprintln(tl.out, tl.line(r))
	}
	tl.records = append(tl.records, recs...)
	tl.next = recs[len(recs)-1].Seq
	close(tl.changed)
	tl.changed = make(chan struct{})
}

// snapshot returns the records seen so far.
func (tl *timeline) snapshot() []registry.AuditRecord {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return append([]registry.AuditRecord(nil), tl.records...)
}

// errChapter is a chapter of the story that did not happen.
type errChapter struct {
	Chapter string
	Why     string
	// TimedOut: the hang guard passed with no record telling the chapter
	// (rather than a record telling another story).
	TimedOut bool
}

func (e *errChapter) Error() string { return e.Chapter + ": " + e.Why }

// waitFor waits until find, given every record seen so far, returns one
// (done) or an error (the story went another way), or guard passes.
func (tl *timeline) waitFor(ctx context.Context, chapter string, guard time.Duration,
	find func([]registry.AuditRecord) (*registry.AuditRecord, error)) (registry.AuditRecord, error) {
	fmt.Fprintf(tl.out, "%s  … waiting for %s\n", tl.stamp(time.Now()), chapter)
	deadline := time.NewTimer(guard)
	defer deadline.Stop()
	for {
		tl.mu.Lock()
		recs, changed, pollErr := tl.records, tl.changed, tl.err
		tl.mu.Unlock()
		r, err := find(recs)
		if err != nil {
			return registry.AuditRecord{}, &errChapter{Chapter: chapter, Why: err.Error()}
		}
		if r != nil {
			fmt.Fprintf(tl.out, "%s  ✓ %s (audit #%d)\n", tl.stamp(time.Now()), chapter, r.Seq)
			return *r, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return registry.AuditRecord{}, &errChapter{Chapter: chapter, Why: ctx.Err().Error()}
		case <-deadline.C:
			why := fmt.Sprintf("not in the audit log after %s (a hang guard: the story stopped here)", guard)
			if pollErr != nil {
				why += "; the last audit poll failed: " + pollErr.Error()
			}
			if n := len(recs); n > 0 {
				why += "; last record: " + tl.line(recs[n-1])
			}
			return registry.AuditRecord{}, &errChapter{Chapter: chapter, Why: why, TimedOut: true}
		}
	}
}

func (tl *timeline) stamp(t time.Time) string {
	return fmt.Sprintf("%+7.1fs", t.Sub(tl.start).Seconds())
}

// line is one audit record as the timeline prints it: when (from the
// demo's start), who, what, on which version, why, and the numbers.
func (tl *timeline) line(r registry.AuditRecord) string {
	what := string(r.Action)
	if r.Action == registry.ActionAlert {
		what = "alert " + r.Kind
	}
	if r.From != "" || r.To != "" {
		what += " " + string(r.From) + "→" + string(r.To)
		if r.To == registry.StageCanary && r.Weight > 0 {
			what += " " + registry.FormatWeight(r.Weight) + "%"
		}
	}
	actor := r.Actor
	if r.Auto {
		actor += " (auto)"
	}
	v := "  "
	if r.Version > 0 {
		v = "v" + strconv.Itoa(r.Version)
	}
	s := fmt.Sprintf("%s  #%-3d %-16s %-3s %-34s %s", tl.stamp(r.Time), r.Seq, truncate(actor, 16), v, what, r.Reason)
	if ev := evidence(r); ev != "" {
		s += "\n" + strings.Repeat(" ", 30) + "evidence: " + ev
	}
	return s
}

// evidence picks the numbers behind a record out of its evidence: the
// drift statistics that breached, the gates the controller judged, the
// validation checks.
func evidence(r registry.AuditRecord) string {
	if len(r.Evidence) == 0 {
		return ""
	}
	switch {
	case r.Action == registry.ActionAlert && r.Kind == lifecycle.KindDrift:
		var alerts []drift.Alert
		if json.Unmarshal(r.Evidence, &alerts) != nil || len(alerts) == 0 {
			return ""
		}
		return driftEvidence(alerts)
	case r.Action == registry.ActionAlert && r.Kind == lifecycle.KindRetrainingRequested:
		var ev lifecycle.Event
		if json.Unmarshal(r.Evidence, &ev) != nil {
			return ""
		}
		return "event " + ev.ID + ", " + strconv.Itoa(len(ev.Alerts)) + " alerts, labelled rows from " + ev.ExportURL
	case r.Action == registry.ActionValidate:
		var rep struct {
			Passed bool `json:"passed"`
			Checks []struct {
				Name string `json:"name"`
				OK   bool   `json:"ok"`
			} `json:"checks"`
		}
		if json.Unmarshal(r.Evidence, &rep) != nil || len(rep.Checks) == 0 {
			return ""
		}
		ok := 0
		for _, c := range rep.Checks {
			if c.OK {
				ok++
			}
		}
		return fmt.Sprintf("validation gate: %d of %d checks passed", ok, len(rep.Checks))
	case r.Action == registry.ActionSetPolicy:
		var p registry.Policy
		if json.Unmarshal(r.Evidence, &p) != nil || p.Rollout == nil {
			return ""
		}
		steps := make([]string, len(p.Rollout.Steps))
		for i, s := range p.Rollout.Steps {
			steps[i] = string(s.Stage)
			if s.Stage == registry.StageCanary {
				steps[i] += " " + registry.FormatWeight(s.Weight) + "%"
			}
		}
		return fmt.Sprintf("rollout %s → champion on %s (min effect %g, %g confidence); retraining %v",
			strings.Join(steps, " → "), p.Rollout.Metric, p.Rollout.MinEffect, p.Rollout.Confidence, p.Retraining.Enabled)
	}
	var d lifecycle.Decision
	if json.Unmarshal(r.Evidence, &d) == nil && d.Action != "" {
		return decisionEvidence(d)
	}
	return ""
}

func driftEvidence(alerts []drift.Alert) string {
	// The largest breaches first, relative to their thresholds (chi²'s is
	// a p-value: the smaller, the larger the breach).
	sev := func(a drift.Alert) float64 {
		v := a.Values[len(a.Values)-1]
		if a.Statistic == "chi2_p" {
			return a.Threshold / max(v, 1e-300)
		}
		return v / a.Threshold
	}
	alerts = append([]drift.Alert(nil), alerts...)
	sort.SliceStable(alerts, func(i, j int) bool { return sev(alerts[i]) > sev(alerts[j]) })
	var parts []string
	for i, a := range alerts {
		if i == 4 {
			parts = append(parts, fmt.Sprintf("and %d more", len(alerts)-i))
			break
		}
		name := a.Name
		if name == "" {
			name = a.Input + "[" + strconv.Itoa(a.Index) + "]"
		}
		if a.Output {
			name = "score"
		}
		part := fmt.Sprintf("%s %s %.3g", name, a.Statistic, a.Values[len(a.Values)-1])
		if a.Threshold > 0 {
			part += fmt.Sprintf(" (limit %g)", a.Threshold)
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, ", ")
}

func decisionEvidence(d lifecycle.Decision) string {
	parts := []string{fmt.Sprintf("candidate v%d: %d requests, %d errors, %d labelled, AUC %.3f; champion v%d: AUC %.3f",
		d.Candidate.Version, d.Candidate.Requests, d.Candidate.Errors, d.Candidate.Labels.N, d.Candidate.Labels.AUC,
		d.Champion.Version, d.Champion.Labels.AUC)}
	for _, c := range d.Checks {
		if c.Status == lifecycle.StatusDisabled || c.Status == lifecycle.StatusNotJudged {
			continue
		}
		s := fmt.Sprintf("%s %s %.4g/%.4g", c.Name, c.Status, c.Value, c.Limit)
		if c.Test != nil {
			s += fmt.Sprintf(" p=%.3g", c.Test.PValue)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}
