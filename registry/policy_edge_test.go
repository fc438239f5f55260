package registry

import (
	"encoding/json"
	"errors"
	"testing"
)

// TestEdgePolicyValidate: each bad field is refused naming itself; a good
// policy passes, its defaults apply, and it survives JSON and clone.
func TestEdgePolicyValidate(t *testing.T) {
	f := func(edge string, field string) {
		t.Helper()
		p := DefaultPolicy()
		if err := json.Unmarshal([]byte(`{"edge":`+edge+`}`), &p); err != nil {
			t.Fatal(err)
		}
		err := p.Validate()
		if field == "" {
			if err != nil {
				t.Fatalf("%s: %v", edge, err)
			}
			return
		}
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Fatalf("%s: %v, want an error naming %s", edge, err, field)
		}
	}
	f(`{"low_confidence":{"threshold":0.5,"margin":0.05},"out_of_profile":true,"sample_rate":0.01,"max_bytes_per_second":65536}`, "")
	f(`{}`, "")
	f(`{"low_confidence":{"threshold":0.5,"margin":0}}`, "policy.edge.low_confidence.margin")
	f(`{"low_confidence":{"threshold":0.5,"margin":-1}}`, "policy.edge.low_confidence.margin")
	f(`{"sample_rate":1.5}`, "policy.edge.sample_rate")
	f(`{"sample_rate":-0.1}`, "policy.edge.sample_rate")
	f(`{"max_bytes_per_second":-1}`, "policy.edge.max_bytes_per_second")
	f(`{"out_of_profile":true,"out_of_profile_z":-2}`, "policy.edge.out_of_profile_z")

	var e EdgePolicy
	if e.Selects() || e.BytesPerSecond() != DefaultEdgeBytesPerSecond || e.Z() != DefaultOutOfProfileZ {
		t.Fatalf("zero edge policy: selects %v, %d B/s, z %v", e.Selects(), e.BytesPerSecond(), e.Z())
	}
	p := DefaultPolicy()
	p.Edge = &EdgePolicy{LowConfidence: &EdgeBand{Threshold: 0.5, Margin: 0.1}}
	c := p.clone()
	c.Edge.LowConfidence.Margin = 0.2
	if p.Edge.LowConfidence.Margin != 0.1 {
		t.Fatal("clone shares the edge policy's band")
	}
	if b, _ := json.Marshal(DefaultPolicy()); containsEdge(b) {
		t.Fatalf("a policy without an edge section encodes one: %s", b)
	}
}

func containsEdge(b []byte) bool {
	var m map[string]json.RawMessage
	_ = json.Unmarshal(b, &m)
	_, ok := m["edge"]
	return ok
}
