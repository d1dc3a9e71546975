// Package plan sizes a deployment: from the catalog, the audience and the
// hardware's measured throughput it computes the catalog's bytes, the edge
// cache a POP needs for a target byte hit ratio (or the ratio a cache
// gives), egress at each tier, edges and shields with N+1 headroom, the
// plays pipeline's partitions and sinks, and the dedup store's size. Each
// answer carries its formula and the inputs it used (Result.Explain).
//
// Hit ratios are not formulas: they come from replaying the load tool's
// workload (workload.Generator) through the policy the edge really runs
// (cachesim's POP model over cache.Memory, with prefetch). A 100M-track
// catalog cannot be replayed on one machine, so the replay runs on a
// scaled catalog (Config.SimTracks) with each cache scaled by ScaleCache:
// the scaled cache holds the same share of the requests under Zipf(s) as
// the real one. VerifyScaling checks that rule against full simulations.
//
// LikeRun predicts a finished load-tool run's edge byte hit ratio from
// the parameters its JSON report records: the same sessions, replayed
// through a model of that POP (its edges, rendezvous ownership, hot caches
// and prefetch), to compare with what the run measured.
//
// The package is a library and a command ("loadtest plan"); it serves no
// endpoint.
package plan

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"
)

// Answer explains one key of Result: its formula and its inputs.
type Answer struct {
	Formula string             `json:"formula"`
	Inputs  map[string]float64 `json:"inputs"`
}

// Result is a plan. Keys are pinned by TestJSONKeys: scripts use them.
// Pointer fields are left out (absent from the JSON) when the inputs
// they need were not given.
type Result struct {
	Tracks        int64              `json:"tracks"`
	AvgDurationS  float64            `json:"avg_duration_s"`
	TiersKbps     []int              `json:"tiers_kbps"`
	TierMix       []float64          `json:"tier_mix"` // normalised to sum 1
	CatalogBytes  float64            `json:"catalog_bytes"`
	CatalogByTier map[string]float64 `json:"catalog_bytes_by_tier"`
	TrackBytes    float64            `json:"track_bytes"`
	MixKbps       float64            `json:"mix_kbps"`
	Skew          float64            `json:"skew"`
	SkewSource    string             `json:"skew_source"` // "skew" or the CSV's path

	TargetHitRatio       *float64 `json:"target_byte_hit_ratio,omitempty"`
	TargetEdgeCacheBytes *float64 `json:"target_edge_cache_bytes,omitempty"`
	EdgeCacheBytes       *float64 `json:"edge_cache_bytes,omitempty"`
	EdgeByteHitRatio     *float64 `json:"edge_byte_hit_ratio,omitempty"`
	EdgeChunkHitRatio    *float64 `json:"edge_chunk_byte_hit_ratio,omitempty"`
	EdgeOffload          *float64 `json:"edge_offload,omitempty"`
	FetchOverhead        *float64 `json:"fetch_overhead,omitempty"`

	Streams                      *int64   `json:"streams,omitempty"`
	EdgeEgressBps                *float64 `json:"edge_egress_bps,omitempty"`
	ShieldEgressBps              *float64 `json:"shield_egress_bps,omitempty"`
	OriginEgressBps              *float64 `json:"origin_egress_bps,omitempty"`
	OriginEgressBpsPer1000Stream *float64 `json:"origin_egress_bps_per_1000_streams,omitempty"`
	EdgeThroughputBps            *float64 `json:"edge_throughput_bps,omitempty"`
	EdgesPerPOP                  *int64   `json:"edges_per_pop,omitempty"`
	ShieldCacheBytes             *float64 `json:"shield_cache_bytes,omitempty"`
	ShieldHitRatio               *float64 `json:"shield_hit_ratio,omitempty"`
	ShieldsPerRegion             *int64   `json:"shields_per_region,omitempty"`

	PlaysPerDay     *float64 `json:"plays_per_day,omitempty"`
	PlaysMeanPerSec *float64 `json:"plays_mean_per_s,omitempty"`
	PlaysPeakPerSec *float64 `json:"plays_peak_per_s,omitempty"`
	PlaysSinks      *int64   `json:"plays_sinks,omitempty"`
	PlaysPartitions *int64   `json:"plays_partitions,omitempty"`
	DedupStoreBytes *float64 `json:"dedup_store_bytes,omitempty"`

	Simulation *Simulation       `json:"simulation,omitempty"`
	Explain    map[string]Answer `json:"explain"`
	Notes      []string          `json:"notes,omitempty"`
}

