package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/modelgate/modelgate/internal/artifact"
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
		ReferenceProfile: meta.Profile, Golden: meta.Golden, Reason: meta.Reason, Holder: s.holderID(),
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
	if v.Passed {
		// ONNX Runtime runs models no client could call (no inputs, an
		// output listed twice, a name of a megabyte): that is a failure of
		// the version, recorded as one, not a verdict the registry refuses.
		if err := registry.CheckSignature(v.Signature); err != nil && !v.Signature.Empty() {
			v.Passed, v.Reason = false, "the model runs, but its interface cannot be served: "+err.Error()
		}
	}
	v.Reason = registry.RecordableReason(v.Reason)
	res, err := s.recordVerdict(model, version, actor, key, v)
	if err != nil && v.Passed && errors.Is(err, registry.ErrInvalid) {
		// The registry refused the pass itself (the artifact declares
		// another signature than its registration said): record that as
		// the failure, or the version would stay registered forever.
		v.Passed, v.Reason = false, registry.RecordableReason("the model passed the gate, but "+err.Error())
		res, err = s.recordVerdict(model, version, actor, key, v)
	}
	if err != nil {
		out.Error = "validation ran but its verdict could not be recorded: " + err.Error()
		return out, registryStatus(err)
	}
	s.Reconcile()
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

// recordVerdict commits the gate's verdict on a version. A failure is
// always recordable: it carries no signature, and its evidence is cut to
// what a command accepts (the caller cuts the reason with
// registry.RecordableReason: a hostile model's names end up in both). A pass the registry refused did not use the key, so the failure
// recorded after it takes the same one.
func (s *Server) recordVerdict(model string, version int, actor, key string, v Validation) (registry.Result, error) {
	args := &registry.SetValidationArgs{Model: model, Version: version, Passed: v.Passed, Signature: v.Signature,
		Reason: v.Reason, Evidence: registry.RecordableEvidence(v.Evidence)}
	if !v.Passed {
		args.Signature = registry.Signature{}
	}
	c, cancel := context.WithTimeout(context.Background(), s.cfg.ApplyTimeout)
	defer cancel()
	return s.control.Apply(c, registry.Command{Time: time.Now().UTC(), Actor: actor, IdempotencyKey: key + "/validation", Args: args})
}

// modelView is a model as the API shows it.
type modelView struct {
	registry.Model
	Champion     int     `json:"champion"`
	Canary       int     `json:"canary,omitempty"`
	CanaryWeight float64 `json:"canary_weight,omitempty"`
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
	if r := s.Catalog.table().Model(p.model); r != nil {
		ready = r.Version(strconv.Itoa(p.version)) != nil
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
		Weight float64        `json:"weight"`
		Force  bool           `json:"force"` // canary: even if the champion's clients cannot call it
		Reason string         `json:"reason"`
	}
	if !decodeBody(ctx, &body) {
		return
	}
	s.answer(ctx, p, &registry.SetStageArgs{Model: p.model, Version: p.version, Stage: body.Stage, Weight: body.Weight, Force: body.Force, Reason: body.Reason})
}

func (s *Server) apiPromote(ctx *fasthttp.RequestCtx, p *apiParams) {
	var body struct {
		Version int    `json:"version"`
		Force   bool   `json:"force"` // even if the champion's clients cannot call it (409 otherwise)
		Reason  string `json:"reason"`
	}
	if !decodeBody(ctx, &body) {
		return
	}
	s.answer(ctx, p, &registry.PromoteArgs{Model: p.model, Version: body.Version, Force: body.Force, Reason: body.Reason})
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
	recs, archived, first, ok := s.auditPage(ctx, f)
	if !ok {
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
		// Archived is how many of Records came from this node's archive.
		Archived int `json:"archived"`
		// RetainedFrom is the oldest seq the replicated registry still
		// holds; older records come from this node's archive, if any.
		RetainedFrom uint64 `json:"retained_from"`
	}{recs, next, archived, first})
}

