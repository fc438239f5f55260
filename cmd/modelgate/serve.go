package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/modelgate/modelgate/cluster"
	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/artifact"
	"github.com/modelgate/modelgate/internal/auditarchive"
	"github.com/modelgate/modelgate/internal/memlimit"
	modelnode "github.com/modelgate/modelgate/internal/node"
	"github.com/modelgate/modelgate/internal/ortlib"
	"github.com/modelgate/modelgate/internal/peer"
	"github.com/modelgate/modelgate/internal/validate"
	"github.com/modelgate/modelgate/predlog"
	"github.com/modelgate/modelgate/runtime"
)

func init() {
	register(command{name: "serve", summary: "run a scoring node (Open Inference Protocol over HTTP)", run: runServe})
}

// modelFlag collects repeated --model NAME=PATH.onnx flags. Versions are
// the registry's to number: a file new to the model becomes its next one.
type modelFlag []modelSpec

type modelSpec struct{ name, path string }

func (m *modelFlag) String() string {
	parts := make([]string, len(*m))
	for i, s := range *m {
		parts[i] = s.name + "=" + s.path
	}
	return strings.Join(parts, ",")
}

func (m *modelFlag) Set(v string) error {
	name, path, ok := strings.Cut(v, "=")
	if !ok || name == "" || path == "" {
		return fmt.Errorf("want NAME=PATH.onnx, got %q", v)
	}
	if strings.Contains(name, "@") {
		return fmt.Errorf("--model %s: versions are numbered by the registry; give NAME=PATH (register more versions with modelgate model register)", v)
	}
	if !validName(name) {
		return fmt.Errorf("model names are letters, digits, '.', '_' and '-' (at most 64), got %q", name)
	}
	for _, s := range *m {
		if s.name == name {
			return fmt.Errorf("model %s given twice", name)
		}
	}
	*m = append(*m, modelSpec{name, path})
	return nil
}

// namedPaths collects repeated NAME=PATH flags.
type namedPaths map[string]string

