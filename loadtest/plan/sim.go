package plan

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/loadtest/cachesim"
	"github.com/musiccdn/cdn/loadtest/workload"
	"github.com/musiccdn/cdn/tier"
)

// SimPoint is one simulated cache size: the fraction of the real catalog
// it stands for, the scaled cache the simulation ran, and the outcome.
type SimPoint struct {
	Fraction      float64 `json:"fraction"`        // of the real catalog's bytes
	CacheBytes    float64 `json:"cache_bytes"`     // at the real catalog
	SimCacheBytes int64   `json:"sim_cache_bytes"` // at the scaled catalog
	ByteHitRatio  float64 `json:"byte_hit_ratio"`  // edge_byte_hit_ratio (Cache-Status bytes)
	ChunkHitRatio float64 `json:"chunk_byte_hit_ratio"`
	Offload       float64 `json:"offload"` // 1 - shield fills / bytes served
	stats         cachesim.POPStats
}

// simSetup is the scaled simulation of a plan.
type simSetup struct {
	workload     workload.Config
	duration     time.Duration
	warmup       time.Duration
	simCatalog   float64 // bytes of the scaled synthetic catalog
	realCatalog  float64
	skew         float64
	concurrency  float64
	sessionRate  float64
	meanSessionS float64
	pop          cachesim.POPConfig
}

// workloadFor is the load tool's workload with the plan's catalog size,
// skew, behaviour and tier mix (one bandwidth class per tier; a tier the
// synthetic catalog does not have is simulated at the nearest one).
func workloadFor(cfg Config, tracks int, skew float64) workload.Config {
	w := workload.DefaultConfig()
	w.Tracks, w.Seed, w.Skew = tracks, cfg.Seed, skew
	w.SkipProb, w.SeekProb, w.MeanTracks = cfg.SkipProb, cfg.SeekProb, cfg.MeanTracks
	w.Classes = nil
	for i, k := range cfg.TiersKbps {
		w.Classes = append(w.Classes, workload.BandwidthClass{Name: fmt.Sprintf("%dk", k), Weight: cfg.TierMix[i], MaxKbps: nearestTier(k)})
	}
	return w
}

func nearestTier(k int) int {
	best := catalog.Tiers[0]
	for _, t := range catalog.Tiers {
		if math.Abs(float64(t-k)) < math.Abs(float64(best-k)) {
			best = t
		}
	}
	return best
}

// edgePOP is one POP's edge tier as the plan models it: the edges'
// memories together as one cache (rendezvous ownership splits the catalog
// among them, so the tier holds one copy of each chunk), the edge's window
// and chunk size, and prefetch as tier's defaults set it.
func edgePOP(cfg Config, cacheBytes int64) cachesim.POPConfig {
	ec := tier.DefaultEdgeConfig()
	return cachesim.POPConfig{
		Edges:             1,
		EdgeBytes:         cacheBytes,
		EdgeWindowPercent: ec.Cache.WindowPercent,
		ChunkSize:         int64(ec.Cache.ChunkSize),
		Prefetch:          cfg.Prefetch && ec.Prefetch.Enabled,
		PrefetchTracks:    ec.Prefetch.Tracks,
		PrefetchSeconds:   ec.Prefetch.Seconds,
		PrefetchDedup:     time.Duration(ec.Prefetch.Dedup),
	}
}

// newSim prepares the scaled simulation: the plan's workload on SimTracks
// tracks, sessions arriving at the rate that keeps cfg.Streams streams
// playing (1000 without Streams; at most SimSessions/20), SimSessions of
// them, the first fifth not counted.
func newSim(cfg Config, skew float64) (*simSetup, error) {
	w := workloadFor(cfg, cfg.SimTracks, skew)
	g, err := workload.NewGenerator(w)
	if err != nil {
		return nil, err
	}
	// Mean session length (audio played), from the generator itself.
	var played time.Duration
	const probe = 2000
	for range probe {
		for _, p := range g.Next().Plays {
			played += p.Played
		}
	}
	meanS := played.Seconds() / probe
	// The simulated concurrency sets how sessions interleave; it is the
	// plan's streams, capped so that the run spans at least 20 session
	// lengths (a steady state after the first fifth).
	streams := float64(cfg.Streams)
	if streams == 0 {
		streams = 1000
	}
	streams = min(streams, float64(cfg.SimSessions)/20)
	rate := streams / meanS // Little's law: streams = rate × session length
	w.SessionRate = rate
	dur := time.Duration(float64(cfg.SimSessions) / rate * float64(time.Second))
	return &simSetup{
		workload: w, duration: dur, warmup: dur / 5,
		simCatalog:   float64(cachesim.CatalogBytes(cfg.SimTracks, cfg.Seed)),
		realCatalog:  CatalogBytes(cfg.Tracks, time.Duration(cfg.AvgDuration).Seconds(), cfg.TiersKbps),
		skew:         skew,
		concurrency:  streams,
		sessionRate:  rate,
		meanSessionS: meanS,
		pop:          edgePOP(cfg, 0),
	}, nil
}

