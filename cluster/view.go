package cluster

import "github.com/modelgate/modelgate/registry"

// View calls fn with the registry state as this node has applied it, under
// the FSM's read lock; fn must not keep the state or block long.
func (n *Node) View(fn func(*registry.State)) { n.FSM().Read(fn) }

// Changed returns a channel closed at the next command this node applies.
func (n *Node) Changed() <-chan struct{} { return n.FSM().Changed() }
