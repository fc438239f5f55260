package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/modelgate/modelgate/cluster"
	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/registry"
)

// Artifact distribution, the node's side. The node that received an
// upload stored the bytes and registered the version naming itself the
// holder; its validation gate's pass made it ready (registry/ready.go).
// Every other node runs the distributor: for each version the registry
// may route (validated, shadow, canary, champion, and the warm standby) it
// fetches the bytes from a holder over GET /api/v1/artifacts/{digest}
// straight into the artifact store (PutExpect: verified against the
// digest, nothing kept when they do not match or the transfer is cut),
// runs its own validation gate on them and reports its verdict with
// report_ready through the leader. A failed fetch moves on to the next
// holder, and a round in which every holder failed backs off. Loading and
// warming stay the reconciler's: it loads a version before any routing
// table names it, so no node routes to a version it has not loaded, and
// (loader.go) only once this node's own report says its gate passed it.
// A node that reported a version ready and lost its bytes since (a new
// disk under the same node ID) fetches them again without a new report.
//
// Nothing is distributed while the node is the cluster's only member:
// it validated what it stored itself, and `make run` stays as it was.

// Distribution timing.
const (
	distributeEvery = time.Second
	fetchBackoffMin = 250 * time.Millisecond
	fetchBackoffMax = 30 * time.Second
	// fetchTimeout bounds one transfer: 50 MB over a poor link.
	fetchTimeout = 10 * time.Minute
	// gateTimeout bounds the validation gate on a fetched version, as on
	// the node that registered it.
	gateTimeout = 5 * time.Minute
)

// fetchStore is the artifact store as the distributor uses it
// (*artifact.Store).
type fetchStore interface {
	Has(digest string) (bool, error)
	PutExpect(r io.Reader, digest string) (int64, error)
	Get(digest string) ([]byte, error)
}

// distributor fetches, verifies, validates and reports versions.
type distributor struct {
	n *Node
	c *cluster.Node

	mu     sync.Mutex
	status map[string]string    // "model vN" → what this node is doing about it
	tries  map[string]*fetchTry // by digest
}

type fetchTry struct {
	failures int
	next     time.Time
}

func pendingKey(p registry.Pending) string { return p.Model + " v" + strconv.Itoa(p.Version) }

func newDistributor(n *Node, c *cluster.Node) *distributor {
	return &distributor{n: n, c: c, status: map[string]string{}, tries: map[string]*fetchTry{}}
}

// Status is what this node is doing about each version it has not
// reported yet (GET /api/v1/cluster/self's "distribution").
func (d *distributor) Status() map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.status) == 0 {
		return nil
	}
	out := make(map[string]string, len(d.status))
	for k, v := range d.status {
		out[k] = v
	}
	return out
}

func (d *distributor) setStatus(p registry.Pending, s string) {
	d.mu.Lock()
	if s == "" {
		delete(d.status, pendingKey(p))
	} else {
		d.status[pendingKey(p)] = s
	}
	d.mu.Unlock()
}

// forget drops the status and backoff of versions no longer pending
// (reported, deleted, retired).
func (d *distributor) forget(pending []registry.Pending) {
	keys, digests := map[string]bool{}, map[string]bool{}
	for _, p := range pending {
		keys[pendingKey(p)], digests[p.Digest] = true, true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for k := range d.status {
		if !keys[k] {
			delete(d.status, k)
		}
	}
	for k := range d.tries {
		if !digests[k] {
			delete(d.tries, k)
		}
	}
}

// run distributes until stop closes: at every registry change and every
// distributeEvery (for backoffs and members that came back).
func (d *distributor) run(stop <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-stop
		cancel()
	}()
	t := time.NewTicker(distributeEvery)
	defer t.Stop()
	for {
		changed := d.n.cfg.Control.Changed()
		d.pass(ctx)
		select {
		case <-t.C:
		case <-changed:
		case <-stop:
			return
		}
	}
}

