package ratelimit

import (
	"strconv"
	"testing"
	"time"
)

// TestLimiter: a burst, then refusal, then refill at the rate; keys are
// independent. Mutations caught: no refill (the refill row fails), one
// shared bucket (the other-key row fails), refill past Burst (the cap row
// fails).
func TestLimiter(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := New(Config{Rate: 2, Burst: 3, MaxKeys: 100})
	for i := range 3 {
		if ok, _ := l.Allow("u", 1, t0); !ok {
			t.Fatalf("token %d of the burst refused", i)
		}
	}
	ok, wait := l.Allow("u", 1, t0)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("4th at once = %v, %v; want refused, 500ms", ok, wait)
	}
	if ok, _ := l.Allow("v", 1, t0); !ok {
		t.Fatal("other key refused")
	}
	if ok, _ := l.Allow("u", 1, t0.Add(500*time.Millisecond)); !ok {
		t.Fatal("refill refused")
	}
	// An hour later the bucket holds Burst, not 7200.
	for i := range 4 {
		ok, _ := l.Allow("u", 1, t0.Add(time.Hour))
		if ok != (i < 3) {
			t.Fatalf("after an hour, token %d: %v", i, ok)
		}
	}
	if ok, _ := New(Config{}).Allow("u", 1e9, t0); !ok {
		t.Fatal("zero config limits")
	}
}

func TestBoundedKeys(t *testing.T) {
	l := New(Config{Rate: 1, Burst: 1, MaxKeys: 10})
	t0 := time.Unix(1000, 0)
	for i := range 1000 {
		l.Allow(strconv.Itoa(i), 1, t0)
	}
	if n := len(l.cur) + len(l.prev); n > 10 {
		t.Fatalf("%d keys kept, want at most 10", n)
	}
	// A recent key survives a generation change.
	l.Allow("x", 1, t0)
	l.Allow("y", 1, t0)
	if ok, _ := l.Allow("x", 1, t0); ok {
		t.Fatal("recent key forgot its empty bucket")
	}
}
