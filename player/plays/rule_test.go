package plays

import (
	"testing"
	"time"

	"github.com/musiccdn/cdn/catalog"
)

func TestCounter(t *testing.T) {
	for _, c := range []struct {
		name   string
		chunks []int64
		want   int // calls that return true
	}{
		{"exactly 30.000 s", []int64{1323000}, 1},
		{"29.9 s", []int64{1318590}, 0},
		{"one frame short", []int64{1322999}, 0},
		{"many small renders", repeat(441, 3000), 1}, // 30 s in 10 ms steps
		{"past it, once", []int64{1323000, 44100, 44100}, 1},
	} {
		cnt := NewCounter(44100, catalog.PlayThreshold)
		fired := 0
		for _, n := range c.chunks {
			if cnt.Add(n) {
				fired++
			}
		}
		if fired != c.want {
			t.Errorf("%s: fired %d times, want %d", c.name, fired, c.want)
		}
	}
	// the call that reaches the threshold is the one that fires
	cnt := NewCounter(44100, 30*time.Second)
	if cnt.Add(1322999) || !cnt.Add(1) {
		t.Error("did not fire on the frame that reaches 30.000 s")
	}
}

func repeat(n int64, k int) []int64 {
	s := make([]int64, k)
	for i := range s {
		s[i] = n
	}
	return s
}
