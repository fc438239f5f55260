package cluster

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// ErrCut is what a Raft dial returns while the node's Fault is cut.
var ErrCut = errors.New("cluster: the node is cut off from its cluster (Fault.Cut)")

// Fault is a switch that cuts one node off its cluster's Raft traffic,
// for tests of partitions on a real TCP (or TLS) transport: while cut,
// the node's dials fail with ErrCut, the connections others open to it
// are closed as soon as they are accepted, and the connections it had
// are closed. Cutting every member from every other is then a partition
// without touching the host's network. A Fault goes in Config.Fault; nil
// (production) leaves the transport as it is. Safe for concurrent use.
type Fault struct {
	mu    sync.Mutex
	cut   bool
	conns map[*faultConn]struct{}
}

// NewFault returns a Fault that is not cut.
func NewFault() *Fault { return &Fault{conns: map[*faultConn]struct{}{}} }

// Cut cuts the node off: it closes every Raft connection the node has
// and refuses new ones until Heal.
func (f *Fault) Cut() {
	f.mu.Lock()
	f.cut = true
	open := make([]*faultConn, 0, len(f.conns))
	for c := range f.conns {
		open = append(open, c)
	}
	f.mu.Unlock()
	for _, c := range open {
		_ = c.Close()
	}
}

// Heal lets the node's Raft traffic through again; Raft redials.
func (f *Fault) Heal() {
	f.mu.Lock()
	f.cut = false
	f.mu.Unlock()
}

// IsCut reports whether the node is cut off.
func (f *Fault) IsCut() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cut
}

// track registers c, or closes it when the node is cut (a connection
// set up while Cut ran).
func (f *Fault) track(c net.Conn) (net.Conn, bool) {
	fc := &faultConn{Conn: c, f: f}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut {
		_ = c.Close()
		return nil, false
	}
	f.conns[fc] = struct{}{}
	return fc, true
}

func (f *Fault) wrap(s raft.StreamLayer) raft.StreamLayer { return &faultStream{StreamLayer: s, f: f} }

// faultStream is a raft.StreamLayer under a Fault.
type faultStream struct {
	raft.StreamLayer
	f *Fault
}

func (s *faultStream) Accept() (net.Conn, error) {
	for {
		c, err := s.StreamLayer.Accept()
		if err != nil {
			return nil, err
		}
		if fc, ok := s.f.track(c); ok {
			return fc, nil
		}
	}
}

func (s *faultStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if s.f.IsCut() {
		return nil, fmt.Errorf("%w: dialing %s", ErrCut, addr)
	}
	c, err := s.StreamLayer.Dial(addr, timeout)
	if err != nil {
		return nil, err
	}
	fc, ok := s.f.track(c)
	if !ok {
		return nil, fmt.Errorf("%w: dialing %s", ErrCut, addr)
	}
	return fc, nil
}

// faultConn forgets itself in its Fault when closed.
type faultConn struct {
	net.Conn
	f *Fault
}

func (c *faultConn) Close() error {
	c.f.mu.Lock()
	delete(c.f.conns, c)
	c.f.mu.Unlock()
	return c.Conn.Close()
}
