package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/modelgate/modelgate/registry"
)

// registerMeta is the `metadata` part of a registration.
type registerMeta struct {
	Lineage        registry.Lineage   `json:"lineage"`
	Signature      registry.Signature `json:"signature"`
	Profile        json.RawMessage    `json:"profile,omitempty"`
	Golden         json.RawMessage    `json:"golden,omitempty"`
	IdempotencyKey string             `json:"idempotency_key,omitempty"`
	Reason         string             `json:"reason,omitempty"`
}

// registerResponse is what a registration answers (201), and the body of
// its 400 when the version failed validation.
type registerResponse struct {
	Error      string         `json:"error,omitempty"`
	Model      string         `json:"model"`
	Version    int            `json:"version"`
	Digest     string         `json:"digest"`
	Stage      registry.Stage `json:"stage"`
	Validation *struct {
		Passed bool   `json:"passed"`
		Reason string `json:"reason,omitempty"`
	} `json:"validation,omitempty"`
}

// apiRegister: POST /api/v1/models/{m}/versions, multipart with `model` (the
// ONNX file) and `metadata` (JSON). It streams the artifact into the store
// (readUpload), registers the
// version, runs the validation gate in a child process and records its
// verdict, then answers 201 — or 400 with the reason when the version
// failed validation (it stays registered as failed, for the audit trail).
func (s *Server) apiRegister(ctx *fasthttp.RequestCtx, p *apiParams) {
	if s.artifacts == nil || s.validator == nil {
		writeError(ctx, fasthttp.StatusServiceUnavailable, "this node cannot take registrations (no artifact store)")
		return
	}
	up, ok := s.readUpload(ctx)
	if !ok {
		return
	}
	meta, digest, size := up.meta, up.digest, up.size
	key := meta.IdempotencyKey
	if key == "" {
		key = string(ctx.Request.Header.Peek("Idempotency-Key"))
	}
	if key == "" {
		key = "register/" + p.model + "/" + digest
	}
	if meta.Lineage.RegisteredBy == "" {
		meta.Lineage.RegisteredBy = p.actor
	}
	cmd := registry.Command{Time: time.Now().UTC(), Actor: p.actor, IdempotencyKey: key, Args: &registry.RegisterArgs{
		Model: p.model, Digest: digest, Size: size, Signature: meta.Signature, Lineage: meta.Lineage,
		ReferenceProfile: meta.Profile, Golden: meta.Golden, Reason: meta.Reason,
	}}
	res, ok := s.apply(ctx, cmd)
	if !ok {
		return
	}
	out, code := s.validateVersion(p.model, res.Version, digest, meta.Golden, p.actor, key)
	writeValue(ctx, code, out)
}

