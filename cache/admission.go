package cache

import (
	"sync/atomic"
	"time"
)

// Admission decides which filled chunks a store keeps. Record is called on
// every chunk read (hit or miss), Admit before a filled chunk is stored.
// Implementations must be safe for concurrent use and must not allocate.
type Admission interface {
	Record(key uint64)
	Admit(key uint64) bool
}

// RateAdmission admits a chunk once it has been read at least MinReads
// times within about one Window: a count-min sketch of read counts whose
// counters are halved every Window, so the rate it measures decays. An
// edge uses it for its small cache of hot chunks of tracks it does not
// own: one read of a cold track passes through, a hot track's chunks are
// promoted.
type RateAdmission struct {
	minReads uint32
	window   time.Duration
	now      func() time.Time
	next     atomic.Int64 // unix nanoseconds of the next halving
	rows     [sketchRows][sketchWidth]atomic.Uint32
}

const (
	sketchRows  = 4
	sketchWidth = 1 << 14
)

// NewRateAdmission returns an admission that keeps chunks read minReads
// times per window. now is the clock (time.Now if nil).
func NewRateAdmission(minReads int, window time.Duration, now func() time.Time) *RateAdmission {
	if now == nil {
		now = time.Now
	}
	a := &RateAdmission{minReads: uint32(max(1, minReads)), window: window, now: now}
	a.next.Store(now().Add(window).UnixNano())
	return a
}

// Record counts one read of key.
func (a *RateAdmission) Record(key uint64) {
	a.decay()
	for r := range sketchRows {
		a.rows[r][index(key, r)].Add(1)
	}
}

// Admit reports whether key's estimated reads reach the minimum.
func (a *RateAdmission) Admit(key uint64) bool { return a.Estimate(key) >= a.minReads }

// Estimate is key's read count in the sketch (never an underestimate).
func (a *RateAdmission) Estimate(key uint64) uint32 {
	est := ^uint32(0)
	for r := range sketchRows {
		est = min(est, a.rows[r][index(key, r)].Load())
	}
	return est
}

// decay halves every counter once per window. Halving races with
// concurrent Records, which can only make an estimate slightly high.
func (a *RateAdmission) decay() {
	next := a.next.Load()
	now := a.now().UnixNano()
	if now < next || !a.next.CompareAndSwap(next, now+int64(a.window)) {
		return
	}
	for r := range sketchRows {
		for i := range a.rows[r] {
			if v := a.rows[r][i].Load(); v != 0 {
				a.rows[r][i].Store(v / 2)
			}
		}
	}
}

func index(key uint64, row int) uint32 {
	return uint32(mix(key+uint64(row)*0x9e3779b97f4a7c15) & (sketchWidth - 1))
}
