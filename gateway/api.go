package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/modelgate/modelgate/registry"
)

// apiRoute is one admin API route. Every route declares the scope it needs;
// TestRouteScopes walks the table to prove each one refuses a missing, a
// wrong and an insufficient token.
type apiRoute struct {
	method  string
	pattern []string // literal segments, or {m}, {v}, {id}
	scope   Scope
	maxBody int  // 0: smallBody; bodyUpload: the handler streams it (registrations)
	local   bool // a write this node answers itself, never forwarded (statistics pushes)
	handle  func(s *Server, ctx *fasthttp.RequestCtx, p *apiParams)
}

// apiParams are a request's path parameters and who is asking.
type apiParams struct {
	model   string
	version int
	id      string
	actor   string
}

// smallBody bounds every admin body but those of the routes that say
// more: commands, policies and the like are a few KB.
const smallBody = 1 << 20

// bodyUpload marks the route whose handler streams its body (a model
// registration, bounded by Config.MaxModelBytes).
const bodyUpload = -1

func newRoute(method, path string, scope Scope, h func(*Server, *fasthttp.RequestCtx, *apiParams)) apiRoute {
	return apiRoute{method: method, pattern: strings.Split(strings.Trim(path, "/"), "/"), scope: scope, handle: h}
}

// apiRoutes is the admin API. Keep these paths and shapes stable: they are
// what clients script against.
var apiRoutes = []apiRoute{
	withBody(newRoute("POST", "/api/v1/models/{m}/versions", ScopeRegister, (*Server).apiRegister), bodyUpload),
	newRoute("GET", "/api/v1/models", ScopeRead, (*Server).apiModels),
	newRoute("GET", "/api/v1/models/{m}", ScopeRead, (*Server).apiModel),
	newRoute("GET", "/api/v1/models/{m}/versions/{v}", ScopeRead, (*Server).apiVersion),
	newRoute("GET", "/api/v1/models/{m}/versions/{v}/artifact", ScopeRead, (*Server).apiArtifact),
	newRoute("POST", "/api/v1/models/{m}/versions/{v}/stage", ScopeAdmin, (*Server).apiStage),
	newRoute("POST", "/api/v1/models/{m}/promote", ScopeAdmin, (*Server).apiPromote),
	newRoute("POST", "/api/v1/models/{m}/rollback", ScopeAdmin, (*Server).apiRollback),
	newRoute("POST", "/api/v1/models/{m}/versions/{v}/approve", ScopeAdmin, (*Server).apiApprove),
	newRoute("POST", "/api/v1/models/{m}/versions/{v}/reject", ScopeAdmin, (*Server).apiReject),
	newRoute("DELETE", "/api/v1/models/{m}/versions/{v}", ScopeAdmin, (*Server).apiDelete),
	newRoute("GET", "/api/v1/models/{m}/policy", ScopeRead, (*Server).apiGetPolicy),
	newRoute("PUT", "/api/v1/models/{m}/policy", ScopeAdmin, (*Server).apiPutPolicy),
	newRoute("GET", "/api/v1/audit", ScopeRead, (*Server).apiAudit),
	newRoute("GET", "/api/v1/models/{m}/drift", ScopeRead, (*Server).apiDrift),
	newRoute("GET", "/api/v1/models/{m}/versions/{v}/drift", ScopeRead, (*Server).apiDrift),
	withBody(newRoute("POST", "/api/v1/models/{m}/labels", ScopeLabels, (*Server).apiLabels), 32<<20),
	newRoute("GET", "/api/v1/models/{m}/export", ScopeRead, (*Server).apiExport),
	newRoute("GET", "/api/v1/predictions/{id}", ScopeRead, (*Server).apiPrediction),
	newRoute("GET", "/api/v1/models/{m}/comparison", ScopeRead, (*Server).apiComparison),
	newRoute("GET", "/api/v1/models/{m}/evaluation", ScopeRead, (*Server).apiEvaluation),
	newRoute("GET", "/api/v1/models/{m}/rollout", ScopeRead, (*Server).apiRollout),
}

func withBody(r apiRoute, n int) apiRoute { r.maxBody = n; return r }

