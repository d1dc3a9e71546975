//go:build !race

package hmacring

const raceEnabled = false