// validateVersion runs the gate on a registered version and records the
// verdict. It is also how `serve --model` brings a file in.
func (s *Server) validateVersion(model string, version int, digest string, golden json.RawMessage, actor, key string) (registerResponse, int) {
	out := registerResponse{Model: model, Version: version, Digest: digest, Stage: registry.StageRegistered}
	var cur registry.Version
	var budget float64
	s.control.View(func(st *registry.State) {
		cur, _ = st.Version(model, version)
		if pol, err := st.Policy(model); err == nil && pol.Validation != nil {
			budget = pol.Validation.LatencyBudgetMs
		}
	})
	if cur.Stage != registry.StageRegistered { // a retried registration: already judged
		out.Stage = cur.Stage
		if cur.Validation != nil {
			out.Validation = &struct {
				Passed bool   `json:"passed"`
				Reason string `json:"reason,omitempty"`
			}{cur.Validation.Passed, cur.Validation.Reason}
			if !cur.Validation.Passed {
				out.Error = "validation failed: " + cur.Validation.Reason
				return out, fasthttp.StatusBadRequest
			}
		}
		return out, fasthttp.StatusCreated
	}
	onnx, err := s.artifacts.Get(digest)
	if err != nil {
		out.Error = "cannot read the stored artifact: " + err.Error() + "; upload it again"
		return out, fasthttp.StatusInternalServerError
	}
	// Under the server's context: Shutdown cancels a validation still
	// running (the version stays registered; a retry judges it), so it
	// cannot hold the node past its drain deadline.
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Minute)
	v, err := s.validator(ctx, onnx, golden, budget)
	cancel()
	if err != nil {
		out.Error = "the validation gate could not run, so v" + strconv.Itoa(version) + " stays registered; retry the registration with the same idempotency key: " + err.Error()
		return out, fasthttp.StatusServiceUnavailable
	}
	cmd := registry.Command{Time: time.Now().UTC(), Actor: actor, IdempotencyKey: key + "/validation", Args: &registry.SetValidationArgs{
		Model: model, Version: version, Passed: v.Passed, Signature: v.Signature, Reason: truncate(v.Reason, 4000), Evidence: v.Evidence,
	}}
	c, cancel := context.WithTimeout(context.Background(), s.cfg.ApplyTimeout)
	res, err := s.control.Apply(c, cmd)
	cancel()
	if err != nil {
		out.Error = "validation ran but its verdict could not be recorded: " + err.Error()
		return out, registryStatus(err)
	}
	s.reconcileNow()
	out.Stage = res.Stage
	out.Validation = &struct {
		Passed bool   `json:"passed"`
		Reason string `json:"reason,omitempty"`
	}{v.Passed, v.Reason}
	if !v.Passed {
		out.Error = "validation failed: " + v.Reason
		return out, fasthttp.StatusBadRequest
	}
	return out, fasthttp.StatusCreated
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// modelView is a model as the API shows it.
type modelView struct {
	registry.Model
	Champion     int `json:"champion"`
	Canary       int `json:"canary,omitempty"`
	CanaryWeight int `json:"canary_weight,omitempty"`
}

func (s *Server) apiModels(ctx *fasthttp.RequestCtx, p *apiParams) {
	var models []registry.Model
	if !s.view(ctx, func(st *registry.State) { models = st.Models() }) {
		return
	}
	if models == nil {
		models = []registry.Model{}
	}
	writeValue(ctx, fasthttp.StatusOK, struct {
		Models []registry.Model `json:"models"`
	}{models})
}

// read runs a registry lookup and answers its error itself.
func read[T any](s *Server, ctx *fasthttp.RequestCtx, fn func(*registry.State) (T, error)) (T, bool) {
	var v T
	var err error
	if !s.view(ctx, func(st *registry.State) { v, err = fn(st) }) {
		return v, false
	}
	if err != nil {
		writeError(ctx, registryStatus(err), err.Error())
		return v, false
	}
	return v, true
}

func (s *Server) apiModel(ctx *fasthttp.RequestCtx, p *apiParams) {
	if m, ok := read(s, ctx, func(st *registry.State) (registry.Model, error) { return st.Model(p.model) }); ok {
		writeValue(ctx, fasthttp.StatusOK, m)
	}
}

// versionView is a version with its readiness on this node.
type versionView struct {
	registry.Version
	// Ready: this node has the version loaded, warmed and routable.
	Ready bool   `json:"ready_on_node"`
	Node  string `json:"node"`
}

// version reads the request's model version, answering errors itself.
func (s *Server) version(ctx *fasthttp.RequestCtx, p *apiParams) (registry.Version, bool) {
	return read(s, ctx, func(st *registry.State) (registry.Version, error) { return st.Version(p.model, p.version) })
}

func (s *Server) apiVersion(ctx *fasthttp.RequestCtx, p *apiParams) {
	v, ok := s.version(ctx, p)
	if !ok {
		return
	}
	ready := false
	if r := s.Catalog.load().models[p.model]; r != nil {
		ready = r.versions[strconv.Itoa(p.version)] != nil
	}
	writeValue(ctx, fasthttp.StatusOK, versionView{Version: v, Ready: ready, Node: s.cfg.Node})
}

