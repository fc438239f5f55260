package cluster

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
)

// Defaults. The Raft timings are hashicorp/raft's own defaults, made for a
// LAN; tests use a few tens of milliseconds.
const (
	DefaultNodeID             = "node1"
	DefaultDataDir            = "data"
	DefaultBindAddr           = "127.0.0.1:8082"
	DefaultApplyTimeout       = 5 * time.Second
	DefaultSnapshotInterval   = 120 * time.Second
	DefaultSnapshotThreshold  = 8192
	DefaultTrailingLogs       = 10240
	DefaultHeartbeatTimeout   = 1000 * time.Millisecond
	DefaultElectionTimeout    = 1000 * time.Millisecond
	DefaultLeaderLeaseTimeout = 500 * time.Millisecond
	DefaultCommitTimeout      = 50 * time.Millisecond

	// SnapshotsRetained is how many snapshots a node keeps on disk.
	SnapshotsRetained = 2
)

// Config is a node's configuration. Zero fields take their defaults (see
// DefaultConfig), except NodeID, DataDir and BindAddr, which must be set.
type Config struct {
	// NodeID names the node in the cluster, forever: letters, digits, '.',
	// '_' and '-', at most 128 bytes. Raft's configuration refers to nodes by
	// it; it must not change across restarts of the same data dir.
	NodeID string
	// DataDir is the node's directory. The Raft log and stable store live in
	// DataDir/raft/log (Pebble), snapshots in DataDir/raft/snapshots.
	DataDir string
	// BindAddr is the ip:port the Raft TCP transport listens on, e.g.
	// 127.0.0.1:8082. Port 0 picks a free port (tests): the address then
	// changes on every start, which only a single-node cluster tolerates.
	BindAddr string
	// AdvertiseAddr is the ip:port other nodes dial to reach this one. ""
	// means BindAddr, which must then be a specific (not 0.0.0.0) address.
	AdvertiseAddr string
	// Bootstrap makes a node that starts with no Raft state (no log, no term,
	// no snapshot) create the cluster: a one-voter cluster of itself, or the
	// voters of InitialCluster. A node with existing state ignores it. A node
	// that starts empty without Bootstrap waits to be added by a leader.
	Bootstrap bool
	// ForceBootstrap lets Bootstrap create a new cluster in a data dir that
	// has been a cluster member before (its marker file, cluster.json, is
	// there) but whose Raft state is gone. Without it Open refuses with
	// ErrLostRaftState: a new, empty cluster would report ready and serve
	// nothing of what the registry held. Set it only to give that registry up.
	ForceBootstrap bool
	// InitialCluster lists the voters of a cluster bootstrapped all at once:
	// every listed node starts with Bootstrap and the same list, which must
	// include this node (with its advertised address). Empty: this node alone.
	InitialCluster []Peer

	// ApplyTimeout bounds Node.Apply when its context has no earlier
	// deadline: a write that cannot commit (no leader, lost quorum) fails
	// after this long instead of hanging an admin call. Default 5s.
	ApplyTimeout time.Duration
	// SnapshotInterval is how often Raft checks whether to snapshot (it
	// staggers between 1x and 2x); SnapshotThreshold is how many new log
	// entries it takes; TrailingLogs is how many entries are kept after a
	// snapshot, for followers that are a little behind.
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	TrailingLogs      uint64

	// Raft timings (hashicorp/raft Config): how long without a leader's
	// contact before an election, how long an election may take, how long a
	// leader keeps leading without hearing from a quorum, how long before a
	// leader sends entries without new ones. LeaderLeaseTimeout must not
	// exceed HeartbeatTimeout; ElectionTimeout must not be below it.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration

	// TLS, when set, makes the Raft transport mutual TLS (tls.go): it must
	// hold this node's certificate, the CA to verify members it dials
	// (RootCAs) and require verified certificates of members dialing it
	// (ClientCAs, RequireAndVerifyClientCert) — LoadMutualTLS builds one.
	// Every member of a cluster must use it alike. nil: plain TCP, for a
	// private network.
	TLS *tls.Config

	// Fault, when set, puts the Raft transport under a switch that cuts
	// the node off its cluster (fault.go): for tests of partitions on
	// real TCP. nil in production.
	Fault *Fault

	// Logger receives the node's and Raft's log lines. nil: slog.Default().
	Logger *slog.Logger

	// AuditArchive, when set, keeps the audit records trim_audit removes
	// from the registry (see FSM.SetArchive). nil: they are dropped.
	AuditArchive AuditArchive
}

// Peer is a Raft voter: its node ID and the address it advertises.
type Peer struct {
	ID   string
	Addr string
}

// DefaultConfig returns the configuration of a single node in ./data that
// bootstraps its own one-voter cluster on 127.0.0.1:8082.
func DefaultConfig() Config {
	c := Config{NodeID: DefaultNodeID, DataDir: DefaultDataDir, BindAddr: DefaultBindAddr, Bootstrap: true}
	c.setDefaults()
	return c
}

