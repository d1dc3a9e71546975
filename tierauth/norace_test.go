//go:build !race

package tierauth

const raceEnabled = false
