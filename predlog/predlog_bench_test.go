package predlog

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

var sinkErr error

// cpuTime is the process's user and system CPU time so far: appenders,
// committer and Pebble's flushes and compactions together.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// demoRecords pre-generates n demo records (so the benchmark measures the
// log, not the generator).
func demoRecords(seed uint64, n int) []Record {
	g := newDemoGen(seed)
	out := make([]Record, n)
	for i := range out {
		out[i] = cloneRecord(g.next())
	}
	return out
}

func benchConfig(b *testing.B) Config {
	c := DefaultConfig(b.TempDir())
	c.PruneInterval = -1
	// The memtable size trades flush work against skiplist cache misses:
	// 16 MiB cost 40% more CPU per record than the default 64 MiB.
	if v := os.Getenv("PREDLOG_BENCH_MEMTABLE_MB"); v != "" {
		mb, _ := strconv.Atoi(v)
		c.MemTableSize = mb << 20
	}
	if v := os.Getenv("PREDLOG_BENCH_BLOCK_KB"); v != "" {
		kb, _ := strconv.Atoi(v)
		old := maxBlockBytes
		maxBlockBytes = kb << 10
		b.Cleanup(func() { maxBlockBytes = old })
	}
	if v := os.Getenv("PREDLOG_BENCH_TUNE"); v != "" {
		tunePebble = func(o *pebble.Options) {
			for _, kv := range strings.Split(v, ",") {
				k, val, _ := strings.Cut(kv, "=")
				n, _ := strconv.Atoi(val)
				switch k {
				case "l0":
					o.L0CompactionThreshold = n
				case "l0stop":
					o.L0StopWritesThreshold = n
				case "lbase":
					o.LBaseMaxBytes = int64(n) << 20
				case "flushsplit":
					o.FlushSplitBytes = int64(n) << 20
				case "target":
					o.TargetFileSizes[0] = int64(n) << 20
				case "balanced":
					o.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionBalanced })
				case "noadaptive":
					o.ApplyCompressionSettings(func() pebble.DBCompressionSettings {
						cs := pebble.DBCompressionGood
						for i, p := range cs.Levels {
							q := *p
							q.AdaptiveReductionCutoffPercent = 0
							cs.Levels[i] = &q
						}
						return cs
					})
				case "fastest":
					o.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionFastest })
				}
			}
		}
		b.Cleanup(func() { tunePebble = nil })
	}
	return c
}

// BenchmarkAppendAsync appends demo records from GOMAXPROCS goroutines as
// fast as they go, in async mode, and reports what the committer sustained:
// committed/s over the whole run including the final drain in Close, and
// the share of records dropped because the ring was full.
func BenchmarkAppendAsync(b *testing.B) {
	l, err := Open(benchConfig(b))
	if err != nil {
		b.Fatal(err)
	}
	var seed atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		recs := demoRecords(seed.Add(1), 4096)
		i := 0
		for pb.Next() {
			r := &recs[i%len(recs)]
			r.Time = int64(i)
			sinkErr = l.Append(r)
			i++
		}
	})
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	el := time.Since(start)
	b.StopTimer()
	s := l.Stats()
	b.ReportMetric(float64(s.Committed)/el.Seconds(), "committed/s")
	b.ReportMetric(100*float64(s.Dropped)/float64(max(s.Appended, 1)), "drop%")
	b.ReportMetric(float64(s.Committed)/float64(max(s.Batches, 1)), "records/batch")
}

// BenchmarkAppendPaced offers records at a fixed rate (what a node scoring
// that many requests a second would log) for about a second per b.N unit
// and reports drops (0 means the rate is sustained) and the CPU the whole
// process spent per record: what logging takes from scoring. The pacing
// loop's own CPU (a sleep every millisecond) is measured first, with no
// log, and subtracted: cpu-ns/record is the log's alone.
func BenchmarkAppendPaced(b *testing.B) {
	for _, rate := range []int{50_000, 100_000, 200_000} {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) {
			l, err := Open(benchConfig(b))
			if err != nil {
				b.Fatal(err)
			}
			recs := demoRecords(1, 4096)
			const tick = time.Millisecond
			perTick := rate / int(time.Second/tick)
			pace := func(start time.Time, t int) {
				if d := time.Until(start.Add(time.Duration(t+1) * tick)); d > 0 {
					time.Sleep(d)
				}
			}
			cpu0, start := cpuTime(), time.Now()
			for t := 0; t < int(time.Second/tick); t++ {
				pace(start, t)
			}
			paceCPU := cpuTime() - cpu0 // a second's
			b.ReportAllocs()
			b.ResetTimer()
			cpu0, start = cpuTime(), time.Now()
			n := 0
			for t := 0; t < b.N*int(time.Second/tick); t++ {
				for k := 0; k < perTick; k++ {
					sinkErr = l.Append(&recs[n%len(recs)])
					n++
				}
				pace(start, t)
			}
			if os.Getenv("PREDLOG_BENCH_METRICS") != "" {
				fmt.Fprintf(os.Stderr, "N=%d\n%s\n", b.N, l.db.Metrics())
			}
			if err := l.Close(); err != nil {
				b.Fatal(err)
			}
			el := time.Since(start)
			cpu := cpuTime() - cpu0 - time.Duration(float64(paceCPU)*el.Seconds())
			s := l.Stats()
			b.ReportMetric(float64(s.Committed)/el.Seconds(), "committed/s")
			b.ReportMetric(100*float64(s.Dropped)/float64(max(s.Appended, 1)), "drop%")
			b.ReportMetric(float64(s.Committed)/float64(max(s.Batches, 1)), "records/batch")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(max(s.Committed, 1)), "cpu-ns/record")
		})
	}
}

