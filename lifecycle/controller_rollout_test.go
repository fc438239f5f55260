package lifecycle

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelgate/modelgate/registry"
)

// simArm is one version's true behaviour and what it has done so far.
type simArm struct {
	model  simModel
	served uint64
	errors uint64
	labels LabelStats
}

// simSource is a RolloutSource over simulated traffic: the sufficient
// statistics a node's evaluation would hold, drawn from each version's
// true recall, false-positive and error rates (as the simulations do).
type simSource struct {
	mu   sync.Mutex
	r    *rand.Rand
	arms map[int]*simArm
}

func newSimSource(seed uint64, arms map[int]simModel) *simSource {
	s := &simSource{r: rand.New(rand.NewPCG(seed, 1)), arms: map[int]*simArm{}}
	for v, m := range arms {
		s.arms[v] = &simArm{model: m}
	}
	return s
}

// serve gives version n requests, every one labelled (10% positives).
func (s *simSource) serve(version int, n uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.arms[version]
	a.served += n
	a.errors += binomial(s.r, n, a.model.errRate)
	a.model.draw(s.r, n, 0.1, &a.labels)
}

func (s *simSource) RolloutEvidence(q RolloutQuery) (Evidence, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	arm := func(v int) Arm {
		a := s.arms[v]
		return Arm{Version: v, Requests: a.served, Errors: a.errors, Labels: a.labels}
	}
	return Evidence{Candidate: arm(q.Candidate), Champion: arm(q.Against)}, nil
}

func (s *simSource) Served(_ string, version int) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.arms[version].served
}

// rolloutSetup: the commands that make testModel with v1 the champion,
// v2 in shadow (moved there by a person), and pol (with alerts to
// alertURL when set).
func rolloutSetup(pol registry.Policy, alertURL string) []registry.Command {
	if alertURL != "" {
		pol.Alerts = &registry.AlertPolicy{URL: alertURL, SecretRef: "alerts", Format: registry.AlertFormatJSON}
	}
	sig := registry.Signature{
		Inputs:  []registry.TensorSpec{{Name: "features", DataType: "FP32", Shape: []int64{-1, 30}}},
		Outputs: []registry.TensorSpec{{Name: "probability", DataType: "FP32", Shape: []int64{-1, 1}}},
	}
	var cmds []registry.Command
	for i, args := range []registry.Args{
		&registry.CreateModelArgs{Model: testModel, Policy: &pol},
		&registry.RegisterArgs{Model: testModel, Digest: strings.Repeat("ab", 32), Size: 1, Signature: sig},
		&registry.SetValidationArgs{Model: testModel, Version: 1, Passed: true, Signature: sig},
		&registry.RegisterArgs{Model: testModel, Digest: strings.Repeat("cd", 32), Size: 1, Signature: sig},
		&registry.SetValidationArgs{Model: testModel, Version: 2, Passed: true, Signature: sig},
		&registry.SetStageArgs{Model: testModel, Version: 2, Stage: registry.StageShadow},
	} {
		cmds = append(cmds, registry.Command{Time: t0, Actor: "ci", IdempotencyKey: "setup-" + string(rune('a'+i)), Args: args})
	}
	return cmds
}

// rolloutRegistry is rolloutSetup applied to a registry without Raft.
func rolloutRegistry(t *testing.T, pol registry.Policy, alertURL string) *memRegistry {
	t.Helper()
	reg := &memRegistry{st: registry.New()}
	for _, cmd := range rolloutSetup(pol, alertURL) {
		if _, err := reg.st.Apply(cmd); err != nil {
			t.Fatalf("%s: %v", cmd.Op(), err)
		}
	}
	return reg
}

// rolloutRig drives a controller window by window.
type rolloutRig struct {
	t     *testing.T
	reg   Registry
	view  func(func(*registry.State))
	clock *fakeClock
	src   *simSource
	ctrl  *Controller
	// step steps the controllers (default: ctrl.Step).
	step func()
}

