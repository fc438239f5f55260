package predlog

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/modelgate/modelgate/internal/pebblelog"
)

// ValueCompression chooses how a record's value is compressed before it goes
// into Pebble. Pebble compresses whole blocks on its own (zstd level 3 in the
// bottom level, see doc.go), which is what brings a record under 100 bytes;
// per-value zstd is there for large records (images, long text), where one
// value alone compresses well.
type ValueCompression uint8

const (
	// CompressDefault means CompressNone.
	CompressDefault ValueCompression = iota
	// CompressNone stores the compact binary encoding as is and leaves
	// compression to Pebble's blocks. Best for small numeric records: see the
	// measurements in doc.go.
	CompressNone
	// CompressZstd compresses each value with a shared klauspost zstd encoder
	// (level "fastest", no checksum) on the caller's goroutine. It defeats
	// block compression (demo records took 115 bytes instead of 84 when
	// each had a key of its own), so it pays only for records of a few KB
	// and more.
	CompressZstd
)

// String names the setting.
func (c ValueCompression) String() string {
	switch c {
	case CompressDefault:
		return "default"
	case CompressNone:
		return "none"
	case CompressZstd:
		return "zstd"
	}
	return fmt.Sprintf("ValueCompression(%d)", uint8(c))
}

// Config configures a Log. The zero value of every field except Dir means its
// default (DefaultConfig); where a limit can be switched off, a negative value
// does it.
type Config struct {
	// Dir is the Pebble directory of the log, created if missing. Required.
	// It must not be shared with any other Pebble DB (the Raft store, the
	// artifact store): the log syncs on its own schedule.
	Dir string

	// RingSize bounds the records waiting for the committer (not counting the
	// batch being committed). Append drops a record when the ring is full;
	// AppendDurable waits for room. Default 65536.
	RingSize int

	// RingBytes bounds the bytes the ring holds (encoded records), so large
	// inputs cannot make it grow without limit: the ring is full when either
	// bound is reached (it may hold one record of MaxRecordBytes on top).
	// Default 64 MiB.
	RingBytes int

	// SyncInterval bounds how long an async record stays committed but not
	// fsynced: the committer syncs the WAL at most this long after the first
	// unsynced commit. Default 100 ms.
	SyncInterval time.Duration

	// MaxBatchBytes splits the committer's work into Pebble batches of about
	// this size, so a burst never becomes one huge batch (Pebble turns batches
	// over half the memtable into flushable batches). Default 1 MiB.
	MaxBatchBytes int

	// MaxRecordBytes is the largest record (encoded) the log stores; a
	// larger one is dropped and counted (Stats.Oversize, *TooLargeError).
	// Default 16 MiB: a scoring request's inputs take at most 4 times its
	// JSON body (an 8-byte number written as one digit and a comma), so
	// this covers every request under the gateway's default 4 MiB body
	// limit, FP32 inputs (at most twice the body) with 8 MiB to spare for
	// outputs. A program with a larger body limit should raise it (modelgate
	// serve does: 4 × --max-body, up to the 64 MiB maximum). A record larger
	// than an eighth of RingBytes waits for the committer alone in its shard.
	MaxRecordBytes int

	// MaxAge is the retention by age: Prune deletes predictions committed
	// longer ago, and labels received longer ago. Default 30 days; negative
	// keeps records forever.
	MaxAge time.Duration

	// MaxBytes is the retention by size: while the DB's live files
	// (sstables and WAL) take more than this, Prune deletes the oldest
	// predictions of all models, down to 90% of it. Obsolete files waiting
	// for deletion and the WAL files Pebble keeps for reuse come on top.
	// Default 20 GiB; negative means no limit.
	MaxBytes int64

	// PruneInterval is the period of the background retention pass. Default
	// 1 minute; negative disables it (call Prune yourself).
	PruneInterval time.Duration

	// ValueCompression chooses per-value compression. Default CompressNone.
	ValueCompression ValueCompression

	// IndexRunSize is how many records' ids the id index collects in memory
	// before it writes them as a sorted run (index.go). A lookup searches the
	// entries in memory and reads one chunk of each run; runs are merged
	// eight at a time, so a log of N records has at most about
	// 7·log8(N/IndexRunSize) runs. Default and maximum 65536 (about 1.5 MiB
	// in memory).
	IndexRunSize int

	// MemTableSize is Pebble's memtable size. Default 64 MiB: fewer, larger
	// flushes keep write amplification down at 100k records/s.
	MemTableSize int

	// CacheSize is Pebble's block cache size. Default 32 MiB.
	CacheSize int64

	// BackgroundNice is the nice value (1 to 19) of the OS threads the
	// committer and the indexer run on, one each, so that whenever scoring
	// and the log's background work both want a core, scoring gets it, and
	// the log does its work in the time scoring leaves idle. Default 10: a
	// nice-10 thread still gets about a tenth of a core that a nice-0 thread
	// also wants, so the log keeps up even when no core is ever idle (with
	// both cores kept busy by two nice-0 processes, BenchmarkAppendPaced
	// committed 50,000 records/s with none dropped, and 95,700 of 100,000/s;
	// a node scores ~60,000/s here). Negative leaves them at the process's
	// priority. Linux only; elsewhere ignored.
	//
	// A program that lowers them should run with BackgroundThreads more Ps
	// (GOMAXPROCS) than it would otherwise: a thread the kernel preempts
	// keeps its P, and without spare Ps the scoring goroutines would wait
	// for it (modelgate serve adds them).
	BackgroundNice int

	// FS is the file system Pebble uses. Default: the OS file system. Tests
	// inject faults with github.com/cockroachdb/pebble/v2/vfs/errorfs.
	FS vfs.FS

	// Logger receives the log's operational messages: Pebble's errors and
	// fatal errors (internal/pebblelog), failed retention passes, and the
	// failure to lower the background threads' priority. Every line carries
	// store=predlog and dir. Default (nil): discarded; the errors that
	// matter also come back from calls and from Healthy.
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultRingSize       = 1 << 16
	DefaultRingBytes      = 64 << 20
	DefaultSyncInterval   = 100 * time.Millisecond
	DefaultMaxBatchBytes  = 1 << 20
	DefaultMaxRecordBytes = 16 << 20
	DefaultMaxAge         = 30 * 24 * time.Hour
	DefaultMaxBytes       = 20 << 30
	DefaultPruneInterval  = time.Minute
	DefaultIndexRunSize   = 1 << 16
	DefaultMemTableSize   = 64 << 20
	DefaultCacheSize      = 32 << 20
	DefaultBackgroundNice = 10
)

