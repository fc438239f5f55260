package node

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/oiptest"
	"github.com/modelgate/modelgate/internal/ortlib"
	"github.com/modelgate/modelgate/lifecycle"
	"github.com/modelgate/modelgate/runtime"
)

// TestRolloutEvidenceWatchJudgesTheStandbysLastPeriod: in the watch, the
// source hands the controller the new champion's latencies and scores
// since its promotion and the standby's over the same length before it —
// not what the standby (pinned clients) answered after the promotion —
// and for a canary both versions' over the rollout period. Real scoring
// over loopback HTTP; 100 ms windows, so the promotion instant falls
// between the two bursts' windows.
func TestRolloutEvidenceWatchJudgesTheStandbysLastPeriod(t *testing.T) {
	if err := runtime.Init(ortlib.Path()); err != nil {
		t.Fatal(err)
	}
	onnx, err := demo.FraudModel(demo.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	srv := gateway.New(gateway.Config{Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0"})
	srv.Catalog.DriftWindow = 100 * time.Millisecond
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	for _, v := range []string{"1", "2"} {
		slot, err := srv.Catalog.Load("fraud", v, onnx, runtime.Config{Sessions: 1})
		if err != nil {
			t.Fatal(err)
		}
		srv.Catalog.Publish(slot, v == "1")
	}
	srv.SetReady(true)
	srv.SyncShadows()
	score := func(version string, n int) {
		for range n {
			resp, err := http.Post("http://"+srv.Addr()+"/v2/models/fraud/versions/"+version+"/infer", "application/json", bytes.NewReader(oiptest.GoodRequest(1)))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("v%s: %d %s", version, resp.StatusCode, b)
			}
		}
	}
	begin := time.Now()
	score("1", 30) // v1 as champion
	promoted := time.Now()
	// Past the window the promotion falls in: what follows is after it.
	time.Sleep(250 * time.Millisecond)
	score("2", 20) // v2, the new champion
	score("1", 7)  // v1, the standby, for a pinned client
	now := promoted.Add(time.Hour)

	src := rolloutSource{server: srv}
	ev, err := src.RolloutEvidence(lifecycle.RolloutQuery{Model: "fraud", Candidate: 2, Against: 1, Watch: true, Since: promoted, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	arms := func(ev lifecycle.Evidence) (cl, cs, hl, hs uint64) {
		for _, c := range ev.Candidate.Scores {
			cs += c
		}
		for _, c := range ev.Champion.Scores {
			hs += c
		}
		return uint64(ev.Candidate.Latency.TotalCount()), cs, uint64(ev.Champion.Latency.TotalCount()), hs
	}
	if cl, cs, hl, hs := arms(ev); cl != 20 || cs != 20 || hl != 30 || hs != 30 || len(ev.Candidate.Scores) != gateway.ScoreBins {
		t.Fatalf("watch: new champion %d latencies, %d scores; standby %d, %d; want 20, 20 and 30, 30 (its time as champion only)", cl, cs, hl, hs)
	}
	// A canary: both versions over the rollout period, everything.
	ev, err = src.RolloutEvidence(lifecycle.RolloutQuery{Model: "fraud", Candidate: 2, Against: 1, Since: begin, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if cl, cs, hl, hs := arms(ev); cl != 20 || cs != 20 || hl != 37 || hs != 37 {
		t.Fatalf("canary: candidate %d latencies, %d scores; champion %d, %d; want 20, 20 and 37, 37", cl, cs, hl, hs)
	}
	// A shadow: scores, but latencies only from the comparison (none here).
	ev, _ = src.RolloutEvidence(lifecycle.RolloutQuery{Model: "fraud", Candidate: 2, Against: 1, Shadow: true, Since: begin, Now: time.Now()})
	if ev.Candidate.Latency != nil || ev.Champion.Latency != nil || len(ev.Champion.Scores) != gateway.ScoreBins {
		t.Fatalf("shadow: latencies %v/%v, %d champion bins; want no served latencies and the score bins", ev.Candidate.Latency, ev.Champion.Latency, len(ev.Champion.Scores))
	}
}