func (s *Server) apiArtifact(ctx *fasthttp.RequestCtx, p *apiParams) {
	v, ok := s.version(ctx, p)
	if !ok {
		return
	}
	if s.artifacts == nil {
		writeError(ctx, fasthttp.StatusServiceUnavailable, "this node has no artifact store")
		return
	}
	b, err := s.artifacts.Get(v.Digest)
	if err != nil {
		writeError(ctx, fasthttp.StatusInternalServerError, "cannot read the artifact "+v.Digest+": "+err.Error())
		return
	}
	ctx.SetContentType("application/octet-stream")
	ctx.Response.Header.Set("Content-Disposition", `attachment; filename="`+p.model+"-v"+strconv.Itoa(p.version)+`.onnx"`)
	ctx.Response.Header.Set("X-Model-Digest", "sha256:"+v.Digest)
	ctx.SetBody(b)
}

// answer commits cmd and answers the registry's result.
func (s *Server) answer(ctx *fasthttp.RequestCtx, p *apiParams, args registry.Args) {
	res, ok := s.apply(ctx, s.command(ctx, p, args))
	if !ok {
		return
	}
	writeValue(ctx, fasthttp.StatusOK, res)
}

func (s *Server) apiStage(ctx *fasthttp.RequestCtx, p *apiParams) {
	var body struct {
		Stage  registry.Stage `json:"stage"`
		Weight int            `json:"weight"`
		Reason string         `json:"reason"`
	}
	if !decodeBody(ctx, &body) {
		return
	}
	s.answer(ctx, p, &registry.SetStageArgs{Model: p.model, Version: p.version, Stage: body.Stage, Weight: body.Weight, Reason: body.Reason})
}

func (s *Server) apiPromote(ctx *fasthttp.RequestCtx, p *apiParams) {
	var body struct {
		Version int    `json:"version"`
		Reason  string `json:"reason"`
	}
	if !decodeBody(ctx, &body) {
		return
	}
	s.answer(ctx, p, &registry.PromoteArgs{Model: p.model, Version: body.Version, Reason: body.Reason})
}

func (s *Server) apiRollback(ctx *fasthttp.RequestCtx, p *apiParams) {
	if reason, ok := reasonBody(ctx); ok {
		s.answer(ctx, p, &registry.RollbackArgs{Model: p.model, Reason: reason})
	}
}

func (s *Server) apiApprove(ctx *fasthttp.RequestCtx, p *apiParams) {
	if reason, ok := reasonBody(ctx); ok {
		s.answer(ctx, p, &registry.ApproveArgs{Model: p.model, Version: p.version, Reason: reason})
	}
}

func (s *Server) apiReject(ctx *fasthttp.RequestCtx, p *apiParams) {
	if reason, ok := reasonBody(ctx); ok {
		s.answer(ctx, p, &registry.RejectArgs{Model: p.model, Version: p.version, Reason: reason})
	}
}

// reasonBody decodes the {"reason": "…"} body of the commands that take
// nothing else.
func reasonBody(ctx *fasthttp.RequestCtx) (string, bool) {
	var body struct {
		Reason string `json:"reason"`
	}
	ok := decodeBody(ctx, &body)
	return body.Reason, ok
}

func (s *Server) apiDelete(ctx *fasthttp.RequestCtx, p *apiParams) {
	s.answer(ctx, p, &registry.DeleteVersionArgs{Model: p.model, Version: p.version, Reason: string(ctx.QueryArgs().Peek("reason"))})
}

func (s *Server) apiGetPolicy(ctx *fasthttp.RequestCtx, p *apiParams) {
	if pol, ok := read(s, ctx, func(st *registry.State) (registry.Policy, error) { return st.Policy(p.model) }); ok {
		writeValue(ctx, fasthttp.StatusOK, pol)
	}
}

// apiPutPolicy replaces the policy. The body is decoded onto the current
// policy, so a client may send only the fields it changes.
func (s *Server) apiPutPolicy(ctx *fasthttp.RequestCtx, p *apiParams) {
	pol, ok := read(s, ctx, func(st *registry.State) (registry.Policy, error) { return st.Policy(p.model) })
	if !ok || !decodeBody(ctx, &pol) {
		return
	}
	s.answer(ctx, p, &registry.SetPolicyArgs{Model: p.model, Policy: pol, Reason: string(ctx.QueryArgs().Peek("reason"))})
}

