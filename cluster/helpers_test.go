package cluster

import (
	"log/slog"
	"os"
)

// testLogger discards log lines unless CLUSTER_TEST_LOG is set, when it
// writes them (Debug and up) to stderr.
func testLogger() *slog.Logger {
	if os.Getenv("CLUSTER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}
