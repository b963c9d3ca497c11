//go:build race

package fsm

// raceEnabled scales the random histories down under the race detector,
// which slows Pebble tenfold; the full lengths run without it.
const raceEnabled = true

// scaled shortens a random history under the race detector.
func scaled(n int) int { return max(n/5, 200) }
