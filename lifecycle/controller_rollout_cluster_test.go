package lifecycle

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/modelgate/modelgate/registry"
)

// TestNewLeaderResumesRolloutExactlyOnce: on a three-node Raft cluster on
// loopback, a rollout stands on canary 1% (step 1) with requests counted
// and recorded when its leader stops. The controller of the next leader
// resumes it on step 1, timed from when the step began under the old
// leader: it moves to canary 10% once, then promotes once; no move is repeated or skipped, and no held
// decision is recorded twice in a row.
func TestNewLeaderResumesRolloutExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("three raft nodes")
	}
	nodes := startCluster(t, 3)
	leader := leaderOf(t, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, cmd := range rolloutSetup(rolloutPolicy(false), "") {
		if _, err := leader.Apply(ctx, cmd); err != nil {
			t.Fatalf("%s: %v", cmd.Op(), err)
		}
	}

	clock := &fakeClock{now: t0}
	// One source for every node: the traffic is the same whichever
	// leads, and each controller counts only what it saw itself.
	src := newSimSource(13, map[int]simModel{1: {recall: 0.8, fpr: 0.05}, 2: {recall: 0.9, fpr: 0.05}})
	controllers := make([]*Controller, 3)
	for i, n := range nodes {
		c, err := NewController(ControllerConfig{Registry: n, IsLeader: n.IsLeader, Now: clock.Now, Rollouts: src})
		if err != nil {
			t.Fatal(err)
		}
		controllers[i] = c
		t.Cleanup(c.Close)
	}
	// Every controller steps each window, as Run would; only the leader's
	// acts. The window waits for one leader, so a window is never lost to
	// an election on this busy machine.
	r := &rolloutRig{t: t, clock: clock, src: src}
	r.view = func(fn func(*registry.State)) { leaderOf(t, nodes).View(fn) }
	r.step = func() {
		leaderOf(t, nodes)
		for _, c := range controllers {
			if c != nil {
				c.Step()
			}
		}
	}

	// Onto canary 1%, and past its first requests (a held decision
	// records the step's count).
	for i := 0; i < 60; i++ {
		if m := r.model(); m.Canary == 2 && m.CanaryWeight == 1 {
			break
		}
		r.window(5000)
	}
	if m := r.model(); m.Canary != 2 || m.CanaryWeight != 1 {
		t.Fatalf("the rollout did not reach canary 1%%: canary v%d at %v%%", m.Canary, m.CanaryWeight)
	}
	r.window(5000)
	r.window(5000)
	stepStarted := func() time.Time {
		m := r.model()
		v, _ := m.Version(2)
		return v.Updated
	}()

	// The leader stops.
	old := leaderOf(t, nodes)
	for i, n := range nodes {
		if n == old {
			controllers[i].Close()
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
			nodes[i], controllers[i] = nil, nil
		}
	}
	before := len(rolloutRecords(r.view))

	for i := 0; i < 200 && r.model().Champion != 2; i++ {
		r.window(5000)
	}
	if r.model().Champion != 2 {
		t.Fatalf("the new leader did not finish the rollout; records: %+v", rolloutRecords(r.view))
	}
	recs := rolloutRecords(r.view)
	// The move off step 1 judged the step's duration from when it began
	// under the old leader, not from the new leader's arrival.
	for _, rec := range recs[before:] {
		if rec.Action != registry.ActionSetStage {
			continue
		}
		d := decisionOf(t, rec)
		var elapsed float64
		for _, c := range d.Checks {
			if c.Name == CheckMinDuration {
				elapsed = c.Value
			}
		}
		if want := rec.Time.Sub(stepStarted).Seconds(); d.Action != ActionAdvance || d.Step != 2 || elapsed != want {
			t.Fatalf("the new leader's move %s to step %d judged %vs on step 1, want %vs since it began under the old leader", d.Action, d.Step, elapsed, want)
		}
	}
	var moves []string
	var lastKey string
	for _, rec := range recs {
		switch rec.Action {
		case registry.ActionRetire:
		case registry.ActionAlert:
			d := decisionOf(t, rec)
			k := keyOf3(d.Action, d.Step, d.State.Pending, d.Checks)
			if k == lastKey {
				t.Errorf("record %d repeats the held decision before it (%s)", rec.Seq, rec.Reason)
			}
			lastKey = k
		default:
			lastKey = ""
			moves = append(moves, string(rec.Action)+":"+registry.FormatWeight(rec.Weight))
		}
	}
	want := "set_stage:1 set_stage:10 promote:0"
	if got := fmt.Sprint(moves); got != "["+want+"]" {
		t.Fatalf("moves %v, want [%s]", moves, want)
	}
}
