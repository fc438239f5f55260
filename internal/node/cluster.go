package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/modelgate/modelgate/cluster"
	"github.com/modelgate/modelgate/gateway"
)

// clusterMembership is a cluster.Node as the gateway's Cluster: the
// gateway knows no Raft, so membership errors are translated into its own
// (400, 409, 404); the rest (*cluster.UnavailableError) is its 503.
type clusterMembership struct{ *cluster.Node }

var _ gateway.Cluster = clusterMembership{}

func (c clusterMembership) NodeID() string { return c.ID() }

func (c clusterMembership) Members() ([]gateway.ClusterMember, error) {
	ms, err := c.Node.Members()
	if err != nil {
		return nil, err
	}
	out := make([]gateway.ClusterMember, len(ms))
	for i, m := range ms {
		out[i] = gateway.ClusterMember{ID: m.ID, RaftAddr: m.RaftAddr, AdminAddr: m.AdminAddr, Voter: m.Voter}
	}
	return out, nil
}

func (c clusterMembership) Join(ctx context.Context, m gateway.ClusterMember) error {
	return membershipError(c.Node.Join(ctx, cluster.Member{ID: m.ID, RaftAddr: m.RaftAddr, AdminAddr: m.AdminAddr, Voter: m.Voter}))
}

func (c clusterMembership) Remove(ctx context.Context, id string) error {
	return membershipError(c.Node.Remove(ctx, id))
}

func membershipError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, cluster.ErrInvalidMember):
		return fmt.Errorf("%w: %w", gateway.ErrBadMember, err)
	case errors.Is(err, cluster.ErrMemberConflict):
		return fmt.Errorf("%w: %w", gateway.ErrMemberConflict, err)
	case errors.Is(err, cluster.ErrNotMember):
		return fmt.Errorf("%w: %w", gateway.ErrNoSuchMember, err)
	}
	return err
}
