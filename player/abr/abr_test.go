package abr

import (
	"testing"
	"time"
)

var tiers = []int{24, 64, 96, 160, 320}

func TestChoose(t *testing.T) {
	cfg := DefaultConfig(tiers)
	for _, c := range []struct {
		bps    float64
		known  bool
		buffer time.Duration
		max    int
		want   int
	}{
		{0, false, 0, 0, 96},
		{0, false, 0, 64, 64},
		{10e6, true, 30 * time.Second, 0, 320},
		{10e6, true, 30 * time.Second, 160, 160},
		{200e3, true, 30 * time.Second, 0, 96},  // 140 kbit/s budget
		{400e3, true, 30 * time.Second, 0, 160}, // 280
		{460e3, true, 30 * time.Second, 0, 320}, // 322
		{460e3, true, 5 * time.Second, 0, 160},  // half the budget
		{460e3, true, 0, 0, 24},                 // empty buffer: lowest
		{10e3, true, 30 * time.Second, 0, 24},   // nothing fits: lowest
		{10e6, true, 30 * time.Second, 10, 24},  // ceiling under every tier
	} {
		cfg.MaxKbps = c.max
		if got := Choose(cfg, c.bps, c.known, c.buffer); got != c.want {
			t.Errorf("Choose(%v bps, known %v, buffer %v, max %d) = %d, want %d", c.bps, c.known, c.buffer, c.max, got, c.want)
		}
	}
}

func TestEstimatorFollowsBandwidth(t *testing.T) {
	e, err := New(DefaultConfig(tiers))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := e.Estimate(); ok {
		t.Fatal("estimate before any sample")
	}
	e.Sample(1000, time.Millisecond) // too small to count
	if _, ok := e.Estimate(); ok {
		t.Fatal("a tiny transfer counted")
	}
	// 1 MB/s for a while
	for range 10 {
		e.Sample(1e6, time.Second)
	}
	if got := e.Choose(time.Minute); got != 320 {
		t.Errorf("at 8 Mbit/s Choose = %d, want 320", got)
	}
	// bandwidth drops to 10 KB/s: the fast average pulls the estimate down
	for range 10 {
		e.Sample(20e3, 2*time.Second)
	}
	if got := e.Choose(time.Minute); got != 24 {
		bps, _ := e.Estimate()
		t.Errorf("after a drop to 80 kbit/s Choose = %d (estimate %v), want 24", got, bps)
	}
}
