package validate

import (
	"fmt"
	"math"
	"os"
	"time"

	"github.com/modelgate/modelgate/internal/ortlib"
)

// Defaults for zero Options and Limits fields.
const (
	DefaultTimeout        = 30 * time.Second
	DefaultMaxModelBytes  = 256 << 20 // matches artifact.DefaultMaxBytes
	DefaultMaxTensorBytes = 1 << 30   // one stored tensor, as declared
	DefaultMaxTotalBytes  = 2 << 30   // all stored tensors together, as declared
	DefaultMaxDepth       = 32        // nesting of subgraphs and functions
	DefaultTolerance      = 1e-4
	DefaultLatencyRuns    = 100

	// DefaultMaxMemory is the child's address-space limit (RLIMIT_AS).
	// It bounds virtual memory, not resident memory, and much of a process's
	// address space is reserved, never touched. Measured on linux/amd64
	// (Go 1.26, ONNX Runtime 1.30, 2 cores, 1 intra-op thread):
	//
	//   - before ONNX Runtime loads, the child already maps 1.5 GiB with
	//     12 MiB resident: about 1.1 GiB of it is the Go runtime's
	//     PROT_NONE heap reservations, 256 MiB glibc's malloc arenas (64 MiB
	//     each, up to 8 per core; Run sets MALLOC_ARENA_MAX=2 for the child);
	//   - the 2 KB demo model passes from 1.4 GiB with MALLOC_ARENA_MAX=2
	//     (1.6 GiB without); below that ONNX Runtime's library cannot even
	//     be mapped, which Run reports as ErrUnavailable, not as a verdict;
	//   - a 200 MiB model (one FP32 initializer) runs out of memory at 2 GiB;
	//     a 249 MiB one passes at 3 GiB: the child holds the bytes, the
	//     parsed protobuf, and ONNX Runtime its own graph and initializers.
	//
	// 4 GiB leaves a GiB of room over that for models up to the 256 MiB size
	// limit, and still stops a model that makes ONNX Runtime allocate
	// gigabytes (its allocation fails, and the smoke run with it). Raise it
	// with MaxModelBytes: about 1.5 GiB plus 6 times the largest model.
	DefaultMaxMemory = 4 << 30
	// MinMaxMemory is the smallest memory limit accepted: below about
	// 1.4 GiB ONNX Runtime cannot be loaded at all (see DefaultMaxMemory).
	MinMaxMemory = 1 << 30
)

// Test hooks: environment variables the child (`modelgate validate`) reads
// at its start, after applying the memory limit. They exist so tests can
// make the child behave as a crashing or hanging ONNX Runtime would; nothing
// else sets them.
const (
	// EnvTestCrash makes the child kill itself: "segv" (or "1") sends itself
	// SIGSEGV, which the Go runtime reports and exits 2, as it does for a
	// segfault inside ONNX Runtime; "kill" sends SIGKILL, as the kernel's
	// OOM killer would.
	EnvTestCrash = "MODELGATE_VALIDATE_TEST_CRASH"
	// EnvTestSleep makes the child sleep for the given duration ("10s")
	// before it reads the model, as a model that hangs ONNX Runtime would.
	EnvTestSleep = "MODELGATE_VALIDATE_TEST_SLEEP"
)

// Limits bound what the static checks accept. Zero values mean defaults.
type Limits struct {
	// MaxModelBytes is the largest ONNX file accepted. Default 256 MiB.
	MaxModelBytes int64
	// MaxTensorBytes bounds the size one stored tensor (initializer,
	// constant attribute, sparse initializer densified) declares through its
	// dims and data type. Default 1 GiB.
	MaxTensorBytes int64
	// MaxTotalBytes bounds the declared sizes of all stored tensors added
	// up. Default 2 GiB.
	MaxTotalBytes int64
	// MaxDepth bounds the nesting of subgraphs (If, Loop, Scan bodies) and
	// functions. Default 32.
	MaxDepth int
}

func (l *Limits) fill() {
	if l.MaxModelBytes <= 0 {
		l.MaxModelBytes = DefaultMaxModelBytes
	}
	if l.MaxTensorBytes <= 0 {
		l.MaxTensorBytes = DefaultMaxTensorBytes
	}
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = DefaultMaxTotalBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
}