// LargestMaxRecordBytes is the largest MaxRecordBytes Validate accepts: a
// record is one Pebble value, written whole to the WAL and the memtable.
const LargestMaxRecordBytes = 64 << 20

// BackgroundThreads is how many OS threads a Log runs at BackgroundNice:
// the committer's and the indexer's.
const BackgroundThreads = 2

// DefaultConfig returns the defaults for a log in dir.
func DefaultConfig(dir string) Config {
	c := Config{Dir: dir}
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.RingSize == 0 {
		c.RingSize = DefaultRingSize
	}
	if c.RingBytes == 0 {
		c.RingBytes = DefaultRingBytes
	}
	if c.SyncInterval == 0 {
		c.SyncInterval = DefaultSyncInterval
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.MaxRecordBytes == 0 {
		c.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.PruneInterval == 0 {
		c.PruneInterval = DefaultPruneInterval
	}
	if c.ValueCompression == CompressDefault {
		c.ValueCompression = CompressNone
	}
	if c.IndexRunSize == 0 {
		c.IndexRunSize = DefaultIndexRunSize
	}
	if c.MemTableSize == 0 {
		c.MemTableSize = DefaultMemTableSize
	}
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
	if c.BackgroundNice == 0 {
		c.BackgroundNice = DefaultBackgroundNice
	}
	if c.FS == nil {
		c.FS = vfs.Default
	}
	if c.Logger == nil {
		c.Logger = pebblelog.Discard()
	}
}

// Validate reports the first bad value, after applying the defaults to a
// copy. Open calls it.
func (c Config) Validate() error {
	c.setDefaults()
	switch {
	case c.Dir == "":
		return fmt.Errorf("predlog: Dir is empty: the log needs a directory of its own")
	case c.RingSize < 1:
		return fmt.Errorf("predlog: RingSize (%d) must be positive", c.RingSize)
	case c.RingBytes < c.MaxRecordBytes:
		return fmt.Errorf("predlog: RingBytes (%d) must hold at least one record of MaxRecordBytes (%d)", c.RingBytes, c.MaxRecordBytes)
	case c.SyncInterval < time.Millisecond:
		return fmt.Errorf("predlog: SyncInterval (%s) must be at least 1ms", c.SyncInterval)
	case c.MaxBatchBytes < 1<<10:
		return fmt.Errorf("predlog: MaxBatchBytes (%d) must be at least 1 KiB", c.MaxBatchBytes)
	case c.MaxRecordBytes < 256:
		return fmt.Errorf("predlog: MaxRecordBytes (%d) must be at least 256", c.MaxRecordBytes)
	case c.MaxRecordBytes > LargestMaxRecordBytes:
		return fmt.Errorf("predlog: MaxRecordBytes (%d) cannot exceed %d (64 MiB)", c.MaxRecordBytes, LargestMaxRecordBytes)
	case c.MaxAge > 0 && c.MaxAge < time.Second:
		return fmt.Errorf("predlog: MaxAge (%s) must be at least 1s (or negative for no limit)", c.MaxAge)
	case c.MaxBytes > 0 && c.MaxBytes < 1<<20:
		return fmt.Errorf("predlog: MaxBytes (%d) must be at least 1 MiB (or negative for no limit)", c.MaxBytes)
	case c.PruneInterval > 0 && c.PruneInterval < 10*time.Millisecond:
		return fmt.Errorf("predlog: PruneInterval (%s) must be at least 10ms (or negative to disable)", c.PruneInterval)
	case c.ValueCompression != CompressNone && c.ValueCompression != CompressZstd:
		return fmt.Errorf("predlog: ValueCompression (%s) is not none or zstd", c.ValueCompression)
	case c.IndexRunSize < 16 || c.IndexRunSize > maxRunSize:
		return fmt.Errorf("predlog: IndexRunSize (%d) must be between 16 and %d", c.IndexRunSize, maxRunSize)
	case c.MemTableSize < 1<<20:
		return fmt.Errorf("predlog: MemTableSize (%d) must be at least 1 MiB", c.MemTableSize)
	case c.MemTableSize > 1<<30:
		return fmt.Errorf("predlog: MemTableSize (%d) cannot exceed 1 GiB", c.MemTableSize)
	case c.MaxBatchBytes > c.MemTableSize/4:
		return fmt.Errorf("predlog: MaxBatchBytes (%d) cannot exceed a quarter of MemTableSize (%d)", c.MaxBatchBytes, c.MemTableSize)
	case c.BackgroundNice > 19:
		return fmt.Errorf("predlog: BackgroundNice (%d) must be 1 to 19 (or negative to keep the process's priority)", c.BackgroundNice)
	case c.CacheSize < 0:
		return fmt.Errorf("predlog: CacheSize (%d) cannot be negative", c.CacheSize)
	}
	return nil
}
