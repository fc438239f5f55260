package gateway_test

import (
	"testing"

	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/registry"
	"github.com/modelgate/modelgate/runtime"
)

// BenchmarkHandlerDriftConstraints is BenchmarkHandlerDrift with hard
// constraints on (non-finite on every column, a range on one): what
// checking each row's 30 columns adds when a policy asks for it. Unseen
// categories are left off: the benchmark's synthetic rows are not fraud
// rows and would be refused (TestHardConstraintsAllocations covers them).
func BenchmarkHandlerDriftConstraints(b *testing.B) {
	benchHandler(b, gateway.Config{}, func(srv *gateway.Server, slot *runtime.Slot) {
		if err := srv.Catalog.EnableDrift("fraud", "1", referenceProfile(b, slot.Model), drift.BootstrapConfig{}, nil); err != nil {
			b.Fatal(err)
		}
		lo, hi := -1e6, 1e6
		srv.Catalog.SetConstraints("fraud", &registry.DriftConstraints{RefuseNonFinite: true,
			Ranges: []registry.FeatureRange{{Feature: "amount_log", Min: &lo, Max: &hi}}})
	})
}
