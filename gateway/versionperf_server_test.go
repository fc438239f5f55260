package gateway_test

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/oiptest"
	"github.com/modelgate/modelgate/runtime"
)

// TestVersionPerfOnScoringPath: over real HTTP with a champion, a canary
// at 50% and a shadow, every served answer lands in its version's latency
// and score histograms (the score in the bin of the probability the
// response carried), and every shadow run in the shadow's score histogram
// with no served latency.
func TestVersionPerfOnScoringPath(t *testing.T) {
	srv := startServer(t, gateway.Config{})
	serveModel(t, srv, "fraud", "1", demoModel(t), runtime.Config{Sessions: 1})
	for _, v := range []string{"2", "3"} {
		slot, err := srv.Catalog.Load("fraud", v, demoModel(t), runtime.Config{Sessions: 1})
		if err != nil {
			t.Fatal(err)
		}
		srv.Catalog.Publish(slot, false)
	}
	if !srv.Catalog.SetCanary("fraud", "2", 5000) || !srv.Catalog.SetShadows("fraud", "3") {
		t.Fatal("canary or shadow refused")
	}
	srv.SyncShadows()
	from := time.Now()

	const n = 200
	served := map[string]uint64{}
	wantBins := map[string][gateway.ScoreBins]uint64{}
	for i := range n {
		key := keyRoutedTo(t, 5000, i%2 == 0)
		body := bytes.Replace(oiptest.GoodRequest(1), []byte(`"id":"42",`), []byte(`"parameters":{"routing_key":"`+key+`"},`), 1)
		code, b := post(t, srv, "/v2/models/fraud/infer", body)
		if code != 200 {
			t.Fatalf("status %d: %s", code, b)
		}
		r := decodeResponse(t, b)
		var p []float64
		if err := json.Unmarshal(r.Outputs[0].Data, &p); err != nil || len(p) != 1 {
			t.Fatalf("outputs %s: %v", r.Outputs[0].Data, err)
		}
		served[r.ModelVersion]++
		bins := wantBins[r.ModelVersion]
		bins[min(int(math.Max(p[0], 0)*gateway.ScoreBins), gateway.ScoreBins-1)]++
		wantBins[r.ModelVersion] = bins
	}
	if served["1"] != n/2 || served["2"] != n/2 {
		t.Fatalf("answered by version: %v, want %d each", served, n/2)
	}
	for _, v := range []int{1, 2} {
		lat, scores := srv.VersionPerf("fraud", v, from, time.Now())
		want := wantBins[string(rune('0'+v))]
		if uint64(lat.TotalCount()) != n/2 || lat.Min() < 1 {
			t.Fatalf("v%d: %d served latencies (min %dµs), want %d", v, lat.TotalCount(), lat.Min(), n/2)
		}
		if !equalBins(scores, want[:]) {
			t.Fatalf("v%d scores %v, want %v", v, scores, want)
		}
	}

	// The shadow's scores: one per run of the champion's n/2 answers.
	deadline := time.Now().Add(2 * time.Minute) // only a hang reaches it
	for {
		_, _, runs, errs := srv.VersionCounts("fraud", 3)
		lat, scores := srv.VersionPerf("fraud", 3, from, time.Now())
		var got uint64
		for _, c := range scores {
			got += c
		}
		if runs == n/2 && errs == 0 && got == runs {
			if lat.TotalCount() != 0 {
				t.Fatalf("the shadow has %d served latencies, want none", lat.TotalCount())
			}
			// Same model, same rows: the champion's histogram.
			if want := wantBins["1"]; !equalBins(scores, want[:]) {
				t.Fatalf("shadow scores %v, want the champion's %v", scores, want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("shadow: %d runs, %d errors, %d scores; want %d runs scored", runs, errs, got, n/2)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func equalBins(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
