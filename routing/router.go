package routing

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/modelgate/modelgate/runtime"
)

// Router owns a node's loaded versions and publishes its routing table. Its
// methods are serialised by a mutex and run on model changes, never per
// request; Table is the one read the scoring path makes.
//
// A version that leaves the table is retired: it finishes the calls
// already inside it, then frees its sessions (runtime.Slot), so no call
// fails on a swap.
type Router[A any] struct {
	mu  sync.Mutex
	cur atomic.Pointer[Table[A]]
}

// NewRouter returns a router with an empty table.
func NewRouter[A any]() *Router[A] {
	r := &Router[A]{}
	r.cur.Store(&Table[A]{models: map[string]*Model[A]{}})
	return r
}

// Table returns the current routing table. It never changes once returned.
func (r *Router[A]) Table() *Table[A] { return r.cur.Load() }

// update applies f to a copy of model's routing (a new one when create is
// set and the model is absent) and publishes the result. f reports whether
// it changed anything; update reports false when the model is absent.
func (r *Router[A]) update(model string, create bool, f func(m *Model[A]) bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.Table()
	m := old.models[model]
	if m == nil {
		if !create {
			return false
		}
		m = &Model[A]{Name: model, versions: map[string]*Version[A]{}}
	} else {
		m = m.clone()
	}
	if !f(m) {
		return true
	}
	next := old.clone()
	if len(m.versions) == 0 {
		delete(next.models, model)
	} else {
		next.models[model] = m
	}
	r.cur.Store(next)
	return true
}

// Publish makes slot routable as its model's version, with attach beside
// it; with champion set it also answers the model's unversioned calls (so
// does the first version of a model). A slot it replaces (same model and
// version) keeps its roles and is retired.
func (r *Router[A]) Publish(slot *runtime.Slot, attach A, champion bool) {
	var prev *Version[A]
	r.update(slot.Name, true, func(m *Model[A]) bool {
		prev = m.versions[slot.Version]
		v := &Version[A]{Slot: slot, Attach: attach}
		m.versions[slot.Version] = v
		if champion || m.Champion == nil || m.Champion == prev {
			m.Champion = v
		}
		if prev != nil {
			if m.Canary == prev {
				m.Canary = v
			}
			for i, s := range m.Shadows {
				if s == prev {
					m.Shadows[i] = v
				}
			}
		}
		return true
	})
	if prev != nil && prev.Slot != slot {
		prev.Slot.Retire()
	}
}

// SetChampion makes a published version answer the model's unversioned
// calls. It reports false when the version is not loaded.
func (r *Router[A]) SetChampion(model, version string) bool {
	ok := false
	r.update(model, false, func(m *Model[A]) bool {
		v := m.versions[version]
		if ok = v != nil; !ok || m.Champion == v {
			return false
		}
		m.Champion = v
		return true
	})
	return ok
}

// SetCanary makes a published version answer weightBP basis points of the
// model's unversioned calls, split by routing key; version "" or a zero
// weight removes the canary. It reports false when the model, or the
// version, is not loaded.
func (r *Router[A]) SetCanary(model, version string, weightBP uint32) bool {
	ok := false
	found := r.update(model, false, func(m *Model[A]) bool {
		var v *Version[A]
		if version != "" && weightBP > 0 {
			if v = m.versions[version]; v == nil {
				return false
			}
		} else {
			weightBP = 0
		}
		ok = true
		if m.Canary == v && m.CanaryBP == weightBP {
			return false
		}
		m.Canary, m.CanaryBP = v, weightBP
		return true
	})
	return found && ok
}

// SetShadows makes the published versions named in versions the model's
// shadows, in that order; names not loaded are skipped. It reports false
// when the model is not loaded.
func (r *Router[A]) SetShadows(model string, versions []string) bool {
	return r.update(model, false, func(m *Model[A]) bool {
		var shadows []*Version[A]
		for _, name := range versions {
			if v := m.versions[name]; v != nil {
				shadows = append(shadows, v)
			}
		}
		if slices.Equal(shadows, m.Shadows) {
			return false
		}
		m.Shadows = shadows
		return true
	})
}

// SetLogMode sets how a model's predictions are logged. It reports false
// when the model is not loaded.
func (r *Router[A]) SetLogMode(model string, mode LogMode) bool {
	return r.update(model, false, func(m *Model[A]) bool {
		if m.LogMode == mode {
			return false
		}
		m.LogMode = mode
		return true
	})
}

// Remove stops routing to a version and retires it. It leaves every role
// the version had: removing the champion leaves the model without one (its
// unversioned calls get 503) unless another version is loaded, which then
// becomes champion, the highest by version order. It reports whether the
// version was loaded.
func (r *Router[A]) Remove(model, version string) bool {
	var gone *Version[A]
	r.update(model, false, func(m *Model[A]) bool {
		if gone = m.versions[version]; gone == nil {
			return false
		}
		delete(m.versions, version)
		if m.Canary == gone {
			m.Canary, m.CanaryBP = nil, 0
		}
		m.Shadows = slices.DeleteFunc(m.Shadows, func(v *Version[A]) bool { return v == gone })
		if m.Champion == gone {
			m.Champion = nil
			if vs := m.Versions(); len(vs) > 0 {
				m.Champion = vs[len(vs)-1]
			}
		}
		return true
	})
	if gone == nil {
		return false
	}
	gone.Slot.Retire()
	return true
}

// Close empties the table, retires every version and waits until all have
// drained.
func (r *Router[A]) Close() {
	r.mu.Lock()
	old := r.Table()
	r.cur.Store(&Table[A]{models: map[string]*Model[A]{}})
	r.mu.Unlock()
	for _, m := range old.models {
		for _, v := range m.versions {
			v.Slot.Retire()
			<-v.Slot.Drained()
		}
	}
}