// run simulates a cache of fraction f of the real catalog (scaled by
// ScaleCache) and, with shieldFraction > 0, a shield of that fraction.
func (s *simSetup) run(cfg Config, f, shieldFraction float64) (SimPoint, error) {
	g := ScaleCache(f, float64(cfg.Tracks), float64(cfg.SimTracks), s.skew)
	p := s.pop
	p.EdgeBytes = max(int64(g*s.simCatalog), p.ChunkSize)
	if shieldFraction > 0 {
		p.ShieldBytes = max(int64(ScaleCache(shieldFraction, float64(cfg.Tracks), float64(cfg.SimTracks), s.skew)*s.simCatalog), p.ChunkSize)
	}
	st, err := cachesim.ReplayRun(cachesim.RunConfig{Workload: s.workload, Compression: 1, Duration: s.duration, Warmup: s.warmup, POP: p})
	if err != nil {
		return SimPoint{}, err
	}
	return SimPoint{Fraction: f, CacheBytes: f * s.realCatalog, SimCacheBytes: p.EdgeBytes,
		ByteHitRatio: st.ByteHitRatio(), ChunkHitRatio: st.ChunkByteHitRatio(), Offload: st.Offload(), stats: st}, nil
}

// ScalingRow compares, at one skew and cache fraction, a full simulation
// of a catalog with the scaled simulations of it.
type ScalingRow struct {
	Skew     float64 `json:"skew"`
	Fraction float64 `json:"fraction"`      // cache / full catalog bytes
	Full     float64 `json:"full"`          // edge byte hit ratio, full catalog
	Matched  float64 `json:"matched"`       // scaled catalog, ScaleCache
	SameFrac float64 `json:"same_fraction"` // scaled catalog, the same fraction
	MatchedG float64 `json:"matched_fraction"`
}

// VerifyScaling simulates a catalog of fullTracks in full and scaled to
// cfg.SimTracks, by ScaleCache and by keeping the fraction, at each skew
// and fraction, with cfg's workload and SimSessions sessions each.
func VerifyScaling(ctx context.Context, cfg Config, fullTracks int, skews, fractions []float64) ([]ScalingRow, error) {
	var rows []ScalingRow
	for _, s := range skews {
		full := cfg
		full.SimTracks, full.Tracks = fullTracks, int64(fullTracks)
		fs, err := newSim(full, s)
		if err != nil {
			return nil, err
		}
		scaled := cfg
		scaled.Tracks = int64(fullTracks)
		ss, err := newSim(scaled, s)
		if err != nil {
			return nil, err
		}
		for _, f := range fractions {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			row := ScalingRow{Skew: s, Fraction: f, MatchedG: ScaleCache(f, float64(fullTracks), float64(cfg.SimTracks), s)}
			p, err := fs.runSim(int64(f*fs.simCatalog), 0)
			if err != nil {
				return nil, err
			}
			row.Full = p.ByteHitRatio()
			if p, err = ss.runSim(int64(row.MatchedG*ss.simCatalog), 0); err != nil {
				return nil, err
			}
			row.Matched = p.ByteHitRatio()
			if p, err = ss.runSim(int64(f*ss.simCatalog), 0); err != nil {
				return nil, err
			}
			row.SameFrac = p.ByteHitRatio()
			rows = append(rows, row)
		}
	}
	return rows, nil
}

// runSim replays the setup with an edge tier of edgeBytes.
func (s *simSetup) runSim(edgeBytes, shieldBytes int64) (cachesim.POPStats, error) {
	p := s.pop
	p.EdgeBytes = max(edgeBytes, p.ChunkSize)
	p.ShieldBytes = shieldBytes
	return cachesim.ReplayRun(cachesim.RunConfig{Workload: s.workload, Compression: 1, Duration: s.duration, Warmup: s.warmup, POP: p})
}