func newRolloutRig(t *testing.T, reg *memRegistry, src *simSource) *rolloutRig {
	t.Helper()
	clock := &fakeClock{now: t0}
	c, err := NewController(ControllerConfig{Registry: reg, Rollouts: src, Now: clock.Now, Interval: time.Minute,
		Secrets: map[string][]byte{"alerts": []byte(hookSecret)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &rolloutRig{t: t, reg: reg, view: reg.View, clock: clock, src: src, ctrl: c}
}

// window sends a minute of traffic (perWindow requests) split as the
// registry routes it — a shadow runs every champion request, a canary
// answers its weight — then steps the controller.
func (r *rolloutRig) window(perWindow uint64) {
	var champ, canary, shadowV int
	var weight float64
	r.view(func(st *registry.State) {
		m, err := st.Model(testModel)
		if err != nil {
			r.t.Fatal(err)
		}
		champ, canary, weight = m.Champion, m.Canary, m.CanaryWeight
		for _, v := range m.Versions {
			if v.Stage == registry.StageShadow {
				shadowV = v.Number
			}
		}
	})
	toCanary := uint64(float64(perWindow) * weight / 100)
	if canary != 0 {
		r.src.serve(canary, toCanary)
	}
	r.src.serve(champ, perWindow-toCanary)
	if shadowV != 0 {
		r.src.serve(shadowV, perWindow-toCanary)
	}
	r.clock.Add(time.Minute)
	if r.step != nil {
		r.step()
		return
	}
	r.ctrl.Step()
}

func (r *rolloutRig) model() registry.Model {
	var m registry.Model
	r.view(func(st *registry.State) { m, _ = st.Model(testModel) })
	return m
}

// rolloutRecords returns the audit records written by the rollout.
func rolloutRecords(view func(func(*registry.State))) []registry.AuditRecord {
	var out []registry.AuditRecord
	view(func(st *registry.State) {
		for _, rec := range st.Audit(registry.AuditFilter{Model: testModel}) {
			if rec.Actor == actorRollout {
				out = append(out, rec)
			}
		}
	})
	return out
}

// decisionOf reads a rollout record's evidence.
func decisionOf(t *testing.T, rec registry.AuditRecord) recordedDecision {
	t.Helper()
	var d recordedDecision
	if err := json.Unmarshal(rec.Evidence, &d); err != nil || d.State == nil || d.Phase == "" {
		t.Fatalf("record %d (%s) does not carry a rollout decision with its state: %v: %s", rec.Seq, rec.Action, err, rec.Evidence)
	}
	return d
}

// TestRolloutAutoShadowToChampion drives a better candidate window by
// window: shadow, canary 1%, canary 10% each for their minimum time and
// requests, promotion once the superiority test passes, then a quiet
// watch that completes. Every move is the registry's own record by the
// rollout actor, with the decision's evidence; held decisions are
// recorded when they change, not every window.
func TestRolloutAutoShadowToChampion(t *testing.T) {
	reg := rolloutRegistry(t, rolloutPolicy(false), "")
	src := newSimSource(7, map[int]simModel{1: {recall: 0.8, fpr: 0.05}, 2: {recall: 0.9, fpr: 0.05}})
	r := newRolloutRig(t, reg, src)
	windows := 0
	for ; windows < 400 && r.model().Champion != 2; windows++ {
		r.window(5000)
	}
	if r.model().Champion != 2 {
		t.Fatalf("v2 not promoted after %d windows; records: %+v", windows, rolloutRecords(r.view))
	}
	var moves []string
	for _, rec := range rolloutRecords(r.view) {
		if rec.Action == registry.ActionAlert || rec.Action == registry.ActionRetire {
			continue // held decisions; the old champion's retirement, part of the promotion
		}
		d := decisionOf(t, rec)
		if !rec.Auto || len(rec.Evidence) == 0 {
			t.Errorf("move %d %s is not marked automatic with evidence", rec.Seq, rec.Action)
		}
		moves = append(moves, string(rec.Action)+":"+string(rec.To)+":"+registry.FormatWeight(rec.Weight)+":"+string(d.Action))
	}
	want := []string{"set_stage:canary:1:advance", "set_stage:canary:10:advance", "promote:champion:0:promote"}
	if strings.Join(moves, " ") != strings.Join(want, " ") {
		t.Fatalf("moves %v, want %v", moves, want)
	}
	held := 0
	for _, rec := range rolloutRecords(r.view) {
		if rec.Action == registry.ActionAlert {
			held++
		}
	}
	if held >= windows/2 {
		t.Errorf("%d held records over %d windows: held decisions must be recorded on change only", held, windows)
	}

	// The watch: an hour as champion with no trigger firing completes it.
	for range 61 {
		r.window(5000)
	}
	recs := rolloutRecords(r.view)
	last := recs[len(recs)-1]
	if d := decisionOf(t, last); d.Action != ActionComplete || last.Version != 2 {
		t.Fatalf("after the watch the last record is %s %s v%d, want complete of v2", last.Action, d.Action, last.Version)
	}
	n := len(recs)
	for range 10 {
		r.window(5000)
	}
	if len(rolloutRecords(r.view)) != n {
		t.Fatalf("the controller still records after the rollout completed")
	}
}

// TestRolloutManualWaitsForApproval: in manual mode each move is a pending
// transition the controller proposes once; nothing moves until a person
// approves, and the controller continues from the approved step.
func TestRolloutManualWaitsForApproval(t *testing.T) {
	reg := rolloutRegistry(t, rolloutPolicy(true), "")
	src := newSimSource(11, map[int]simModel{1: {recall: 0.8, fpr: 0.05}, 2: {recall: 0.85, fpr: 0.05}})
	r := newRolloutRig(t, reg, src)
	pendingAfter := func() *registry.PendingTransition {
		m := r.model()
		v, _ := m.Version(2)
		return v.Pending
	}
	for i := 0; i < 60 && pendingAfter() == nil; i++ {
		r.window(5000)
	}
	p := pendingAfter()
	if p == nil || p.To != registry.StageCanary || p.Weight != 1 || p.RequestedBy != actorRollout {
		t.Fatalf("no pending move to canary 1%% by the rollout: %+v", p)
	}
	// Waiting: the version stays in shadow however long, and the request
	// is not proposed twice.
	for range 30 {
		r.window(5000)
	}
	requests := 0
	for _, rec := range rolloutRecords(r.view) {
		if rec.Action == registry.ActionRequestApproval {
			requests++
		}
	}
	m := r.model()
	if v, _ := m.Version(2); v.Stage != registry.StageShadow || requests != 1 {
		t.Fatalf("while waiting: v2 is %s with %d approval requests, want shadow with 1", v.Stage, requests)
	}
	if _, err := reg.Apply(t.Context(), registry.Command{Time: r.clock.Now(), Actor: "alice", IdempotencyKey: "approve-1",
		Args: &registry.ApproveArgs{Model: testModel, Version: 2, Reason: "looks good"}}); err != nil {
		t.Fatal(err)
	}
	if m = r.model(); m.Canary != 2 || m.CanaryWeight != 1 {
		t.Fatalf("after approval the canary is v%d at %v%%", m.Canary, m.CanaryWeight)
	}
	for i := 0; i < 60 && pendingAfter() == nil; i++ {
		r.window(5000)
	}
	if p := pendingAfter(); p == nil || p.To != registry.StageCanary || p.Weight != 10 {
		t.Fatalf("after the approval the controller did not go on to propose canary 10%%: %+v", p)
	}
	// A rejection stops the rollout on its step: no new request.
	if _, err := reg.Apply(t.Context(), registry.Command{Time: r.clock.Now(), Actor: "alice", IdempotencyKey: "reject-1",
		Args: &registry.RejectArgs{Model: testModel, Version: 2, Reason: "not yet"}}); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		r.window(5000)
	}
	if p := pendingAfter(); p != nil {
		t.Fatalf("after a rejection the controller proposed again: %+v", p)
	}
	if m = r.model(); m.Canary != 2 || m.CanaryWeight != 1 {
		t.Fatalf("after the rejection the canary is v%d at %v%%, want v2 at 1%%", m.Canary, m.CanaryWeight)
	}
	rejected := 0
	for _, rec := range reg.alerts(testModel, KindRollout) {
		if strings.Contains(rec.Reason, "a person rejected the move to canary 10%") {
			rejected++
		}
	}
	view, ok, err := r.ctrl.Judge(testModel)
	if rejected != 1 || err != nil || !ok || view.Decision.Action != ActionHold || !strings.Contains(view.Decision.Reason, "rejected") {
		t.Fatalf("after the rejection: %d records of it (want 1); the report's next decision %s: %s (err %v)",
			rejected, view.Decision.Action, view.Decision.Reason, err)
	}
}

// alertReceiver is an alert webhook that verifies every signature.
type alertReceiver struct {
	mu     sync.Mutex
	alerts []Alert
	bad    int
	got    chan struct{}
}

func newAlertReceiver(t *testing.T) (*alertReceiver, string) {
	ar := &alertReceiver{got: make(chan struct{}, 16)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		ar.mu.Lock()
		defer ar.mu.Unlock()
		if err := Verify([]byte(hookSecret), req.Header.Get(HeaderSignature), body, time.Now(), 5*time.Minute); err != nil {
			ar.bad++
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var a Alert
		if err := json.Unmarshal(body, &a); err != nil || a.ID != req.Header.Get(HeaderIdempotencyKey) {
			ar.bad++
			http.Error(w, "bad alert", http.StatusBadRequest)
			return
		}
		ar.alerts = append(ar.alerts, a)
		ar.got <- struct{}{}
	}))
	t.Cleanup(srv.Close)
	return ar, srv.URL
}

// wait returns the first n alerts; only a hang exceeds the deadline.
func (ar *alertReceiver) wait(t *testing.T, n int) []Alert {
	t.Helper()
	for range n {
		select {
		case <-ar.got:
		case <-time.After(60 * time.Second):
			t.Fatalf("alert not received within 60 s")
		}
	}
	ar.mu.Lock()
	defer ar.mu.Unlock()
	if ar.bad > 0 {
		t.Fatalf("%d alerts failed verification", ar.bad)
	}
	return append([]Alert(nil), ar.alerts...)
}

// waitAlertRecord waits for the audit record of an alert's delivery.
func waitAlertRecord(t *testing.T, c *Controller, reg *memRegistry, kind string) registry.AuditRecord {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		settled := c.deliverySettled()
		if recs := reg.alerts(testModel, kind); len(recs) > 0 {
			return recs[0]
		}
		select {
		case <-settled:
		case <-deadline:
			t.Fatalf("no %s record within 60 s", kind)
		}
	}
}