func (s *Server) apiAudit(ctx *fasthttp.RequestCtx, p *apiParams) {
	q := ctx.QueryArgs()
	f := registry.AuditFilter{Model: string(q.Peek("model")), Limit: 1000}
	for _, kv := range []struct {
		name string
		dst  *uint64
	}{{"since", &f.Since}} {
		if v := q.Peek(kv.name); len(v) > 0 {
			n, err := strconv.ParseUint(string(v), 10, 64)
			if err != nil {
				writeError(ctx, fasthttp.StatusBadRequest, kv.name+" must be an audit sequence number, got "+strconv.Quote(string(v)))
				return
			}
			*kv.dst = n
		}
	}
	if v := q.Peek("version"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n <= 0 {
			writeError(ctx, fasthttp.StatusBadRequest, "version must be a positive integer")
			return
		}
		f.Version = n
	}
	if v := q.Peek("limit"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n <= 0 || n > 10000 {
			writeError(ctx, fasthttp.StatusBadRequest, "limit must be between 1 and 10000")
			return
		}
		f.Limit = n
	}
	var recs []registry.AuditRecord
	if !s.view(ctx, func(st *registry.State) { recs = st.Audit(f) }) {
		return
	}
	next := f.Since
	if len(recs) > 0 {
		next = recs[len(recs)-1].Seq
	}
	if recs == nil {
		recs = []registry.AuditRecord{}
	}
	writeValue(ctx, fasthttp.StatusOK, struct {
		Records []registry.AuditRecord `json:"records"`
		Next    uint64                 `json:"next"`
	}{recs, next})
}

// ServeFile is what `serve --model NAME=PATH` does with a registry: store
// the file, register it as a version of model unless a version with the
// same digest exists (so a restart registers nothing new), validate it,
// and make it the champion. It returns the version number.
func (s *Server) ServeFile(ctx context.Context, model string, onnx []byte, actor string) (int, error) {
	if s.control == nil || s.artifacts == nil || s.validator == nil {
		return 0, errors.New("gateway: ServeFile needs a registry, an artifact store and a validator")
	}
	digest, size, err := s.artifacts.Put(bytesReader(onnx))
	if err != nil {
		return 0, fmt.Errorf("cannot store the model: %w", err)
	}
	var existing registry.Version
	s.control.View(func(st *registry.State) {
		if m, err := st.Model(model); err == nil {
			for _, v := range m.Versions {
				if v.Digest == digest {
					existing = v
				}
			}
		}
	})
	version := existing.Number
	if version == 0 {
		key := "serve/" + model + "/" + digest
		res, err := s.control.Apply(ctx, registry.Command{Time: time.Now().UTC(), Actor: actor, IdempotencyKey: key,
			Args: &registry.RegisterArgs{Model: model, Digest: digest, Size: size, Lineage: registry.Lineage{RegisteredBy: actor, Notes: "registered by serve --model at start"}}})
		if err != nil {
			return 0, fmt.Errorf("cannot register: %w", err)
		}
		version = res.Version
		if out, code := s.validateVersion(model, version, digest, nil, actor, key); code != fasthttp.StatusCreated {
			return version, fmt.Errorf("v%d: %s", version, out.Error)
		}
	} else if existing.Stage == registry.StageFailed || existing.Stage == registry.StageRegistered && existing.Validation == nil {
		if out, code := s.validateVersion(model, version, digest, nil, actor, "serve/"+model+"/"+digest); code != fasthttp.StatusCreated {
			return version, fmt.Errorf("v%d: %s", version, out.Error)
		}
	}
	var champion int
	s.control.View(func(st *registry.State) {
		if m, err := st.Model(model); err == nil {
			champion = m.Champion
		}
	})
	if champion != version {
		_, err := s.control.Apply(ctx, registry.Command{Time: time.Now().UTC(), Actor: actor, IdempotencyKey: string(s.newID(nil)),
			Args: &registry.PromoteArgs{Model: model, Version: version, Reason: "serve --model names this file"}})
		if err != nil {
			return version, fmt.Errorf("cannot make v%d the champion: %w", version, err)
		}
	}
	return version, s.reconcileNow()
}
