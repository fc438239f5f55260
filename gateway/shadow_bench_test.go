package gateway_test

import (
	"testing"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/predlog"
	"github.com/modelgate/modelgate/runtime"
)

// BenchmarkHandlerShadow is BenchmarkHandlerLogged with a second version
// in shadow: every answer is also copied into the mirror's queue, and its
// niced worker runs the copy and logs it, competing for the other core.
// coverage is mirrored / offered: below 1 when the shadow cannot keep up
// and copies are skipped.
func BenchmarkHandlerShadow(b *testing.B) {
	plog, err := predlog.Open(predlog.DefaultConfig(b.TempDir()))
	if err != nil {
		b.Fatal(err)
	}
	defer plog.Close()
	var srv *gateway.Server
	benchHandler(b, gateway.Config{PredLog: plog}, func(s *gateway.Server, _ *runtime.Slot) {
		srv = s
		slot, err := s.Catalog.Load("fraud", "2", demoModel(b), runtime.Config{Sessions: 1})
		if err != nil {
			b.Fatal(err)
		}
		s.Catalog.Publish(slot, false)
		s.Catalog.SetShadows("fraud", "2")
	})
	b.StopTimer()
	served := promValue(b, srv, `modelgate_shadow_served_total{model="fraud"}`)
	mirrored := promValue(b, srv, `modelgate_shadow_mirrored_total{model="fraud"}`)
	b.ReportMetric(mirrored/max(served, 1), "coverage")
}
