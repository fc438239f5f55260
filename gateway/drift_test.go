package gateway_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/fraud"
	"github.com/modelgate/modelgate/runtime"
)

// fraudBody is an OIP request of n generated transactions.
func fraudBody(g *fraud.Generator, n int) []byte {
	row := make([]float32, fraud.NumFeatures)
	b := []byte(`{"inputs":[{"name":"features","datatype":"FP32","shape":[` + strconv.Itoa(n) + `,30],"data":[`)
	for r := 0; r < n; r++ {
		g.Next(row)
		for i, v := range row {
			if r > 0 || i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendFloat(b, float64(v), 'g', -1, 32)
		}
	}
	return append(b, "]}]}"...)
}

// referenceProfile is what a training job would register: the demo
// features of undrifted transactions, and the model's scores on them.
func referenceProfile(t testing.TB, m *runtime.Model) *drift.Profile {
	b := drift.NewProfileBuilder(drift.ProfileOptions{
		Inputs: []drift.Input{{Name: "features", Width: fraud.NumFeatures}},
		Names:  fraud.FeatureNames[:], Output: "probability",
	})
	g := fraud.NewGenerator(99)
	c := runtime.NewCall()
	row := make([]float32, fraud.NumFeatures)
	for i := 0; i < 20000; i++ {
		g.Next(row)
		c.Reset()
		c.AddInput().SetFloat32s("features", []int64{1, 30}, row)
		if err := m.Infer(c); err != nil {
			t.Fatal(err)
		}
		if err := b.AddScored(row, c.Outputs[0].Float32(0)); err != nil {
			t.Fatal(err)
		}
	}
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type driftReport struct {
	Count    int64 `json:"count"`
	Breach   bool  `json:"breach"`
	Features []struct {
		Name   string   `json:"name"`
		Input  string   `json:"input"`
		PSI    *float64 `json:"psi"`
		Breach bool     `json:"breach"`
	} `json:"features"`
}

func getDrift(t *testing.T, srv *gateway.Server, version string) (int, driftReport, []byte) {
	t.Helper()
	code, _, b := adminCall(t, srv, "GET", "/api/v1/models/fraud/versions/"+version+"/drift?window=1h", nil)
	var r driftReport
	if code == 200 {
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("drift report: %v: %.300s", err, b)
		}
	}
	return code, r, b
}

// TestDriftOverHTTP scores undrifted traffic (no breach), then traffic whose
// amounts are three times larger: the report flags the amount features and
// nothing the shift did not touch.
func TestDriftOverHTTP(t *testing.T) {
	srv := startServer(t, gateway.Config{Auth: gateway.NewAuth(gateway.NewToken("tester", testSecret, gateway.ScopeAdmin))})
	slot := serveModel(t, srv, "fraud", "1", demoModel(t), runtime.Config{})
	if err := srv.Catalog.EnableDrift("fraud", "1", referenceProfile(t, slot.Model), drift.BootstrapConfig{}, nil); err != nil {
		t.Fatal(err)
	}
	g := fraud.NewGenerator(7)
	for i := 0; i < 100; i++ {
		if code, b := post(t, srv, "/v2/models/fraud/infer", fraudBody(g, 30)); code != 200 {
			t.Fatalf("%d %s", code, b)
		}
	}
	code, r, b := getDrift(t, srv, "1")
	if code != 200 || r.Count != 3000 || r.Breach {
		t.Fatalf("undrifted: %d count %d breach %v: %.500s", code, r.Count, r.Breach, b)
	}
	shifted := fraud.NewGenerator(8, fraud.WithDrift(fraud.Drift{Kind: fraud.CovariateShift, Field: fraud.FieldAmount}))
	for i := 0; i < 200; i++ {
		post(t, srv, "/v2/models/fraud/infer", fraudBody(shifted, 30))
	}
	_, r, b = getDrift(t, srv, "1")
	flagged := map[string]bool{}
	for _, f := range r.Features {
		if f.Breach {
			flagged[f.Name] = true
		}
	}
	for _, i := range fraud.FieldAmount.Features() {
		if !flagged[fraud.FeatureNames[i]] {
			t.Fatalf("the shifted feature %s is not flagged: %.800s", fraud.FeatureNames[i], b)
		}
	}
	for name := range flagged {
		if !strings.HasPrefix(name, "amount") && name != "probability" && name != "" {
			t.Fatalf("%s flagged although the shift did not touch it", name)
		}
	}
	code, _, b = adminCall(t, srv, "GET", "/metrics", nil)
	if !strings.Contains(string(b), `modelgate_drift_breaches{model="fraud",version="1"}`) {
		t.Fatalf("metrics lack the drift gauges")
	}
}

