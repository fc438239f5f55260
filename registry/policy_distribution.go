package registry

// The readiness a version needs before it takes real traffic.

// The values of DistributionPolicy.RequireReady.
const (
	// RequireReadyAll: every voter and every live non-voter must report
	// the version ready (the default).
	RequireReadyAll = "all"
	// RequireReadyQuorum: a majority of the voters, and every live
	// non-voter, must report it ready. The voters not yet ready route to
	// the previous champion until they are (no node routes to a version it
	// has not loaded), so a slow or broken voter does not hold a rollout
	// back; an edge site, which serves on its own, still must be ready.
	RequireReadyQuorum = "quorum"
)

// DistributionPolicy says which nodes must have fetched, verified,
// validated and loaded a version (report_ready) before a move makes it the
// canary or the champion. The registry stores it; the node that proposes
// the move checks it (the registry cannot: which nodes are live is not
// part of its state).
type DistributionPolicy struct {
	// RequireReady is "all" (the default when empty) or "quorum".
	RequireReady string `json:"require_ready,omitempty"`
}

// EffectiveRequireReady returns the policy's RequireReady, or
// RequireReadyAll when the policy has no distribution section.
func (p *Policy) EffectiveRequireReady() string {
	if p.Distribution == nil || p.Distribution.RequireReady == "" {
		return RequireReadyAll
	}
	return p.Distribution.RequireReady
}

func (d *DistributionPolicy) validate(path string) error {
	switch d.RequireReady {
	case "", RequireReadyAll, RequireReadyQuorum:
		return nil
	}
	return fieldErr(path+".require_ready", d.RequireReady, `must be "all" or "quorum"`)
}