// Simulation records how the hit ratios were obtained.
type Simulation struct {
	Tracks       int     `json:"sim_tracks"`
	CatalogBytes float64 `json:"sim_catalog_bytes"`
	Sessions     int     `json:"sim_sessions"`
	Concurrency  float64 `json:"sim_concurrent_streams"`
	SessionRate  float64 `json:"sim_session_rate"`
	SimulatedS   float64 `json:"simulated_s"`
	WarmupS      float64 `json:"warmup_s"`
	ScalingRule  string  `json:"scaling_rule"`
	// CeilingByteHitRatio is the ratio of a cache that holds everything
	// (computed with a target): what the simulation can resolve.
	CeilingByteHitRatio *float64   `json:"sim_ceiling_byte_hit_ratio,omitempty"`
	Points              []SimPoint `json:"points"`
	ElapsedS            float64    `json:"elapsed_s"`
}

func ptr[T any](v T) *T { return &v }

func (r *Result) explain(key, formula string, inputs map[string]float64) {
	r.Explain[key] = Answer{Formula: formula, Inputs: inputs}
}

// Plan computes every answer cfg has the inputs for. Hit ratios need a
// simulation (seconds to a minute); ctx stops it between cache sizes.
func Plan(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.validErr(); err != nil {
		return nil, err
	}
	r := &Result{Explain: map[string]Answer{}, CatalogByTier: map[string]float64{}}
	avg := time.Duration(cfg.AvgDuration).Seconds()
	r.Tracks, r.AvgDurationS, r.TiersKbps = cfg.Tracks, avg, cfg.TiersKbps
	sum := 0.0
	for _, w := range cfg.TierMix {
		sum += w
	}
	sumKbps := 0
	for i, k := range cfg.TiersKbps {
		r.TierMix = append(r.TierMix, cfg.TierMix[i]/sum)
		r.CatalogByTier[strconv.Itoa(k)] = CatalogBytes(cfg.Tracks, avg, []int{k})
		sumKbps += k
	}
	r.TrackBytes = TrackBytes(avg, cfg.TiersKbps)
	r.CatalogBytes = CatalogBytes(cfg.Tracks, avg, cfg.TiersKbps)
	r.explain("catalog_bytes", "tracks × avg_duration_s × Σ tiers_kbps × 125 B/(kbit/s·s)",
		map[string]float64{"tracks": float64(cfg.Tracks), "avg_duration_s": avg, "sum_tiers_kbps": float64(sumKbps)})
	r.MixKbps = MixKbps(cfg.TiersKbps, cfg.TierMix)
	r.explain("mix_kbps", "Σ tier_mix_i × tiers_kbps_i (mix normalised)", map[string]float64{"mix_kbps": r.MixKbps})
	r.Skew, r.SkewSource = cfg.Skew, "skew"
	if cfg.PopularityCSV != "" {
		counts, err := ReadPopularityCSV(cfg.PopularityCSV)
		if err != nil {
			return nil, err
		}
		s := FitZipf(counts)
		if math.IsNaN(s) || s < 0 || s > 5 {
			return nil, fmt.Errorf("plan: popularity_csv %s: no Zipf exponent in [0, 5] fits (got %v)", cfg.PopularityCSV, s)
		}
		r.Skew, r.SkewSource = s, cfg.PopularityCSV
		r.explain("skew", "least-squares slope of log(plays) on log(rank), negated", map[string]float64{"tracks_in_csv": float64(len(counts))})
	}

	if err := planCache(ctx, cfg, r); err != nil {
		return nil, err
	}
	planTraffic(cfg, r)
	planPlays(cfg, r)
	return r, nil
}

