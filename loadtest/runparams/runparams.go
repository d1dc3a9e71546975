// Package runparams is what a load run's JSON report records about its
// workload and its target ("params"): the record "loadtest plan
// --like-run" reads to replay the same request stream through the cache
// model. It sits below both the load tool and the planner, which share it.
package runparams

import (
	"fmt"
	"time"

	"github.com/musiccdn/cdn/loadtest/workload"
)

// Run is what a run's JSON report records about its workload and its
// target ("params"), so that "loadtest plan --like-run" can replay the
// same request stream through the cache model and predict the hit ratio
// the run measured. Durations are in seconds, sizes in bytes.
type Run struct {
	Workload Workload `json:"workload"`
	// Compression is simulated seconds per wall-clock second.
	Compression float64 `json:"compression"`
	// PlannedDurationS is Config.Duration: sessions arriving later are
	// not started, requests due later are not sent.
	PlannedDurationS float64 `json:"planned_duration_s"`
	// POP describes the target's edges and caches; null when the tool was
	// not told (--addr-file without --pop-config).
	POP *POP `json:"pop"`
}

// Workload is workload.Config in the report's units.
type Workload struct {
	Tracks         int       `json:"tracks"`
	Seed           uint64    `json:"seed"`
	Skew           float64   `json:"skew"`
	SessionRate    float64   `json:"session_rate"`
	MeanTracks     float64   `json:"mean_tracks"`
	SkipProb       float64   `json:"skip_prob"`
	SeekProb       float64   `json:"seek_prob"`
	AlbumSize      int       `json:"album_size"`
	Playlists      int       `json:"playlists"`
	Users          int       `json:"users"`
	FirstFetchS    float64   `json:"first_fetch_s"`
	FetchAheadS    float64   `json:"fetch_ahead_s"`
	LowWaterS      float64   `json:"low_water_s"`
	PlayThresholdS float64   `json:"play_threshold_s"`
	Countries      []string  `json:"countries"`
	CountryWeights []float64 `json:"country_weights"`
	Classes        []Class   `json:"classes"`
}

// Class is a workload.BandwidthClass in the report.
type Class struct {
	Name    string  `json:"name"`
	Weight  float64 `json:"weight"`
	MaxKbps int     `json:"max_kbps"`
}

// POP is the target POP as far as its edges' hit ratio depends on
// it: how many edges, each one's memory for the tracks it owns, the small
// hot cache for tracks other edges own, the chunk size and prefetch.
type POP struct {
	Edges             int     `json:"edges"`
	EdgeCacheBytes    int64   `json:"edge_cache_bytes"`
	EdgeWindowPercent int     `json:"edge_window_percent"`
	HotCacheBytes     int64   `json:"hot_cache_bytes"`
	HotWindowPercent  int     `json:"hot_window_percent"`
	HotMinReads       int     `json:"hot_min_reads"`
	HotWindowS        float64 `json:"hot_window_s"`
	ChunkSize         int64   `json:"chunk_size"`
	PrefetchEnabled   bool    `json:"prefetch_enabled"`
	PrefetchTracks    int     `json:"prefetch_tracks"`
	PrefetchSeconds   int     `json:"prefetch_seconds"`
	PrefetchDedupS    float64 `json:"prefetch_dedup_s"`
	// SyntheticRights says the origin denies (track, country) pairs by
	// rights.Synthetic with the workload's seed (cmd/pop's synthetic
	// catalog does); denied tracks are skipped by the players.
	SyntheticRights bool `json:"synthetic_rights"`
}

// Validate reports a POP description the model cannot use.
func (p *POP) Validate() error {
	switch {
	case p.Edges < 1:
		return fmt.Errorf("pop.edges %d < 1", p.Edges)
	case p.EdgeCacheBytes <= 0:
		return fmt.Errorf("pop.edge_cache_bytes %d <= 0", p.EdgeCacheBytes)
	case p.ChunkSize <= 0:
		return fmt.Errorf("pop.chunk_size %d <= 0", p.ChunkSize)
	case p.EdgeWindowPercent < 0 || p.EdgeWindowPercent > 50 || p.HotWindowPercent < 0 || p.HotWindowPercent > 50:
		return fmt.Errorf("pop window percents must be in [0, 50]")
	case p.HotCacheBytes < 0 || p.HotMinReads < 0 || p.HotWindowS < 0:
		return fmt.Errorf("pop hot cache fields must be >= 0")
	case p.PrefetchEnabled && (p.PrefetchTracks < 0 || p.PrefetchSeconds < 1):
		return fmt.Errorf("pop prefetch fields out of range")
	}
	return nil
}

func seconds(d time.Duration) float64 { return d.Seconds() }

func fromSeconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// Of is the report's record of a run of workload w, compressed by
// compression (simulated seconds per wall-clock second), planned for
// duration, against pop (nil when unknown).
func Of(w workload.Config, compression float64, duration time.Duration, pop *POP) Run {
	wp := Workload{
		Tracks: w.Tracks, Seed: w.Seed, Skew: w.Skew, SessionRate: w.SessionRate,
		MeanTracks: w.MeanTracks, SkipProb: w.SkipProb, SeekProb: w.SeekProb,
		AlbumSize: w.AlbumSize, Playlists: w.Playlists, Users: w.Users,
		FirstFetchS: seconds(w.FirstFetch), FetchAheadS: seconds(w.FetchAhead),
		LowWaterS: seconds(w.LowWater), PlayThresholdS: seconds(w.PlayThreshold),
		Countries: w.Countries, CountryWeights: w.CountryWeights,
	}
	for _, c := range w.Classes {
		wp.Classes = append(wp.Classes, Class{Name: c.Name, Weight: c.Weight, MaxKbps: c.MaxKbps})
	}
	return Run{Workload: wp, Compression: compression, PlannedDurationS: seconds(duration), POP: pop}
}

// Config returns the workload the parameters describe, validated.
func (p Workload) Config() (workload.Config, error) {
	w := workload.Config{
		Tracks: p.Tracks, Seed: p.Seed, Skew: p.Skew, SessionRate: p.SessionRate,
		MeanTracks: p.MeanTracks, SkipProb: p.SkipProb, SeekProb: p.SeekProb,
		AlbumSize: p.AlbumSize, Playlists: p.Playlists, Users: p.Users,
		FirstFetch: fromSeconds(p.FirstFetchS), FetchAhead: fromSeconds(p.FetchAheadS),
		LowWater: fromSeconds(p.LowWaterS), PlayThreshold: fromSeconds(p.PlayThresholdS),
		Countries: p.Countries, CountryWeights: p.CountryWeights,
	}
	for _, c := range p.Classes {
		w.Classes = append(w.Classes, workload.BandwidthClass{Name: c.Name, Weight: c.Weight, MaxKbps: c.MaxKbps})
	}
	return w, w.Validate()
}
