// Package ratelimit is a token bucket per key (per user id), with bounded
// memory: it keeps at most MaxKeys buckets, in two generations; when the
// current generation is full it becomes the previous one and the oldest is
// dropped, so a key not seen for a while starts again with a full bucket.
// That is lenient by at most one burst per evicted key, and it holds no
// more than MaxKeys entries however many keys it sees.
package ratelimit

import (
	"math"
	"sync"
	"time"
)

// Config configures a Limiter.
type Config struct {
	// Rate is the sustained number of tokens per second per key.
	Rate float64
	// Burst is the bucket size: how many tokens a key may spend at once.
	Burst float64
	// MaxKeys bounds the number of keys remembered.
	MaxKeys int
}

// Limiter is safe for concurrent use.
type Limiter struct {
	cfg Config

	mu        sync.Mutex
	cur, prev map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// New returns a limiter; a Rate or Burst <= 0 makes one that allows
// everything.
func New(cfg Config) *Limiter {
	if cfg.MaxKeys < 2 {
		cfg.MaxKeys = 2
	}
	return &Limiter{cfg: cfg, cur: make(map[string]*bucket)}
}

// Allow takes n tokens from key's bucket at now. It returns true, or false
// and how long until n tokens will be there (at least a second's
// resolution is left to the caller's Retry-After rounding).
func (l *Limiter) Allow(key string, n float64, now time.Time) (bool, time.Duration) {
	if l == nil || l.cfg.Rate <= 0 || l.cfg.Burst <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucketLocked(key, now)
	if el := now.Sub(b.at); el > 0 {
		b.tokens = math.Min(l.cfg.Burst, b.tokens+el.Seconds()*l.cfg.Rate)
		b.at = now
	}
	if b.tokens >= n {
		b.tokens -= n
		return true, 0
	}
	wait := time.Duration((n - b.tokens) / l.cfg.Rate * float64(time.Second))
	return false, wait
}

func (l *Limiter) bucketLocked(key string, now time.Time) *bucket {
	if b, ok := l.cur[key]; ok {
		return b
	}
	b, ok := l.prev[key]
	if !ok {
		b = &bucket{tokens: l.cfg.Burst, at: now}
	}
	if len(l.cur) >= l.cfg.MaxKeys/2 {
		l.prev, l.cur = l.cur, make(map[string]*bucket, l.cfg.MaxKeys/2)
	}
	l.cur[key] = b
	return b
}

// RetryAfter is d as the whole seconds of a Retry-After header, at least 1.
func RetryAfter(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	return max(s, 1)
}
