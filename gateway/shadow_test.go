package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/oiptest"
	"github.com/modelgate/modelgate/predlog"
	"github.com/modelgate/modelgate/runtime"
)

const shadowTestToken = "shadow-test-token-0123456789abcdef"

// adminDo calls the admin API with the test's token (none when token is
// empty) and returns the status and body.
func adminDo(t *testing.T, srv *gateway.Server, method, path, token string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+srv.AdminAddr()+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// waitUntil polls cond; the deadline is one only a hang reaches.
func waitUntil(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not so after 2 minutes; last: %s", what, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type comparisonJSON struct {
	Champion int `json:"champion"`
	Mirror   struct {
		Served   uint64 `json:"served"`
		Mirrored uint64 `json:"mirrored"`
		Dropped  uint64 `json:"dropped"`
	} `json:"mirror"`
	Shadows []struct {
		Champion int    `json:"champion"`
		Shadow   int    `json:"shadow"`
		Runs     uint64 `json:"runs"`
		Rows     uint64 `json:"rows"`
	} `json:"shadows"`
	Canary *struct {
		Version       int     `json:"version"`
		WeightPercent float64 `json:"weight_percent"`
		Champion      struct {
			Labelled uint64 `json:"labelled"`
		} `json:"champion"`
		Canary struct {
			Labelled uint64 `json:"labelled"`
		} `json:"canary"`
	} `json:"canary"`
}

// TestShadowMirrorsOnlyUnpinnedChampionAnswers: with a canary at 50% and a
// shadow, only what the champion answers unpinned is mirrored; the canary's
// answers and calls pinned to a version (even the champion's, even the
// shadow's) are not. Labels then evaluate champion, canary and shadow, and
// the comparison reports the canary against the champion from them.
func TestShadowMirrorsOnlyUnpinnedChampionAnswers(t *testing.T) {
	plog, err := predlog.Open(predlog.DefaultConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer plog.Close()
	auth := gateway.NewAuth(gateway.NewToken("ops", shadowTestToken, gateway.ScopeRead, gateway.ScopeLabels))
	srv := startServer(t, gateway.Config{PredLog: plog, Auth: auth})
	serveModel(t, srv, "fraud", "1", demoModel(t), runtime.Config{Sessions: 1})
	for _, v := range []string{"2", "3"} {
		slot, err := srv.Catalog.Load("fraud", v, demoModel(t), runtime.Config{Sessions: 1})
		if err != nil {
			t.Fatal(err)
		}
		srv.Catalog.Publish(slot, false)
	}
	if !srv.Catalog.SetCanary("fraud", "2", 5000) || !srv.Catalog.SetShadows("fraud", "3") {
		t.Fatal("the catalog refused the canary or the shadow")
	}

	const each = 40
	body := func(id, key string) []byte {
		return bytes.Replace(oiptest.GoodRequest(1), []byte(`"id":"42",`), []byte(`"id":"`+id+`","parameters":{"routing_key":"`+key+`"},`), 1)
	}
	score := func(path, id, key, wantVersion string) {
		t.Helper()
		code, b := post(t, srv, path, body(id, key))
		if code != 200 || !strings.Contains(string(b), `"model_version":"`+wantVersion+`"`) {
			t.Fatalf("%s %s: %d %s, want v%s", path, id, code, b, wantVersion)
		}
	}
	champKey, canaryKey := keyRoutedTo(t, 5000, false), keyRoutedTo(t, 5000, true)
	for i := 0; i < each; i++ {
		score("/v2/models/fraud/infer", fmt.Sprintf("champ-%d", i), champKey, "1")
		score("/v2/models/fraud/infer", fmt.Sprintf("canary-%d", i), canaryKey, "2")
		score("/v2/models/fraud/versions/1/infer", fmt.Sprintf("pinned-%d", i), champKey, "1")
		score("/v2/models/fraud/versions/3/infer", fmt.Sprintf("pinned3-%d", i), champKey, "3")
	}

	var cmp comparisonJSON
	waitUntil(t, "the mirror runs the champion's answers", func() (bool, string) {
		code, b := adminDo(t, srv, "GET", "/api/v1/models/fraud/comparison", shadowTestToken, nil)
		cmp = comparisonJSON{}
		return code == 200 && json.Unmarshal(b, &cmp) == nil && cmp.Mirror.Mirrored >= each, string(b)
	})
	if cmp.Mirror.Served != each || cmp.Mirror.Mirrored != each || cmp.Mirror.Dropped != 0 {
		t.Fatalf("only the %d unpinned champion answers should be offered and mirrored: %+v", each, cmp.Mirror)
	}
	if len(cmp.Shadows) != 1 || cmp.Shadows[0].Champion != 1 || cmp.Shadows[0].Shadow != 3 || cmp.Shadows[0].Runs != each || cmp.Shadows[0].Rows != each {
		t.Fatalf("pair v1/v3: %+v", cmp.Shadows)
	}

	// The shadow's records are logged under the champion's ids only.
	var pred struct {
		Prediction struct{ Role, Version string } `json:"prediction"`
		Shadows    []struct{ Role, Version string }
	}
	lookup := func(id string) {
		t.Helper()
		pred.Prediction.Role, pred.Shadows = "", nil
		waitUntil(t, "the prediction "+id+" is logged", func() (bool, string) {
			code, b := adminDo(t, srv, "GET", "/api/v1/predictions/"+id, shadowTestToken, nil)
			return code == 200 && json.Unmarshal(b, &pred) == nil, string(b)
		})
	}
	lookup(fmt.Sprintf("champ-%d", each-1))
	waitUntil(t, "the shadow record is logged", func() (bool, string) {
		lookup(fmt.Sprintf("champ-%d", each-1))
		return len(pred.Shadows) == 1, fmt.Sprintf("%+v", pred)
	})
	if pred.Prediction.Role != "champion" || pred.Prediction.Version != "1" || pred.Shadows[0].Role != "shadow" || pred.Shadows[0].Version != "3" {
		t.Fatalf("champion answer: %+v", pred)
	}
	for _, id := range []string{fmt.Sprintf("canary-%d", each-1), fmt.Sprintf("pinned-%d", each-1)} {
		lookup(id)
		if len(pred.Shadows) != 0 {
			t.Fatalf("%s was mirrored: %+v", id, pred)
		}
	}

	// Labels: champion ids join two predictions (champion, shadow), canary
	// ids one.
	var labels []map[string]any
	for i := 0; i < each; i++ {
		labels = append(labels, map[string]any{"id": fmt.Sprintf("champ-%d", i), "label": i%2 == 0},
			map[string]any{"id": fmt.Sprintf("canary-%d", i), "label": i%3 == 0})
	}
	lb, _ := json.Marshal(labels)
	code, b := adminDo(t, srv, "POST", "/api/v1/models/fraud/labels", shadowTestToken, lb)
	var res struct{ Stored, Evaluated, Unknown, Duplicates int }
	if code != 200 || json.Unmarshal(b, &res) != nil || res.Stored != 2*each || res.Evaluated != 3*each || res.Unknown != 0 || res.Duplicates != 0 {
		t.Fatalf("labels: %d %s", code, b)
	}

	code, b = adminDo(t, srv, "GET", "/api/v1/models/fraud/comparison?window=30m", shadowTestToken, nil)
	cmp = comparisonJSON{}
	if code != 200 || json.Unmarshal(b, &cmp) != nil || cmp.Canary == nil || cmp.Canary.Version != 2 || cmp.Canary.WeightPercent != 50 ||
		cmp.Canary.Canary.Labelled != each || cmp.Canary.Champion.Labelled != each {
		t.Fatalf("the canary against the champion: %d %s", code, b)
	}
	var ev struct {
		Versions []struct {
			Version  int    `json:"version"`
			Role     string `json:"role"`
			Labelled uint64 `json:"labelled"`
		} `json:"versions"`
	}
	code, b = adminDo(t, srv, "GET", "/api/v1/models/fraud/evaluation", shadowTestToken, nil)
	if code != 200 || json.Unmarshal(b, &ev) != nil || len(ev.Versions) != 3 {
		t.Fatalf("evaluation: %d %s", code, b)
	}
	for i, want := range []string{"champion", "canary", "shadow"} {
		if v := ev.Versions[i]; v.Version != i+1 || v.Role != want || v.Labelled != each {
			t.Fatalf("evaluation version %d: %+v, want v%d %s with %d labelled: %s", i, v, i+1, want, each, b)
		}
	}

	// Labels of a model the node does not know are stored and counted
	// unknown, and leave no statistics behind.
	code, b = adminDo(t, srv, "POST", "/api/v1/models/nosuch/labels", shadowTestToken, []byte(`[{"id":"champ-1","label":1}]`))
	if code != 200 || !strings.Contains(string(b), `"stored":1,"evaluated":0,"unknown":1`) {
		t.Fatalf("labels of an unknown model: %d %s", code, b)
	}
	if code, b = adminDo(t, srv, "GET", "/api/v1/models/nosuch/evaluation", shadowTestToken, nil); code != 404 {
		t.Fatalf("an unknown model's evaluation: %d %s", code, b)
	}
}

// TestShadowReportsRefuseBadRequests: the reports answer 400 for a window
// they cannot cover, 404 for a model the node knows nothing of, and 401
// without a token.
func TestShadowReportsRefuseBadRequests(t *testing.T) {
	auth := gateway.NewAuth(gateway.NewToken("ops", shadowTestToken, gateway.ScopeRead))
	srv := startServer(t, gateway.Config{Auth: auth})
	serveModel(t, srv, "fraud", "1", demoModel(t), runtime.Config{Sessions: 1})
	f := func(path, token string, wantCode int, wantMsg string) {
		t.Helper()
		code, b := adminDo(t, srv, "GET", path, token, nil)
		if code != wantCode || !strings.Contains(string(b), wantMsg) {
			t.Fatalf("GET %s: %d %s, want %d with %q", path, code, b, wantCode, wantMsg)
		}
	}
	for _, r := range []string{"comparison", "evaluation"} {
		base := "/api/v1/models/fraud/" + r
		f(base+"?window=hourly", shadowTestToken, 400, `window must be a duration between 1m and`)
		f(base+"?window=10s", shadowTestToken, 400, `got \"10s\"`)
		f("/api/v1/models/nosuch/"+r, shadowTestToken, 404, `model \"nosuch\" is not served by this node`)
		f(base, "", 401, "")
		f(base+"?window=24h", shadowTestToken, 200, `"model":"fraud"`)
	}
	f("/api/v1/models/fraud/comparison?window=25h", shadowTestToken, 400, "24h0m0s")
	// The evaluation keeps windows for the label delay (24h) and a day more.
	f("/api/v1/models/fraud/evaluation?window=47h", shadowTestToken, 200, `"window":"47h0m0s"`)
	f("/api/v1/models/fraud/evaluation?window=49h", shadowTestToken, 400, "window must be")
}

// TestShutdownStopsMirrors: Shutdown stops the mirrors' workers before it
// returns, and every copy offered was either run or counted as dropped.
func TestShutdownStopsMirrors(t *testing.T) {
	srv := gateway.New(gateway.Config{Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0"})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	serveModel(t, srv, "fraud", "1", demoModel(t), runtime.Config{Sessions: 1})
	slot, err := srv.Catalog.Load("fraud", "2", demoModel(t), runtime.Config{Sessions: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv.Catalog.Publish(slot, false)
	srv.Catalog.SetShadows("fraud", "2")
	for i := 0; i < 200; i++ {
		if code, b := post(t, srv, "/v2/models/fraud/infer", oiptest.GoodRequest(1)); code != 200 {
			t.Fatalf("%d %s", code, b)
		}
	}
	if n := mirrorWorkers(); n == 0 {
		t.Fatal("no mirror worker is running while a shadow is configured")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if n := mirrorWorkers(); n != 0 {
		t.Fatalf("%d mirror workers still run after Shutdown returned", n)
	}
	served := promValue(t, srv, `modelgate_shadow_served_total{model="fraud"}`)
	mirrored := promValue(t, srv, `modelgate_shadow_mirrored_total{model="fraud"}`)
	dropped := promValue(t, srv, `modelgate_shadow_dropped_total{model="fraud"}`)
	queued := promValue(t, srv, `modelgate_shadow_queued{model="fraud"}`)
	if served != 200 || mirrored+dropped != served || queued != 0 {
		t.Fatalf("after Shutdown: served %v, mirrored %v, dropped %v, queued %v", served, mirrored, dropped, queued)
	}
}

// mirrorWorkers counts the goroutines running a mirror worker's loop.
func mirrorWorkers() int {
	var buf bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
	n := 0
	for _, block := range strings.Split(buf.String(), "\n\n") {
		if strings.Contains(block, "shadow.(*Mirror).work") {
			// The header line is "N @ 0x…": N goroutines share the stack.
			var k int
			fmt.Sscanf(block, "%d @", &k)
			n += k
		}
	}
	return n
}
