package plan

import (
	"fmt"
	"math"
	"time"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/loadtest/workload"
)

// Config is the planner's input; configs/plan.yaml maps onto it one to
// one and every field is also a flag of "loadtest plan". A zero traffic,
// cache or plays field leaves the answers that need it out of the plan.
type Config struct {
	// Tracks is the catalog size. Default 100000000.
	Tracks int64 `yaml:"tracks"`
	// AvgDuration is the mean track length; catalog bytes depend on the
	// durations only through their mean. Default 3m30s.
	AvgDuration config.Duration `yaml:"avg_duration"`
	// TiersKbps are the encoded tiers, in kbit/s (1000 bit/s); every track
	// is stored at every tier. Default [24, 64, 96, 160, 320].
	TiersKbps []int `yaml:"tiers_kbps"`
	// TierMix is the share of streams at each tier (same order, any
	// scale). Default [5, 15, 30, 35, 15]: the load tool's bandwidth
	// classes (2g, 3g, lte, wifi, premium).
	TierMix []float64 `yaml:"tier_mix"`

	// Streams is the number of concurrent streams one POP serves at peak.
	// Default 0: no egress, edge or shield answers.
	Streams int64 `yaml:"streams"`
	// POPsPerRegion is how many POPs one region's shields serve. Default 1.
	POPsPerRegion int `yaml:"pops_per_region"`
	// Skew is the Zipf exponent of track popularity. Default 1.0.
	Skew float64 `yaml:"skew"`
	// PopularityCSV is a CSV of play counts, one track per row (the last
	// column is the count; a header row is skipped): the skew is fitted to
	// it and replaces Skew. Default "" (use Skew).
	PopularityCSV string `yaml:"popularity_csv"`
	// SkipProb, SeekProb and MeanTracks are the listeners' behaviour (see
	// workload.Config). Defaults 0.25, 0.1 and 8.
	SkipProb   float64 `yaml:"skip_prob"`
	SeekProb   float64 `yaml:"seek_prob"`
	MeanTracks float64 `yaml:"mean_tracks"`

	// TargetHitRatio is the edge byte hit ratio wanted, in (0, 1); the
	// plan gives the edge cache per POP that reaches it. Default 0: none.
	TargetHitRatio float64 `yaml:"target_byte_hit_ratio"`
	// EdgeCache is the edge tier's memory per POP (all edges together,
	// which share the catalog by track ownership); the plan gives its hit
	// ratio. Default 0: none.
	EdgeCache config.Size `yaml:"edge_cache"`
	// ShieldCache is the shield tier's cache per region. Default 0: the
	// shields are taken to miss everything (origin egress is then an upper
	// bound).
	ShieldCache config.Size `yaml:"shield_cache"`
	// Prefetch models the edges' next-track prefetch (tier.PrefetchConfig
	// defaults: 3 tracks, 10 s each). Default true.
	Prefetch bool `yaml:"prefetch"`

	// EdgeThroughputBps is what one edge serves, in bit/s, measured with
	// bench/ on the operator's hardware (or BenchFile). Default 0: no
	// edge count.
	EdgeThroughputBps float64 `yaml:"edge_throughput_bps"`
	// BenchFile is a wrk report from bench/ (bench/out/wrk-edge.txt): its
	// Transfer/sec line replaces EdgeThroughputBps. Default "".
	BenchFile string `yaml:"bench_file"`
	// ShieldThroughputBps is what one shield serves, in bit/s. Default 0:
	// EdgeThroughputBps (the same binary).
	ShieldThroughputBps float64 `yaml:"shield_throughput_bps"`

	// PlaysPerDay is the play events a day, all POPs. Default 0: no plays
	// answers.
	PlaysPerDay float64 `yaml:"plays_per_day"`
	// PeakFactor is the peak rate over the day's mean. Default 3.
	PeakFactor float64 `yaml:"peak_factor"`
	// SinkEventsPerSec is one ledger sink's throughput, in events/s, from
	// cmd/playsbench ("end-to-end" line) on the operator's hardware.
	// Default 0: no sink count.
	SinkEventsPerSec float64 `yaml:"sink_events_per_s"`
	// PartitionEventsPerSec is what one topic partition carries, in
	// events/s. Default 20000 (a conservative 4 MB/s of 200-byte events).
	PartitionEventsPerSec float64 `yaml:"partition_events_per_s"`
	// DedupRetention is how long play ids are kept (plays.Config.Retention).
	// Default 744h (31 days).
	DedupRetention config.Duration `yaml:"dedup_retention"`
	// DedupEntryBytes is the store's bytes per play id. Default 100:
	// measured on SQLite with the ledger's plays_play_ids table (a 32-byte
	// hex id and an 8-byte time, WITHOUT ROWID, plus the time index): 300
	// 000 random ids inserted in time order in transactions of 5 000 took
	// 7 329 pages of 4 KiB, 100.07 B per id. That table now holds only ids
	// that are not ULIDs; ticketed play ids go to the per-day tables,
	// which package plays estimates at ~25 B per id on SQLite and ~70 on
	// PostgreSQL (not measured here), so the default errs high.
	DedupEntryBytes float64 `yaml:"dedup_entry_bytes"`

	// SimTracks is the scaled catalog the cache simulation runs on (see
	// ScaleCache). Default 20000.
	SimTracks int `yaml:"sim_tracks"`
	// SimSessions is the number of listener sessions simulated per cache
	// size (about 9 s each 20000 on the shared 2-core machine). Default
	// 20000.
	SimSessions int `yaml:"sim_sessions"`
	// Seed drives the simulation. Default 1.
	Seed uint64 `yaml:"seed"`
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	w := workload.DefaultConfig()
	return Config{
		Tracks:                100_000_000,
		AvgDuration:           config.Duration(210 * time.Second),
		TiersKbps:             append([]int(nil), catalog.Tiers[:]...),
		TierMix:               []float64{5, 15, 30, 35, 15},
		POPsPerRegion:         1,
		Skew:                  w.Skew,
		SkipProb:              w.SkipProb,
		SeekProb:              w.SeekProb,
		MeanTracks:            w.MeanTracks,
		Prefetch:              true,
		PeakFactor:            3,
		PartitionEventsPerSec: 20000,
		DedupRetention:        config.Duration(744 * time.Hour),
		DedupEntryBytes:       100,
		SimTracks:             20000,
		SimSessions:           20000,
		Seed:                  1,
	}
}

