package registry

import (
	"sort"
	"time"
)

// Role is how a version takes part in serving.
type Role string

// The roles a routed version can have.
const (
	RoleChampion Role = "champion" // answers the traffic the canary does not
	RoleCanary   Role = "canary"   // answers Weight percent of the traffic
	RoleShadow   Role = "shadow"   // gets a mirrored copy; its answers are only compared
	// RoleStandby is the previous champion kept loaded after a promotion:
	// it answers only calls that name its version, and a rollback to it
	// flips the routing pointer without loading anything.
	RoleStandby Role = "standby"
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
	Model        string  `json:"model"`
	Champion     int     `json:"champion"`      // 0: none
	Canary       int     `json:"canary"`        // 0: none
	CanaryWeight float64 `json:"canary_weight"` // percent, 0–100 in steps of 0.01
	Shadows      []int   `json:"shadows,omitempty"`
	// Standby is the previous champion while it is kept warm (0: none);
	// StandbyUntil is when it may be unloaded (zero: at the next promotion).
	Standby      int       `json:"standby,omitempty"`
	StandbyUntil time.Time `json:"standby_until,omitempty"`
	// LogMode is how the model's predictions are logged: LogAsync,
	// LogDurable or LogOff.
	LogMode string `json:"log_mode"`
	// Versions lists every version to load, ascending.
	Versions []RouteVersion `json:"versions,omitempty"`
}

// RouteVersion is a version to load: enough to fetch its artifact by digest
// and to route to it.
type RouteVersion struct {
	Version int     `json:"version"`
	Digest  string  `json:"digest"`
	Size    int64   `json:"size"`
	Role    Role    `json:"role"`
	Weight  float64 `json:"weight,omitempty"` // for the canary, in percent
}

// RoutingView returns the routing of every model.
func (s *State) RoutingView() RoutingView {
	view := RoutingView{Seq: s.LastSeq(), Models: make([]ModelRoute, 0, len(s.models))}
	for _, name := range s.modelNames() {
		m := s.models[name]
		r := ModelRoute{Model: name, Champion: m.Champion, Canary: m.Canary, CanaryWeight: m.CanaryWeight, LogMode: LogAsync}
		if l := m.Policy.PredictionLog; l != nil {
			r.LogMode = l.Mode
		}
		standby := m.standby()
		for i := range m.Versions {
			v := &m.Versions[i]
			rv := RouteVersion{Version: v.Number, Digest: v.Digest, Size: v.Size}
			if v.Number == standby {
				rv.Role = RoleStandby
				r.Standby = v.Number
				if sv := m.Policy.Serving; sv != nil && sv.StandbyTTL > 0 {
					r.StandbyUntil = v.Updated.Add(time.Duration(sv.StandbyTTL))
				}
				r.Versions = append(r.Versions, rv)
				continue
			}
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

// standby returns the version kept warm behind the champion: the most
// recent former champion, while it is retired (a version rolled back, or
// moved on to another stage, is not a standby), or 0.
func (m *Model) standby() int {
	if len(m.PreviousChampions) == 0 {
		return 0
	}
	n := m.PreviousChampions[len(m.PreviousChampions)-1]
	if i := m.index(n); i >= 0 && m.Versions[i].Stage == StageRetired {
		return n
	}
	return 0
}

// Model returns the named model's route and true, or false.
func (v *RoutingView) Model(name string) (ModelRoute, bool) {
	i := sort.Search(len(v.Models), func(i int) bool { return v.Models[i].Model >= name })
	if i < len(v.Models) && v.Models[i].Model == name {
		return v.Models[i], true
	}
	return ModelRoute{}, false
}
