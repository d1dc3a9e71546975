package recs

import (
	"math"
	"time"

	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/origin/recs/als"
)

// Config configures a Service. Build it with DefaultConfig and change what
// you need; New validates it and never changes it afterwards.
type Config struct {
	// Factors is the number of latent factors per user and track. More
	// factors capture finer taste at a cost linear-to-quadratic in training
	// time and linear in memory. Default 64.
	Factors int `yaml:"factors"`
	// Regularization is the L2 penalty λ on factor vectors. Default 0.01.
	Regularization float64 `yaml:"regularization"`
	// Alpha turns plays into confidence, c = 1 + Alpha·plays. Higher
	// values trust repeated plays more. Default 40.
	Alpha float64 `yaml:"alpha"`
	// Iterations is the number of ALS sweeps per training. Default 15.
	Iterations int `yaml:"iterations"`
	// CGSteps is the number of conjugate-gradient steps per row and
	// half-sweep. Default 3.
	CGSteps int `yaml:"cg_steps"`
	// Workers is the number of training goroutines; 0 means GOMAXPROCS.
	Workers int `yaml:"workers"`
	// Seed makes training reproducible. Default 1.
	Seed uint64 `yaml:"seed"`

	// RetrainEvery is the time between trainings in Run. Default 6h.
	RetrainEvery time.Duration `yaml:"retrain_every"`
	// NeighboursK is how many nearest neighbours are precomputed per
	// track after training. It must exceed the largest n callers ask for
	// by enough to survive rights filtering; requests that run out fall
	// back to a full scan. Memory is 4 bytes × tracks × NeighboursK.
	// Default 50.
	NeighboursK int `yaml:"neighbours_k"`
	// ExactNeighboursMax is the largest catalog whose neighbours are
	// computed exactly (cost tracks² × factors). Larger catalogs use an
	// inverted-file index over spherical k-means lists, probing
	// NeighbourProbes of about √tracks lists per track: roughly
	// √tracks / NeighbourProbes times less work, and approximate.
	// Default 20000.
	ExactNeighboursMax int `yaml:"exact_neighbours_max"`
	// NeighbourProbes is how many lists the index scans per track; more
	// probes find more of the true neighbours at proportional cost.
	// Default 24.
	NeighbourProbes int `yaml:"neighbour_probes"`
	// ColdStartRidge is the ridge penalty of the linear map from content
	// embeddings onto item factors, which places tracks without plays.
	// Default 10.
	ColdStartRidge float64 `yaml:"cold_start_ridge"`
	// MinWarmTracks is how many tracks with both plays and an embedding
	// the content map needs; with fewer, tracks without plays are served
	// the popularity fallback. Default 2 × the embedding length.
	MinWarmTracks int `yaml:"min_warm_tracks"`

	// CacheTTL bounds how long an encoded response is reused; it is also
	// how long a change of rights can take to show. Default 5m.
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// CacheBytes caps the response cache. Default 64 MiB.
	CacheBytes int64 `yaml:"cache_bytes"`
	// MaxN is the largest n a request to Handler may ask for (the origin's
	// own /v1/recs/next allows origin.MaxNext). Default 100.
	MaxN int `yaml:"max_n"`
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	d := als.DefaultConfig()
	return Config{
		Factors:            d.Factors,
		Regularization:     d.Regularization,
		Alpha:              d.Alpha,
		Iterations:         d.Iterations,
		CGSteps:            d.CGSteps,
		Seed:               1,
		RetrainEvery:       6 * time.Hour,
		NeighboursK:        50,
		ExactNeighboursMax: 20000,
		NeighbourProbes:    24,
		ColdStartRidge:     10,
		MinWarmTracks:      2 * EmbeddingDim,
		CacheTTL:           5 * time.Minute,
		CacheBytes:         64 << 20,
		MaxN:               100,
	}
}

// Validate reports the first invalid field as a *config.FieldError
// naming its yaml key.
func (c Config) Validate() error {
	bad := config.Errorf
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case c.Factors < 1 || c.Factors > 1024:
		return bad("factors", "%d out of range [1,1024]", c.Factors)
	case !finite(c.Regularization) || c.Regularization < 0:
		return bad("regularization", "%v must be a finite number >= 0", c.Regularization)
	case !finite(c.Alpha) || c.Alpha <= 0:
		return bad("alpha", "%v must be a finite number > 0", c.Alpha)
	case c.Iterations < 1:
		return bad("iterations", "%d must be >= 1", c.Iterations)
	case c.CGSteps < 1:
		return bad("cg_steps", "%d must be >= 1", c.CGSteps)
	case c.Workers < 0:
		return bad("workers", "%d must be >= 0", c.Workers)
	case c.RetrainEvery <= 0:
		return bad("retrain_every", "%v must be > 0", c.RetrainEvery)
	case c.NeighboursK < 1:
		return bad("neighbours_k", "%d must be >= 1", c.NeighboursK)
	case c.ExactNeighboursMax < 0:
		return bad("exact_neighbours_max", "%d must be >= 0", c.ExactNeighboursMax)
	case c.NeighbourProbes < 1:
		return bad("neighbour_probes", "%d must be >= 1", c.NeighbourProbes)
	case !finite(c.ColdStartRidge) || c.ColdStartRidge <= 0:
		return bad("cold_start_ridge", "%v must be a finite number > 0", c.ColdStartRidge)
	case c.MinWarmTracks < 1:
		return bad("min_warm_tracks", "%d must be >= 1", c.MinWarmTracks)
	case c.CacheTTL <= 0:
		return bad("cache_ttl", "%v must be > 0", c.CacheTTL)
	case c.CacheBytes < 1<<10:
		return bad("cache_bytes", "%d must be >= 1024", c.CacheBytes)
	case c.MaxN < 1:
		return bad("max_n", "%d must be >= 1", c.MaxN)
	}
	return nil
}

func (c Config) als() als.Config {
	return als.Config{
		Factors:        c.Factors,
		Regularization: c.Regularization,
		Alpha:          c.Alpha,
		Iterations:     c.Iterations,
		CGSteps:        c.CGSteps,
		Workers:        c.Workers,
		Seed:           c.Seed,
	}
}
