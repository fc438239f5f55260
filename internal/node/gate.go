package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/modelgate/modelgate/cluster"
	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/registry"
)

// The promotion gate. A move that makes a version the canary or the
// champion — the admin API's stage, promote and approve, and the lifecycle
// controller's rollouts, which all commit through the Control this node
// hands out — is checked here, in one place, before it is proposed: every
// voter and every live non-voter must have reported the version ready
// (require_ready "all", the default), or a majority of the voters and
// every live non-voter ("quorum"). Writes reach the leader (followers
// forward them), so the leader checks. A non-voter is live when it answers
// GET /api/v1/cluster/self within readyProbeTimeout: an edge site cut off
// does not hold a rollout back, and it catches up when it returns (it
// fetches and loads before it routes). A one-member cluster passes: it
// validated what it stored itself. The first champion of a model is not
// gated: it replaces nothing, and each node routes to it once loaded.
//
// The check reads readiness outside Raft, so a node that joins between
// the check and the commit is not waited for; it routes the version once
// it has fetched and loaded it, as a late joiner does.

// readyProbeTimeout bounds asking a non-voter whether it is live.
const readyProbeTimeout = time.Second

// gatedControl is the node's registry with the promotion gate on Apply.
type gatedControl struct {
	*cluster.Node
	n *Node
}

// Apply checks a move to canary or champion against the model's
// distribution policy, then commits cmd.
func (g gatedControl) Apply(ctx context.Context, cmd registry.Command) (registry.Result, error) {
	if err := g.n.checkReady(ctx, g.Node, cmd); err != nil {
		return registry.Result{}, err
	}
	return g.Node.Apply(ctx, cmd)
}

// gatedMove returns the version cmd would make the canary or the
// champion, and what the move is called, or ok false.
func gatedMove(st *registry.State, cmd registry.Command) (model string, version int, action string, ok bool) {
	switch a := cmd.Args.(type) {
	case *registry.PromoteArgs:
		return a.Model, a.Version, "promote", true
	case *registry.SetStageArgs:
		if a.Stage != registry.StageCanary {
			return "", 0, "", false
		}
		if v, err := st.Version(a.Model, a.Version); err == nil && v.Stage == registry.StageCanary {
			return "", 0, "", false // a new weight for the canary it already is
		}
		return a.Model, a.Version, "canary", true
	case *registry.ApproveArgs:
		v, err := st.Version(a.Model, a.Version)
		if err != nil || v.Pending == nil || (v.Pending.To != registry.StageCanary && v.Pending.To != registry.StageChampion) {
			return "", 0, "", false
		}
		return a.Model, a.Version, "approve", true
	}
	return "", 0, "", false
}

// checkReady refuses cmd with a *gateway.NotReadyError when it makes a
// version the canary or the champion before the nodes its model's policy
// requires are ready. Anything the gate cannot judge (an unknown version)
// is left to the registry to refuse.
func (n *Node) checkReady(ctx context.Context, c *cluster.Node, cmd registry.Command) error {
	var (
		model, action string
		version       int
		gated         bool
		v             registry.Version
		require       string
	)
	n.cfg.Control.View(func(st *registry.State) {
		if model, version, action, gated = gatedMove(st, cmd); !gated {
			return
		}
		var err error
		if v, err = st.Version(model, version); err != nil {
			gated = false
			return
		}
		if p, err := st.Policy(model); err == nil {
			require = p.EffectiveRequireReady()
		}
	})
	if !gated {
		return nil
	}
	members, err := c.Members()
	if err != nil || len(members) < 2 {
		return nil // alone, or membership unknown: the registry decides
	}
	var (
		mu       sync.Mutex
		notReady []gateway.NotReadyNode
		voters   int
		ready    int
		wg       sync.WaitGroup
	)
	for _, m := range members {
		if m.Voter {
			voters++
		}
		if v.IsReadyOn(m.ID) {
			if m.Voter {
				ready++
			}
			continue
		}
		why := ""
		if r := v.FailedReason(m.ID); r != "" {
			why = "validation failed on node " + m.ID + ": " + r
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, err := n.probeDistribution(ctx, m.AdminAddr, model, version)
			switch {
			case err != nil && !m.Voter:
				return // a non-voter that does not answer is not live: not waited for
			case why != "":
			case err != nil:
				why = "unreachable: " + err.Error()
			case status != "":
				why = "not ready yet: " + status
			default:
				why = "not ready yet: fetching or loading"
			}
			mu.Lock()
			notReady = append(notReady, gateway.NotReadyNode{Node: m.ID, Voter: m.Voter, Why: why})
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(notReady) == 0 {
		return nil
	}
	if require == registry.RequireReadyQuorum && ready > voters/2 {
		nonVoterMissing := false
		for _, x := range notReady {
			nonVoterMissing = nonVoterMissing || !x.Voter
		}
		if !nonVoterMissing {
			return nil
		}
	}
	sortNotReady(notReady)
	return &gateway.NotReadyError{Model: model, Version: version, Action: action, Require: require, Nodes: notReady}
}

func sortNotReady(ns []gateway.NotReadyNode) {
	for i := 1; i < len(ns); i++ {
		for j := i; j > 0 && ns[j].Node < ns[j-1].Node; j-- {
			ns[j], ns[j-1] = ns[j-1], ns[j]
		}
	}
}

// probeDistribution asks a member what it is doing about a version (its
// GET /api/v1/cluster/self): "" when it says nothing, an error when it
// does not answer within readyProbeTimeout.
func (n *Node) probeDistribution(ctx context.Context, admin, model string, version int) (string, error) {
	if admin == "" {
		return "", fmt.Errorf("no admin address announced")
	}
	ctx, cancel := context.WithTimeout(ctx, readyProbeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", n.peers.URL(admin, "/api/v1/cluster/self"), nil)
	if err != nil {
		return "", err
	}
	resp, err := n.peers.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /api/v1/cluster/self answered %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	var rep struct {
		Distribution map[string]string `json:"distribution"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return "", fmt.Errorf("GET /api/v1/cluster/self: %w", err)
	}
	return rep.Distribution[fmt.Sprintf("%s v%d", model, version)], nil
}