// TestRegressingCanaryRolledBack: a canary whose recall is 10 points
// under the champion's is pulled back (retired) by the label trigger; the
// audit record carries the fired check with its numbers, and a signed
// alert reaches the receiver and is recorded delivered.
func TestRegressingCanaryRolledBack(t *testing.T) {
	ar, url := newAlertReceiver(t)
	reg := rolloutRegistry(t, rolloutPolicy(false), url)
	src := newSimSource(3, map[int]simModel{1: {recall: 0.8, fpr: 0.05}, 2: {recall: 0.7, fpr: 0.05}})
	r := newRolloutRig(t, reg, src)
	for i := 0; i < 200; i++ {
		m := r.model()
		if v, _ := m.Version(2); v.Stage == registry.StageRetired {
			break
		}
		r.window(5000)
	}
	m := r.model()
	v, _ := m.Version(2)
	if v.Stage != registry.StageRetired || r.model().Champion != 1 {
		t.Fatalf("v2 is %s, champion v%d: the regressing candidate was not pulled back", v.Stage, r.model().Champion)
	}
	var rb *registry.AuditRecord
	for _, rec := range rolloutRecords(r.view) {
		if rec.Action == registry.ActionSetStage && rec.To == registry.StageRetired {
			rb = &rec
		}
	}
	if rb == nil {
		t.Fatal("no rollout record of the retirement")
	}
	d := decisionOf(t, *rb)
	if d.Action != ActionRollBack || checkStatus(Decision{Checks: d.Checks}, CheckLabelRegression) != StatusFired {
		t.Fatalf("the retirement's evidence is %s with label regression %q, want roll_back with it fired",
			d.Action, checkStatus(Decision{Checks: d.Checks}, CheckLabelRegression))
	}
	got := ar.wait(t, 1)
	if got[0].Kind != AlertRollback || got[0].Model != testModel || got[0].Version != 2 || !strings.Contains(got[0].Text, "rolled back") {
		t.Fatalf("alert %+v", got[0])
	}
	rec := waitAlertRecord(t, r.ctrl, reg, KindAlertDelivered)
	if !strings.Contains(rec.Reason, got[0].ID) {
		t.Fatalf("delivery record %q does not name the alert %s", rec.Reason, got[0].ID)
	}
}

