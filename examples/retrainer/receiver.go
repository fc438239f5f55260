package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/modelgate/modelgate/lifecycle"
)

// maxEventBytes bounds a webhook body: an event is a drift report and a
// few alerts, tens of kilobytes for models of hundreds of features.
const maxEventBytes = 16 << 20

// keptJobs is how many ended jobs the receiver remembers, for /jobs and for
// deduplication. A redelivery comes within the sender's retry budget
// (minutes), so this many covers it many times over; after a restart the
// registration's idempotency key still stops a second version.
const keptJobs = 1000

// retrainer receives retraining webhooks and runs one job per event.
type retrainer struct {
	cfg   Config
	log   *slog.Logger
	admin *adminClient
	now   func() time.Time

	// ctx ends the jobs: a shutdown past its drain deadline cancels it.
	ctx context.Context
	wg  sync.WaitGroup
	// slot lets one job train at a time: training takes the cores, and two
	// events for one model should not race to register.
	slot chan struct{}

	mu    sync.Mutex
	jobs  map[string]*job
	order []string // event ids, oldest first
	last  *job     // the last job to end

	// onChange, when set (tests), is called after every job ends.
	onChange func(JobStatus)
}

func newRetrainer(ctx context.Context, cfg Config, log *slog.Logger) (*retrainer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	admin, err := newAdminClient(&cfg, log)
	if err != nil {
		return nil, err
	}
	return &retrainer{cfg: cfg, log: log, admin: admin, now: time.Now, ctx: ctx,
		slot: make(chan struct{}, 1), jobs: map[string]*job{}}, nil
}

// handler serves the webhook and the job status.
func (r *retrainer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/webhook", r.webhook)
	mux.HandleFunc("GET /status", r.statusPage)
	mux.HandleFunc("GET /jobs", r.jobList)
	mux.HandleFunc("GET /jobs/{id}", r.jobPage)
	return mux
}

// webhook verifies a retraining request and starts its job. The order
// matters: the signature is checked on the raw bytes before anything is
// decoded, and the answer (202) goes out before training starts, well
// within the sender's timeout.
func (r *retrainer) webhook(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "the webhook takes POST"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxEventBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": fmt.Sprintf("an event is at most %d bytes", maxEventBytes)})
			return
		}
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "cannot read the body: " + err.Error()})
		return
	}
	sig := req.Header.Get(lifecycle.HeaderSignature)
	if sig == "" {
		r.log.Warn("webhook refused: unsigned", "remote", req.RemoteAddr)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "no " + lifecycle.HeaderSignature + " header: the request is not from modelgate"})
		return
	}
	if err := lifecycle.Verify(r.cfg.Secret, sig, body, r.now(), r.cfg.Tolerance); err != nil {
		// 401 is final for the sender: a wrong secret is not fixed by
		// retrying, and a stale timestamp is a replay.
		r.log.Warn("webhook refused: bad signature", "remote", req.RemoteAddr, "err", err)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": err.Error()})
		return
	}
	var ev lifecycle.Event
	if err := json.Unmarshal(body, &ev); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "the body is not a retraining event: " + err.Error()})
		return
	}
	switch {
	case ev.ID == "" || ev.Model == "" || ev.Version < 1:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "the event lacks its id, model or version"})
		return
	case ev.ExportURL == "":
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "the event has no export_url: nothing to train on"})
		return
	case r.cfg.Model != "" && ev.Model != r.cfg.Model:
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"error": fmt.Sprintf(
			"this job retrains model %q, not %q: point %q's retraining policy at its own job", r.cfg.Model, ev.Model, ev.Model)})
		return
	}

	j, fresh := r.admit(ev)
	st := j.snapshot()
	if !fresh {
		// A retry after a lost answer, or a new leader resending the same
		// episode: answer 2xx so the sender stops, and train nothing.
		r.log.Info("webhook: event already handled", "event", ev.ID, "state", st.State)
		writeJSON(w, http.StatusOK, map[string]any{"status": "already handled", "id": ev.ID, "job": st})
		return
	}
	r.log.Info("webhook: retraining accepted", "event", ev.ID, "model", ev.Model, "parent_version", ev.Version,
		"alerts", len(ev.Alerts), "export", ev.ExportURL)
	writeJSON(w, http.StatusAccepted, map[string]any{"status": "accepted", "id": ev.ID, "job": "/jobs/" + ev.ID})
}