func (n namedPaths) String() string {
	parts := make([]string, 0, len(n))
	for k, v := range n {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

func (n namedPaths) Set(v string) error {
	name, path, ok := strings.Cut(v, "=")
	if !ok || name == "" || path == "" {
		return fmt.Errorf("want NAME=PATH, got %q", v)
	}
	if _, dup := n[name]; dup {
		return fmt.Errorf("%s given twice", name)
	}
	n[name] = path
	return nil
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func runServe(args []string, stdout, stderr io.Writer) error {
	started := time.Now().UTC()
	fs := newFlags("serve", stderr)
	var (
		nc       modelnode.Config
		gw       = &nc.Gateway
		rt       = &nc.Runtime
		models   modelFlag
		profiles = namedPaths{}
	)
	def := gateway.DefaultConfig()
	fs.StringVar(&gw.Listen, "listen", def.Listen, "scoring address (Open Inference Protocol)")
	fs.StringVar(&gw.AdminListen, "admin-listen", def.AdminListen, "admin and /metrics address")
	dataDir := fs.String("data-dir", "data", "node state directory (created if missing)")
	lib := fs.String("ort-lib", ortlib.Path(), "ONNX Runtime shared library, "+runtime.RequiredVersion+"x (env "+ortlib.EnvVar+"; `make ort` fetches it)")
	fs.Var(&profiles, "profile", "`NAME=PATH.json` (repeatable): the drift reference profile registered with --model NAME's file when serve registers it (modelgate profile or demo model --profile-out writes one); without it the reference is sampled from traffic over the policy's reference_period")
	fs.Var(&models, "model", "serve `NAME=PATH.onnx` (repeatable): registers the file as a new version when the model lacks it, and makes it champion only when the model has none, or when the champion was the previous --model file")
	fs.IntVar(&rt.Sessions, "sessions", 0, "ORT sessions per model version (default: one per core)")
	fs.IntVar(&rt.IntraOpThreads, "intra-op-threads", 1, "ORT threads inside one run")
	fs.IntVar(&rt.InterOpThreads, "inter-op-threads", 1, "ORT threads across graph branches")
	opt := fs.String("graph-opt", "all", "ORT graph optimisation: disable, basic, extended or all")
	fs.IntVar(&rt.MaxBatch, "max-batch", 0, "dynamic batching: most rows per ORT run (0 or 1: off, best batch-1 latency)")
	fs.DurationVar(&rt.MaxDelay, "max-batch-delay", 500*time.Microsecond, "dynamic batching: longest a call waits for its batch to fill")
	fs.IntVar(&rt.MaxQueue, "max-queue", 0, "calls that may wait for a session per model version before 503 (default 128 per session)")
	fs.DurationVar(&rt.QueueTimeout, "queue-timeout", time.Second, "longest a call waits for a session before 503")
	fs.IntVar(&gw.MaxBodyBytes, "max-body", def.MaxBodyBytes, "largest scoring request body in bytes (413 above)")
	fs.DurationVar(&gw.HeaderTimeout, "header-timeout", def.HeaderTimeout, "time to read one request's headers (from the connection's start, or the request's first byte)")
	fs.DurationVar(&gw.ReadTimeout, "read-timeout", def.ReadTimeout, "time to read one request's body, once its headers are in")
	fs.DurationVar(&gw.WriteTimeout, "write-timeout", def.WriteTimeout, "time to write one response")
	fs.DurationVar(&gw.IdleTimeout, "idle-timeout", def.IdleTimeout, "keep-alive connections idle this long are closed")
	fs.IntVar(&gw.Concurrency, "concurrency", def.Concurrency, "connections open at once per listener (503 past it)")
	fs.IntVar(&gw.MaxConnsPerIP, "max-conns-per-ip", 0, "connections one client address may hold per listener, loopback included (429 past it; 0: half of --concurrency; -1: no limit)")
	memLimit := fs.String("memory-limit", "auto", "soft limit of the Go heap: auto (GOMEMLIMIT if set, else 75% of the cgroup limit or 50% of physical memory), off, or a size such as 4GiB")
	fs.StringVar(&gw.Node, "node", "", "node name (default the hostname)")
	drain := fs.Duration("drain-timeout", 30*time.Second, "on SIGTERM, how long in-flight requests may take to finish")
	raftAddr := fs.String("raft-listen", cluster.DefaultBindAddr, "Raft address of this node (the registry's replication)")
	nodeID := fs.String("node-id", "", "Raft node ID (default the node name)")
	join := fs.String("join", "", "join the cluster of the node at this admin `ADDR` (host:port or URL; any member) instead of bootstrapping a one-voter cluster; a joining node learns every model from the registry and needs no --model")
	joinToken := fs.String("join-token", "", "admin-scoped token the join authenticates with (default env MODELGATE_TOKEN)")
	clusterToken := fs.String("cluster-token", "", "admin-scoped token this node's own requests to other members carry (artifact fetches, statistics pushes, prediction lookups); default --join-token, then env MODELGATE_TOKEN, then the first admin-scoped token of --token/--tokens (every member accepts the same tokens)")
	nonVoter := fs.Bool("non-voter", false, "with --join: join as a non-voter (an edge site: receives and serves the registry, never votes)")
	advertiseAdmin := fs.String("advertise-admin", "", "admin address other nodes forward writes to (default the bound --admin-listen address; required when that is 0.0.0.0)")
	raftCert := fs.String("raft-tls-cert", "", "mutual TLS on the Raft transport: this node's certificate (PEM; its IP address a SAN); with --raft-tls-key and --raft-tls-ca, on every member alike")
	raftKey := fs.String("raft-tls-key", "", "mutual TLS on the Raft transport: this node's private key (PEM)")
	raftCA := fs.String("raft-tls-ca", "", "mutual TLS on the Raft transport: the CA (PEM) that signs every member's certificate")
	adminCert := fs.String("admin-tls-cert", "", "mutual TLS on node-to-node HTTP: this node's certificate (PEM; its IP address a SAN, client and server auth); the admin listener serves https with it and this node presents it to every peer; with --admin-tls-key and --admin-tls-ca, on every member alike")
	adminKey := fs.String("admin-tls-key", "", "mutual TLS on node-to-node HTTP: this node's private key (PEM)")
	adminCA := fs.String("admin-tls-ca", "", "mutual TLS on node-to-node HTTP: the CA (PEM) that signs every member's certificate; peers' certificates are verified against it")
	adminClients := fs.String("admin-tls-client-certs", string(peer.Require), "with --admin-tls-cert, the admin listener's client certificates: require (every client, operators' included, needs one the CA signed: modelgate --cert/--key, curl --cert/--key) or verify-if-given (one another CA signed is refused, a client without one, e.g. curl --cacert, is let through to bearer-token auth alone)")
	forceBootstrap := fs.Bool("force-bootstrap", false, "start a new, empty registry even though <data-dir>/raft was lost (the node refuses otherwise); only the --model files are served again")
	var tokenSpecs stringsFlag
	fs.Var(&tokenSpecs, "token", "bearer token `\"NAME SCOPE[,SCOPE…] SECRET\"` (repeatable; scopes: score, register, labels, read, admin)")
	tokensFile := fs.String("tokens", "", "file of tokens, one `NAME SCOPE[,SCOPE…] SECRET` a line (mode 0600)")
	fs.BoolVar(&gw.ScoreAuth, "score-auth", false, "scoring requires a token with the score scope")
	driftOn := fs.Bool("drift", true, "monitor drift of every served version (against its registered profile, else a sample of its scored rows over the drift policy's reference_period)")
	fs.DurationVar(&nc.DriftWindow, "drift-window", time.Minute, "length of a drift window; alerts are judged once a window")
	fs.DurationVar(&nc.StatsPushInterval, "stats-push-interval", 0, "in a cluster, how often this node pushes its drift windows to the leader, which judges their merge (default: a quarter of --drift-window)")
	var secrets stringsFlag
	fs.Var(&secrets, "secret", "a secret a policy names, `NAME=VALUE` (repeatable): the retraining webhook's signing key")
	fs.StringVar(&nc.AdminURL, "admin-url", "", "the admin API's URL as webhook receivers reach it (export links; default http://<admin-listen>, https:// with --admin-tls-cert)")
	maxModel := fs.Int64("max-model-bytes", 256<<20, "largest model artifact accepted")
	valTimeout := fs.Duration("validate-timeout", validate.DefaultTimeout, "validation gate: longest a child validation may run")
	valMemory := fs.Int64("validate-max-memory", validate.DefaultMaxMemory, "validation gate: the child's address-space limit in bytes")
	logOn := fs.Bool("predlog", true, "log every prediction to <data-dir>/predictions (per model: async, durable or off, from its policy)")
	logAge := fs.Duration("predlog-max-age", 7*24*time.Hour, "prediction log retention by age (0: keep)")
	logBytes := fs.Int64("predlog-max-bytes", 10<<30, "prediction log retention by size in bytes (0: no limit)")
	logSync := fs.Duration("predlog-sync-interval", predlog.DefaultSyncInterval, "async prediction logging fsyncs at least this often: what an OS crash may lose")
	fs.IntVar(&nc.AuditRetention.KeepLast, "audit-keep", 0, "audit retention: the registry keeps the newest N audit records (0: no bound by count); older ones move to <data-dir>/audit-archive, still served by GET /api/v1/audit")
	fs.DurationVar(&nc.AuditRetention.MaxAge, "audit-max-age", 0, "audit retention: the registry keeps audit records younger than this (0: no bound by age); older ones move to <data-dir>/audit-archive")
	fs.DurationVar(&nc.AuditRetention.Interval, "audit-trim-interval", time.Minute, "audit retention: how often the leader checks the bounds")
	logNice := fs.Int("predlog-nice", predlog.DefaultBackgroundNice, "nice value (1-19) of the prediction log's background threads, so scoring wins the cores (-1: the process's priority)")
	if err := parse(fs, args); err != nil {
		return err
	}
	for name := range profiles {
		if !slices.ContainsFunc(models, func(m modelSpec) bool { return m.name == name }) {
			return usageError("--profile " + name + ": no --model " + name + " to register it with")
		}
	}
	if *join == "" && *nonVoter {
		return usageError("--non-voter needs --join: a node that bootstraps its cluster is its voter")
	}
	if *join != "" && *joinToken == "" {
		if *joinToken = os.Getenv("MODELGATE_TOKEN"); *joinToken == "" {
			return usageError("--join needs an admin-scoped token: --join-token or MODELGATE_TOKEN")
		}
	}
	if *clusterToken == "" {
		if *clusterToken = *joinToken; *clusterToken == "" {
			*clusterToken = os.Getenv("MODELGATE_TOKEN")
		}
		if *clusterToken == "" {
			// A node that bootstrapped the cluster has no join token, yet
			// fetches artifacts and pushes statistics after a failover.
			*clusterToken = firstAdminSecret(*tokensFile, tokenSpecs)
		}
	}
	switch set := btoi(*adminCert != "") + btoi(*adminKey != "") + btoi(*adminCA != ""); set {
	case 0:
	case 3:
		tc, err := peer.LoadTLS(*adminCert, *adminKey, *adminCA, peer.ClientCerts(*adminClients))
		if err != nil {
			return usageError(err.Error())
		}
		gw.AdminTLS = tc
	default:
		return usageError("mutual TLS on the admin API needs all of --admin-tls-cert, --admin-tls-key and --admin-tls-ca")
	}
	// One client for every request to a peer: https with this node's
	// certificate when the admin API is TLS (every member's is, alike).
	gw.Peers = peer.New(peer.Config{Token: *clusterToken, TLS: gw.AdminTLS})
	rt.Optimization = runtime.GraphOptimization(*opt)
	spareProcs(rt)
	if err := rt.Validate(); err != nil {
		return usageError(err.Error())
	}
	gw.Version = version
	nc.NoDrift = !*driftOn
	gw.MaxModelBytes = *maxModel
	nc.Secrets = map[string][]byte{}
	for _, kv := range secrets {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || v == "" {
			return usageError("--secret wants NAME=VALUE")
		}
		nc.Secrets[k] = []byte(v)
	}
	if r := nc.AuditRetention; r.KeepLast < 0 || r.MaxAge < 0 || r.Interval <= 0 {
		return usageError(fmt.Sprintf("--audit-keep (%d) and --audit-max-age (%s) must be >= 0 (0: no bound), --audit-trim-interval (%s) > 0", r.KeepLast, r.MaxAge, r.Interval))
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	limit, limitSource, err := memlimit.Set(*memLimit)
	if err != nil {
		return usageError("--memory-limit: " + err.Error())
	}
	reclaimStop := make(chan struct{})
	defer close(reclaimStop)
	go (&memlimit.Reclaimer{}).Run(reclaimStop)

	if err := os.MkdirAll(*dataDir, 0o750); err != nil {
		return fmt.Errorf("cannot create the data directory: %w", err)
	}
	if err := runtime.Init(*lib); err != nil {
		return err
	}
	tokens, tokenNote, err := loadTokens(*dataDir, *tokensFile, tokenSpecs)
	if err != nil {
		return err
	}
	gw.Auth = gateway.NewAuth(tokens...)
	store, err := artifact.Open(filepath.Join(*dataDir, "artifacts"), artifact.Config{MaxBytes: *maxModel, Logger: log})
	if err != nil {
		return err
	}
	defer store.Close()
	if gw.Node == "" {
		gw.Node, _ = os.Hostname()
	}
	// Every node archives what a trim removes, retention flag or not: the
	// leader's flags decide when the cluster trims.
	archive, err := auditarchive.Open(filepath.Join(*dataDir, "audit-archive"), log)
	if err != nil {
		return err
	}
	defer archive.Close()
	ccfg := cluster.DefaultConfig()
	ccfg.AuditArchive = archive
	gw.AuditArchive = archive
	// A joining node starts with no Raft state and waits for the leader to
	// add it; a restarted one finds its state and rejoins as it was.
	ccfg.NodeID, ccfg.DataDir, ccfg.BindAddr, ccfg.Bootstrap, ccfg.Logger = *nodeID, *dataDir, *raftAddr, *join == "", log
	ccfg.ForceBootstrap = *forceBootstrap
	switch set := btoi(*raftCert != "") + btoi(*raftKey != "") + btoi(*raftCA != ""); set {
	case 0:
	case 3:
		if ccfg.TLS, err = cluster.LoadMutualTLS(*raftCert, *raftKey, *raftCA); err != nil {
			return err
		}
	default:
		return usageError("Raft's mutual TLS needs all of --raft-tls-cert, --raft-tls-key and --raft-tls-ca")
	}
	if ccfg.NodeID == "" {
		ccfg.NodeID = gw.Node
	}
	cnode, err := cluster.Open(ccfg)
	if err != nil {
		return err
	}
	defer cnode.Close()
	nc.Control, nc.Artifacts, gw.Logger = cnode, store, log
	if *logOn {
		pcfg := predlog.DefaultConfig(filepath.Join(*dataDir, "predictions"))
		pcfg.MaxAge, pcfg.MaxBytes, pcfg.SyncInterval, pcfg.BackgroundNice = *logAge, *logBytes, *logSync, *logNice
		pcfg.Logger = log
		// A record holds a request's inputs, at most 4× its JSON body, and
		// its outputs: follow --max-body so accepted requests are logged.
		pcfg.MaxRecordBytes = min(max(pcfg.MaxRecordBytes, 4*gw.MaxBodyBytes), predlog.LargestMaxRecordBytes)
		if *logNice == 0 {
			pcfg.BackgroundNice = -1 // nice 0 is the process's own priority
		}
		if *logAge == 0 {
			pcfg.MaxAge = -1
		}
		if *logBytes == 0 {
			pcfg.MaxBytes = -1
		}
		plog, err := predlog.Open(pcfg)
		if err != nil {
			return err
		}
		defer plog.Close()
		gw.PredLog = plog
	}
	gw.Validator = validator(validate.Options{Timeout: *valTimeout, MaxMemory: *valMemory, ORTLib: *lib, IntraOpThreads: rt.IntraOpThreads})
	n, err := modelnode.New(nc)
	if err != nil {
		return err
	}
	if err := n.Start(); err != nil {
		return err
	}
	// An edge site sends back to the leader what each model's edge policy
	// selects (policy.edge; nothing without one), from its prediction log.
	if *nonVoter && gw.PredLog != nil {
		if err := n.StartEdge(modelnode.EdgeConfig{Log: gw.PredLog, StateDir: *dataDir}); err != nil {
			shutdown(n, *drain, log)
			return err
		}
	}
	srv := n.Server
	adminAddr := *advertiseAdmin
	if adminAddr == "" {
		adminAddr = srv.AdminAddr()
	}
	if host, _, err := net.SplitHostPort(adminAddr); err != nil || net.ParseIP(host) == nil || net.ParseIP(host).IsUnspecified() {
		shutdown(n, *drain, log)
		return usageError("the admin address other nodes forward to, " + strconv.Quote(adminAddr) + ", is not an ip:port they can dial: set --advertise-admin")
	}
	// Whenever this node leads, followers forward admin writes here.
	cnode.AdvertiseAdmin(adminAddr)
	member := memberSpec{peers: gw.Peers, join: *join, token: *joinToken, id: ccfg.NodeID, raftAddr: cnode.Addr(), adminAddr: adminAddr, voter: !*nonVoter}
	log.Info("listening", "scoring", "http://"+srv.Addr(), "admin", gw.Peers.URL(srv.AdminAddr(), ""), "raft", *raftAddr, "onnxruntime", runtime.Version(), "data_dir", *dataDir,
		"memory_limit", limit, "memory_limit_from", limitSource)
	if tokenNote != "" {
		log.Info(tokenNote)
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	loaded := make(chan error, 1)
	go func() { loaded <- startModels(srv, cnode, member, models, profiles, started, log) }()
	select {
	case err := <-loaded:
		if err != nil {
			shutdown(n, *drain, log)
			return err
		}
		srv.SetReady(true)
		log.Info("ready", "models", len(models))
	case sig := <-stop:
		log.Info("stopping before ready", "signal", sig.String())
		shutdown(n, *drain, log)
		return nil
	}
	sig := <-stop
	log.Info("draining", "signal", sig.String(), "timeout", drain.String())
	return shutdown(n, *drain, log)
}

// loadTokens gathers the configured tokens; with none, the data dir's
// generated admin token (created on first start) is the only one.
func loadTokens(dataDir, file string, specs []string) ([]gateway.Token, string, error) {
	var tokens []gateway.Token
	if file != "" {
		t, err := gateway.LoadTokens(file)
		if err != nil {
			return nil, "", err
		}
		tokens = append(tokens, t...)
	}
	for _, spec := range specs {
		t, err := gateway.ParseTokenSpec(spec)
		if err != nil {
			return nil, "", usageError("--token: " + err.Error())
		}
		tokens = append(tokens, t)
	}
	if len(tokens) > 0 {
		return tokens, "", nil
	}
	t, path, err := gateway.EnsureAdminToken(dataDir)
	if err != nil {
		return nil, "", err
	}
	return []gateway.Token{t}, "no tokens configured: the admin token is in " + path + " (export MODELGATE_TOKEN=$(cat " + path + "))", nil
}

// firstAdminSecret returns the secret of the first admin-scoped token of
// the --token specs and the --tokens file, or "". Errors are loadTokens's
// to report.
func firstAdminSecret(file string, specs []string) string {
	lines := specs
	if file != "" {
		if b, err := os.ReadFile(file); err == nil {
			lines = append(strings.Split(string(b), "\n"), specs...)
		}
	}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) == 3 && !strings.HasPrefix(f[0], "#") && slices.Contains(strings.Split(f[1], ","), "admin") {
			return f[2]
		}
	}
	return ""
}

// stringsFlag collects a repeated string flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ";") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

func shutdown(n *modelnode.Node, timeout time.Duration, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		log.Warn("shutdown did not drain cleanly", "err", err)
		return err
	}
	log.Info("stopped")
	return nil
}

// spareProcs gives the Go scheduler predlog.BackgroundThreads more Ps than
// cores, unless GOMAXPROCS is set in the environment, and sizes the ORT
// sessions by the cores. The prediction log's committer and indexer run on
// threads of their own at a lower priority, and a thread the kernel preempts
// keeps its P: without spare Ps, scoring would wait for them. Spare Ps also
// let the kernel, rather than Go's run queues, share the cores among the
// request goroutines, which keeps the closed loop's p99 low at the same
// requests/s.
func spareProcs(rt *runtime.Config) {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	cores := goruntime.GOMAXPROCS(0)
	if rt.Sessions == 0 {
		rt.Sessions = cores
	}
	goruntime.GOMAXPROCS(cores + predlog.BackgroundThreads)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
