package shadow

import (
	"log/slog"
	"math"
)

// Defaults of MirrorConfig's zero values.
const (
	DefaultQueueSize = 1024
	DefaultWorkers   = 1
	DefaultNice      = 10
)

// MirrorConfig configures one model's Mirror. Zero values mean the
// defaults.
type MirrorConfig struct {
	// Model names the model in outcomes and log lines.
	Model string
	// QueueSize bounds the copies held at once, queued or running
	// (DefaultQueueSize). Each holds a copy of one request's inputs and the
	// champion's outputs, so memory is bounded by QueueSize × request size
	// however slow the shadow is; a copy that finds no room is skipped and
	// counted (Stats.Dropped).
	QueueSize int
	// Workers is the number of goroutines running shadow copies
	// (DefaultWorkers). Each runs on an OS thread of its own at Nice.
	Workers int
	// SampleRate is the share of champion answers mirrored, in (0, 1]; 0
	// means 1 (every answer). SetSampleRate changes it at runtime and also
	// takes 0 (mirror nothing).
	SampleRate float64
	// Nice is the nice value (1 to 19) of the workers' threads
	// (DefaultNice 10, like the prediction log's background threads): the
	// kernel then gives scoring threads the cores first. A negative value
	// leaves the threads at the process's priority.
	Nice int
	// Observer receives every shadow outcome (nil: none). See Observer.
	Observer Observer
	// Logger receives operational problems (nil: discarded).
	Logger *slog.Logger
}

func (c MirrorConfig) withDefaults() MirrorConfig {
	if c.QueueSize == 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.SampleRate == 0 {
		c.SampleRate = 1
	}
	if c.Nice == 0 {
		c.Nice = DefaultNice
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate returns an ErrInvalidConfig error naming the first bad field.
func (c MirrorConfig) Validate() error {
	switch {
	case c.QueueSize < 0 || c.QueueSize > 1<<16:
		return configErr("queue_size", c.QueueSize, "must be in [0, 65536]")
	case c.Workers < 0 || c.Workers > 256:
		return configErr("workers", c.Workers, "must be in [0, 256]")
	case math.IsNaN(c.SampleRate) || c.SampleRate < 0 || c.SampleRate > 1:
		return configErr("sample_rate", c.SampleRate, "must be in [0, 1]")
	case c.Nice > 19:
		return configErr("nice", c.Nice, "must be at most 19 (negative: leave the priority alone)")
	}
	return nil
}
