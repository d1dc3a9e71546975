//go:build !race

package urlsign

const raceEnabled = false
