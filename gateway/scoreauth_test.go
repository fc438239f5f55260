package gateway_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/oiptest"
)

// TestScoreAuthNeedsScoreScope runs a node with --score-auth over real HTTP:
// scoring (both infer routes) answers 200 to a token with the score scope
// (or admin), 401 without a token or with an unknown one, and 403 to a
// valid token that lacks the score scope — for that reason, named in the
// body, not some other refusal.
func TestScoreAuthNeedsScoreScope(t *testing.T) {
	const (
		scoreSecret = "score-secret-0123456789"
		readSecret  = "read-secret-0123456789"
		labelSecret = "labels-secret-0123456789"
		adminSecret = "admin-secret-0123456789"
	)
	auth := gateway.NewAuth(
		gateway.NewToken("scorer", scoreSecret, gateway.ScopeScore),
		gateway.NewToken("reader", readSecret, gateway.ScopeRead, gateway.ScopeRegister),
		gateway.NewToken("labeller", labelSecret, gateway.ScopeLabels),
		gateway.NewToken("root", adminSecret, gateway.ScopeAdmin),
	)
	srv := startDemo(t, gateway.Config{ScoreAuth: true, Auth: auth})
	body := oiptest.GoodRequest(2)
	for _, path := range []string{"/v2/models/fraud/infer", "/v2/models/fraud/versions/1/infer"} {
		f := func(header string, wantCode int, wantBody string) {
			t.Helper()
			var code int
			var b []byte
			if header == "" {
				code, b = post(t, srv, path, body)
			} else {
				code, b = post(t, srv, path, body, "Authorization", header)
			}
			if code != wantCode {
				t.Fatalf("POST %s with %q: %d %s, want %d", path, header, code, b, wantCode)
			}
			if !bytes.Contains(b, []byte(wantBody)) {
				t.Fatalf("POST %s with %q: %d %s, want the body to say %q", path, header, code, b, wantBody)
			}
		}
		f("", http.StatusUnauthorized, "missing bearer token")
		f("Bearer not-a-configured-token-0000", http.StatusUnauthorized, "invalid bearer token")
		f("Basic "+scoreSecret, http.StatusUnauthorized, "missing bearer token")
		f("Bearer "+readSecret, http.StatusForbidden, "token reader lacks the score scope")
		f("Bearer "+labelSecret, http.StatusForbidden, "token labeller lacks the score scope")
		f("Bearer "+scoreSecret, http.StatusOK, `"model_version":"1"`)
		f("Bearer "+adminSecret, http.StatusOK, `"model_version":"1"`)
	}
}

// TestScoringOpenWithoutScoreAuth: with ScoreAuth off (the default), the same
// tokens configured for the admin port do not gate scoring.
func TestScoringOpenWithoutScoreAuth(t *testing.T) {
	auth := gateway.NewAuth(gateway.NewToken("scorer", "score-secret-0123456789", gateway.ScopeScore))
	srv := startDemo(t, gateway.Config{Auth: auth})
	if code, b := post(t, srv, "/v2/models/fraud/infer", oiptest.GoodRequest(1)); code != http.StatusOK {
		t.Fatalf("scoring without a token and without ScoreAuth: %d %s", code, b)
	}
}
