package lifecycle

import (
	"time"

	"github.com/modelgate/modelgate/registry"
)

// RolloutReport is where a model's rollout stands, for a person: GET
// /api/v1/models/{m}/rollout and `modelgate rollout`.
type RolloutReport struct {
	Model string `json:"model"`
	// Active: a rollout is in progress (a candidate on the ramp, or a
	// champion in its watch). When false, Status says why not.
	Active bool   `json:"active"`
	Status string `json:"status"`
	// Policy is the rollout policy in force (nil: the model has no rollout
	// section, and the controller moves none of its versions).
	Policy *registry.RolloutPolicy `json:"policy,omitempty"`
	// Candidate, Against, Phase and State: the rollout as the registry and
	// its audit log have it.
	Candidate int            `json:"candidate,omitempty"`
	Stage     registry.Stage `json:"stage,omitempty"`
	Weight    float64        `json:"weight,omitempty"`
	Against   int            `json:"against,omitempty"`
	Phase     string         `json:"phase,omitempty"`
	State     *RolloutState  `json:"state,omitempty"`
	// Next is what the controller would decide with this node's numbers
	// now: every gate with its numbers, and the action it would take.
	Next *Decision `json:"next,omitempty"`
	// Last is the last decision this node's controller took on the model
	// (only a leader decides), with when.
	Last *RolloutView `json:"last,omitempty"`
	// Time is the controller's clock when the report was made.
	Time time.Time `json:"time"`
}

// Report describes model's rollout now. It reads the registry and the
// node's evidence and decides as the next window would, without acting. It
// returns the registry's error for an unknown model.
func (c *Controller) Report(model string) (RolloutReport, error) {
	rep := RolloutReport{Model: model, Time: c.cfg.Now().UTC()}
	var m registry.Model
	var err error
	c.cfg.Registry.View(func(st *registry.State) { m, err = st.Model(model) })
	if err != nil {
		return rep, err
	}
	if m.Policy.Rollout != nil {
		rp := m.Policy.EffectiveRollout()
		rep.Policy = &rp
	}
	if last, ok := c.LatestRollout(model); ok {
		rep.Last = &last
	}
	switch {
	case c.cfg.Rollouts == nil:
		rep.Status = "this node runs no rollouts (no rollout statistics: see serve's flags)"
		return rep, nil
	case rep.Policy == nil:
		rep.Status = "the model's policy has no rollout section: the controller moves none of its versions (set policy.rollout to start)"
		return rep, nil
	}
	view, ok, err := c.Judge(model)
	switch {
	case err != nil:
		rep.Status = err.Error()
		return rep, nil
	case !ok:
		rep.Status = "no rollout in progress: no version in shadow or canary, and no champion in its watch"
		return rep, nil
	}
	rep.Active = true
	rep.Status = view.Decision.Reason
	rep.Candidate, rep.Against, rep.Phase = view.Version, view.Against, view.Decision.Phase
	if v, ok := m.Version(view.Version); ok {
		rep.Stage = v.Stage
		if v.Number == m.Canary {
			rep.Weight = m.CanaryWeight
		}
	}
	st := view.State
	rep.State = &st
	d := view.Decision
	rep.Next = &d
	return rep, nil
}