// TestPromotedChampionRegressingRolledBack: a champion the rollout
// promoted that then fails 5% of its requests within its watch is rolled
// back to the warm standby, with an alert.
func TestPromotedChampionRegressingRolledBack(t *testing.T) {
	ar, url := newAlertReceiver(t)
	reg := rolloutRegistry(t, rolloutPolicy(false), url)
	src := newSimSource(5, map[int]simModel{1: {recall: 0.8, fpr: 0.05}, 2: {recall: 0.9, fpr: 0.05}})
	r := newRolloutRig(t, reg, src)
	for i := 0; i < 400 && r.model().Champion != 2; i++ {
		r.window(5000)
	}
	if r.model().Champion != 2 {
		t.Fatal("v2 was not promoted")
	}
	src.mu.Lock()
	src.arms[2].model.errRate = 0.05
	src.mu.Unlock()
	for i := 0; i < 30 && r.model().Champion == 2; i++ {
		r.window(5000)
	}
	m := r.model()
	v2, _ := m.Version(2)
	if m.Champion != 1 || v2.Stage != registry.StageRolledBack {
		t.Fatalf("champion v%d, v2 %s: want v1 back and v2 rolled_back", m.Champion, v2.Stage)
	}
	recs := rolloutRecords(r.view)
	var rb *registry.AuditRecord
	for i := range recs {
		if recs[i].Action == registry.ActionRollback && recs[i].Version == 2 {
			rb = &recs[i]
		}
	}
	if rb == nil {
		t.Fatal("no rollback record")
	}
	if d := decisionOf(t, *rb); d.Phase != PhaseWatch || checkStatus(Decision{Checks: d.Checks}, CheckErrorRate) != StatusFired {
		t.Fatalf("rollback evidence: phase %s, error rate %s", d.Phase, checkStatus(Decision{Checks: d.Checks}, CheckErrorRate))
	}
	if a := ar.wait(t, 1); a[0].Kind != AlertRollback || a[0].Version != 2 {
		t.Fatalf("alert %+v", a[0])
	}
}