// Options configure the whole gate. Zero values mean defaults. Binary,
// Timeout and MaxMemory concern the child process (Run); the rest is the
// gate itself, passed to the child as flags.
type Options struct {
	// Binary is the modelgate executable to run as `modelgate validate`.
	// Default os.Executable(): the serving process runs itself.
	Binary string
	// Timeout bounds the whole child run; past it the child is killed and
	// the report says "validation timed out after …". Default 30s.
	Timeout time.Duration
	// MaxMemory is the child's address-space limit in bytes (RLIMIT_AS).
	// Default DefaultMaxMemory (4 GiB); negative means no limit.
	MaxMemory int64
	// ORTLib is the ONNX Runtime library the child loads. Default
	// ortlib.Path(), resolved in the calling process.
	ORTLib string
	// Limits bound the static checks.
	Limits Limits
	// Golden are input/output pairs the model must reproduce within
	// Tolerance. Optional.
	Golden []GoldenPair
	// Tolerance is how far a golden output may be from the expected one:
	// |got - want| <= Tolerance * max(1, |want|). Integer, boolean and
	// string outputs must match exactly. Default 1e-4.
	Tolerance float64
	// LatencyBudget, when positive, is the most the p99 of LatencyRuns
	// smoke runs may take. Zero measures the latency without enforcing it.
	LatencyBudget time.Duration
	// LatencyRuns is how many timed runs the latency is measured over.
	// Default 100.
	LatencyRuns int
	// IntraOpThreads is ONNX Runtime's thread count inside one run, as the
	// version will be served. Default 1.
	IntraOpThreads int
}

// DefaultOptions returns the options used for zero fields. Binary and
// ORTLib are left empty: they are resolved when Run starts.
func DefaultOptions() Options {
	var o Options
	o.fillGate()
	o.Timeout = DefaultTimeout
	o.MaxMemory = DefaultMaxMemory
	return o
}

// fillGate fills the defaults of what the child itself uses.
func (o *Options) fillGate() {
	o.Limits.fill()
	if o.Tolerance == 0 {
		o.Tolerance = DefaultTolerance
	}
	if o.LatencyRuns <= 0 {
		o.LatencyRuns = DefaultLatencyRuns
	}
	if o.IntraOpThreads <= 0 {
		o.IntraOpThreads = 1
	}
}

// fill fills every default, resolving Binary and ORTLib.
func (o *Options) fill() error {
	o.fillGate()
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxMemory == 0 {
		o.MaxMemory = DefaultMaxMemory
	}
	if o.ORTLib == "" {
		o.ORTLib = ortlib.Path()
	}
	if o.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("validate: cannot find the modelgate binary to run (set Options.Binary): %w", err)
		}
		o.Binary = exe
	}
	return nil
}

// Validate reports the first bad value, naming it. Golden pairs are checked
// for shape and datatype (a *GoldenError); whether they fit the model is for
// the gate to find.
func (o Options) Validate() error {
	switch {
	case o.Timeout < 0 || o.Timeout > time.Hour:
		return fmt.Errorf("validate: Timeout (%s) must be between 0 (default %s) and 1h", o.Timeout, DefaultTimeout)
	case o.MaxMemory > 0 && o.MaxMemory < MinMaxMemory:
		return fmt.Errorf("validate: MaxMemory (%d bytes) must be at least %d bytes: the Go runtime and ONNX Runtime alone need that much address space", o.MaxMemory, MinMaxMemory)
	case o.Tolerance < 0 || math.IsNaN(o.Tolerance) || math.IsInf(o.Tolerance, 0):
		return fmt.Errorf("validate: Tolerance (%v) must be a finite number >= 0", o.Tolerance)
	case o.LatencyBudget < 0:
		return fmt.Errorf("validate: LatencyBudget (%s) must not be negative", o.LatencyBudget)
	case o.LatencyRuns < 0 || o.LatencyRuns > 100_000:
		return fmt.Errorf("validate: LatencyRuns (%d) must be between 0 (default %d) and 100000", o.LatencyRuns, DefaultLatencyRuns)
	case o.IntraOpThreads < 0 || o.IntraOpThreads > 256:
		return fmt.Errorf("validate: IntraOpThreads (%d) must be between 0 (default 1) and 256", o.IntraOpThreads)
	case o.Limits.MaxModelBytes < 0 || o.Limits.MaxTensorBytes < 0 || o.Limits.MaxTotalBytes < 0 || o.Limits.MaxDepth < 0:
		return fmt.Errorf("validate: Limits (%+v) must not be negative", o.Limits)
	}
	for i := range o.Golden {
		if err := o.Golden[i].check(i); err != nil {
			return err
		}
	}
	return nil
}
