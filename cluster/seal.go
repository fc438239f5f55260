package cluster

import (
	"time"

	"github.com/hashicorp/raft"
)

// A follower persists the commit index only with the entries it appends
// after learning it (commitindex.go), so the last write of a burst would be
// restored after a cut-off restart only once another entry followed it.
// Registry writes are rare and their last one is the one that matters (the
// promotion, the new policy), so the leader follows each burst with a
// barrier entry: it carries the burst's commit index to every follower's
// disk within a heartbeat or two.

// sealDelay coalesces a burst of writes into one barrier.
const sealDelay = 50 * time.Millisecond

// sealSoon asks for a barrier after the write just committed.
func (n *Node) sealSoon() {
	select {
	case n.sealCh <- struct{}{}:
	default: // one is pending: it covers this write too
	}
}

// seal appends the barriers sealSoon asks for until the node stops. It does
// not hold Close up: a barrier pending at shutdown fails at once.
func (n *Node) seal() {
	for {
		select {
		case <-n.sealCh:
		case <-n.stop:
			return
		}
		select {
		case <-time.After(sealDelay):
		case <-n.stop:
			return
		}
		if n.raft.State() != raft.Leader {
			continue
		}
		if err := n.raft.Barrier(n.cfg.ApplyTimeout).Error(); err != nil && n.raft.State() == raft.Leader {
			n.log.Debug("cluster: the barrier after a write failed; the next write's carries its commit index", "err", err)
		}
	}
}