// Seeded is what ServeFile did with a file.
type Seeded struct {
	// Version is the file's version number.
	Version int
	// Registered: the file was new to the model and became a new version.
	Registered bool
	// Champion is the model's champion afterwards.
	Champion int
	// Kept explains, when the file is not the champion, why the champion
	// stayed ("" when the file is the champion).
	Kept string
}

// ServeFile is what `serve --model NAME=PATH` does with a registry: it seeds
// the model with the file, without ever undoing what was chosen through the
// registry since. The file is stored and, unless the model already has a
// version with its digest, registered and validated as a new version (a
// restart with the same file registers nothing). Then:
//
//   - a model with no champion gets the file as champion: the first version
//     to pass validation becomes champion in the same command;
//   - a champion put there by an earlier ServeFile (same actor) is replaced
//     by a new file, since the operator changed the file between starts;
//   - any other champion (promoted or rolled back to by an admin or the
//     lifecycle controller) stays, and Seeded.Kept says so; an operator
//     promotes the file's version explicitly if they want it.
//
// A version of the file left registered by a crash before its verdict is
// validated now. profile, when not nil, is registered with a version the
// file is new to as its drift reference profile (a version registered
// before keeps its own).
func (s *Server) ServeFile(ctx context.Context, model string, onnx, profile []byte, actor string) (Seeded, error) {
	if s.control == nil || s.artifacts == nil || s.validator == nil {
		return Seeded{}, errors.New("gateway: ServeFile needs a registry, an artifact store and a validator")
	}
	digest, size, err := s.artifacts.Put(bytesReader(onnx))
	if err != nil {
		return Seeded{}, fmt.Errorf("cannot store the model: %w", err)
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
	key := "serve/" + model + "/" + digest
	out := Seeded{Version: existing.Number}
	if out.Version == 0 {
		res, err := s.control.Apply(ctx, registry.Command{Time: time.Now().UTC(), Actor: actor, IdempotencyKey: key,
			Args: &registry.RegisterArgs{Model: model, Digest: digest, Size: size, ReferenceProfile: profile, Holder: s.holderID(),
				Lineage: registry.Lineage{RegisteredBy: actor, Notes: "registered by serve --model at start"}}})
		if err != nil {
			return out, fmt.Errorf("cannot register: %w", err)
		}
		out.Version, out.Registered = res.Version, true
		existing.Stage = registry.StageRegistered
	}
	if existing.Stage == registry.StageRegistered {
		if res, code := s.validateVersion(model, out.Version, digest, nil, actor, key); code != fasthttp.StatusCreated {
			return out, fmt.Errorf("v%d: %s", out.Version, res.Error)
		}
	}
	var (
		stage    registry.Stage
		chosenBy string
	)
	s.control.View(func(st *registry.State) {
		m, err := st.Model(model)
		if err != nil {
			return
		}
		out.Champion = m.Champion
		if v, ok := m.Version(out.Version); ok {
			stage = v.Stage
		}
		chosenBy = championChooser(st, model, m.Champion)
	})
	switch {
	case out.Champion == out.Version:
	case stage == registry.StageFailed:
		return out, fmt.Errorf("v%d failed validation earlier; the registry keeps that verdict (see GET /api/v1/models/%s/versions/%d)", out.Version, model, out.Version)
	case chosenBy != actor:
		out.Kept = "v" + strconv.Itoa(out.Champion) + " stays champion: it was chosen through the registry by " + strconv.Quote(chosenBy) +
			", and --model never overrides that; promote v" + strconv.Itoa(out.Version) + " to serve this file"
	default:
		_, err := s.control.Apply(ctx, registry.Command{Time: time.Now().UTC(), Actor: actor, IdempotencyKey: string(s.newID(nil)),
			Args: &registry.PromoteArgs{Model: model, Version: out.Version, Reason: "serve --model names a new file; the champion v" + strconv.Itoa(out.Champion) + " was its previous file"}})
		if err != nil {
			return out, fmt.Errorf("cannot make v%d the champion in place of v%d, the previous --model file: %w", out.Version, out.Champion, err)
		}
		out.Champion = out.Version
	}
	// On a member that did not store the upload, the version is served
	// once this node's own gate has passed the bytes: wait for it, within
	// ctx, rather than fail a start that only raced the distributor.
	for {
		err := s.Reconcile()
		if err == nil || !errors.Is(err, ErrNotLoadedYet) {
			return out, err
		}
		select {
		case <-ctx.Done():
			return out, err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// championChooser returns the actor of the audit record that made version
// champion of model most recently: a promotion, a rollback or the first
// validation.
func championChooser(st *registry.State, model string, version int) string {
	recs := st.Audit(registry.AuditFilter{Model: model, Version: version})
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].To == registry.StageChampion {
			return recs[i].Actor
		}
	}
	return ""
}

// Stranded is what RecoverStranded did with one version.
type Stranded struct {
	Model   string
	Version int
	// Stage is the version's stage afterwards: validated (or champion) or
	// failed; registered when the gate could not run (Reason says why).
	Stage  registry.Stage
	Reason string
}

// RecoverStranded judges the versions a crash left in stage registered
// without a verdict: the node stopped after the registration committed and
// before the validation gate's verdict did, and unless the client retried
// with the same idempotency key they would stay there forever, neither
// serving nor failed. Only versions registered before `before` (this
// process's start) are taken, so no registration running in this process
// is raced. Each is validated from its stored artifact, or recorded as
// failed with the reason when the artifact is missing or does not match
// its digest (the upload was lost with the crash). A version whose gate
// cannot run (no ONNX Runtime, the registry unavailable) stays registered
// and is reported with the reason; the next start tries again.
//
// Run it on the node that leads the registry (serve does, after the
// barrier that replays the log).
func (s *Server) RecoverStranded(ctx context.Context, before time.Time, actor string) []Stranded {
	if s.control == nil || s.artifacts == nil || s.validator == nil {
		return nil
	}
	var todo []registry.Version
	s.control.View(func(st *registry.State) {
		for _, m := range st.Models() {
			for _, v := range m.Versions {
				if v.Stage == registry.StageRegistered && v.Validation == nil && v.Created.Before(before) {
					todo = append(todo, v)
				}
			}
		}
	})
	var out []Stranded
	for _, v := range todo {
		if ctx.Err() != nil {
			out = append(out, Stranded{Model: v.Model, Version: v.Number, Stage: registry.StageRegistered, Reason: "not judged: " + ctx.Err().Error()})
			continue
		}
		key := "recover/" + v.Model + "/" + strconv.Itoa(v.Number)
		if _, err := s.artifacts.Get(v.Digest); errors.Is(err, artifact.ErrNotFound) || errors.Is(err, artifact.ErrCorrupt) {
			reason := "the node stopped between registration and validation, and the artifact (sha256 " + v.Digest + ") is not in its store intact (" +
				err.Error() + "): register the file again"
			res, err := s.recordVerdict(v.Model, v.Number, actor, key, Validation{Reason: reason})
			if err != nil {
				out = append(out, Stranded{Model: v.Model, Version: v.Number, Stage: registry.StageRegistered, Reason: "cannot record that its artifact is missing: " + err.Error()})
				continue
			}
			out = append(out, Stranded{Model: v.Model, Version: v.Number, Stage: res.Stage, Reason: reason})
			continue
		}
		res, code := s.validateVersion(v.Model, v.Number, v.Digest, v.Golden, actor, key)
		st := Stranded{Model: v.Model, Version: v.Number, Stage: res.Stage, Reason: res.Error}
		if code != fasthttp.StatusCreated && code != fasthttp.StatusBadRequest {
			st.Stage = registry.StageRegistered
		}
		out = append(out, st)
	}
	if len(out) > 0 {
		s.Reconcile()
	}
	return out
}