// planCache runs the simulation when a cache size or a target is given.
func planCache(ctx context.Context, cfg Config, r *Result) error {
	if cfg.EdgeCache == 0 && cfg.TargetHitRatio == 0 && cfg.Streams == 0 {
		return nil
	}
	start := time.Now()
	sim, err := newSim(cfg, r.Skew)
	if err != nil {
		return err
	}
	shieldF := float64(cfg.ShieldCache) / r.CatalogBytes
	r.Simulation = &Simulation{
		Tracks: cfg.SimTracks, CatalogBytes: sim.simCatalog, Sessions: cfg.SimSessions,
		Concurrency: sim.concurrency, SessionRate: sim.sessionRate,
		SimulatedS: sim.duration.Seconds(), WarmupS: sim.warmup.Seconds(),
		ScalingRule: fmt.Sprintf("a cache of fraction f of the %d-track catalog is simulated as the fraction g of the %d-track one whose most popular g·%d tracks take the same share of requests under Zipf(%.3g) as the top f·%d (ScaleCache)",
			cfg.Tracks, cfg.SimTracks, cfg.SimTracks, r.Skew, cfg.Tracks),
	}
	add := func(f float64) (SimPoint, error) {
		if err := ctx.Err(); err != nil {
			return SimPoint{}, err
		}
		p, err := sim.run(cfg, f, shieldF)
		if err != nil {
			return SimPoint{}, err
		}
		r.Simulation.Points = append(r.Simulation.Points, p)
		return p, nil
	}
	var at *SimPoint
	if cfg.EdgeCache > 0 {
		p, err := add(float64(cfg.EdgeCache) / r.CatalogBytes)
		if err != nil {
			return err
		}
		at = &p
	}
	if cfg.TargetHitRatio > 0 {
		// A grid of sizes, then the target by interpolation in log size,
		// below the simulation's ceiling: a cache holding every chunk
		// still misses each chunk's first request after the warm-up.
		for _, f := range []float64{1e-4, 1e-3, 1e-2, 3e-2, 0.1} {
			if _, err := add(f); err != nil {
				return err
			}
		}
		ceil, err := sim.runSim(int64(4*sim.simCatalog), 0)
		if err != nil {
			return err
		}
		r.Simulation.CeilingByteHitRatio = ptr(ceil.ByteHitRatio())
		pts := append([]SimPoint(nil), r.Simulation.Points...)
		sort.Slice(pts, func(i, j int) bool { return pts[i].Fraction < pts[j].Fraction })
		r.TargetHitRatio = ptr(cfg.TargetHitRatio)
		if cfg.TargetHitRatio > ceil.ByteHitRatio()-0.005 {
			r.Notes = append(r.Notes, fmt.Sprintf("target byte hit ratio %.4g is above what this simulation can resolve: a cache holding everything gets %.4g, the rest being first requests of chunks in %d sessions on %d tracks; raise --sim-sessions (or lower --sim-tracks) to lift that ceiling",
				cfg.TargetHitRatio, ceil.ByteHitRatio(), cfg.SimSessions, cfg.SimTracks))
		} else if f, ok := interpolate(pts, cfg.TargetHitRatio); ok {
			r.TargetEdgeCacheBytes = ptr(f * r.CatalogBytes)
			r.explain("target_edge_cache_bytes", "smallest simulated edge cache whose edge_byte_hit_ratio reaches the target (log-linear between simulated sizes) × catalog_bytes",
				map[string]float64{"target": cfg.TargetHitRatio, "fraction": f, "catalog_bytes": r.CatalogBytes})
			if at == nil {
				p, err := add(f)
				if err != nil {
					return err
				}
				at = &p
			}
		} else {
			r.Notes = append(r.Notes, fmt.Sprintf("target byte hit ratio %.4g is not reached by an edge cache of 10%% of the catalog (%.4g at 10%%)",
				cfg.TargetHitRatio, pts[len(pts)-1].ByteHitRatio))
		}
	}
	if at == nil { // no cache to answer for: egress beyond the edge needs one
		if cfg.TargetHitRatio == 0 {
			r.Notes = append(r.Notes, "no edge_cache or target_byte_hit_ratio: egress beyond the edge is not computed")
		}
		p, err := add(0.01) // still measures the players' over-fetch
		if err != nil {
			return err
		}
		r.FetchOverhead = ptr(float64(p.stats.Bytes) / float64(max(p.stats.PlayedBytes, 1)))
		r.Simulation.ElapsedS = time.Since(start).Seconds()
		return nil
	}
	st := at.stats
	r.EdgeCacheBytes = ptr(at.CacheBytes)
	r.EdgeByteHitRatio = ptr(at.ByteHitRatio)
	r.EdgeChunkHitRatio = ptr(at.ChunkHitRatio)
	r.EdgeOffload = ptr(at.Offload)
	r.FetchOverhead = ptr(float64(st.Bytes) / float64(max(st.PlayedBytes, 1)))
	in := map[string]float64{"edge_cache_bytes": at.CacheBytes, "fraction": at.Fraction, "sim_cache_bytes": float64(at.SimCacheBytes),
		"sim_tracks": float64(cfg.SimTracks), "skew": r.Skew, "sim_requests": float64(st.Requests)}
	r.explain("edge_byte_hit_ratio", "simulated: bytes of requests whose every chunk the edge tier held / bytes requested (Cache-Status hit, as the load tool counts)", in)
	r.explain("edge_chunk_byte_hit_ratio", "simulated: chunk bytes the edge tier held / chunk bytes requests touched", in)
	r.explain("edge_offload", "simulated: 1 - bytes edges fetched from shields (misses and prefetch) / bytes served", in)
	r.explain("fetch_overhead", "simulated: bytes players fetched / bytes of audio they played (read-ahead of skipped and stopped tracks)",
		map[string]float64{"fetched": float64(st.Bytes), "played": float64(st.PlayedBytes)})
	if cfg.ShieldCache > 0 {
		fills := max(st.FillBytes, 1)
		r.ShieldCacheBytes = ptr(float64(cfg.ShieldCache))
		r.ShieldHitRatio = ptr(1 - float64(st.OriginBytes)/float64(fills))
		r.explain("shield_hit_ratio", "simulated: 1 - bytes the shield fetched from the origin / bytes edges fetched from it (one POP's misses: a lower bound when several POPs share the shields)",
			map[string]float64{"shield_cache_bytes": float64(cfg.ShieldCache), "sim_shield_fraction": ScaleCache(float64(cfg.ShieldCache)/r.CatalogBytes, float64(cfg.Tracks), float64(cfg.SimTracks), r.Skew)})
	}
	r.Simulation.ElapsedS = time.Since(start).Seconds()
	return nil
}