// serveAPI routes an /api/v1 request: match, authorise, bound the body,
// handle.
func (s *Server) serveAPI(ctx *fasthttp.RequestCtx) {
	segs := pathSegments(ctx.URI().PathOriginal())
	var p apiParams
	var allowed []string
	for i := range apiRoutes {
		r := &apiRoutes[i]
		if !r.match(segs, &p) {
			continue
		}
		if string(ctx.Method()) != r.method {
			allowed = append(allowed, r.method)
			continue
		}
		if p.version < 0 {
			writeError(ctx, fasthttp.StatusBadRequest, "a version is a positive integer, got "+strconv.Quote(segs[5]))
			return
		}
		name, code, msg := s.auth.Authorize(ctx.Request.Header.Peek("Authorization"), r.scope)
		if code != 0 {
			if code == fasthttp.StatusUnauthorized {
				ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="modelgate"`)
			}
			writeError(ctx, code, msg)
			return
		}
		p.actor = name
		if !s.readAPIBody(ctx, r) {
			return
		}
		if s.cluster != nil && s.routeToLeader(ctx, r) {
			return
		}
		r.handle(s, ctx, &p)
		if s.cluster != nil {
			ctx.Response.Header.Set(HeaderAppliedIndex, strconv.FormatUint(s.cluster.AppliedIndex(), 10))
		}
		return
	}
	if len(allowed) > 0 {
		ctx.Response.Header.Set("Allow", strings.Join(allowed, ", "))
		writeError(ctx, fasthttp.StatusMethodNotAllowed, "use "+strings.Join(allowed, " or ")+" for "+string(ctx.Path()))
		return
	}
	writeError(ctx, fasthttp.StatusNotFound, "no such admin endpoint: "+string(ctx.Path()))
}

// pathSegments splits the path as the client sent it, then unescapes each
// segment: a prediction id holding "/" (sent as %2F) or equal to "." or
// ".." stays one segment. fasthttp's ctx.Path() unescapes first and then
// removes dot segments, which made such ids impossible to look up. A "%"
// not followed by two hex digits is kept as it is, as fasthttp does.
func pathSegments(raw []byte) []string {
	segs := strings.Split(strings.Trim(string(raw), "/"), "/")
	for i, s := range segs {
		if strings.IndexByte(s, '%') >= 0 {
			segs[i] = unescapeSegment(s)
		}
	}
	return segs
}

func unescapeSegment(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && unhex(s[i+1]) >= 0 && unhex(s[i+2]) >= 0 {
			b = append(b, byte(unhex(s[i+1])<<4|unhex(s[i+2])))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

func (r *apiRoute) match(segs []string, p *apiParams) bool {
	if len(segs) != len(r.pattern) {
		return false
	}
	*p = apiParams{}
	for i, want := range r.pattern {
		switch want {
		case "{m}":
			p.model = segs[i]
		case "{id}":
			p.id = segs[i]
		case "{v}":
			n, err := strconv.Atoi(segs[i])
			if err != nil || n <= 0 {
				n = -1
			}
			p.version = n
		default:
			if segs[i] != want {
				return false
			}
		}
	}
	return true
}

// command builds a registry command from a request: its actor, the time,
// and its idempotency key — the Idempotency-Key header, else a fresh one
// (a client that wants safe retries sends the header).
func (s *Server) command(ctx *fasthttp.RequestCtx, p *apiParams, args registry.Args) registry.Command {
	key := string(ctx.Request.Header.Peek("Idempotency-Key"))
	if key == "" {
		key = string(s.newID(nil))
	}
	return registry.Command{Time: time.Now().UTC(), Actor: p.actor, IdempotencyKey: key, Args: args}
}

// apply commits cmd and answers an error itself when it fails.
func (s *Server) apply(ctx *fasthttp.RequestCtx, cmd registry.Command) (registry.Result, bool) {
	if s.control == nil {
		writeError(ctx, fasthttp.StatusServiceUnavailable, "this node has no registry")
		return registry.Result{}, false
	}
	if err := cmd.Validate(); err != nil {
		writeError(ctx, registryStatus(err), err.Error())
		return registry.Result{}, false
	}
	c, cancel := context.WithTimeout(context.Background(), s.cfg.ApplyTimeout)
	defer cancel()
	res, err := s.control.Apply(c, cmd)
	if err != nil {
		writeError(ctx, registryStatus(err), err.Error())
		return res, false
	}
	s.Reconcile()
	return res, true
}

// registryStatus maps a registry or cluster error to its HTTP status. What
// is not the registry's verdict is the cluster's unavailability (no leader,
// lost quorum, a deadline): 503, and a retry with the same Idempotency-Key
// is safe.
func registryStatus(err error) int {
	switch {
	case errors.Is(err, registry.ErrModelNotFound), errors.Is(err, registry.ErrVersionNotFound),
		errors.Is(err, registry.ErrNoChampion), errors.Is(err, registry.ErrNoCanary):
		return fasthttp.StatusNotFound
	case errors.Is(err, registry.ErrInvalid), errors.Is(err, registry.ErrMalformedCommand),
		errors.Is(err, registry.ErrUnknownOp), errors.Is(err, registry.ErrUnsupportedVersion):
		return fasthttp.StatusBadRequest
	case errors.Is(err, registry.ErrIllegalTransition), errors.Is(err, registry.ErrModelExists),
		errors.Is(err, registry.ErrDuplicateArtifact), errors.Is(err, registry.ErrIdempotencyConflict),
		errors.Is(err, registry.ErrNotReady):
		return fasthttp.StatusConflict
	}
	return fasthttp.StatusServiceUnavailable
}

// decodeBody decodes a JSON body into v, refusing unknown fields, and
// answers 400 itself on failure. An empty body leaves v as it is.
func decodeBody(ctx *fasthttp.RequestCtx, v any) bool {
	body := ctx.Request.Body()
	if len(bytes.TrimSpace(body)) == 0 {
		return true
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, "malformed JSON body: "+err.Error())
		return false
	}
	if dec.More() {
		writeError(ctx, fasthttp.StatusBadRequest, "malformed JSON body: data after the JSON value")
		return false
	}
	return true
}

// view runs fn on the registry state, answering 503 when the node has none.
func (s *Server) view(ctx *fasthttp.RequestCtx, fn func(*registry.State)) bool {
	if s.control == nil {
		writeError(ctx, fasthttp.StatusServiceUnavailable, "this node has no registry")
		return false
	}
	s.control.View(fn)
	return true
}
