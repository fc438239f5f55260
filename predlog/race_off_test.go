//go:build !race

package predlog

const raceEnabled = false