// interpolate finds the fraction at which the byte hit ratio reaches
// target, log-linear between the points (sorted by fraction).
func interpolate(pts []SimPoint, target float64) (float64, bool) {
	for i, p := range pts {
		if p.ByteHitRatio >= target {
			if i == 0 {
				return p.Fraction, true
			}
			q := pts[i-1]
			t := (target - q.ByteHitRatio) / (p.ByteHitRatio - q.ByteHitRatio)
			return math.Exp(math.Log(q.Fraction) + t*(math.Log(p.Fraction)-math.Log(q.Fraction))), true
		}
	}
	return 0, false
}

func planTraffic(cfg Config, r *Result) {
	if cfg.Streams == 0 || r.FetchOverhead == nil {
		return
	}
	r.Streams = ptr(cfg.Streams)
	egress := EgressBps(cfg.Streams, r.MixKbps, *r.FetchOverhead)
	r.EdgeEgressBps = ptr(egress)
	r.explain("edge_egress_bps", "streams × mix_kbps × 1000 × fetch_overhead",
		map[string]float64{"streams": float64(cfg.Streams), "mix_kbps": r.MixKbps, "fetch_overhead": *r.FetchOverhead})
	thr := cfg.EdgeThroughputBps
	if cfg.BenchFile != "" {
		if v, err := ReadBenchFile(cfg.BenchFile); err == nil {
			thr = v
		} else {
			r.Notes = append(r.Notes, err.Error())
		}
	}
	if thr > 0 {
		r.EdgeThroughputBps = ptr(thr)
		r.EdgesPerPOP = ptr(NodesNPlus1(egress, thr))
		r.explain("edges_per_pop", "ceil(edge_egress_bps / edge_throughput_bps) + 1 (N+1)",
			map[string]float64{"edge_egress_bps": egress, "edge_throughput_bps": thr})
	}
	if r.EdgeOffload == nil {
		return
	}
	shieldOut := egress * (1 - *r.EdgeOffload)
	r.ShieldEgressBps = ptr(shieldOut)
	r.explain("shield_egress_bps", "edge_egress_bps × (1 - edge_offload): what one POP's edges fetch from shields",
		map[string]float64{"edge_egress_bps": egress, "edge_offload": *r.EdgeOffload})
	shieldHit := 0.0
	if r.ShieldHitRatio != nil {
		shieldHit = *r.ShieldHitRatio
	}
	origin := shieldOut * (1 - shieldHit)
	r.OriginEgressBps = ptr(origin)
	r.OriginEgressBpsPer1000Stream = ptr(origin / float64(cfg.Streams) * 1000)
	r.explain("origin_egress_bps", "shield_egress_bps × (1 - shield_hit_ratio), one POP (shield_hit_ratio 0 without shield_cache)",
		map[string]float64{"shield_egress_bps": shieldOut, "shield_hit_ratio": shieldHit})
	r.explain("origin_egress_bps_per_1000_streams", "origin_egress_bps / streams × 1000",
		map[string]float64{"origin_egress_bps": origin, "streams": float64(cfg.Streams)})
	sthr := cfg.ShieldThroughputBps
	if sthr == 0 {
		sthr = thr
	}
	if sthr > 0 {
		load := shieldOut * float64(cfg.POPsPerRegion)
		r.ShieldsPerRegion = ptr(NodesNPlus1(load, sthr))
		r.explain("shields_per_region", "ceil(pops_per_region × shield_egress_bps / shield_throughput_bps) + 1 (N+1)",
			map[string]float64{"pops_per_region": float64(cfg.POPsPerRegion), "shield_egress_bps": shieldOut, "shield_throughput_bps": sthr})
	}
}

