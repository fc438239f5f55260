package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/modelgate/modelgate/cluster"
	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/peer"
	"github.com/modelgate/modelgate/registry"
)

// How serve brings a node's models up once it listens: the join, the
// registry's leader, crash-stranded versions, the --model files, and the
// wait until the node serves what the registry routes to.

// startModels waits for the registry, judges the versions a crash left
// registered without a verdict (registered before started), seeds it with
// every --model file
// (once per digest: a restart registers nothing new; a champion chosen
// through the registry is never replaced, see gateway.Server.ServeFile),
// and waits until the node serves everything the registry says it should.
func startModels(srv *gateway.Server, node *cluster.Node, member memberSpec, models modelFlag, profiles namedPaths, started time.Time, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A node restarted with its Raft state is a member already: when the
	// others cannot be reached (an edge site on a cut link, a partition)
	// it serves the registry as last committed here rather than stay down.
	member0 := isMember(node)
	if member.join != "" {
		// Every start asks again: joining as before changes nothing, and
		// a changed admin address is recorded.
		jctx, jcancel := ctx, context.CancelFunc(func() {})
		if member0 {
			jctx, jcancel = context.WithTimeout(ctx, restartedMemberWait)
		}
		err := joinCluster(jctx, member.peers, member.join, member.token, member.id, member.raftAddr, member.adminAddr, member.voter)
		jcancel()
		switch {
		case err == nil:
			log.Info("joined the cluster", "through", member.join, "id", member.id, "raft", member.raftAddr, "admin", member.adminAddr, "voter", member.voter)
		case member0:
			log.Warn("cannot reach the cluster to join again; this node is a member already and goes on", "through", member.join, "err", err)
		default:
			return err
		}
	}
	lctx, lcancel := ctx, context.CancelFunc(func() {})
	if member0 {
		lctx, lcancel = context.WithTimeout(ctx, restartedMemberWait)
	}
	err := node.WaitLeader(lctx)
	lcancel()
	if err != nil && member0 {
		log.Warn("no leader reachable: serving the registry as last committed on this node; reads may be stale and writes fail until a leader is reachable again, when it catches up on its own",
			"waited", restartedMemberWait, "err", err)
		return serveCommitted(ctx, srv, node, models, log)
	}
	if err != nil {
		return fmt.Errorf("the registry has no leader: %w", err)
	}
	// A follower that was down a while may wait for its leader's
	// replication backoff (up to about 40 s) before its first entries.
	catchUp, cancelCatchUp := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancelCatchUp()
	if err := node.CatchUp(catchUp); err != nil {
		return fmt.Errorf("the registry cannot catch up: %w", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Each validation is bounded by the gate's own timeout, not the start's.
	// Only the leader judges: a follower's verdict could not be committed.
	for _, r := range recoverStranded(srv, node, started) {
		switch r.Stage {
		case registry.StageRegistered:
			log.Warn("a version left registered by a crash could not be judged; it stays registered until the next start", "model", r.Model, "version", r.Version, "reason", r.Reason)
		case registry.StageFailed:
			log.Warn("a version left registered by a crash is now failed", "model", r.Model, "version", r.Version, "reason", r.Reason)
		default:
			log.Info("a version left registered by a crash passed validation", "model", r.Model, "version", r.Version, "stage", r.Stage)
		}
	}
	for _, m := range models {
		b, err := os.ReadFile(m.path)
		if err != nil {
			return fmt.Errorf("model %s: %w", m.name, err)
		}
		var prof []byte
		if path := profiles[m.name]; path != "" {
			if prof, err = os.ReadFile(path); err != nil {
				return fmt.Errorf("--profile %s: %w", m.name, err)
			}
			if _, err := drift.ParseProfile(prof); err != nil {
				return fmt.Errorf("--profile %s=%s: not a drift reference profile: %w", m.name, path, err)
			}
		}
		start := time.Now()
		seed, err := srv.ServeFile(ctx, m.name, b, prof, "modelgate serve")
		if err != nil {
			return fmt.Errorf("model %s from %s: %w", m.name, filepath.Clean(m.path), err)
		}
		took := time.Since(start).Round(time.Millisecond).String()
		if seed.Kept != "" {
			log.Warn("--model file is not the champion", "model", m.name, "version", seed.Version, "champion", seed.Champion, "path", m.path, "why", seed.Kept, "took", took)
			continue
		}
		log.Info("serving", "model", m.name, "version", seed.Version, "registered", seed.Registered, "path", m.path, "took", took)
	}
	return waitServing(ctx, srv, member.join != "", log)
}

// restartedMemberWait bounds how long a restarted member waits for the
// others (its join, a leader) before it serves what it has committed.
const restartedMemberWait = 10 * time.Second

// isMember reports whether node's Raft state names it a member: a restart
// of a node that had joined or bootstrapped, not a first start.
func isMember(node *cluster.Node) bool {
	ms, err := node.Members()
	if err != nil {
		return false
	}
	return slices.ContainsFunc(ms, func(m cluster.Member) bool { return m.ID == node.ID() })
}

// serveCommitted starts a member with no leader reachable on what its
// registry holds: --model files already registered are served like every
// routed version; one the registry lacks cannot be registered without a
// leader and is named. Versions it cannot load keep it not ready, with the
// reason in /api/v1/cluster/self.
func serveCommitted(ctx context.Context, srv *gateway.Server, node *cluster.Node, models modelFlag, log *slog.Logger) error {
	for _, m := range models {
		b, err := os.ReadFile(m.path)
		if err != nil {
			return fmt.Errorf("model %s: %w", m.name, err)
		}
		digest := sha256.Sum256(b)
		known := false
		node.View(func(st *registry.State) {
			if mm, err := st.Model(m.name); err == nil {
				known = slices.ContainsFunc(mm.Versions, func(v registry.Version) bool { return v.Digest == hex.EncodeToString(digest[:]) })
			}
		})
		if !known {
			log.Warn("--model file is not in the registry and cannot be registered without a leader; restart once the cluster is reachable", "model", m.name, "path", m.path)
		}
	}
	return waitServing(ctx, srv, true, log)
}

// waitServing waits, within ctx, until the node serves every version the
// registry routes to. A member (tolerant) that cannot by then starts
// anyway: it serves what it can, what it cannot keeps it not ready with
// the reason in /api/v1/cluster/self, and the reconciler and the
// distributor keep trying. A lone node fails its start instead.
func waitServing(ctx context.Context, srv *gateway.Server, tolerant bool, log *slog.Logger) error {
	for {
		err := srv.Reconcile()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			if !tolerant {
				return err
			}
			log.Error("not ready: this node cannot serve every version the registry routes to; the others are served", "err", err)
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// memberSpec is how this node takes part in its cluster.
type memberSpec struct {
	peers                                *peer.Client
	join, token, id, raftAddr, adminAddr string
	voter                                bool
}

// recoverStranded judges crash-stranded versions on the leader; a
// follower leaves them to it.
func recoverStranded(srv *gateway.Server, node *cluster.Node, started time.Time) []gateway.Stranded {
	if !node.IsLeader() {
		return nil
	}
	return srv.RecoverStranded(context.Background(), started, "modelgate serve (recovery)")
}