// BenchmarkAppendOne is the hot-path cost of one async Append: encoding
// into the ring, counting. It must not allocate. Every 1,024 records the
// clock stops until the committer has taken them, so no record is dropped
// (a drop returns before encoding, and would flatter the figure).
func BenchmarkAppendOne(b *testing.B) {
	c := benchConfig(b)
	l, err := Open(c)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	recs := demoRecords(2, 1024)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%1024 == 1023 {
			b.StopTimer()
			for l.Stats().Pending > 0 {
				time.Sleep(50 * time.Microsecond)
			}
			b.StartTimer()
		}
		sinkErr = l.Append(&recs[i%len(recs)])
	}
	b.StopTimer()
	s := l.Stats()
	b.ReportMetric(100*float64(s.Dropped)/float64(max(s.Appended, 1)), "drop%")
}

// BenchmarkAppendDurable is the latency of one durable append (group
// commit with fsync) from 8 concurrent appenders per core.
func BenchmarkAppendDurable(b *testing.B) {
	l, err := Open(benchConfig(b))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	var seed atomic.Uint64
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		recs := demoRecords(seed.Add(1), 256)
		i := 0
		for pb.Next() {
			if err := l.AppendDurable(&recs[i%len(recs)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	b.StopTimer()
	s := l.Stats()
	b.ReportMetric(float64(s.Committed)/float64(max(s.Batches, 1)), "records/batch")
}

// BenchmarkDiskBytesPerRecord writes 200,000 fresh demo records, compacts
// the whole keyspace and reports the bytes per record of the sstables (and
// of the whole directory, WAL and manifest included; x is the id index, p the
// blocks of records), for each value
// compression and for gateway-style and random request ids.
func BenchmarkDiskBytesPerRecord(b *testing.B) {
	const n = 200_000
	for _, comp := range []ValueCompression{CompressNone, CompressZstd} {
		for _, ids := range []string{"gateway", "random"} {
			b.Run(fmt.Sprintf("values=%s/ids=%s", comp, ids), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					c := benchConfig(b)
					c.ValueCompression = comp
					c.IndexRunSize = min(n/20, maxRunSize) // every entry in a run on disk: 2 merged runs and 4 others
					l, err := Open(c)
					if err != nil {
						b.Fatal(err)
					}
					g := newDemoGen(uint64(i + 1))
					for k := 0; k < n; k++ {
						r := g.next()
						if ids == "random" {
							r.RequestID = fmt.Sprintf("%016x%04x", g.rng.Uint64(), g.rng.Uint32()&0xffff)
						}
						for l.Append(r) != nil {
							time.Sleep(100 * time.Microsecond) // ring full: wait, do not drop
						}
					}
					waitFor(b, "the committer and the indexer", func() bool {
						st := l.IndexStats()
						return l.Stats().Pending == 0 && st.Pending == 0 && st.Runs == 6
					})
					if err := l.db.Flush(); err != nil {
						b.Fatal(err)
					}
					if err := l.db.Compact(context.Background(), []byte{0}, []byte{0xff}, true); err != nil {
						b.Fatal(err)
					}
					m := l.db.Metrics()
					b.ReportMetric(float64(m.Table.Local.LiveSize)/n, "sst-bytes/record")
					b.ReportMetric(float64(l.liveBytes())/n, "live-bytes/record")
					for _, tag := range []byte{tagRun, tagPred} {
						u, _ := l.db.EstimateDiskUsage([]byte{tag}, []byte{tag + 1})
						b.ReportMetric(float64(u)/n, string(tag)+"-bytes/record")
					}
					if os.Getenv("PREDLOG_BENCH_METRICS") != "" {
						for _, tag := range []byte{tagRun, tagPred} {
							it, _ := l.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tag}, UpperBound: []byte{tag + 1}})
							keys, vb := 0, 0
							for ok := it.First(); ok; ok = it.Next() {
								keys++
								vb += len(it.Value())
							}
							_ = it.Close()
							fmt.Fprintf(os.Stderr, "%c: %d keys, %d value bytes\n", tag, keys, vb)
						}
						fmt.Fprintf(os.Stderr, "%s\n", l.db.Metrics())
					}
					var raw int
					var scratch []byte
					v, _ := encodeValue(nil, g.next(), comp, DefaultMaxRecordBytes, &scratch)
					raw = len(v)
					b.ReportMetric(float64(raw), "value-bytes")
					if err := l.Close(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