// pass handles every version that is due, one at a time: at most one
// transfer and one gate run at once, whatever the number of versions.
func (d *distributor) pass(ctx context.Context) {
	members, err := d.c.Members()
	if err != nil || len(members) < 2 {
		return
	}
	self := d.c.ID()
	var pending []registry.Pending
	d.n.cfg.Control.View(func(st *registry.State) { pending = st.PendingOn(self) })
	d.forget(pending)
	for _, p := range pending {
		if p.Ready && d.has(p.Digest) {
			continue // the usual case: nothing to do
		}
		if ctx.Err() != nil {
			return
		}
		d.mu.Lock()
		tr := d.tries[p.Digest]
		d.mu.Unlock()
		if tr != nil && time.Now().Before(tr.next) {
			continue
		}
		if err := d.handle(ctx, p, self, members); err != nil {
			if ctx.Err() != nil {
				return
			}
			d.mu.Lock()
			if tr == nil {
				tr = &fetchTry{}
				d.tries[p.Digest] = tr
			}
			tr.failures++
			wait := min(fetchBackoffMin<<min(tr.failures-1, 16), fetchBackoffMax)
			tr.next = time.Now().Add(wait)
			d.mu.Unlock()
			d.setStatus(p, err.Error()+"; retrying in "+wait.String())
			d.n.log.Warn("cannot make this node ready for a version; retrying", "model", p.Model, "version", p.Version, "in", wait, "err", err)
			continue
		}
		d.mu.Lock()
		delete(d.tries, p.Digest)
		d.mu.Unlock()
		d.setStatus(p, "")
	}
}

// has reports whether the store holds digest (false when it cannot tell:
// handle then asks again and says why).
func (d *distributor) has(digest string) bool {
	st, ok := d.n.cfg.Artifacts.(fetchStore)
	if !ok {
		return false
	}
	h, err := st.Has(digest)
	return err == nil && h
}

// handle brings one version to a verdict on this node and reports it.
// An error means no verdict yet (retried with backoff).
func (d *distributor) handle(ctx context.Context, w registry.Pending, self string, members []cluster.Member) error {
	store, ok := d.n.cfg.Artifacts.(fetchStore)
	if !ok {
		return errors.New("this node's artifact store cannot take fetched artifacts")
	}
	has, err := store.Has(w.Digest)
	if err != nil {
		return fmt.Errorf("cannot check the artifact store for %s: %w", w.Digest, err)
	}
	if !has {
		if err := d.fetch(ctx, store, w, self, members); err != nil {
			return err
		}
	}
	if w.Ready {
		// Reported ready before, under this node ID, and its store lost
		// the bytes (a new disk): the same digest, fetched again, is what
		// its gate passed; nothing to report, but reconcile now rather
		// than at the reconciler's next retry.
		_ = d.n.rec.Reconcile()
		return nil
	}
	failed, err := d.gate(ctx, store, w)
	if err != nil {
		return err
	}
	return d.report(ctx, w, self, failed)
}

// fetch tries the version's holders, then the other members (a version
// registered before holders were recorded names none), until one yields
// the bytes of the digest.
func (d *distributor) fetch(ctx context.Context, store fetchStore, w registry.Pending, self string, members []cluster.Member) error {
	admin := map[string]string{}
	order := slices.Clone(w.From)
	for _, m := range members {
		admin[m.ID] = m.AdminAddr
		if m.ID != self && !slices.Contains(order, m.ID) {
			order = append(order, m.ID)
		}
	}
	var errs []error
	for _, id := range order {
		addr := admin[id]
		if addr == "" {
			errs = append(errs, fmt.Errorf("%s: not a member with an admin address", id))
			continue
		}
		d.setStatus(w, "fetching from "+id)
		start := time.Now()
		n, err := d.fetchFrom(ctx, store, w, addr)
		if err == nil {
			d.n.log.Info("fetched a version's artifact", "model", w.Model, "version", w.Version, "from", id,
				"bytes", n, "took", time.Since(start).Round(time.Millisecond))
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d.n.log.Warn("refused an artifact transfer; trying the next holder", "model", w.Model, "version", w.Version,
			"digest", w.Digest, "from", id, "err", err)
		errs = append(errs, fmt.Errorf("%s: %w", id, err))
	}
	if len(errs) == 0 {
		return fmt.Errorf("fetching %s: no other member to fetch it from", w.Digest)
	}
	return fmt.Errorf("fetching %s failed from every holder: %w", w.Digest, errors.Join(errs...))
}

// fetchFrom streams the artifact from one peer into the store.
func (d *distributor) fetchFrom(ctx context.Context, store fetchStore, w registry.Pending, addr string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", d.n.peers.URL(addr, "/api/v1/artifacts/"+w.Digest), nil)
	if err != nil {
		return 0, err
	}
	resp, err := d.n.peers.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return 0, fmt.Errorf("GET /api/v1/artifacts/%s answered %d: %s", w.Digest, resp.StatusCode, bytes.TrimSpace(b))
	}
	// More than the registered size is not the version's bytes: stop
	// reading there rather than fill the store.
	n, err := store.PutExpect(io.LimitReader(resp.Body, w.Size+1), w.Digest)
	if err != nil {
		return 0, err
	}
	return n, nil
}

