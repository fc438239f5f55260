package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/modelgate/modelgate/lifecycle"
	"github.com/modelgate/modelgate/registry"
)

// Result is what a run of the demo saw: the test checks it, main prints
// its failure.
type Result struct {
	// LogDir holds the node's data and both processes' logs when they
	// were kept (Config.Dir, or a failed run's temporary directory).
	LogDir string
	// Chapters are the chapters that happened, in order.
	Chapters []string
	// Champion, Candidate and Bad are the three versions of the story:
	// the first champion, the retrained candidate, the bad candidate.
	Champion, Candidate, Bad int
	// CandidateVersion is the retrained candidate as the registry holds
	// it once validated (lineage, validation).
	CandidateVersion registry.Version
	// Final is the model at the end (aliases and stages).
	Final registry.Model
	// Traffic is what the traffic generator counted.
	Traffic Counts
	// Records is the model's audit log at the end.
	Records []registry.AuditRecord
	// DriftSeq is the last audit record before the drift was injected:
	// the story's alerts come after it.
	DriftSeq uint64
	// Elapsed is the whole run, from starting the node.
	Elapsed time.Duration
}

// story is one run in progress.
type story struct {
	cfg   *Config
	out   io.Writer
	res   *Result
	node  *node
	admin *admin
	tl    *timeline
	start time.Time
}

// Run plays the story. It returns an error naming the first chapter that
// did not happen (or the failed client requests), and the Result so far.
func Run(ctx context.Context, cfg Config, out io.Writer) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	res := &Result{}
	dir, keep := cfg.Dir, cfg.Dir != ""
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "modelgate-demo-"); err != nil {
			return res, err
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	// The narration and the audit follower write from two goroutines.
	s := &story{cfg: &cfg, out: &syncWriter{w: out}, res: res}
	err := s.run(ctx, dir)
	if err != nil || keep {
		res.LogDir = dir
	} else {
		os.RemoveAll(dir)
	}
	return res, err
}

