package gateway

import (
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestRouteScopes walks every admin route with no token, a wrong token, and
// a token of each scope: only the route's own scope (or admin) gets past
// authorisation.
func TestRouteScopes(t *testing.T) {
	const secret = "-secret-of-at-least-16-chars"
	scopes := []Scope{ScopeScore, ScopeRegister, ScopeLabels, ScopeRead, ScopeAdmin}
	var tokens []Token
	for _, sc := range scopes {
		tokens = append(tokens, NewToken(sc.String()+"-token", sc.String()+secret, sc))
	}
	s := New(Config{Auth: NewAuth(tokens...)})
	call := func(r *apiRoute, header string) int {
		var ctx fasthttp.RequestCtx
		path := strings.NewReplacer("{m}", "fraud", "{v}", "1", "{id}", "req-1").Replace("/" + strings.Join(r.pattern, "/"))
		ctx.Request.Header.SetMethod(r.method)
		ctx.Request.SetRequestURI(path)
		if header != "" {
			ctx.Request.Header.Set("Authorization", header)
		}
		s.handleAdmin(&ctx)
		return ctx.Response.StatusCode()
	}
	if len(apiRoutes) < 16 {
		t.Fatalf("only %d routes", len(apiRoutes))
	}
	for i := range apiRoutes {
		r := &apiRoutes[i]
		name := r.method + " /" + strings.Join(r.pattern, "/")
		if r.scope == ScopeNone {
			t.Errorf("%s declares no scope", name)
		}
		if got := call(r, ""); got != 401 {
			t.Errorf("%s without a token: %d, want 401", name, got)
		}
		if got := call(r, "Bearer not-a-configured-token-at-all"); got != 401 {
			t.Errorf("%s with a wrong token: %d, want 401", name, got)
		}
		if got := call(r, "Basic dXNlcjpwYXNz"); got != 401 {
			t.Errorf("%s with basic auth: %d, want 401", name, got)
		}
		for _, sc := range scopes {
			got := call(r, "Bearer "+sc.String()+secret)
			allowed := sc == r.scope || sc == ScopeAdmin
			if allowed && (got == 401 || got == 403) {
				t.Errorf("%s with the %s scope: %d, want it let through", name, sc, got)
			}
			if !allowed && got != 403 {
				t.Errorf("%s with the %s scope: %d, want 403", name, sc, got)
			}
		}
	}
}

func TestTokenSpecs(t *testing.T) {
	if _, err := ParseTokenSpec("ci register,read short"); err == nil {
		t.Fatal("a short secret was accepted")
	}
	if _, err := ParseTokenSpec("ci write 0123456789abcdef0"); err == nil {
		t.Fatal("an unknown scope was accepted")
	}
	tok, err := ParseTokenSpec("ci register,read 0123456789abcdef0")
	if err != nil || tok.Name != "ci" || len(tok.Scopes) != 2 {
		t.Fatalf("%+v %v", tok, err)
	}
	a := NewAuth(tok)
	if _, code, _ := a.Authorize([]byte("Bearer 0123456789abcdef0"), ScopeRead); code != 0 {
		t.Fatalf("read: %d", code)
	}
	if _, code, _ := a.Authorize([]byte("Bearer 0123456789abcdef0"), ScopeAdmin); code != 403 {
		t.Fatalf("admin: %d", code)
	}
	dir := t.TempDir()
	t1, path, err := EnsureAdminToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	t2, _, _ := EnsureAdminToken(dir)
	if t1.hash != t2.hash || !strings.HasSuffix(path, AdminTokenFile) {
		t.Fatal("the admin token changed between starts")
	}
}