// Validate reports every field out of range, by its YAML name.
func (c Config) Validate() error {
	var errs config.Errors
	if c.Tracks < 1 {
		errs.Add("tracks", "must be at least 1")
	}
	if c.AvgDuration <= 0 {
		errs.Add("avg_duration", "must be positive")
	}
	if len(c.TiersKbps) == 0 {
		errs.Add("tiers_kbps", "no tiers")
	}
	for _, k := range c.TiersKbps {
		if k <= 0 {
			errs.Add("tiers_kbps", "%d is not a bitrate", k)
		}
	}
	if len(c.TierMix) != len(c.TiersKbps) {
		errs.Add("tier_mix", "has %d shares for %d tiers", len(c.TierMix), len(c.TiersKbps))
	}
	sum := 0.0
	for _, w := range c.TierMix {
		if !(w >= 0) || math.IsInf(w, 0) {
			errs.Add("tier_mix", "share %v is not a non-negative number", w)
		}
		sum += w
	}
	if !(sum > 0) {
		errs.Add("tier_mix", "shares sum to %v", sum)
	}
	if c.Streams < 0 {
		errs.Add("streams", "must not be negative")
	}
	if c.POPsPerRegion < 1 {
		errs.Add("pops_per_region", "must be at least 1")
	}
	if !(c.Skew >= 0 && c.Skew <= 5) {
		errs.Add("skew", "%v not in [0, 5]", c.Skew)
	}
	if !(c.SkipProb >= 0 && c.SkipProb <= 1) {
		errs.Add("skip_prob", "%v not in [0, 1]", c.SkipProb)
	}
	if !(c.SeekProb >= 0 && c.SeekProb <= 1) {
		errs.Add("seek_prob", "%v not in [0, 1]", c.SeekProb)
	}
	if !(c.MeanTracks >= 1) {
		errs.Add("mean_tracks", "%v < 1", c.MeanTracks)
	}
	if !(c.TargetHitRatio >= 0 && c.TargetHitRatio < 1) {
		errs.Add("target_byte_hit_ratio", "%v not in [0, 1)", c.TargetHitRatio)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"edge_throughput_bps", c.EdgeThroughputBps}, {"shield_throughput_bps", c.ShieldThroughputBps},
		{"plays_per_day", c.PlaysPerDay}, {"sink_events_per_s", c.SinkEventsPerSec}} {
		if !(f.v >= 0) || math.IsInf(f.v, 0) {
			errs.Add(f.name, "%v is not a non-negative number", f.v)
		}
	}
	if !(c.PeakFactor >= 1) {
		errs.Add("peak_factor", "%v < 1", c.PeakFactor)
	}
	if !(c.PartitionEventsPerSec > 0) {
		errs.Add("partition_events_per_s", "must be positive")
	}
	if c.DedupRetention <= 0 {
		errs.Add("dedup_retention", "must be positive")
	}
	if !(c.DedupEntryBytes > 0) {
		errs.Add("dedup_entry_bytes", "must be positive")
	}
	if c.SimTracks < 100 || c.SimTracks > 2_000_000 {
		errs.Add("sim_tracks", "%d not in [100, 2000000]", c.SimTracks)
	}
	if c.SimSessions < 100 || c.SimSessions > 2_000_000 {
		errs.Add("sim_sessions", "%d not in [100, 2000000]", c.SimSessions)
	}
	return errs.Err()
}

func (c Config) validErr() error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	return nil
}
