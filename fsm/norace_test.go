//go:build !race

package fsm

const raceEnabled = false

func scaled(n int) int { return n }
