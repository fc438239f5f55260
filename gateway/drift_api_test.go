package gateway_test

import (
	"strings"
	"testing"

	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/fraud"
	"github.com/modelgate/modelgate/runtime"
)

// TestDriftAPIRefusals: the drift routes answer bad parameters with 400
// naming the parameter, an unknown model or version with 404, and
// GET /api/v1/models/{m}/drift judges the champion by default.
func TestDriftAPIRefusals(t *testing.T) {
	srv := startServer(t, gateway.Config{Auth: gateway.NewAuth(gateway.NewToken("tester", testSecret, gateway.ScopeAdmin))})
	slot := serveModel(t, srv, "fraud", "1", demoModel(t), runtime.Config{})
	if err := srv.Catalog.EnableDrift("fraud", "1", referenceProfile(t, slot.Model), drift.BootstrapConfig{}, nil); err != nil {
		t.Fatal(err)
	}
	post(t, srv, "/v2/models/fraud/infer", fraudBody(fraud.NewGenerator(5), 10))
	f := func(path string, code int, want string) {
		t.Helper()
		got, _, b := adminCall(t, srv, "GET", path, nil)
		if got != code || !strings.Contains(string(b), want) {
			t.Fatalf("GET %s: %d %s, want %d with %q", path, got, b, code, want)
		}
	}
	f("/api/v1/models/fraud/drift", 200, `"version":1`)
	f("/api/v1/models/fraud/drift?window=1h", 200, `"count":10`)
	f("/api/v1/models/fraud/drift?window=hourly", 400, `window must be a duration between 1m and 24h (1m, 1h, 24h), got \"hourly\"`)
	f("/api/v1/models/fraud/drift?window=48h", 400, "window must be a duration between 1m and 24h")
	f("/api/v1/models/fraud/drift?version=x", 400, `version must be a positive integer, got \"x\"`)
	f("/api/v1/models/fraud/drift?version=7", 404, "fraud v7 is not monitored for drift on this node")
	f("/api/v1/models/other/drift", 404, "other has no champion on this node")
	f("/api/v1/models/fraud/versions/1/drift", 200, `"policy":"α 0.01, from 1000 rows, 3 in a row, drift share 0.5"`)
}
