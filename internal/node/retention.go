package node

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/modelgate/modelgate/registry"
)

// AuditRetention is how much of the audit log the replicated registry
// keeps; what a trim removes lives on in each node's archive
// (internal/auditarchive). The zero value keeps everything.
type AuditRetention struct {
	// KeepLast keeps at most this many of the newest records (0: no bound
	// by count). A trim is proposed once KeepLast/10 more have gathered,
	// so the registry holds at most about 1.1 × KeepLast.
	KeepLast int
	// MaxAge removes records older than this (0: no bound by age).
	MaxAge time.Duration
	// Interval is how often the leader checks. Default 1 minute.
	Interval time.Duration
}

// On reports whether r bounds anything.
func (r AuditRetention) On() bool { return r.KeepLast > 0 || r.MaxAge > 0 }

// trimAudit is the retention loop: on the leader only (every node applies
// the trim command it proposes, so all trim identically), once an
// Interval, it proposes a trim_audit when enough records are outside the
// bounds.
func (n *Node) trimAudit(stop <-chan struct{}) {
	r := n.cfg.AuditRetention
	every := r.Interval
	if every <= 0 {
		every = time.Minute
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			n.proposeTrim(time.Now().UTC())
		}
	}
}

// proposeTrim proposes one trim_audit if this node leads and at least a
// batch of records is outside the retention bounds at now.
func (n *Node) proposeTrim(now time.Time) {
	if l, ok := n.cfg.Control.(leader); ok && !l.IsLeader() {
		return
	}
	r := n.cfg.AuditRetention
	args := &registry.TrimAuditArgs{KeepLast: r.KeepLast, MaxAge: registry.Duration(r.MaxAge)}
	var first, through uint64
	n.cfg.Control.View(func(st *registry.State) { first, through = st.TrimPlan(args, now) })
	batch := uint64(max(1, r.KeepLast/10))
	if through < first || through-first+1 < batch {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.Gateway.ApplyTimeout)
	defer cancel()
	// The key names the range planned: a retry of the same trim is
	// recognised, and two leaders in turn never trim twice by one key.
	key := "audit-trim/" + strconv.FormatUint(through, 10)
	_, err := n.cfg.Control.Apply(ctx, registry.Command{Time: now, Actor: "audit retention", IdempotencyKey: key, Args: args})
	switch {
	case err == nil:
		n.log.Info("audit records trimmed from the registry into the nodes' archives", "from_seq", first, "through_seq", through)
	case errors.Is(err, registry.ErrNothingToTrim):
	default:
		n.log.Warn("cannot trim the audit log; the registry and its snapshots keep growing until a trim succeeds", "through_seq", through, "err", err)
	}
}
