// Package abr chooses the bitrate tier of each track from the measured
// throughput and the buffer level. It is pure: the player feeds it
// download samples and asks for a tier when a track is about to be loaded,
// never in the middle of one.
//
// Throughput is estimated like Shaka Player's: two exponentially weighted
// moving averages of the download rate, weighted by download time (at
// least half a second per sample), with a fast (2 s) and a slow (5 s)
// half-life; the estimate is the smaller, so it drops quickly and recovers
// more slowly.
package abr

import (
	"errors"
	"math"
	"time"
)

// Config is the tier policy.
type Config struct {
	// Tiers are the available bitrates in kbit/s, ascending.
	Tiers []int
	// MaxKbps is the user's ceiling; 0 means no ceiling.
	MaxKbps int
	// Safety is the fraction of the estimated throughput a tier may use.
	// Default 0.7.
	Safety float64
	// LowBuffer is the buffer level under which the budget shrinks in
	// proportion (a 2 s buffer with LowBuffer 10 s allows a fifth). Default
	// 10s.
	LowBuffer time.Duration
	// StartKbps is the tier for the first track, before any sample; the
	// highest tier not above it is used. Default 96.
	StartKbps int
	// FastHalfLife and SlowHalfLife are the averages' half-lives, in
	// seconds of download. Defaults 2 and 5.
	FastHalfLife, SlowHalfLife float64
}

// DefaultConfig returns the defaults for tiers.
func DefaultConfig(tiers []int) Config {
	return Config{Tiers: tiers, Safety: 0.7, LowBuffer: 10 * time.Second, StartKbps: 96, FastHalfLife: 2, SlowHalfLife: 5}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if len(c.Tiers) == 0 {
		return errors.New("abr: no tiers")
	}
	for i := 1; i < len(c.Tiers); i++ {
		if c.Tiers[i] <= c.Tiers[i-1] {
			return errors.New("abr: tiers not ascending")
		}
	}
	if c.Safety <= 0 || c.Safety > 1 || c.LowBuffer < 0 || c.FastHalfLife <= 0 || c.SlowHalfLife <= 0 || c.MaxKbps < 0 {
		return errors.New("abr: bad safety, buffer, half-life or ceiling")
	}
	return nil
}

// Estimator tracks throughput. It is not safe for concurrent use.
type Estimator struct {
	cfg        Config
	fast, slow ewma
	bytes      int64
}

// New returns an estimator with no samples.
func New(cfg Config) (*Estimator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Estimator{cfg: cfg, fast: ewma{half: cfg.FastHalfLife}, slow: ewma{half: cfg.SlowHalfLife}}, nil
}

// minWeight is the least weight, in seconds, of one sample.
const minWeight = 0.5

// minSampleBytes ignores tiny transfers, which measure latency, not
// bandwidth.
const minSampleBytes = 4 << 10

// Sample records that n bytes took d to download.
func (e *Estimator) Sample(n int64, d time.Duration) {
	if n < minSampleBytes || d <= 0 {
		return
	}
	sec := d.Seconds()
	bps := float64(n) * 8 / sec
	// A fast transfer takes almost no time; weighting it by its duration
	// alone would keep the estimate low for ever after a slow spell, so
	// every sample weighs at least minWeight.
	w := max(sec, minWeight)
	e.fast.add(w, bps)
	e.slow.add(w, bps)
	e.bytes += n
}

// Estimate returns the throughput estimate in bit/s, and false before any
// sample.
func (e *Estimator) Estimate() (float64, bool) {
	if e.bytes == 0 {
		return 0, false
	}
	return min(e.fast.value(), e.slow.value()), true
}

// Choose returns the tier for the next track given the buffered audio
// ahead of the player.
func (e *Estimator) Choose(buffer time.Duration) int {
	bps, ok := e.Estimate()
	return Choose(e.cfg, bps, ok, buffer)
}

// Choose is the policy: the highest tier within Safety of the estimate,
// scaled down when the buffer is under LowBuffer, and within MaxKbps; the
// lowest tier when none fits.
func Choose(cfg Config, bps float64, known bool, buffer time.Duration) int {
	ceiling := math.MaxInt
	if cfg.MaxKbps > 0 {
		ceiling = cfg.MaxKbps
	}
	if !known {
		ceiling = min(ceiling, cfg.StartKbps)
	} else {
		budget := bps * cfg.Safety
		if cfg.LowBuffer > 0 && buffer < cfg.LowBuffer {
			budget *= max(buffer.Seconds(), 0) / cfg.LowBuffer.Seconds()
		}
		ceiling = min(ceiling, int(budget/1000))
	}
	tier := cfg.Tiers[0]
	for _, t := range cfg.Tiers {
		if t <= ceiling {
			tier = t
		}
	}
	return tier
}

// ewma is a moving average weighted by sample duration, with the
// zero-start bias corrected as in Shaka Player.
type ewma struct {
	half   float64
	est    float64
	weight float64
}

func (a *ewma) add(weight, v float64) {
	alpha := math.Pow(0.5, weight/a.half)
	a.est = v*(1-alpha) + alpha*a.est
	a.weight += weight
}

func (a *ewma) value() float64 {
	return a.est / (1 - math.Pow(0.5, a.weight/a.half))
}
