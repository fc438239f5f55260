package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"

	"github.com/modelgate/modelgate/registry"
)

// Control is the replicated model registry as a node uses it. cluster.Node
// implements it; the gateway depends on no more than this.
type Control interface {
	// Apply commits cmd through Raft and returns its result once applied.
	// It must honour ctx's deadline: a lost quorum must not hang a caller.
	Apply(ctx context.Context, cmd registry.Command) (registry.Result, error)
	// View calls fn with a consistent, read-only state; fn must not keep it.
	View(fn func(*registry.State))
	// Changed returns a channel closed at the next applied command.
	Changed() <-chan struct{}
}

// Routing is the writer of the routing table as the gateway uses it (a
// routing.Reconciler): admin writes that change what the node should serve
// reconcile at once, so the change is served when the request returns.
type Routing interface {
	// Reconcile brings the routing table in line with the registry now and
	// returns what could not be loaded.
	Reconcile() error
	// Err returns what the last reconciliation could not load, or nil: a
	// node that cannot serve what the registry says is not ready.
	Err() error
}

// ErrNotLoadedYet is what a Routing's error wraps for a version this node
// is still fetching and putting through its own gate (the artifacts of a
// cluster move between nodes): it will serve it, not yet.
var ErrNotLoadedYet = errors.New("not loaded on this node yet")

// Artifacts stores model bytes content-addressed by sha256 (hex).
type Artifacts interface {
	// Put stores what r yields and returns its digest and size.
	Put(r io.Reader) (digest string, size int64, err error)
	// Get returns the bytes of digest, verified against it.
	Get(digest string) ([]byte, error)
}

// Validation is the validation gate's verdict on an artifact.
type Validation struct {
	Passed    bool
	Reason    string
	Signature registry.Signature
	// Evidence is the gate's full report, recorded in the audit log.
	Evidence json.RawMessage
}

// Validator runs the validation gate: in a child process, so a model that
// crashes or hangs ONNX Runtime cannot take the node down. golden is the
// registration's golden pairs (may be nil); budget the policy's latency
// budget in milliseconds (0: none). An error means the gate could not judge
// (cancelled, no ONNX Runtime, no binary): the model is not at fault, the
// version stays registered, and the registration may be retried.
type Validator func(ctx context.Context, onnx []byte, golden json.RawMessage, budgetMs float64) (Validation, error)