// TestDriftBootstrap: with no registered reference, the first rows become
// the reference (a BootstrapConfig without a period); while they are
// collected the drift API answers 200 with status "bootstrapping" and the
// progress, not an error, and the report is available afterwards.
func TestDriftBootstrap(t *testing.T) {
	srv := startServer(t, gateway.Config{Auth: gateway.NewAuth(gateway.NewToken("tester", testSecret, gateway.ScopeAdmin))})
	serveModel(t, srv, "fraud", "1", demoModel(t), runtime.Config{})
	var mu sync.Mutex
	var booted *drift.Profile
	if err := srv.Catalog.EnableDrift("fraud", "1", nil, drift.BootstrapConfig{Rows: 1000}, func(_, _ string, p *drift.Profile) { mu.Lock(); booted = p; mu.Unlock() }); err != nil {
		t.Fatal(err)
	}
	if code, _, b := getDrift(t, srv, "1"); code != 200 || !strings.Contains(string(b), `"status":"bootstrapping"`) ||
		!strings.Contains(string(b), "0 of 1,000 reference rows") {
		t.Fatalf("before any row: %d %s", code, b)
	}
	g := fraud.NewGenerator(3)
	for i := 0; i < 10; i++ {
		post(t, srv, "/v2/models/fraud/infer", fraudBody(g, 20))
	}
	if code, _, b := getDrift(t, srv, "1"); code != 200 || !strings.Contains(string(b), "200 of 1,000 reference rows") || !strings.Contains(string(b), `"target":1000`) {
		t.Fatalf("while bootstrapping: %d %s", code, b)
	}
	for i := 0; i < 50; i++ {
		post(t, srv, "/v2/models/fraud/infer", fraudBody(g, 20))
	}
	deadline := time.Now().Add(time.Minute) // only a hang: bootstrapping takes milliseconds
	for {
		mu.Lock()
		done := booted != nil
		mu.Unlock()
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if booted == nil || booted.Rows != 1000 || len(booted.Features) != 30 || booted.Output == nil {
		t.Fatalf("bootstrapped profile: %+v", booted)
	}
	if booted.Features[0].Name != "amount_log" {
		t.Fatalf("the reference does not carry the model's feature names: %q", booted.Features[0].Name)
	}
	for i := 0; i < 20; i++ {
		post(t, srv, "/v2/models/fraud/infer", fraudBody(g, 20))
	}
	if code, r, b := getDrift(t, srv, "1"); code != 200 || r.Count == 0 {
		t.Fatalf("after the reference: %d %s", code, b)
	}
}

func TestDriftAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	srv := startServer(t, gateway.Config{})
	slot := serveModel(t, srv, "fraud", "1", demoModel(t), runtime.Config{Sessions: 1})
	if err := srv.Catalog.EnableDrift("fraud", "1", referenceProfile(t, slot.Model), drift.BootstrapConfig{}, nil); err != nil {
		t.Fatal(err)
	}
	body := fraudBody(fraud.NewGenerator(1), 4)
	var ctx fasthttp.RequestCtx
	run := func() {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.SetRequestURI("/v2/models/fraud/infer")
		ctx.Request.SetBody(body)
		srv.HandleScoring(&ctx)
	}
	run()
	if ctx.Response.StatusCode() != 200 {
		t.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	if n := testing.AllocsPerRun(200, run); n != 0 {
		t.Fatalf("scoring with drift on allocates %v times per request", n)
	}
}
