package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/modelgate/modelgate/cluster"
	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/ctxwait"
	"github.com/modelgate/modelgate/internal/peer"
	"github.com/modelgate/modelgate/lifecycle"
	"github.com/modelgate/modelgate/predlog"
	"github.com/modelgate/modelgate/routing"
	"github.com/modelgate/modelgate/runtime"
)

// Config is what a node is built from. Zero values mean defaults.
type Config struct {
	// Gateway configures the listeners, limits, auth and prediction log.
	// Its Control, Artifacts, Catalog and Routing are the node's to set.
	Gateway gateway.Config
	// Control is the replicated registry. Required. When it can tell
	// (cluster.Node can), the lifecycle controller acts only while this
	// node leads.
	Control gateway.Control
	// Artifacts stores model bytes: what the reconciler loads.
	Artifacts gateway.Artifacts
	// Runtime configures every model version the node loads.
	Runtime runtime.Config
	// NoDrift turns off drift monitoring of the versions the registry
	// serves (on by default), and with it drift alerts.
	NoDrift bool
	// DriftWindow is the length of a drift window; the controller judges
	// once a window. Default 1 minute.
	DriftWindow time.Duration
	// Secrets holds the values that policies name by reference (the
	// retraining webhook's signing secret); never replicated or logged.
	Secrets map[string][]byte
	// AdminURL is the admin API's address as webhook receivers reach it
	// (export links). Default http:// and the admin listener's address.
	AdminURL string
	// StatsPushInterval is how often the node pushes its statistics to the
	// leader (stats.go). Default a quarter of DriftWindow.
	StatsPushInterval time.Duration
	// AuditRetention bounds the audit log the registry keeps (see
	// retention.go). Zero: keep everything.
	AuditRetention AuditRetention
}

// Node is one running modelgate node.
type Node struct {
	cfg Config
	log *slog.Logger
	// Server is the node's HTTP face (scoring, admin API, metrics).
	Server  *gateway.Server
	catalog *gateway.Catalog
	rec     *routing.Reconciler[*gateway.VersionObservers]
	ctrl    *lifecycle.Controller
	// peers reaches other members' admin APIs (Config.Gateway.Peers).
	peers *peer.Client
	// dist fetches and reports versions (nil without a cluster).
	dist *distributor
	// stats merges what nodes push while this node leads; pusher pushes
	// this node's (both nil without a cluster).
	stats  *statsStore
	pusher *statsPusher

	adminURL string // set by Start before any loop reads it
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// leader is what a Control may also tell: whether this node leads.
type leader interface{ IsLeader() bool }

// New builds a node that is not yet listening.
func New(cfg Config) (*Node, error) {
	if cfg.Control == nil {
		return nil, errors.New("node: a node needs a registry (Config.Control)")
	}
	if cfg.DriftWindow <= 0 {
		cfg.DriftWindow = time.Minute
	}
	if cfg.StatsPushInterval <= 0 {
		cfg.StatsPushInterval = cfg.DriftWindow / 4
	}
	if cfg.Gateway.ApplyTimeout <= 0 {
		cfg.Gateway.ApplyTimeout = 10 * time.Second
	}
	if cfg.Gateway.Logger == nil {
		cfg.Gateway.Logger = slog.New(slog.DiscardHandler)
	}
	n := &Node{cfg: cfg, log: cfg.Gateway.Logger, stop: make(chan struct{})}
	n.catalog = gateway.NewCatalog(gateway.NewMetrics())
	n.catalog.DriftWindow = cfg.DriftWindow
	n.catalog.DriftPolicy = n.policyDrift
	n.rec = routing.NewReconciler(n.catalog.Router(), controlSource{cfg.Control}, loader{n}, n.log)

	if cfg.Gateway.Peers == nil {
		cfg.Gateway.Peers = peer.New(peer.Config{})
	}
	n.peers = cfg.Gateway.Peers
	gw := cfg.Gateway
	gw.Control, gw.Artifacts, gw.Catalog, gw.Routing = cfg.Control, cfg.Artifacts, n.catalog, n.rec
	gw.Rollouts = rolloutReporter{n}
	// Every registry write the admin API and the controller make goes
	// through the promotion gate (gate.go).
	var registryFor lifecycle.Registry = cfg.Control
	if c, ok := cfg.Control.(*cluster.Node); ok {
		if gw.Cluster == nil {
			gw.Cluster = clusterMembership{c}
		}
		gated := gatedControl{Node: c, n: n}
		gw.Control, registryFor = gated, gated
		n.dist = newDistributor(n, c)
		gw.Distribution = n.dist.Status
		n.stats = newStatsStore(c.ID(), cfg.DriftWindow, cfg.StatsPushInterval, n.localDrift, c.IsLeader, n.log)
		n.pusher = newStatsPusher(n, c)
		gw.Stats = n.stats
	}
	n.Server = gateway.New(gw)

	ccfg := lifecycle.ControllerConfig{
		Registry: registryFor, Interval: cfg.DriftWindow, Secrets: cfg.Secrets,
		ApplyTimeout: cfg.Gateway.ApplyTimeout, Logger: n.log, ExportURL: n.exportURL,
		OnDriftAlert: func(model string, version int) { n.Server.Metrics.DriftAlert(model, version) },
	}
	if l, ok := cfg.Control.(leader); ok {
		ccfg.IsLeader = l.IsLeader
	}
	if !cfg.NoDrift {
		ccfg.Drift = championDrift{n.catalog, n.mergedDrift}
	}
	ccfg.Rollouts = rolloutSource{n.Server, n}
	ctrl, err := lifecycle.NewController(ccfg)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	n.ctrl = ctrl
	return n, nil
}

// Start binds the listeners and starts the reconciler, the loops and the
// controller. Addr and AdminAddr are usable once it returns.
func (n *Node) Start() error {
	if err := n.Server.Start(); err != nil {
		return err
	}
	n.adminURL = n.cfg.AdminURL
	if n.adminURL == "" {
		n.adminURL = n.peers.URL(n.Server.AdminAddr(), "") // https with admin TLS
	}
	n.goLoop(n.rec.Run)
	n.goLoop(n.rotateDrift)
	n.goLoop(n.syncShadows)
	n.goLoop(n.ctrl.Run)
	if n.dist != nil {
		n.goLoop(n.dist.run)
	}
	n.goLoop(n.pushStats)
	if n.cfg.AuditRetention.On() {
		n.goLoop(n.trimAudit)
	}
	return nil
}

func (n *Node) goLoop(f func(stop <-chan struct{})) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f(n.stop)
	}()
}

