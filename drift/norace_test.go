//go:build !race

package drift

// raceEnabled: see race_test.go.
const raceEnabled = false
