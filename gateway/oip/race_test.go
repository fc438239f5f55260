//go:build race

package oip

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// pooled paths allocate by design.
const raceEnabled = true
