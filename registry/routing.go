package registry

import "sort"

// Role is how a version takes part in serving.
type Role string

// The roles a routed version can have.
const (
	RoleChampion Role = "champion" // answers the traffic the canary does not
	RoleCanary   Role = "canary"   // answers Weight percent of the traffic
	RoleShadow   Role = "shadow"   // gets a mirrored copy; its answers are only compared
)

// RoutingView is what every node should load and how it should route, per
// model, derived from the state. The gateway's reconciler loads and warms
// every listed version, then publishes a routing table from it, and drains
// the versions no longer listed.
type RoutingView struct {
	// Seq is the state's LastSeq when the view was taken: a reconciler that
	// has applied a view with the same Seq has nothing to do.
	Seq    uint64       `json:"seq"`
	Models []ModelRoute `json:"models"` // every model, by name
}

// ModelRoute is one model's routing. A model with no champion yet has no
// versions to serve (requests to it fail as not ready).
type ModelRoute struct {
	Model        string `json:"model"`
	Champion     int    `json:"champion"`      // 0: none
	Canary       int    `json:"canary"`        // 0: none
	CanaryWeight int    `json:"canary_weight"` // percent, 0–100
	Shadows      []int  `json:"shadows,omitempty"`
	// Versions lists every version to load, ascending.
	Versions []RouteVersion `json:"versions,omitempty"`
}

// RouteVersion is a version to load: enough to fetch its artifact by digest
// and to route to it.
type RouteVersion struct {
	Version int    `json:"version"`
	Digest  string `json:"digest"`
	Size    int64  `json:"size"`
	Role    Role   `json:"role"`
	Weight  int    `json:"weight,omitempty"` // for the canary
}

// RoutingView returns the routing of every model.
func (s *State) RoutingView() RoutingView {
	view := RoutingView{Seq: s.LastSeq(), Models: make([]ModelRoute, 0, len(s.models))}
	for _, name := range s.modelNames() {
		m := s.models[name]
		r := ModelRoute{Model: name, Champion: m.Champion, Canary: m.Canary, CanaryWeight: m.CanaryWeight}
		for i := range m.Versions {
			v := &m.Versions[i]
			rv := RouteVersion{Version: v.Number, Digest: v.Digest, Size: v.Size}
			switch v.Stage {
			case StageChampion:
				rv.Role = RoleChampion
			case StageCanary:
				rv.Role, rv.Weight = RoleCanary, m.CanaryWeight
			case StageShadow:
				rv.Role = RoleShadow
				r.Shadows = append(r.Shadows, v.Number)
			default:
				continue
			}
			r.Versions = append(r.Versions, rv)
		}
		view.Models = append(view.Models, r)
	}
	return view
}

// Model returns the named model's route and true, or false.
func (v *RoutingView) Model(name string) (ModelRoute, bool) {
	i := sort.Search(len(v.Models), func(i int) bool { return v.Models[i].Model >= name })
	if i < len(v.Models) && v.Models[i].Model == name {
		return v.Models[i], true
	}
	return ModelRoute{}, false
}