// Addr is the bound scoring address (host:port).
func (n *Node) Addr() string { return n.Server.Addr() }

// AdminAddr is the bound admin address (host:port).
func (n *Node) AdminAddr() string { return n.Server.AdminAddr() }

// Controller is the node's lifecycle controller.
func (n *Node) Controller() *lifecycle.Controller { return n.ctrl }

// Shutdown stops the node within ctx's deadline: the listeners drain
// (readiness false, in-flight requests finish), the loops stop and the
// controller's deliveries are cancelled, then the shadow mirrors stop and
// every version is retired and freed. What did not finish by the deadline
// is named in the error and abandoned (the process is exiting).
func (n *Node) Shutdown(ctx context.Context) error {
	errs := []error{n.Server.Drain(ctx)}
	n.stopOnce.Do(func() { close(n.stop) })
	if !ctxwait.Wait(ctx, func() {
		n.ctrl.Close()
		n.wg.Wait()
	}) {
		errs = append(errs, fmt.Errorf("node: background work (reconciler, drift, webhook deliveries) still running at the drain deadline: %w", ctx.Err()))
		return errors.Join(errs...)
	}
	errs = append(errs, n.Server.Close(ctx))
	return errors.Join(errs...)
}

// exportURL links a retraining request to the labelled rows of model
// logged since since.
func (n *Node) exportURL(model string, since time.Time) string {
	return n.adminURL + "/api/v1/models/" + url.PathEscape(model) + "/export?labelled=true&since=" +
		url.QueryEscape(string(predlog.CursorAt(since, true)))
}

// rotateDrift closes drift windows on time even when a version gets no
// traffic, so reports and alerts see empty windows as empty.
func (n *Node) rotateDrift(stop <-chan struct{}) {
	t := time.NewTicker(min(time.Second, n.cfg.DriftWindow/4))
	defer t.Stop()
	for {
		select {
		case <-t.C:
			n.catalog.RotateDrift()
			n.refreshConstraints()
		case <-stop:
			return
		}
	}
}

// shadowSyncEvery is how often the shadow mirrors are checked against the
// routing table and the policies even without a registry change.
const shadowSyncEvery = time.Second

// syncShadows keeps the mirrors in line with the routing table and the
// policies until stop closes.
func (n *Node) syncShadows(stop <-chan struct{}) {
	t := time.NewTicker(shadowSyncEvery)
	defer t.Stop()
	for {
		changed := n.cfg.Control.Changed()
		n.Server.SyncShadows()
		select {
		case <-t.C:
		case <-changed:
		case <-stop:
			return
		}
	}
}

// championDrift is the catalog as the controller's DriftSource: on the
// leader of a cluster, each champion's windows merged over every node that
// pushes them (stats.go), else this node's own.
type championDrift struct {
	c      *gateway.Catalog
	merged func(model string, version int) *drift.Windows
}

func (d championDrift) ChampionDrift() []lifecycle.ChampionDrift {
	var out []lifecycle.ChampionDrift
	d.c.EachChampionDrift(func(model string, version int, w *drift.Windows) {
		if m := d.merged(model, version); m != nil {
			w = m
		}
		out = append(out, lifecycle.ChampionDrift{Model: model, Version: version, Windows: w})
	})
	return out
}
