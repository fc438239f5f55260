//go:build race

package predlog

// raceEnabled: sync.Pool drops items at random under the race detector.
const raceEnabled = true
