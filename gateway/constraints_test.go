package gateway_test

import (
	"encoding/binary"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/fraud"
	"github.com/modelgate/modelgate/registry"
	"github.com/modelgate/modelgate/runtime"
)

// binaryRows is an OIP request carrying rows in the binary tensor data
// extension (which, unlike JSON, can carry NaN and ±Inf), and the value
// of its Inference-Header-Content-Length header.
func binaryRows(rows [][]float32) ([]byte, string) {
	body := []byte(`{"inputs":[{"name":"features","shape":[` + strconv.Itoa(len(rows)) +
		`,30],"datatype":"FP32","parameters":{"binary_data_size":` + strconv.Itoa(4*len(rows)*fraud.NumFeatures) + `}}]}`)
	n := len(body)
	for _, r := range rows {
		for _, v := range r {
			body = binary.LittleEndian.AppendUint32(body, math.Float32bits(v))
		}
	}
	return body, strconv.Itoa(n)
}

func featureIndex(t *testing.T, name string) int {
	t.Helper()
	i := slices.Index(fraud.FeatureNames[:], name)
	if i < 0 {
		t.Fatalf("no feature %s", name)
	}
	return i
}

// cleanRows are n undrifted transactions.
func cleanRows(seed int64, n int) [][]float32 {
	g := fraud.NewGenerator(seed)
	out := make([][]float32, n)
	for i := range out {
		out[i] = make([]float32, fraud.NumFeatures)
		g.Next(out[i])
	}
	return out
}

// TestHardConstraintsRefuseRows: with no constraints (the default) rows
// with NaN or far out of range are scored; with a policy's constraints a
// request holding such a row is refused with 400 naming the row, the
// feature and the rule, counted per feature and rule, and neither answered
// nor observed by drift; clean requests are still scored.
func TestHardConstraintsRefuseRows(t *testing.T) {
	srv := startServer(t, gateway.Config{Auth: gateway.NewAuth(gateway.NewToken("tester", testSecret, gateway.ScopeAdmin))})
	slot := serveModel(t, srv, "fraud", "1", demoModel(t), runtime.Config{})
	if err := srv.Catalog.EnableDrift("fraud", "1", referenceProfile(t, slot.Model), drift.BootstrapConfig{}, nil); err != nil {
		t.Fatal(err)
	}
	amount, minutes, card := featureIndex(t, "amount_log"), featureIndex(t, "minutes_since_last_txn_log"), featureIndex(t, "card_present")
	with := func(seed int64, col int, v float32) [][]float32 {
		rows := cleanRows(seed, 3)
		rows[1][col] = v
		return rows
	}
	score := func(rows [][]float32) (int, string) {
		t.Helper()
		body, n := binaryRows(rows)
		code, b := post(t, srv, "/v2/models/fraud/infer", body, "Inference-Header-Content-Length", n)
		return code, string(b)
	}
	nan, far, unseen := with(1, minutes, float32(math.NaN())), with(2, amount, 1e6), with(3, card, 0.5)
	for name, rows := range map[string][][]float32{"nan": nan, "far": far, "unseen": unseen} {
		if code, b := score(rows); code != 200 {
			t.Fatalf("without constraints, %s: %d %s", name, code, b)
		}
	}
	_, before, _ := getDrift(t, srv, "1")

	lo, hi := -10.0, 20.0
	unknown := srv.Catalog.SetConstraints("fraud", &registry.DriftConstraints{RefuseNonFinite: true, RefuseUnseenCategories: true,
		Ranges: []registry.FeatureRange{{Feature: "amount_log", Min: &lo, Max: &hi}, {Feature: "no_such_feature", Max: &hi}}})
	if got := unknown["1"]; !slices.Equal(got, []string{"no_such_feature"}) {
		t.Fatalf("unknown range features: %v", unknown)
	}
	f := func(rows [][]float32, wants ...string) {
		t.Helper()
		code, b := score(rows)
		if code != fasthttp.StatusBadRequest {
			t.Fatalf("%d %s, want 400", code, b)
		}
		for _, w := range wants {
			if !strings.Contains(b, w) {
				t.Fatalf("%s\nlacks %q", b, w)
			}
		}
	}
	f(nan, `row 1: feature \"minutes_since_last_txn_log\" is NaN`, "policy.drift.constraints.refuse_non_finite")
	f(far, `row 1: feature \"amount_log\" is 1e+06, outside its declared range [-10, 20]`, "policy.drift.constraints.ranges")
	f(unseen, `row 1: feature \"card_present\" is 0.5, a category the reference profile does not declare`, "refuse_unseen_categories")
	f(with(4, amount, float32(math.Inf(1))), `feature \"amount_log\" is +Inf`)
	if code, b := score(cleanRows(5, 3)); code != 200 {
		t.Fatalf("a clean request under constraints: %d %s", code, b)
	}
	_, after, _ := getDrift(t, srv, "1")
	if after.Count != before.Count+3 {
		t.Fatalf("drift counted %d rows after the refusals, want %d (the clean 3 only)", after.Count, before.Count+3)
	}
	_, _, m := adminCall(t, srv, "GET", "/metrics", nil)
	for _, want := range []string{
		`modelgate_rows_refused_total{model="fraud",version="1",feature="minutes_since_last_txn_log",rule="non_finite"} 1`,
		`modelgate_rows_refused_total{model="fraud",version="1",feature="amount_log",rule="range"} 1`,
		`modelgate_rows_refused_total{model="fraud",version="1",feature="amount_log",rule="non_finite"} 1`,
		`modelgate_rows_refused_total{model="fraud",version="1",feature="card_present",rule="unseen_category"} 1`,
	} {
		if !strings.Contains(string(m), want) {
			t.Fatalf("/metrics lacks %s", want)
		}
	}

	// Removing them restores scoring of every row.
	srv.Catalog.SetConstraints("fraud", nil)
	if code, b := score(far); code != 200 {
		t.Fatalf("after removing the constraints: %d %s", code, b)
	}
}

// TestHardConstraintsAllocations: a request that meets the constraints is
// scored without allocating, as without them (TestDriftAllocations).
func TestHardConstraintsAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	srv := startServer(t, gateway.Config{})
	slot := serveModel(t, srv, "fraud", "1", demoModel(t), runtime.Config{Sessions: 1})
	if err := srv.Catalog.EnableDrift("fraud", "1", referenceProfile(t, slot.Model), drift.BootstrapConfig{}, nil); err != nil {
		t.Fatal(err)
	}
	lo, hi := -50.0, 50.0
	srv.Catalog.SetConstraints("fraud", &registry.DriftConstraints{RefuseNonFinite: true, RefuseUnseenCategories: true,
		Ranges: []registry.FeatureRange{{Feature: "amount_log", Min: &lo, Max: &hi}}})
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
		t.Fatalf("scoring under hard constraints allocates %v times per request", n)
	}
}
