package gateway

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/modelgate/modelgate/internal/ctxwait"
	"github.com/modelgate/modelgate/internal/peer"
	"github.com/modelgate/modelgate/predlog"
)

// Config sets a node's listeners and limits. Zero values mean defaults.
type Config struct {
	// Listen is the scoring (Open Inference Protocol) address. Default
	// 127.0.0.1:8080.
	Listen string
	// AdminListen is the admin and metrics address. Default 127.0.0.1:8081.
	AdminListen string
	// MaxBodyBytes bounds a scoring request body; larger ones get 413.
	// Default 4 MiB (a 1,000-row demo batch is about 300 KB of JSON).
	MaxBodyBytes int
	// MaxModelBytes bounds the model file of a registration (serve
	// --max-model-bytes). The upload is streamed into the artifact store,
	// never held in memory; its body may carry this much plus the metadata.
	// Every other admin route has a small limit of its own. Default 256 MiB.
	MaxModelBytes int64
	// HeaderTimeout bounds the wait for a request's headers, from its first
	// byte (from the connection's start for its first request), so that
	// clients trickling headers cannot hold connections. Default 5s.
	HeaderTimeout time.Duration
	// ReadTimeout bounds reading one request's body, from the end of its
	// headers. Default 10s.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing one response. Default 10s.
	WriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long. Default 60s.
	IdleTimeout time.Duration
	// Concurrency bounds connections open at once per listener; past it a
	// connection is answered 503 (JSON, counted in
	// modelgate_request_errors_total) and closed. Default 8192.
	Concurrency int
	// MaxConnsPerIP bounds the connections one client address may hold
	// open per listener; past it a connection is answered 429 and closed,
	// so one address cannot take the whole Concurrency. It applies to
	// loopback too. Default half of Concurrency (4096 of 8192): one
	// address is often a load balancer's or a load generator's (the bench
	// harness held 1,250 for a 5,000 rps open loop on a busy machine), and
	// a flood from one address still leaves half for everyone else.
	// Negative: no limit.
	MaxConnsPerIP int
	// Node names this node in responses and logs. Default the hostname.
	Node string
	// Version is the build's version, reported by GET /v2.
	Version string
	// ApplyTimeout bounds one registry write through Raft. Default 10s.
	ApplyTimeout time.Duration
	// ScoreAuth makes scoring require a token with the score scope.
	ScoreAuth bool

	// Auth checks admin (and, with ScoreAuth, scoring) bearer tokens. Nil
	// refuses every route that needs a scope.
	Auth *Auth
	// Control is the replicated registry; nil serves only what the caller
	// publishes into the Catalog itself (no admin API writes).
	Control Control
	// Artifacts stores model bytes; needed with Control.
	Artifacts Artifacts
	// Validator runs the validation gate on registrations.
	Validator Validator
	// Catalog is the node's set of loaded versions when the node builds it
	// first (package internal/node: its reconciler writes the catalog's
	// routing table); the server reports with the catalog's metrics. Nil:
	// New makes one, and the caller publishes into it directly.
	Catalog *Catalog
	// Routing is the routing table's writer when the node has a registry:
	// admin writes bring the table in line through it, and readiness waits
	// for it. Nil: the caller publishes into the Catalog itself.
	Routing Routing
	// PredLog, when set, logs every prediction (async or durable per the
	// model's policy) and serves labels, exports and lookups.
	PredLog *predlog.Log
	// Rollouts answers GET /api/v1/models/{m}/rollout (internal/node: the
	// lifecycle controller). Nil: 501.
	Rollouts RolloutReporter
	// AuditArchive, when set, holds the audit records retention trimmed
	// from the registry on this node; GET /api/v1/audit reads it for
	// records older than the registry keeps.
	AuditArchive AuditArchive
	// Cluster, when set, gives the admin API membership (/api/v1/cluster)
	// and forwards registry writes to the leader (api_cluster.go).
	Cluster Cluster
	// AdminTLS, when set, makes the admin listener serve TLS with it
	// (internal/peer.LoadTLS: this node's certificate, the cluster CA as
	// ClientCAs and its client-certificate policy); a plain HTTP request
	// to it is answered 400, saying so. Nil: plain HTTP.
	AdminTLS *tls.Config
	// Stats, when set, merges the statistics nodes push (POST
	// /api/v1/cluster/stats) and gives the drift API the cluster's view
	// (api_stats.go; internal/node sets it).
	Stats ClusterStats
	// Peers is the client this node reaches other nodes' admin APIs with
	// (forwarding, probes): their scheme, TLS and this node's own token.
	// Default: plain http, no token of its own.
	Peers *peer.Client
	// Logger receives the node's operational log. Default: discard.
	Logger *slog.Logger
	// Distribution, when set, says what this node is doing about each
	// version it has not reported ready ("fraud v2" → "fetching from n1"),
	// shown in GET /api/v1/cluster/self (internal/node's distributor).
	Distribution func() map[string]string
}