// setDefaults fills in the zero fields that have defaults.
func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.ApplyTimeout, DefaultApplyTimeout)
	def(&c.SnapshotInterval, DefaultSnapshotInterval)
	def(&c.HeartbeatTimeout, DefaultHeartbeatTimeout)
	def(&c.ElectionTimeout, DefaultElectionTimeout)
	def(&c.LeaderLeaseTimeout, DefaultLeaderLeaseTimeout)
	def(&c.CommitTimeout, DefaultCommitTimeout)
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = DefaultSnapshotThreshold
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = DefaultTrailingLogs
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate checks c (with defaults applied to its zero fields) and returns an
// error wrapping ErrInvalidConfig that names the first bad field and its
// value.
func (c Config) Validate() error {
	c.setDefaults()
	bad := func(field string, value any, rule string) error {
		return fmt.Errorf("%w: %s (%v) %s", ErrInvalidConfig, field, value, rule)
	}
	if err := checkNodeID(c.NodeID); err != "" {
		return bad("NodeID", strconv.Quote(c.NodeID), err)
	}
	if c.DataDir == "" {
		return bad("DataDir", `""`, "must be set: the node keeps its Raft log and snapshots there")
	}
	if err := checkAddr(c.BindAddr, true); err != "" {
		return bad("BindAddr", strconv.Quote(c.BindAddr), err)
	}
	if c.AdvertiseAddr != "" {
		if err := checkAddr(c.AdvertiseAddr, false); err != "" {
			return bad("AdvertiseAddr", strconv.Quote(c.AdvertiseAddr), err)
		}
	} else if host, _, _ := net.SplitHostPort(c.BindAddr); net.ParseIP(host).IsUnspecified() {
		return bad("BindAddr", strconv.Quote(c.BindAddr), "is not an address other nodes can dial: set AdvertiseAddr")
	}
	if c.TLS != nil {
		if err := checkTLS(c.TLS); err != "" {
			return bad("TLS", "(a *tls.Config)", err)
		}
	}
	if len(c.InitialCluster) > 0 {
		if !c.Bootstrap {
			return bad("InitialCluster", len(c.InitialCluster), "voters are listed but Bootstrap is false")
		}
		self, ids, addrs := false, map[string]bool{}, map[string]bool{}
		for i, p := range c.InitialCluster {
			field := fmt.Sprintf("InitialCluster[%d]", i)
			if err := checkNodeID(p.ID); err != "" {
				return bad(field+".ID", strconv.Quote(p.ID), err)
			}
			if err := checkAddr(p.Addr, false); err != "" {
				return bad(field+".Addr", strconv.Quote(p.Addr), err)
			}
			if ids[p.ID] || addrs[p.Addr] {
				return bad(field, p, "repeats an ID or an address")
			}
			ids[p.ID], addrs[p.Addr] = true, true
			if p.ID == c.NodeID {
				self = true
				if adv := c.advertise(); p.Addr != adv {
					return bad(field+".Addr", strconv.Quote(p.Addr), "differs from this node's advertised address "+strconv.Quote(adv))
				}
			}
		}
		if !self {
			return bad("InitialCluster", c.InitialCluster, "does not list this node ("+c.NodeID+")")
		}
	}
	positive := []struct {
		name string
		d    time.Duration
		min  time.Duration
	}{
		{"ApplyTimeout", c.ApplyTimeout, time.Millisecond},
		{"SnapshotInterval", c.SnapshotInterval, 5 * time.Millisecond},
		{"HeartbeatTimeout", c.HeartbeatTimeout, 5 * time.Millisecond},
		{"ElectionTimeout", c.ElectionTimeout, 5 * time.Millisecond},
		{"LeaderLeaseTimeout", c.LeaderLeaseTimeout, 5 * time.Millisecond},
		{"CommitTimeout", c.CommitTimeout, time.Millisecond},
	}
	for _, p := range positive {
		if p.d < p.min {
			return bad(p.name, p.d, "must be at least "+p.min.String())
		}
	}
	if c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		return bad("LeaderLeaseTimeout", c.LeaderLeaseTimeout, "cannot be larger than HeartbeatTimeout ("+c.HeartbeatTimeout.String()+")")
	}
	if c.ElectionTimeout < c.HeartbeatTimeout {
		return bad("ElectionTimeout", c.ElectionTimeout, "cannot be smaller than HeartbeatTimeout ("+c.HeartbeatTimeout.String()+")")
	}
	return nil
}

// advertise is the address this node gives other nodes (before the
// transport resolves port 0).
func (c *Config) advertise() string {
	if c.AdvertiseAddr != "" {
		return c.AdvertiseAddr
	}
	return c.BindAddr
}

// raftConfig translates c (defaults applied) into hashicorp/raft's Config.
func (c *Config) raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.NodeID)
	rc.HeartbeatTimeout = c.HeartbeatTimeout
	rc.ElectionTimeout = c.ElectionTimeout
	rc.LeaderLeaseTimeout = c.LeaderLeaseTimeout
	rc.CommitTimeout = c.CommitTimeout
	rc.SnapshotInterval = c.SnapshotInterval
	rc.SnapshotThreshold = c.SnapshotThreshold
	rc.TrailingLogs = c.TrailingLogs
	rc.Logger = newHCLog(c.Logger, "raft")
	// A removed node stops instead of forming a cluster of its own.
	rc.ShutdownOnRemove = true
	// raft persists the commit index (commitindex.go) only with this on;
	// Open replays what it names before NewRaft (replay.go).
	rc.RestoreCommittedLogs = true
	return rc
}

func checkNodeID(id string) string {
	if id == "" {
		return "must be set"
	}
	if len(id) > 128 {
		return "is longer than 128 bytes"
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return "may hold only letters, digits, '.', '_' and '-'"
		}
	}
	return ""
}

// checkAddr checks an ip:port; port 0 only when bind is set.
func checkAddr(addr string, bind bool) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "must be ip:port, e.g. 127.0.0.1:8082"
	}
	if net.ParseIP(host) == nil {
		return "must name an IP address, not a host name"
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "has a bad port"
	}
	if p == 0 && !bind {
		return "needs a port other than 0"
	}
	return ""
}
