// Package plays implements the player's side of play reporting: the
// 30-second rule (Counter, pure; the threshold is catalog.PlayThreshold) and a Reporter that queues events on disk
// and sends them to the origin's POST /v1/plays until acknowledged, always
// with the same play id, so the royalty pipeline can drop duplicates.
package plays

import "time"

// Counter applies the 30-second rule to one play of one track: only frames
// actually rendered count, so pauses (nothing rendered) and seeks (the
// position jumps, the count does not) do not.
type Counter struct {
	need, got int64
	fired     bool
}

// NewCounter returns a counter for audio at rate frames per second.
func NewCounter(rate int, threshold time.Duration) *Counter {
	// exact for whole milliseconds: 30.000 s at 44.1 kHz is 1323000 frames
	need := (int64(threshold/time.Millisecond)*int64(rate) + 999) / 1000
	return &Counter{need: need}
}

// Add records frames rendered and reports true exactly once: on the call
// that reaches the threshold.
func (c *Counter) Add(frames int64) bool {
	c.got += frames
	if !c.fired && c.got >= c.need {
		c.fired = true
		return true
	}
	return false
}

// Rendered is the number of frames counted.
func (c *Counter) Rendered() int64 { return c.got }

// Fired reports whether the play has been reported.
func (c *Counter) Fired() bool { return c.fired }
