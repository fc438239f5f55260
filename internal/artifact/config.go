package artifact

import (
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Defaults for zero Config fields.
const (
	DefaultMaxBytes  = 256 << 20 // 256 MiB per artifact
	DefaultChunkSize = 1 << 20   // 1 MiB
)

// Limits on Config values.
const (
	MinChunkSize = 4 << 10  // 4 KiB
	MaxChunkSize = 64 << 20 // 64 MiB: a chunk is one Pebble value
)

// Config sets how a Store stores artifacts. Zero values mean defaults.
type Config struct {
	// MaxBytes is the largest artifact Put accepts. Default 256 MiB. It
	// applies to new uploads only: lowering it never hides stored artifacts.
	MaxBytes int64
	// ChunkSize is the size of the chunks an artifact is stored in (the last
	// one may be shorter). Default 1 MiB. Changing it later is safe: each
	// manifest records the chunk size its artifact was written with.
	ChunkSize int
	// MemTableSize is Pebble's memtable size. Default 16 MiB, so a 1 MiB
	// chunk does not force a flush every few chunks.
	MemTableSize int64
	// Logger receives Pebble's errors and fatal errors, with store=artifact
	// and the directory (internal/pebblelog). nil: discarded.
	Logger *slog.Logger
	// FS is the file system Pebble uses. nil: the operating system's. Tests
	// inject faults with github.com/cockroachdb/pebble/v2/vfs/errorfs.
	FS vfs.FS
}

// DefaultConfig is the configuration used for zero fields.
func DefaultConfig() Config {
	var c Config
	c.fill()
	return c
}

func (c *Config) fill() {
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.ChunkSize <= 0 {
		c.ChunkSize = DefaultChunkSize
	}
	if c.MemTableSize <= 0 {
		c.MemTableSize = 16 << 20
	}
}

// Validate reports the first bad value, naming it.
func (c Config) Validate() error {
	if c.ChunkSize != 0 && (c.ChunkSize < MinChunkSize || c.ChunkSize > MaxChunkSize) {
		return fmt.Errorf("artifact: ChunkSize (%d) must be between %d and %d bytes", c.ChunkSize, MinChunkSize, MaxChunkSize)
	}
	if c.MaxBytes < 0 {
		return fmt.Errorf("artifact: MaxBytes (%d) must not be negative (0 means the default, %d)", c.MaxBytes, DefaultMaxBytes)
	}
	if c.MemTableSize != 0 && (c.MemTableSize < 1<<20 || c.MemTableSize > 1<<30) {
		return fmt.Errorf("artifact: MemTableSize (%d) must be between 1 MiB and 1 GiB", c.MemTableSize)
	}
	return nil
}