func (s *story) run(ctx context.Context, dir string) (err error) {
	cfg := s.cfg
	logf(s.out, "modelgate demo: drift → retraining → rollout → promotion → a bad candidate rolled back")
	logf(s.out, "training the demo champion, its reference profile and a deliberately bad model …")
	ms, err := buildModels()
	if err != nil {
		return err
	}
	secret, err := newSecret()
	if err != nil {
		return err
	}
	s.start = time.Now()
	defer func() { s.res.Elapsed = time.Since(s.start) }()
	n, err := startNode(ctx, cfg, dir, secret)
	if err != nil {
		return err
	}
	defer n.stop(30 * time.Second)
	s.node, s.admin = n, newAdmin(n)
	logf(s.out, "node up: scoring on http://%s, admin on http://%s, drift windows of %s (data and logs in %s)", n.addr, n.admin, cfg.DriftWindow, dir)

	followCtx, stopFollow := context.WithCancel(ctx)
	s.tl = newTimeline(s.admin, s.out, s.start)
	followed := make(chan struct{})
	go func() { defer close(followed); s.tl.follow(followCtx) }()
	defer func() {
		stopFollow()
		<-followed
		// One last read, so the log the result and the final timeline
		// hold is the whole of it.
		s.tl.poll(context.Background())
		s.res.Records = s.tl.snapshot()
		s.printTimeline()
	}()
	// Chapters watch the node: one that exits ends the story at once.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-n.done:
			cancel(fmt.Errorf("the node exited (%v); its last lines:\n%s", n.waitErr, n.tail("", 15)))
		case <-ctx.Done():
		}
	}()
	defer func() {
		if err != nil && context.Cause(ctx) != nil && !errors.Is(context.Cause(ctx), context.Canceled) {
			err = fmt.Errorf("%w: %w", err, context.Cause(ctx))
		}
	}()

	// Chapter 1: the champion, with the profile of its training data, so
	// drift is judged from the first request.
	commit := cfg.Commit
	if commit == "" {
		commit = gitCommit()
		cfg.Commit = commit // the retrainer records the same
	}
	v1, err := s.admin.register(ctx, ms.champion, ms.championRegistration(commit))
	if err != nil {
		return fmt.Errorf("cannot register the champion: %w", err)
	}
	s.res.Champion = v1
	if _, err := s.chapter(ctx, "v"+strconv.Itoa(v1)+" validated and champion", s.championOf(v1)); err != nil {
		return err
	}
	if err := s.waitReady(ctx, v1); err != nil {
		return err
	}

	rt, err := startRetrainer(ctx, cfg, dir, secret, n)
	if err != nil {
		return err
	}
	defer rt.stop(10 * time.Second)
	cur, err := s.admin.model(ctx)
	if err != nil {
		return err
	}
	if err := s.admin.setPolicy(ctx, demoPolicy(cur.Policy, rt.url+"/webhook"), "demo: drift on 1s windows, retraining via examples/retrainer, a short automatic rollout"); err != nil {
		return fmt.Errorf("cannot set the demo's policy: %w", err)
	}
	logf(s.out, "retraining job listening on %s/webhook; policy set", rt.url)

	// Chapter 2: calm traffic, labels arriving late.
	tr := newTraffic(cfg, n, s.admin)
	tr.start()
	defer func() {
		tr.stopAndWait()
		s.res.Traffic = tr.counts()
		logf(s.out, "traffic: %s", s.res.Traffic.summary())
		if err == nil && s.res.Traffic.FailedTotal() > 0 {
			err = fmt.Errorf("%d client requests failed (%v); first: %v", s.res.Traffic.FailedTotal(), s.res.Traffic.Failed, s.res.Traffic.Examples)
		}
	}()
	logf(s.out, "%s  calm traffic: %d transactions/s, one per request, each label posted %s later", s.tl.stamp(time.Now()), cfg.Rate, cfg.LabelDelay)
	select {
	case <-time.After(cfg.Calm):
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	s.tl.poll(ctx)
	for _, r := range s.tl.snapshot() {
		if r.Action == registry.ActionAlert && r.Kind == lifecycle.KindDrift {
			return &errChapter{Chapter: "calm traffic", Why: "a drift alert on undrifted traffic: " + s.tl.line(r)}
		}
	}
	logf(s.out, "%s  calm: %s", s.tl.stamp(time.Now()), tr.counts().summary())

	// Chapter 3: the world changes.
	if recs := s.tl.snapshot(); len(recs) > 0 {
		s.res.DriftSeq = recs[len(recs)-1].Seq
	}
	tr.drift()
	logf(s.out, "%s  DRIFT: %d of 20 transactions now follow a new fraud pattern (concept drift), the rest come from a new merchant category (%g crypto)",
		s.tl.stamp(time.Now()), conceptShare, newCategoryShare)
	if _, err := s.chapter(ctx, "a drift alert (the controller, from the node's drift windows)", s.alert(lifecycle.KindDrift, "")); err != nil {
		return err
	}
	if _, err := s.chapter(ctx, "the retraining request, recorded", s.alert(lifecycle.KindRetrainingRequested, "")); err != nil {
		return err
	}
	if _, err := s.chapter(ctx, "the retraining webhook delivered to the job", s.alert(lifecycle.KindRetrainingDelivered, lifecycle.KindRetrainingFailed)); err != nil {
		return err
	}

	// Chapter 4: the job trains and registers a candidate.
	reg, err := s.chapter(ctx, "a candidate registered by the retraining job", s.registered(v1))
	if err != nil {
		return err
	}
	cand := reg.Version
	s.res.Candidate = cand
	if _, err := s.chapter(ctx, "v"+strconv.Itoa(cand)+" validated", s.validated(cand)); err != nil {
		return err
	}
	cv, err := s.admin.version(ctx, cand)
	if err != nil {
		return err
	}
	s.res.CandidateVersion = cv
	l := cv.Lineage
	logf(s.out, "%s  v%d's lineage: parent v%d, %s rows to cursor %s, digest %s, commit %s, held-out AUC %.3f, log-loss %.3f",
		s.tl.stamp(time.Now()), cand, l.ParentVersion, strconv.FormatFloat(l.TrainingMetrics["train_rows"]+l.TrainingMetrics["holdout_rows"], 'f', 0, 64),
		l.DatasetVersion, truncate(l.DatasetDigest, 19), truncate(l.CodeCommit, 12), l.TrainingMetrics["auc"], l.TrainingMetrics["log_loss"])
	if cfg.Until == UntilCandidate {
		return s.final(ctx, v1)
	}

	// Chapter 5: the rollout, decided by the lifecycle controller.
	if err := s.rollout(ctx, cand); err != nil {
		return err
	}
	if err := s.decision(ctx, cand, "v"+strconv.Itoa(cand)+" on canary (the controller's decision: set_stage → canary)", s.moved(cand, registry.StageCanary)); err != nil {
		return err
	}
	if err := s.decision(ctx, cand, "v"+strconv.Itoa(cand)+" promoted to champion (the controller's decision: promote)", s.moved(cand, registry.StageChampion)); err != nil {
		return err
	}
	if err := s.waitReady(ctx, cand); err != nil {
		return err
	}
	// The new champion is watched against its predecessor; the bad
	// candidate's rollout starts once the watch is over.
	logf(s.out, "%s  v%d is champion; its watch lasts %s", s.tl.stamp(time.Now()), cand, watch)
	select {
	case <-time.After(watch + 2*cfg.DriftWindow):
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	s.tl.poll(ctx)
	for _, r := range s.tl.snapshot() {
		if r.Version == cand && r.Action == registry.ActionRollback {
			return &errChapter{Chapter: "v" + strconv.Itoa(cand) + "'s watch", Why: "the new champion was rolled back: " + s.tl.line(r)}
		}
	}

	// Chapter 6: a bad candidate, pulled back on its own.
	bad, err := s.admin.register(ctx, ms.bad, ms.badRegistration(cand, commit))
	if err != nil {
		return fmt.Errorf("cannot register the bad candidate: %w", err)
	}
	s.res.Bad = bad
	if _, err := s.chapter(ctx, "v"+strconv.Itoa(bad)+" (inverted weights) validated: the gate cannot tell it is wrong", s.validated(bad)); err != nil {
		return err
	}
	if err := s.rollout(ctx, bad); err != nil {
		return err
	}
	if err := s.decision(ctx, bad, "v"+strconv.Itoa(bad)+" pulled back automatically (the controller's decision: retired or rolled back)", s.pulledBack(bad)); err != nil {
		return err
	}
	return s.final(ctx, cand)
}

// final checks who is champion at the end.
func (s *story) final(ctx context.Context, want int) error {
	m, err := s.admin.model(ctx)
	if err != nil {
		return err
	}
	s.res.Final = m
	if m.Champion != want {
		return &errChapter{Chapter: "the end", Why: fmt.Sprintf("v%d is champion, want v%d", m.Champion, want)}
	}
	logf(s.out, "%s  the end: v%d is champion", s.tl.stamp(time.Now()), m.Champion)
	return nil
}

// chapter waits for one chapter of the story and books it.
func (s *story) chapter(ctx context.Context, name string, find func([]registry.AuditRecord) (*registry.AuditRecord, error)) (registry.AuditRecord, error) {
	r, err := s.tl.waitFor(ctx, name, s.cfg.ChapterTimeout, find)
	if err == nil {
		s.res.Chapters = append(s.res.Chapters, name)
	}
	return r, err
}

// decision waits for a chapter that only the lifecycle controller's
// rollout loop can write. When it does not come, the error says whether
// the controller decided anything about v at all (no: its rollout loop is
// not running) or what it did last.
func (s *story) decision(ctx context.Context, v int, name string, find func([]registry.AuditRecord) (*registry.AuditRecord, error)) error {
	_, err := s.chapter(ctx, name, find)
	var ec *errChapter
	if !errors.As(err, &ec) || !ec.TimedOut {
		return err
	}
	var last *registry.AuditRecord
	for _, r := range s.tl.snapshot() {
		if r.Version == v && r.Auto {
			last = &r
		}
	}
	if last == nil {
		ec.Why += fmt.Sprintf("; the lifecycle controller recorded no decision about v%d at all: is its rollout loop running (policy.rollout, lifecycle.Controller)?", v)
	} else {
		ec.Why += fmt.Sprintf("; the controller's last decision about v%d: %s", v, s.tl.line(*last))
	}
	return err
}

// rollout waits for the controller to start version v's rollout: with a
// rollout policy it puts a new validated candidate on the ramp's first
// step (shadow) on its own.
func (s *story) rollout(ctx context.Context, v int) error {
	return s.decision(ctx, v, "v"+strconv.Itoa(v)+" in shadow (the rollout's first step, started by the controller)", s.moved(v, registry.StageShadow))
}

// waitReady waits until version v is loaded and routable on the node, so
// that no client request is sent before something can answer it.
func (s *story) waitReady(ctx context.Context, v int) error {
	deadline := time.Now().Add(s.cfg.ChapterTimeout)
	for {
		var out struct {
			Ready bool `json:"ready_on_node"`
		}
		err := s.admin.do(ctx, "GET", "/api/v1/models/"+model+"/versions/"+strconv.Itoa(v), nil, "", &out)
		if err == nil && out.Ready {
			return nil
		}
		if time.Now().After(deadline) {
			return &errChapter{Chapter: "v" + strconv.Itoa(v) + " loaded on the node", Why: fmt.Sprintf("not routable after %s (last: %v)", s.cfg.ChapterTimeout, err)}
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// The chapters' conditions on the audit log. Each finds the record that
// tells the chapter, or returns an error when the log tells another story
// (a failed delivery, a refused candidate, a promotion that waits for a
// person).

func (s *story) championOf(v int) func([]registry.AuditRecord) (*registry.AuditRecord, error) {
	return func(recs []registry.AuditRecord) (*registry.AuditRecord, error) {
		for i := range recs {
			r := &recs[i]
			if r.Version == v && r.Action == registry.ActionValidate && r.To == registry.StageFailed {
				return nil, errors.New("refused by the validation gate: " + r.Reason)
			}
			if r.Version == v && r.To == registry.StageChampion {
				return r, nil
			}
		}
		return nil, nil
	}
}

func (s *story) alert(kind, failKind string) func([]registry.AuditRecord) (*registry.AuditRecord, error) {
	return func(recs []registry.AuditRecord) (*registry.AuditRecord, error) {
		for i := range recs {
			r := &recs[i]
			if r.Action != registry.ActionAlert {
				continue
			}
			if failKind != "" && r.Kind == failKind {
				return nil, errors.New("the audit log says " + failKind + ": " + r.Reason)
			}
			if r.Kind == kind {
				return r, nil
			}
		}
		return nil, nil
	}
}

// registered finds the first version registered after the champion.
func (s *story) registered(champion int) func([]registry.AuditRecord) (*registry.AuditRecord, error) {
	return func(recs []registry.AuditRecord) (*registry.AuditRecord, error) {
		for i := range recs {
			if r := &recs[i]; r.Action == registry.ActionRegister && r.Version > champion {
				return r, nil
			}
		}
		return nil, nil
	}
}

func (s *story) validated(v int) func([]registry.AuditRecord) (*registry.AuditRecord, error) {
	return func(recs []registry.AuditRecord) (*registry.AuditRecord, error) {
		for i := range recs {
			r := &recs[i]
			if r.Version != v || r.Action != registry.ActionValidate {
				continue
			}
			if r.To != registry.StageValidated {
				return nil, fmt.Errorf("v%d went to %s: %s", v, r.To, r.Reason)
			}
			return r, nil
		}
		return nil, nil
	}
}

// entered finds version v's move into stage, by anyone.
func (s *story) entered(v int, stage registry.Stage) func([]registry.AuditRecord) (*registry.AuditRecord, error) {
	return func(recs []registry.AuditRecord) (*registry.AuditRecord, error) {
		for i := range recs {
			if r := &recs[i]; r.Version == v && r.To == stage {
				return r, nil
			}
		}
		return nil, nil
	}
}

// moved finds the controller's move of version v into stage (an Auto
// record), and fails on the records that end the rollout another way.
func (s *story) moved(v int, stage registry.Stage) func([]registry.AuditRecord) (*registry.AuditRecord, error) {
	return func(recs []registry.AuditRecord) (*registry.AuditRecord, error) {
		for i := range recs {
			r := &recs[i]
			if r.Version != v {
				continue
			}
			switch {
			case r.Action == registry.ActionRequestApproval:
				return nil, fmt.Errorf("the move of v%d to %s waits for a person's approval, which the demo's policy does not ask for: %s", v, r.To, r.Reason)
			case r.To == registry.StageRetired || r.To == registry.StageRolledBack:
				return nil, fmt.Errorf("v%d was pulled back (%s by %s): %s", v, r.To, r.Actor, r.Reason)
			case r.To == stage && r.Auto:
				return r, nil
			}
		}
		return nil, nil
	}
}

// pulledBack finds the controller taking version v out of traffic: retired
// in the ramp, or rolled back in its watch. A promotion is the wrong story.
func (s *story) pulledBack(v int) func([]registry.AuditRecord) (*registry.AuditRecord, error) {
	return func(recs []registry.AuditRecord) (*registry.AuditRecord, error) {
		for i := range recs {
			r := &recs[i]
			if r.Version != v {
				continue
			}
			switch {
			case r.Action == registry.ActionPromote:
				return nil, fmt.Errorf("the bad candidate v%d was promoted: %s", v, r.Reason)
			case r.Action == registry.ActionRequestApproval:
				return nil, fmt.Errorf("a move of the bad candidate v%d waits for approval: %s", v, r.Reason)
			case r.Auto && (r.To == registry.StageRetired || r.To == registry.StageRolledBack):
				return r, nil
			}
		}
		return nil, nil
	}
}

// printTimeline prints the whole audit log of the run, then the chapters.
func (s *story) printTimeline() {
	logf(s.out, "\nTimeline (the audit log of model %q; times from the start of the node):", model)
	for _, r := range s.res.Records {
		logf(s.out, "%s", s.tl.line(r))
	}
	if len(s.res.Chapters) > 0 {
		logf(s.out, "\nChapters that happened (%.0f s from the node's start):", time.Since(s.start).Seconds())
		for i, c := range s.res.Chapters {
			logf(s.out, "  %d. %s", i+1, c)
		}
	}
}

// gitCommit is the commit of the checkout the demo runs in, marked
// "-dirty" with uncommitted changes (as the retrainer marks its own VCS
// stamp), or "" outside a git checkout: the retrainer then falls back to
// its binary's stamp, or refuses, saying so.
func gitCommit() string {
	b, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	commit := strings.TrimSpace(string(b))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		commit += "-dirty"
	}
	return commit
}

// syncWriter serialises writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
