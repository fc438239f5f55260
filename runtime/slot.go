package runtime

import (
	"sync/atomic"
)

// Slot is a loaded model version that can be swapped out of routing without
// failing the calls already inside it. The routing table holds the owner
// reference; every call holds one more for its duration. Retire drops the
// owner's; the last Release closes the model, so sessions are freed exactly
// when the last in-flight call has finished.
type Slot struct {
	Model   *Model
	Name    string
	Version string

	refs    atomic.Int64
	retired atomic.Bool
	drained chan struct{}
}

// NewSlot wraps a loaded model. The slot starts with the owner reference.
func NewSlot(name, version string, m *Model) *Slot {
	s := &Slot{Model: m, Name: name, Version: version, drained: make(chan struct{})}
	s.refs.Store(1)
	return s
}

// Acquire takes a reference for one call. It fails once the slot has been
// retired and drained; the caller then reloads the routing table, which by
// then no longer points here.
func (s *Slot) Acquire() bool {
	for {
		r := s.refs.Load()
		if r <= 0 {
			return false
		}
		if s.refs.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

// Release gives back a reference taken by Acquire.
func (s *Slot) Release() {
	if s.refs.Add(-1) == 0 {
		s.Model.Close()
		close(s.drained)
	}
}

// Retire drops the owner reference: the slot takes no new calls once the
// routing table stops pointing at it, and closes after the in-flight ones.
// Calling it twice is harmless.
func (s *Slot) Retire() {
	if s.retired.CompareAndSwap(false, true) {
		s.Release()
	}
}

// Drained is closed once the slot is retired and its last call has finished
// and its sessions are freed.
func (s *Slot) Drained() <-chan struct{} { return s.drained }

// InFlight is the number of calls inside the slot now.
func (s *Slot) InFlight() int64 {
	r := s.refs.Load()
	if !s.retired.Load() {
		r--
	}
	return max(r, 0)
}
