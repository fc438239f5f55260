package predlog

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkIndexEntries is the id index's whole cost per committed record:
// the committer's hand-over (index.add), and the indexer's sorting, run
// writing, ingesting and merging, in CPU time (the indexer is a goroutine
// of its own). Entries come in batches of 128, as the committer hands
// them over under load. With -benchtime 4194304x (64 runs), every entry is
// merged twice.
func BenchmarkIndexEntries(b *testing.B) {
	c := benchConfig(b)
	l, err := Open(c)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	model := []byte("fraud")
	batch := make([]idxEnt, 128)
	stamp := int64(1)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i += len(batch) {
		for j := range batch {
			batch[j] = idxEnt{rng.Uint64() >> 16, stamp, model}
			stamp++
		}
		l.ix.add(batch)
	}
	// The merges the runs call for are part of the cost.
	waitIndexSettled(b, l, c.IndexRunSize)
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}