// gate runs this node's validation gate on the stored bytes: the same
// gate, with the same golden pairs and latency budget, as the node that
// registered the version. It returns the reason when the gate refused
// them, or an error when it could not judge.
func (d *distributor) gate(ctx context.Context, store fetchStore, w registry.Pending) (string, error) {
	validator := d.n.cfg.Gateway.Validator
	if validator == nil {
		return "", nil // a node without a gate trusts the digest
	}
	var (
		v      registry.Version
		budget float64
		verr   error
	)
	d.n.cfg.Control.View(func(st *registry.State) {
		v, verr = st.Version(w.Model, w.Version)
		if p, err := st.Policy(w.Model); err == nil && p.Validation != nil {
			budget = p.Validation.LatencyBudgetMs
		}
	})
	if verr != nil {
		return "", verr
	}
	b, err := store.Get(w.Digest)
	if err != nil {
		return "", fmt.Errorf("cannot read the fetched artifact %s: %w", w.Digest, err)
	}
	d.setStatus(w, "validating")
	ctx, cancel := context.WithTimeout(ctx, gateTimeout)
	defer cancel()
	res, err := validator(ctx, b, v.Golden, budget)
	if err != nil {
		return "", fmt.Errorf("the validation gate could not run: %w", err)
	}
	switch {
	case !res.Passed:
		return registry.RecordableReason(res.Reason), nil
	case !v.Signature.Empty() && !res.Signature.Empty() && !sameSignature(v.Signature, res.Signature):
		return "the model declares another signature on this node than the registry holds for it", nil
	}
	return "", nil
}

// report commits this node's verdict: on the leader directly, on a
// follower through the leader's admin API (POST /api/v1/cluster/ready, at
// the address the member table holds, as forwarding uses), then waits
// until this node has applied it, so its reconciler sees its own report.
func (d *distributor) report(ctx context.Context, w registry.Pending, self, failed string) error {
	args := registry.ReportReadyArgs{Node: self, Model: w.Model, Version: w.Version, Digest: w.Digest, Failed: failed}
	key := "ready/" + url.PathEscape(self) + "/" + url.PathEscape(w.Model) + "/" + strconv.Itoa(w.Version) + "/" + w.Digest
	if failed != "" {
		key += "/failed"
	}
	ctx, cancel := context.WithTimeout(ctx, 2*d.n.cfg.Gateway.ApplyTimeout)
	defer cancel()
	if err := d.commit(ctx, args, key); err != nil {
		return err
	}
	if failed != "" {
		d.n.log.Error("this node's validation gate refused a version's bytes; the promotion gate holds the version back until the model's distribution policy is met", "model", w.Model, "version", w.Version, "reason", failed)
	} else {
		d.n.log.Info("version ready on this node", "model", w.Model, "version", w.Version, "digest", w.Digest)
	}
	return nil
}

func (d *distributor) commit(ctx context.Context, args registry.ReportReadyArgs, key string) error {
	if d.c.IsLeader() {
		_, err := d.c.Apply(ctx, registry.Command{Time: time.Now().UTC(), Actor: "node " + args.Node, IdempotencyKey: key, Args: &args})
		if err == nil || !errors.Is(err, cluster.ErrNotLeader) {
			return err
		}
	}
	leader, addr := d.c.LeaderAdmin()
	if addr == "" {
		return fmt.Errorf("cannot report to the leader: no leader known (%q) or it has announced no admin address", leader)
	}
	body, err := json.Marshal(args)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", d.n.peers.URL(addr, "/api/v1/cluster/ready"), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := d.n.peers.Do(req)
	if err != nil {
		return fmt.Errorf("cannot report to the leader %s: %w", leader, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("reporting to the leader %s: %d %s", leader, resp.StatusCode, bytes.TrimSpace(b))
	}
	idx, err := strconv.ParseUint(resp.Header.Get(gateway.HeaderAppliedIndex), 10, 64)
	if err != nil {
		return nil // applied on the leader; this node applies it in its time
	}
	if err := d.c.WaitApplied(ctx, idx); err != nil {
		return fmt.Errorf("reported to the leader %s, not yet applied here: %w", leader, err)
	}
	return nil
}

func sameSignature(a, b registry.Signature) bool {
	eq := func(x, y []registry.TensorSpec) bool {
		return slices.EqualFunc(x, y, func(p, q registry.TensorSpec) bool {
			return p.Name == q.Name && p.DataType == q.DataType && slices.Equal(p.Shape, q.Shape)
		})
	}
	return eq(a.Inputs, b.Inputs) && eq(a.Outputs, b.Outputs)
}
