//go:build race

package e2e

// raceEnabled is true when the tests run under the race detector.
const raceEnabled = true
