package gateway

import (
	"errors"
	"io"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/modelgate/modelgate/internal/artifact"
	"github.com/modelgate/modelgate/registry"
)

// Artifact distribution on the admin API. A node that lacks a version's
// bytes fetches them from a holder with GET /api/v1/artifacts/{digest}
// (streamed from the store, never held whole in memory), verifies them,
// runs its own validation gate and reports its verdict with POST
// /api/v1/cluster/ready, which a follower forwards to the leader like any
// registry write. Stage moves that make a version the canary or the
// champion are refused with a *NotReadyError (409) until the nodes the
// model's distribution policy requires are ready (internal/node checks it).

func init() {
	apiRoutes = append(apiRoutes,
		newRoute("GET", "/api/v1/artifacts/{id}", ScopeAdmin, (*Server).apiArtifactBlob),
		newRoute("POST", "/api/v1/cluster/ready", ScopeAdmin, (*Server).apiReportReady),
	)
}

// ArtifactStreamer is what an artifact store offers beyond Artifacts to
// serve an artifact to another node without reading it whole
// (*artifact.Store implements it).
type ArtifactStreamer interface {
	// Stat returns the stored artifact's size without reading it.
	Stat(digest string) (artifact.Info, error)
	// Open streams the artifact; every chunk is verified before it is
	// returned, and a mismatch is a Read error (never silently bad bytes).
	Open(digest string) (io.ReadCloser, error)
}

// apiArtifactBlob: GET /api/v1/artifacts/{digest} (admin). The bytes of an
// artifact, streamed with its Content-Length. A chunk that fails its
// checksum mid-stream cuts the connection, so the fetching node sees a
// short read and tries another holder.
func (s *Server) apiArtifactBlob(ctx *fasthttp.RequestCtx, p *apiParams) {
	st, ok := s.artifacts.(ArtifactStreamer)
	if s.artifacts == nil || !ok {
		writeError(ctx, fasthttp.StatusServiceUnavailable, "this node has no artifact store it can stream from")
		return
	}
	digest := strings.TrimPrefix(p.id, "sha256:")
	info, err := st.Stat(digest)
	if err != nil {
		writeError(ctx, artifactStatus(err), "artifact "+digest+": "+err.Error())
		return
	}
	r, err := st.Open(digest)
	if err != nil {
		writeError(ctx, artifactStatus(err), "cannot read artifact "+digest+": "+err.Error())
		return
	}
	ctx.SetContentType("application/octet-stream")
	ctx.Response.Header.Set("X-Model-Digest", "sha256:"+digest)
	// fasthttp closes r once the body is written (or the write failed).
	ctx.SetBodyStream(r, int(info.Size))
}

func artifactStatus(err error) int {
	switch {
	case errors.Is(err, artifact.ErrNotFound):
		return fasthttp.StatusNotFound
	case errors.Is(err, artifact.ErrInvalidDigest):
		return fasthttp.StatusBadRequest
	}
	return fasthttp.StatusInternalServerError
}

// apiReportReady: POST /api/v1/cluster/ready (admin, on the leader) with
// a report_ready command's arguments: a node's verdict on a version's
// bytes. Nodes send it; an operator has no reason to.
func (s *Server) apiReportReady(ctx *fasthttp.RequestCtx, p *apiParams) {
	var args registry.ReportReadyArgs
	if !decodeBody(ctx, &args) {
		return
	}
	s.answer(ctx, p, &args)
}

// NotReadyNode is one node a version is not ready on, and why.
type NotReadyNode struct {
	Node  string `json:"node"`
	Voter bool   `json:"voter"`
	// Why: "validation failed on node n3: …", "fetching or loading (…)",
	// "unreachable: …".
	Why string `json:"why"`
}

// NotReadyError refuses a move that would make a version the canary or
// the champion before the nodes its model's distribution policy requires
// report it ready. It unwraps to registry.ErrIllegalTransition (HTTP 409).
type NotReadyError struct {
	Model   string
	Version int
	Action  string // "promote", "canary" or "approve"
	Require string // the policy's require_ready
	Nodes   []NotReadyNode
}

func (e *NotReadyError) Error() string {
	var b strings.Builder
	subject := e.Model + " v" + strconv.Itoa(e.Version)
	switch e.Action {
	case "canary":
		b.WriteString("cannot make " + subject + " the canary")
	case "approve":
		b.WriteString("cannot approve the move of " + subject)
	default:
		b.WriteString("cannot " + e.Action + " " + subject)
	}
	b.WriteString(": not ready on the nodes its distribution policy requires (require_ready ")
	b.WriteString(strconv.Quote(e.Require))
	b.WriteString("): ")
	for i, n := range e.Nodes {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(n.Node)
		b.WriteString(" ")
		b.WriteString(n.Why)
	}
	b.WriteString(". Each node fetches, verifies, validates and reports on its own; retry once they are ready (GET /api/v1/models/")
	b.WriteString(e.Model)
	b.WriteString("/versions/")
	b.WriteString(strconv.Itoa(e.Version))
	b.WriteString(" lists ready_on and failed_on)")
	return b.String()
}

// Unwrap returns registry.ErrNotReady.
func (e *NotReadyError) Unwrap() error { return registry.ErrNotReady }

// holderID names this node as the holder of what it stores: its cluster
// node ID ("" without a cluster, where nothing is distributed).
func (s *Server) holderID() string {
	if s.cluster == nil {
		return ""
	}
	return s.cluster.NodeID()
}