// TestNewLeaderResumesUndeliveredAlert: the leader that pulled a canary
// back records the alert and stops while the receiver holds it; the next
// controller sends it, with the same id, once, and records it delivered.
func TestNewLeaderResumesUndeliveredAlert(t *testing.T) {
	hold := make(chan struct{})
	recv := newHookReceiver(t, hold)
	reg := rolloutRegistry(t, rolloutPolicy(false), recv.URL)
	src := newSimSource(3, map[int]simModel{1: {recall: 0.8, fpr: 0.05}, 2: {recall: 0.7, fpr: 0.05}})
	r := newRolloutRig(t, reg, src)
	for i := 0; i < 200 && len(reg.alerts(testModel, KindAlertRequested)) == 0; i++ {
		r.window(5000)
	}
	req := reg.alerts(testModel, KindAlertRequested)
	if len(req) != 1 {
		t.Fatalf("%d alert requests after the rollback, want 1", len(req))
	}
	var a Alert
	if err := json.Unmarshal(req[0].Evidence, &a); err != nil || a.Kind != AlertRollback {
		t.Fatalf("alert request evidence: %v %s", err, req[0].Evidence)
	}
	deadline := time.Now().Add(60 * time.Second)
	for recv.pending() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the alert did not reach the receiver within 60 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.ctrl.Close()
	recv.waitHungUp(t)
	if n := len(reg.alerts(testModel, KindAlertFailed)); n != 0 {
		t.Fatalf("an alert cancelled by Close was recorded failed (%d records): the next leader would not send it", n)
	}
	close(hold)

	next, err := NewController(ControllerConfig{Registry: reg, Rollouts: src, Now: r.clock.Now,
		Secrets: map[string][]byte{"alerts": []byte(hookSecret)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(next.Close)
	for range 3 {
		next.Step()
	}
	waitRecords(t, reg, KindAlertDelivered, 1)
	next.Step()
	next.Close()
	if got := recv.counts(); len(got) != 1 || got[a.ID] != 1 {
		t.Fatalf("deliveries by id: %v, want %s once", got, a.ID)
	}
	if n := len(reg.alerts(testModel, KindAlertDelivered)); n != 1 {
		t.Fatalf("%d delivered records, want 1", n)
	}
}

// TestSlackAlertBody: the slack format is {"text": …} with the alert's
// line, signed like the json format.
func TestSlackAlertBody(t *testing.T) {
	a := Alert{Event: "alert", ID: alertID(AlertRollback, testModel, 2, "k"), Kind: AlertRollback, Model: testModel, Version: 2,
		Text: alertText(AlertRollback, testModel, 2, "error_rate 0.05 over the limit 0.01")}
	b, err := a.body(registry.AlertFormatSlack)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || len(m) != 1 || m["text"] != "modelgate: fraud v2 rolled back: error_rate 0.05 over the limit 0.01" {
		t.Fatalf("slack body %s", b)
	}
}

// TestRefusedMoveRecordedOnce: a candidate whose inputs the champion's
// clients cannot send is refused as canary by the registry; the refusal
// is recorded once, with the decision's evidence, and not proposed again.
func TestRefusedMoveRecordedOnce(t *testing.T) {
	reg := &memRegistry{st: registry.New()}
	for _, cmd := range rolloutSetup(rolloutPolicy(false), "") {
		if a, ok := cmd.Args.(*registry.RegisterArgs); ok && a.Digest == strings.Repeat("cd", 32) {
			a.Signature.Inputs = []registry.TensorSpec{{Name: "other", DataType: "FP32", Shape: []int64{-1, 30}}}
		}
		if a, ok := cmd.Args.(*registry.SetValidationArgs); ok && a.Version == 2 {
			a.Signature.Inputs = []registry.TensorSpec{{Name: "other", DataType: "FP32", Shape: []int64{-1, 30}}}
		}
		if _, err := reg.st.Apply(cmd); err != nil {
			t.Fatalf("%s: %v", cmd.Op(), err)
		}
	}
	src := newSimSource(9, map[int]simModel{1: {recall: 0.8, fpr: 0.05}, 2: {recall: 0.9, fpr: 0.05}})
	r := newRolloutRig(t, reg, src)
	for range 60 {
		r.window(5000)
	}
	var refused []registry.AuditRecord
	for _, rec := range reg.alerts(testModel, KindRollout) {
		if strings.Contains(rec.Reason, "the registry refused") {
			refused = append(refused, rec)
		}
	}
	m := r.model()
	if v, _ := m.Version(2); v.Stage != registry.StageShadow || len(refused) != 1 {
		t.Fatalf("v2 is %s with %d refusal records, want shadow with 1", v.Stage, len(refused))
	}
	if !strings.Contains(refused[0].Reason, `"features"`) || len(refused[0].Evidence) == 0 {
		t.Fatalf("the refusal does not name the input or carry the evidence: %s", refused[0].Reason)
	}
}

// TestRolloutTwoShadowSteps: between two shadow steps the stage does not
// change, so the move is a rollout record (no approval, even in manual
// mode: no traffic moves); the second step is timed from that record, and
// a leader reading the log afresh stands on it.
func TestRolloutTwoShadowSteps(t *testing.T) {
	pol := rolloutPolicy(true)
	ro := *pol.Rollout
	ro.Steps = append([]registry.RolloutStep{ro.Steps[0]}, ro.Steps...)
	pol.Rollout = &ro
	reg := rolloutRegistry(t, pol, "")
	src := newSimSource(17, map[int]simModel{1: {recall: 0.8, fpr: 0.05}, 2: {recall: 0.85, fpr: 0.05}})
	r := newRolloutRig(t, reg, src)
	var moved *registry.AuditRecord
	for i := 0; i < 60 && moved == nil; i++ {
		r.window(5000)
		for _, rec := range reg.alerts(testModel, KindRollout) {
			if d := decisionOf(t, rec); d.Action == ActionAdvance {
				moved = &rec
			}
		}
	}
	if moved == nil {
		t.Fatal("no move to the second shadow step")
	}
	if d := decisionOf(t, *moved); d.State.Step != 1 || !d.State.StepStarted.Equal(moved.Time) || d.State.Pending {
		t.Fatalf("the move's state is %+v, want step 1 begun at %s, nothing pending", *d.State, moved.Time)
	}
	fresh, err := NewController(ControllerConfig{Registry: reg, Rollouts: src, Now: r.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	view, ok, err := fresh.Judge(testModel)
	if err != nil || !ok || view.State.Step != 1 || !view.State.StepStarted.Equal(moved.Time) {
		t.Fatalf("a fresh controller judges %+v (ok %v, err %v), want step 1 begun at %s", view.State, ok, err, moved.Time)
	}
	for i := 0; i < 60; i++ {
		m := r.model()
		if v, _ := m.Version(2); v.Pending != nil {
			if v.Pending.To != registry.StageCanary || v.Stage != registry.StageShadow {
				t.Fatalf("pending %+v on a %s version", v.Pending, v.Stage)
			}
			return
		}
		r.window(5000)
	}
	t.Fatal("after the second shadow step the move to canary was not proposed for approval")
}

// TestRolloutStartsOnANewValidatedCandidate: with a rollout policy, a
// validated version newer than the champion is put on the ramp's first
// step by the controller (the candidate a retraining job registered), once;
// a version a person took off the ramp is not started again.
func TestRolloutStartsOnANewValidatedCandidate(t *testing.T) {
	reg := &memRegistry{st: registry.New()}
	cmds := rolloutSetup(rolloutPolicy(false), "")
	for _, cmd := range cmds[:len(cmds)-1] { // v2 validated, not staged
		if _, err := reg.st.Apply(cmd); err != nil {
			t.Fatalf("%s: %v", cmd.Op(), err)
		}
	}
	src := newSimSource(3, map[int]simModel{1: {recall: 0.8, fpr: 0.05}, 2: {recall: 0.8, fpr: 0.05}, 3: {recall: 0.8, fpr: 0.05}})
	r := newRolloutRig(t, reg, src)
	r.window(100)
	stageOf := func(n int) registry.Stage {
		m := r.model()
		v, _ := m.Version(n)
		return v.Stage
	}
	if s := stageOf(2); s != registry.StageShadow {
		t.Fatalf("v2 is %s after a window, want shadow: the controller starts the rollout of a new validated candidate", s)
	}
	recs := rolloutRecords(r.view)
	if len(recs) != 1 || !recs[0].Auto || recs[0].To != registry.StageShadow || !strings.HasSuffix(recs[0].IdempotencyKey, "/start") {
		t.Fatalf("want one automatic start record, got %+v", recs)
	}

	// A person retires v2: it is not started again; a new v3 is.
	sig := r.model().Versions[0].Signature
	for i, args := range []registry.Args{
		&registry.SetStageArgs{Model: testModel, Version: 2, Stage: registry.StageRetired, Reason: "not this one"},
		&registry.RegisterArgs{Model: testModel, Digest: strings.Repeat("ef", 32), Size: 1, Signature: sig},
		&registry.SetValidationArgs{Model: testModel, Version: 3, Passed: true, Signature: sig},
	} {
		if _, err := reg.st.Apply(registry.Command{Time: r.clock.Now(), Actor: "ci", IdempotencyKey: "later-" + string(rune('a'+i)), Args: args}); err != nil {
			t.Fatalf("%s: %v", args.Op(), err)
		}
	}
	r.window(100)
	if s2, s3 := stageOf(2), stageOf(3); s2 != registry.StageRetired || s3 != registry.StageShadow {
		t.Fatalf("after v2's retirement and v3's validation: v2 %s, v3 %s; want retired and shadow", s2, s3)
	}
}