func planPlays(cfg Config, r *Result) {
	if cfg.PlaysPerDay == 0 {
		return
	}
	p := Plays(cfg.PlaysPerDay, cfg.PeakFactor, cfg.SinkEventsPerSec, cfg.PartitionEventsPerSec)
	r.PlaysPerDay = ptr(cfg.PlaysPerDay)
	r.PlaysMeanPerSec = ptr(p.MeanPerSec)
	r.PlaysPeakPerSec = ptr(p.PeakPerSec)
	r.explain("plays_peak_per_s", "plays_per_day / 86400 × peak_factor",
		map[string]float64{"plays_per_day": cfg.PlaysPerDay, "peak_factor": cfg.PeakFactor})
	r.PlaysPartitions = ptr(p.Partitions)
	in := map[string]float64{"plays_peak_per_s": p.PeakPerSec, "partition_events_per_s": cfg.PartitionEventsPerSec}
	if cfg.SinkEventsPerSec > 0 {
		r.PlaysSinks = ptr(p.Sinks)
		in["sink_events_per_s"] = cfg.SinkEventsPerSec
		r.explain("plays_sinks", "ceil(plays_peak_per_s / sink_events_per_s)", in)
	}
	r.explain("plays_partitions", "ceil(plays_peak_per_s / partition_events_per_s), at least plays_sinks and rounded up to a multiple of it", in)
	days := time.Duration(cfg.DedupRetention).Hours() / 24
	r.DedupStoreBytes = ptr(DedupBytes(cfg.PlaysPerDay, days, cfg.DedupEntryBytes))
	r.explain("dedup_store_bytes", "plays_per_day × retention_days × dedup_entry_bytes",
		map[string]float64{"plays_per_day": cfg.PlaysPerDay, "retention_days": days, "dedup_entry_bytes": cfg.DedupEntryBytes})
}