// DefaultConfig is the configuration used for zero fields.
func DefaultConfig() Config {
	var c Config
	c.fill()
	return c
}

func (c *Config) fill() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.AdminListen == "" {
		c.AdminListen = "127.0.0.1:8081"
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 4 << 20
	}
	if c.MaxModelBytes <= 0 {
		c.MaxModelBytes = 256 << 20
	}
	if c.HeaderTimeout <= 0 {
		c.HeaderTimeout = 5 * time.Second
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 10 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 60 * time.Second
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 8192
	}
	if c.MaxConnsPerIP == 0 {
		c.MaxConnsPerIP = max(c.Concurrency/2, 1)
	}
	if c.Node == "" {
		c.Node, _ = os.Hostname()
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.ApplyTimeout <= 0 {
		c.ApplyTimeout = 10 * time.Second
	}
	if c.Auth == nil {
		c.Auth = NewAuth()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Server is a node's HTTP face: the OIP scoring listener, the admin
// listener (admin API, metrics, health), and the observers the scoring path
// feeds (drift sketches, the prediction log, shadow mirrors). It runs no
// background loop of its own: the node (package internal/node) wires the
// registry, the reconciler and the lifecycle controller around it.
type Server struct {
	cfg     Config
	Catalog *Catalog
	Metrics *Metrics

	ready    atomic.Bool
	scoring  *fasthttp.Server
	admin    *fasthttp.Server
	ln, aln  *connGuard
	wg       sync.WaitGroup
	states   sync.Pool
	idPrefix [17]byte // 16 hex digits and a dash, random per process
	idSeq    atomic.Uint64
	// edgeIngestMu serialises edge ingests: "is the id in the log" and
	// writing it must be one step, or two deliveries of one batch (a
	// retry racing the first) would both write.
	edgeIngestMu sync.Mutex

	auth      *Auth
	control   Control
	artifacts Artifacts
	validator Validator
	predlog   *predlog.Log
	log       *slog.Logger
	routing   Routing
	// ctx is what work a request starts and outlives it runs under (a
	// registration's validation); Drain cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	// connHook, when set before Start, wraps every accepted connection
	// (tests count what the server reads).
	connHook func(net.Conn) net.Conn

	// shadows holds each model's mirror, comparisons and evaluation.
	shadows shadowSet

	// cluster, when set, is membership and leader forwarding (api_cluster.go).
	cluster Cluster
	forwarding
}

// New returns a server that is not yet listening.
func New(cfg Config) *Server {
	cfg.fill()
	s := &Server{cfg: cfg, auth: cfg.Auth, control: cfg.Control, artifacts: cfg.Artifacts, validator: cfg.Validator,
		predlog: cfg.PredLog, log: cfg.Logger, routing: cfg.Routing, Catalog: cfg.Catalog}
	s.cluster = cfg.Cluster
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if s.Catalog == nil {
		s.Catalog = NewCatalog(NewMetrics())
	}
	s.Metrics = s.Catalog.metrics
	if s.predlog != nil {
		s.Metrics.watchPredLog(s.predlog)
	}
	var r [8]byte
	_, _ = rand.Read(r[:])
	hex.Encode(s.idPrefix[:16], r[:])
	s.idPrefix[16] = '-'
	s.states.New = func() any { return newInferState() }
	s.scoring = s.newHTTPServer("modelgate", s.HandleScoring, cfg.MaxBodyBytes)
	s.scoring.ErrorHandler = s.transportError("the limit is " + itoa(cfg.MaxBodyBytes) + " bytes for a scoring request (serve --max-body)")
	// The admin listener hands its handler the body as a stream, right
	// after the headers: the handler checks the token and the route's own
	// limit before a byte of the body is read, and uploads go straight
	// from the socket to the artifact store.
	s.admin = s.newHTTPServer("modelgate-admin", s.handleAdmin, smallBody)
	s.admin.StreamRequestBody = true
	s.admin.ErrorHandler = s.transportError("see the route's limit in the API documentation")
	return s
}

func (s *Server) newHTTPServer(name string, h fasthttp.RequestHandler, maxBody int) *fasthttp.Server {
	srv := &fasthttp.Server{
		Name:    name,
		Handler: s.recovering(h),
		// connGuard refuses connections past Concurrency itself, as JSON
		// and counted; fasthttp's own limit (a text/plain 503, counted
		// nowhere) gets headroom so it never fires first.
		Concurrency:        2 * s.cfg.Concurrency,
		MaxRequestBodySize: maxBody,
		// fasthttp's ReadTimeout runs from a connection's start (its first
		// request) or a request's first byte until the request is read;
		// HeaderReceived replaces it with the body's own deadline once the
		// headers are in.
		ReadTimeout:  s.cfg.HeaderTimeout,
		WriteTimeout: s.cfg.WriteTimeout,
		IdleTimeout:  s.cfg.IdleTimeout,
		// fasthttp logs every connection a client botches (oversized
		// bodies, timeouts); those are answered and counted by
		// transportError, so its log would only be noise.
		Logger:          quietLogger{},
		CloseOnShutdown: true,
		// Multipart forms are parsed where an admin route wants one, with
		// that route's limits, never ahead of routing.
		DisablePreParseMultipartForm: true,
		// No handler reads ctx.Time() (scoring takes its own start), so
		// fasthttp need not read the clock for every request.
		LazyRequestTime: true,
	}
	if s.cfg.ReadTimeout != s.cfg.HeaderTimeout {
		body := fasthttp.RequestConfig{ReadTimeout: s.cfg.ReadTimeout}
		srv.HeaderReceived = func(*fasthttp.RequestHeader) fasthttp.RequestConfig { return body }
	}
	return srv
}

// Config returns the effective configuration.
func (s *Server) Config() Config { return s.cfg }

// Start listens on both addresses and serves in the background. It returns
// once both listeners are bound, so Addr and AdminAddr are usable.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("gateway: cannot listen on %s for scoring: %w", s.cfg.Listen, err)
	}
	aln, err := net.Listen("tcp", s.cfg.AdminListen)
	if err != nil {
		ln.Close()
		return fmt.Errorf("gateway: cannot listen on %s for admin: %w", s.cfg.AdminListen, err)
	}
	s.ln = newConnGuard(ln, s.cfg.Concurrency, s.cfg.MaxConnsPerIP, s.Metrics)
	s.aln = newConnGuard(aln, s.cfg.Concurrency, s.cfg.MaxConnsPerIP, s.Metrics)
	s.ln.hook, s.aln.hook = s.connHook, s.connHook
	for _, p := range []struct {
		srv *fasthttp.Server
		ln  net.Listener
	}{{s.scoring, s.ln}, {s.admin, s.adminListener()}} {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_ = p.srv.Serve(p.ln)
		}()
	}
	return nil
}

