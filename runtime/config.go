package runtime

import (
	"fmt"
	goruntime "runtime"
	"time"
)

// GraphOptimization selects how much ONNX Runtime rewrites the graph at load.
type GraphOptimization string

// The graph optimisation levels ONNX Runtime knows.
const (
	OptimizeDefault  GraphOptimization = ""
	OptimizeDisable  GraphOptimization = "disable"
	OptimizeBasic    GraphOptimization = "basic"
	OptimizeExtended GraphOptimization = "extended"
	OptimizeAll      GraphOptimization = "all"
)

// Config sets how one model version runs. Zero values mean defaults.
type Config struct {
	// Sessions is how many ORT sessions serve the model concurrently; each
	// runs one call (or one batch) at a time. Default: GOMAXPROCS.
	Sessions int
	// IntraOpThreads is ORT's thread count inside one Run. Default 1: with a
	// session per core, extra threads only contend for the same cores.
	IntraOpThreads int
	// InterOpThreads is ORT's thread count across independent graph nodes.
	// Default 1.
	InterOpThreads int
	// Optimization is the graph optimisation level. Default all.
	Optimization GraphOptimization
	// MaxBatch > 1 turns on the dynamic batcher: calls are stacked along the
	// first dimension up to MaxBatch rows per ORT Run. Default off, which
	// gives the lowest batch-1 latency.
	MaxBatch int
	// MaxDelay is how long the batcher may hold the first call of a batch
	// waiting for more. Default 500µs when batching is on.
	MaxDelay time.Duration
	// MaxQueue bounds the calls waiting for a session; past it a call fails
	// at once with ErrQueueFull rather than piling up. Default 128 per session.
	MaxQueue int
	// QueueTimeout bounds how long one call waits for a session. Default 1s.
	QueueTimeout time.Duration
	// ShapeCache bounds how many distinct input shapes each session keeps
	// preallocated, bound tensors for. Default 16.
	ShapeCache int
	// OnBatch, when set, is told the calls and rows of every batch run
	// (batching on) — the gateway's batch-size metric. It must not block.
	OnBatch func(calls, rows int)
}

// DefaultConfig is the configuration used for zero fields.
func DefaultConfig() Config {
	var c Config
	c.fill()
	return c
}

func (c *Config) fill() {
	if c.Sessions <= 0 {
		c.Sessions = goruntime.GOMAXPROCS(0)
	}
	if c.IntraOpThreads <= 0 {
		c.IntraOpThreads = 1
	}
	if c.InterOpThreads <= 0 {
		c.InterOpThreads = 1
	}
	if c.Optimization == OptimizeDefault {
		c.Optimization = OptimizeAll
	}
	if c.MaxBatch < 1 {
		c.MaxBatch = 1
	}
	if c.MaxBatch > 1 && c.MaxDelay <= 0 {
		c.MaxDelay = 500 * time.Microsecond
	}
	if c.MaxQueue <= 0 {
		c.MaxQueue = 128 * c.Sessions
	}
	if c.QueueTimeout <= 0 {
		c.QueueTimeout = time.Second
	}
	if c.ShapeCache <= 0 {
		c.ShapeCache = 16
	}
}

// Validate reports the first bad value, naming it.
func (c Config) Validate() error {
	switch c.Optimization {
	case OptimizeDefault, OptimizeDisable, OptimizeBasic, OptimizeExtended, OptimizeAll:
	default:
		return fmt.Errorf("runtime: Optimization (%q) must be one of disable, basic, extended, all", c.Optimization)
	}
	if c.Sessions > 1024 {
		return fmt.Errorf("runtime: Sessions (%d) must be at most 1024", c.Sessions)
	}
	if c.MaxBatch > 1<<16 {
		return fmt.Errorf("runtime: MaxBatch (%d) must be at most 65536", c.MaxBatch)
	}
	if c.MaxDelay > time.Second {
		return fmt.Errorf("runtime: MaxDelay (%s) must be at most 1s: it is added to the latency of every batched call", c.MaxDelay)
	}
	if c.IntraOpThreads > 256 || c.InterOpThreads > 256 {
		return fmt.Errorf("runtime: IntraOpThreads (%d) and InterOpThreads (%d) must be at most 256", c.IntraOpThreads, c.InterOpThreads)
	}
	return nil
}
