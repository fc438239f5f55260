//go:build race

package drift

// raceEnabled shrinks the long simulations under the race detector, which
// makes them some ten times slower; their full size runs without it.
const raceEnabled = true