// Addr is the bound scoring address (host:port).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// AdminAddr is the bound admin address (host:port).
func (s *Server) AdminAddr() string { return s.aln.Addr().String() }

// SetReady sets what /v2/health/ready answers (together with every served
// model having a ready version). The node starts not ready: the caller sets
// it once every configured model is loaded and warmed.
func (s *Server) SetReady(v bool) { s.ready.Store(v) }

// Ready reports whether the node takes scoring traffic.
func (s *Server) Ready() bool {
	if !s.ready.Load() {
		return false
	}
	if s.predlog != nil && s.predlog.Healthy() != nil {
		return false // a failed commit: stop taking traffic rather than acknowledge it
	}
	if s.routing != nil && !onlyNotLoadedYet(s.routing.Err()) {
		return false
	}
	// A version still being fetched here is not routed: the node serves
	// the previous champion meanwhile, and that is ready, as long as every
	// model has one.
	for _, r := range s.Catalog.table().Models() {
		if r.Champion == nil {
			return false
		}
	}
	return true
}

// onlyNotLoadedYet reports whether err is nil or says only that versions
// are still on their way to this node (ErrNotLoadedYet).
func onlyNotLoadedYet(err error) bool {
	if err == nil {
		return true
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !errors.Is(e, ErrNotLoadedYet) {
				return false
			}
		}
		return true
	}
	return errors.Is(err, ErrNotLoadedYet)
}

// Shutdown stops a server that runs on its own (no node around it):
// Drain, then Close.
func (s *Server) Shutdown(ctx context.Context) error {
	return errors.Join(s.Drain(ctx), s.Close(ctx))
}