// admit registers an event's job and starts it, or returns the job that
// already has its id.
func (r *retrainer) admit(ev lifecycle.Event) (*job, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if j, ok := r.jobs[ev.ID]; ok {
		return j, false
	}
	j := &job{r: r, ev: ev, end: make(chan struct{}), status: JobStatus{
		ID: ev.ID, Event: ev.Event, Model: ev.Model, ParentVersion: ev.Version,
		State: StateAccepted, Received: r.now().UTC(),
	}}
	r.jobs[ev.ID] = j
	r.order = append(r.order, ev.ID)
	r.forgetLocked()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		select {
		case r.slot <- struct{}{}:
		case <-r.ctx.Done():
			j.update(func(s *JobStatus) {
				s.State, s.Reason, s.Finished = StateFailed, "shut down before the job started", time.Now().UTC()
			})
			r.finished(j)
			return
		}
		defer func() { <-r.slot }()
		j.run(r.ctx)
	}()
	return j, true
}

// forgetLocked drops the oldest ended jobs beyond keptJobs.
func (r *retrainer) forgetLocked() {
	for i := 0; len(r.order) > keptJobs && i < len(r.order); {
		id := r.order[i]
		if j := r.jobs[id]; j.status.done() {
			delete(r.jobs, id)
			r.order = slices.Delete(r.order, i, i+1)
			continue
		}
		i++
	}
}

// finished records a job's end and wakes those waiting on it.
func (r *retrainer) finished(j *job) {
	r.mu.Lock()
	r.last = j
	cb := r.onChange
	r.mu.Unlock()
	close(j.end)
	if cb != nil {
		cb(j.snapshot())
	}
}

// wait waits for the jobs to end, up to ctx.
func (r *retrainer) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// statusPage: GET /status → {"last": the last job to end, "jobs": count
// per state}.
func (r *retrainer) statusPage(w http.ResponseWriter, _ *http.Request) {
	r.mu.Lock()
	last := r.last
	counts := map[string]int{}
	for _, j := range r.jobs {
		counts[j.status.State]++
	}
	r.mu.Unlock()
	out := map[string]any{"jobs": counts, "last": nil}
	if last != nil {
		out["last"] = last.snapshot()
	}
	writeJSON(w, http.StatusOK, out)
}

// jobList: GET /jobs → every remembered job, newest first.
func (r *retrainer) jobList(w http.ResponseWriter, _ *http.Request) {
	r.mu.Lock()
	js := make([]*job, 0, len(r.order))
	for i := len(r.order) - 1; i >= 0; i-- {
		js = append(js, r.jobs[r.order[i]])
	}
	r.mu.Unlock()
	out := make([]JobStatus, len(js))
	for i, j := range js {
		out[i] = j.snapshot()
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": out})
}

// jobPage: GET /jobs/{id}[?wait=DURATION] → the job's status; with wait,
// once it has ended or the wait is over (a script can follow a job without
// polling).
func (r *retrainer) jobPage(w http.ResponseWriter, req *http.Request) {
	id := req.PathValue("id")
	r.mu.Lock()
	j := r.jobs[id]
	r.mu.Unlock()
	if j == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no job for event " + id + " (unknown, or forgotten after " + fmt.Sprint(keptJobs) + " newer ones)"})
		return
	}
	if v := req.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > 10*time.Minute {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "wait must be a duration up to 10m, e.g. 30s"})
			return
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-j.end:
		case <-t.C:
		case <-req.Context().Done():
			return
		}
	}
	writeJSON(w, http.StatusOK, j.snapshot())
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"cannot encode the answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