// Drain stops taking traffic: readiness turns false, the listeners close,
// in-flight requests finish, keep-alive connections close, and work that
// requests started (validations) is cancelled. It returns by ctx's
// deadline, with an error naming what did not finish. The versions stay
// loaded until Close: a node stops its loops between the two.
func (s *Server) Drain(ctx context.Context) error {
	s.SetReady(false)
	var errs []error
	for _, p := range []struct {
		name string
		srv  *fasthttp.Server
	}{{"scoring", s.scoring}, {"admin", s.admin}} {
		if err := p.srv.ShutdownWithContext(ctx); err != nil {
			errs = append(errs, fmt.Errorf("gateway: %s requests still running at the drain deadline: %w", p.name, err))
		}
	}
	s.cancel()
	if !ctxwait.Wait(ctx, s.wg.Wait) {
		errs = append(errs, fmt.Errorf("gateway: listeners still serving at the drain deadline: %w", ctx.Err()))
	}
	return errors.Join(errs...)
}

// Close releases what the scoring path used, once nothing feeds it any
// more (after Drain, and after the node's loops stopped): the shadow
// mirrors stop and every model version is retired and freed, by ctx's
// deadline.
func (s *Server) Close(ctx context.Context) error {
	s.closeShadows(ctx.Done())
	if !ctxwait.Wait(ctx, s.Catalog.Close) {
		return fmt.Errorf("gateway: model versions still running calls at the drain deadline, their sessions not freed: %w", ctx.Err())
	}
	return nil
}

// recovering turns a handler panic into a 500 and a counted metric:
// fasthttp does not recover panics, and one bad request must not take the
// node down.
func (s *Server) recovering(h fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		defer func() {
			if p := recover(); p != nil {
				s.Metrics.Panics.Inc()
				fmt.Fprintf(os.Stderr, "modelgate: recovered panic serving %s %s: %v\n", ctx.Method(), ctx.Path(), p)
				ctx.ResetBody()
				writeError(ctx, fasthttp.StatusInternalServerError, "internal error (recovered panic; see the node's log)")
			}
		}()
		h(ctx)
	}
}

// transportError answers requests fasthttp could not read; tooLarge says
// which limit a 413 hit, for the listener it serves.
func (s *Server) transportError(tooLarge string) func(*fasthttp.RequestCtx, error) {
	return func(ctx *fasthttp.RequestCtx, err error) {
		var code int
		var msg string
		var netErr net.Error
		switch {
		case errors.Is(err, fasthttp.ErrBodyTooLarge):
			code, msg = fasthttp.StatusRequestEntityTooLarge, "request body too large: "+tooLarge
			drainBody(ctx, s.cfg.ReadTimeout)
		case errors.As(err, &netErr) && netErr.Timeout():
			code, msg = fasthttp.StatusRequestTimeout, "timed out reading the request"
		default:
			code, msg = fasthttp.StatusBadRequest, "cannot read the HTTP request: "+err.Error()
		}
		s.Metrics.errorCounter("", code).Inc()
		writeError(ctx, code, msg)
	}
}

type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

// drainLimit is the most of an oversized body drainBody reads to deliver its
// 413; past it the client gets a reset instead.
const drainLimit = 64 << 20

// drainBody reads and discards the rest of an oversized request body before
// the 413 is written and the connection closed. Without it the client is
// usually still sending when fasthttp closes the socket, the kernel answers
// the unread bytes with a reset, and the client never sees the 413 (the
// lingering-close problem nginx solves the same way).
func drainBody(ctx *fasthttp.RequestCtx, timeout time.Duration) {
	n := ctx.Request.Header.ContentLength()
	conn := ctx.Conn()
	if n <= 0 || n > drainLimit || conn == nil {
		return
	}
	// fasthttp's reader may already hold up to a buffer of the body: read
	// what must still be on the wire, then whatever else arrives promptly.
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	_, _ = io.CopyN(io.Discard, conn, int64(max(n-readBufferSize, 0)))
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, _ = io.Copy(io.Discard, conn)
	_ = conn.SetReadDeadline(time.Time{})
}

// readBufferSize is fasthttp's default per-connection read buffer.
const readBufferSize = 4096

// Reconcile brings the routing table in line with the registry now and
// returns what could not be loaded (nil without a registry).
func (s *Server) Reconcile() error {
	if s.routing == nil {
		return nil
	}
	return s.routing.Reconcile()
}
