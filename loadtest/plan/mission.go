package plan

import (
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// The mission's quoted figures (issue 15, DESIGN.md).
const (
	QuotedCatalogBytes  = 1.75e15 // "100M tracks at five tiers totalling 1.75 PB"
	QuotedTopShare      = 0.01    // "the top 1 % of the catalog (1M tracks)..."
	QuotedPOPCacheBytes = 10e12   // "...fits in 10 TB per POP"
	QuotedHitRatio      = 0.99    // "99 %+ edge hit ratio"
	QuotedStreams       = 139_000 // "~139K concurrent streams"
	QuotedDailyUsers    = 300e6
	QuotedPlaysPerDay   = 12e9
)

// MissionItem is one quoted figure, recomputed.
type MissionItem struct {
	Claim      string             `json:"claim"`
	Verdict    string             `json:"verdict"`
	Arithmetic []string           `json:"arithmetic"`
	Values     map[string]float64 `json:"values"`
}

// Mission is the check of every quoted figure.
type Mission struct {
	Items    []MissionItem `json:"items"`
	Skews    []SkewRow     `json:"skews"`
	ElapsedS float64       `json:"elapsed_s"`
	Sim      string        `json:"simulation"`
}

// SkewRow is the hit ratio a 10 TB POP cache gives at one skew.
type SkewRow struct {
	Skew         float64 `json:"skew"`
	StaticHead   float64 `json:"static_top_share"` // ZipfHead of the tracks 10 TB holds at all tiers
	ByteHitRatio float64 `json:"edge_byte_hit_ratio"`
	ChunkHit     float64 `json:"edge_chunk_byte_hit_ratio"`
	SimFraction  float64 `json:"sim_cache_fraction"`
	// Ceiling is the simulation's own limit at this skew: the ratio of a
	// cache holding every chunk (first requests after warm-up miss).
	Ceiling float64 `json:"sim_ceiling_byte_hit_ratio"`
}

// AtCeiling reports whether the simulated ratio is within half a point of
// the simulation's ceiling: the cache size no longer shows in it.
func (r SkewRow) AtCeiling() bool { return r.ByteHitRatio >= r.Ceiling-0.005 }

// MissionSkews are the skews the check simulates: measured music catalogs
// fall between 0.8 and 1.2; higher ones show where 99 % starts.
var MissionSkews = []float64{0.8, 1.0, 1.2, 1.4, 1.6, 1.8}

// CheckMission recomputes the mission's figures with cfg's catalog (its
// tracks, mean duration, tiers and mix; the quoted ones by default) and
// simulates the hit ratio of a 10 TB POP at MissionSkews. The sink count
// needs cfg.SinkEventsPerSec (playsbench's figure).
func CheckMission(ctx context.Context, cfg Config) (*Mission, error) {
	if err := cfg.validErr(); err != nil {
		return nil, err
	}
	start := time.Now()
	m := &Mission{}
	avg := time.Duration(cfg.AvgDuration).Seconds()
	sumKbps := 0
	for _, k := range cfg.TiersKbps {
		sumKbps += k
	}
	track := TrackBytes(avg, cfg.TiersKbps)
	catalog := CatalogBytes(cfg.Tracks, avg, cfg.TiersKbps)
	kb := make([]string, len(cfg.TiersKbps))
	for i, k := range cfg.TiersKbps {
		kb[i] = fmt.Sprint(k)
	}
	// 1. Catalog bytes.
	errPct := 100 * (QuotedCatalogBytes - catalog) / catalog
	verdict := fmt.Sprintf("right to %.2g %%: the quote is %s high; 1.75 PB needs a mean track of %.1f s", math.Abs(errPct), Bytes(QuotedCatalogBytes-catalog), QuotedCatalogBytes/(float64(cfg.Tracks)*float64(sumKbps)*BytesPerKbpsSecond))
	if math.Abs(errPct) > 5 {
		verdict = fmt.Sprintf("wrong by %+.1f %% (%s)", errPct, Bytes(QuotedCatalogBytes-catalog))
	} else if errPct < 0 {
		verdict = fmt.Sprintf("right to %.2g %%: the quote is %s low", math.Abs(errPct), Bytes(catalog-QuotedCatalogBytes))
	}
	m.Items = append(m.Items, MissionItem{
		Claim:   "100M tracks at five tiers total 1.75 PB",
		Verdict: verdict,
		Arithmetic: []string{
			fmt.Sprintf("Σ tiers = %s = %d kbit/s", strings.Join(kb, " + "), sumKbps),
			fmt.Sprintf("one track, all tiers = %d kbit/s × 125 B/(kbit/s·s) × %.0f s = %s", sumKbps, avg, Bytes(track)),
			fmt.Sprintf("catalog = %d tracks × %s = %s (quoted 1.75 PB: %+.2f %%)", cfg.Tracks, Bytes(track), Bytes(catalog), errPct),
		},
		Values: map[string]float64{"catalog_bytes": catalog, "track_bytes": track, "quoted_bytes": QuotedCatalogBytes},
	})

	// 2. Top 1 % in 10 TB.
	top := QuotedTopShare * float64(cfg.Tracks)
	topAll := top * track
	maxKbps := QuotedPOPCacheBytes / top / avg / BytesPerKbpsSecond
	fitTracks := QuotedPOPCacheBytes / track
	mix := MixKbps(cfg.TiersKbps, cfg.TierMix)
	var fitting []string
	for mask := 1; mask < 1<<len(cfg.TiersKbps); mask++ {
		s, names := 0, []string{}
		for i, k := range cfg.TiersKbps {
			if mask&(1<<i) != 0 {
				s += k
				names = append(names, fmt.Sprint(k))
			}
		}
		if float64(s) <= maxKbps {
			// keep only the largest sets that fit: adding any other tier overflows
			maximal := true
			for j, k := range cfg.TiersKbps {
				if mask&(1<<j) == 0 && float64(s+k) <= maxKbps {
					maximal = false
				}
			}
			if maximal {
				fitting = append(fitting, "{"+strings.Join(names, ", ")+"}")
			}
		}
	}
	m.Items = append(m.Items, MissionItem{
		Claim: "the top 1 % of the catalog (1M tracks) fits in 10 TB per POP",
		Verdict: fmt.Sprintf("wrong at five tiers: 1M tracks need %s (%.2fx 10 TB); 10 TB holds %.0f tracks (%.2f %%) at every tier. The quote assumes at most %.0f kbit/s of tiers cached per track",
			Bytes(topAll), topAll/QuotedPOPCacheBytes, fitTracks, 100*fitTracks/float64(cfg.Tracks), maxKbps),
		Arithmetic: []string{
			fmt.Sprintf("1M tracks × %s = %s", Bytes(track), Bytes(topAll)),
			fmt.Sprintf("10 TB / 1M tracks / %.0f s / 125 = %.0f kbit/s of tiers per track at most", avg, maxKbps),
			fmt.Sprintf("largest tier sets that fit: %s; e.g. 320 alone is %s, the four lower tiers %s",
				strings.Join(fitting, " "), Bytes(top*TrackBytes(avg, []int{320})), Bytes(top*TrackBytes(avg, []int{24, 64, 96, 160}))),
			fmt.Sprintf("one copy at the mean bitrate of the tier mix (%.1f kbit/s) would be %s, but a chunk cache keeps every tier listeners ask for, and popular tracks are asked for at all of them", mix, Bytes(top*avg*mix*BytesPerKbpsSecond)),
		},
		Values: map[string]float64{"top_1pct_all_tiers_bytes": topAll, "max_kbps_per_track": maxKbps, "tracks_in_10tb": fitTracks},
	})

	// 3. Skew needed for 99 % at 10 TB, and realistic skews.
	f := QuotedPOPCacheBytes / catalog
	sStatic := skewFor(fitTracks, float64(cfg.Tracks), QuotedHitRatio)
	scfg := cfg
	scfg.Streams = max(cfg.Streams, 1000)
	var sim *simSetup
	for _, s := range MissionSkews {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var err error
		if sim, err = newSim(scfg, s); err != nil {
			return nil, err
		}
		p, err := sim.run(scfg, f, 0)
		if err != nil {
			return nil, err
		}
		ceil, err := sim.runSim(int64(4*sim.simCatalog), 0)
		if err != nil {
			return nil, err
		}
		m.Skews = append(m.Skews, SkewRow{Skew: s, StaticHead: ZipfHead(fitTracks, float64(cfg.Tracks), s),
			ByteHitRatio: p.ByteHitRatio, ChunkHit: p.ChunkHitRatio, SimFraction: float64(p.SimCacheBytes) / sim.simCatalog,
			Ceiling: ceil.ByteHitRatio()})
	}
	// The skew where the simulated edge crosses 99 %, among the rows the
	// simulation resolves (below its ceiling).
	sSim := math.NaN()
	lastResolved := math.NaN()
	for i, r := range m.Skews {
		if r.AtCeiling() {
			break
		}
		lastResolved = r.Skew
		if i > 0 {
			a := m.Skews[i-1]
			if a.ByteHitRatio < QuotedHitRatio && r.ByteHitRatio >= QuotedHitRatio {
				sSim = a.Skew + (QuotedHitRatio-a.ByteHitRatio)/(r.ByteHitRatio-a.ByteHitRatio)*(r.Skew-a.Skew)
			}
		}
	}
	// Without a resolved crossing: a row at the ceiling is a lower bound,
	// so one at or above 99 % bounds the skew needed from above.
	upper := math.NaN()
	for _, r := range m.Skews {
		if r.ByteHitRatio >= QuotedHitRatio {
			upper = r.Skew
			break
		}
	}
	var simVerdict string
	switch {
	case !math.IsNaN(sSim):
		simVerdict = fmt.Sprintf("the simulated edge reaches 99 %% of bytes at s ≈ %.2f", sSim)
	case !math.IsNaN(upper):
		simVerdict = fmt.Sprintf("the simulated edge, whose rows from s = %.1f on are at the simulation's ceiling (lower bounds), reaches 99 %% by s = %.1f: the skew needed lies between %.2f and %.1f",
			nextSkew(m.Skews, lastResolved), upper, sStatic, upper)
	default:
		simVerdict = fmt.Sprintf("the simulated edge stays below 99 %% of bytes up to s = %.1f, beyond which the simulation is at its own ceiling (a cache holding everything still misses the first request of each chunk in a finite replay) and cannot tell", lastResolved)
	}
	var real []string
	for _, r := range m.Skews {
		if r.Skew <= 1.2 {
			ge := ""
			if r.AtCeiling() {
				ge = "≥ "
			}
			real = append(real, fmt.Sprintf("s = %.1f: %s%s", r.Skew, ge, pct(r.ByteHitRatio)))
		}
	}
	m.Items = append(m.Items, MissionItem{
		Claim: "99 %+ edge hit ratio (with 10 TB per POP)",
		Verdict: fmt.Sprintf("needs s ≥ %.2f even for a perfect static cache of the top %.0f tracks; %s. Measured music skews (0.8–1.2) give %s of bytes",
			sStatic, fitTracks, simVerdict, strings.Join(real, ", ")),
		Arithmetic: []string{
			fmt.Sprintf("10 TB = %.3g %% of the catalog = %.0f tracks at every tier", 100*f, fitTracks),
			fmt.Sprintf("static bound: H(%.0f, s) / H(%d, s) = 0.99 at s = %.3f (independent requests, no compulsory misses)", fitTracks, cfg.Tracks, sStatic),
			"simulated: the table below (edge policy with prefetch on the scaled catalog, Cache-Status bytes)",
		},
		Values: map[string]float64{"cache_fraction": f, "skew_for_99_static": sStatic, "skew_for_99_simulated": nanToNeg(sSim)},
	})

	// 4. Streams, users and plays.
	var played float64
	if sim != nil {
		// Mean audio per play of the workload, from the last simulation.
		played = sim.meanSessionS / sim.workload.MeanTracks
	}
	mean := QuotedPlaysPerDay / 86400
	m.Items = append(m.Items, MissionItem{
		Claim: "~139K concurrent streams with 300M daily users and 12B plays a day",
		Verdict: fmt.Sprintf("inconsistent: 139K is the mean play *rate* (12B / 86 400 s = %.0f plays/s), not concurrent streams. By Little's law, concurrent streams = play rate × mean play length: %.0f s of audio per play (the workload's, skips included) gives %.3g concurrent streams on average, %.3g at a 3x peak (%.0fx the quote)",
			mean, played, mean*played, 3*mean*played, mean*played/QuotedStreams),
		Arithmetic: []string{
			fmt.Sprintf("12e9 plays / 86 400 s = %.0f plays/s", mean),
			fmt.Sprintf("%.0f plays/s × %.0f s = %.3g streams", mean, played, mean*played),
			fmt.Sprintf("12e9 plays / 300e6 users = %.0f plays per user per day = %.1f h of listening", QuotedPlaysPerDay/QuotedDailyUsers, QuotedPlaysPerDay/QuotedDailyUsers*played/3600),
		},
		Values: map[string]float64{"plays_mean_per_s": mean, "mean_play_s": played, "concurrent_streams": mean * played},
	})
	pp := Plays(QuotedPlaysPerDay, cfg.PeakFactor, cfg.SinkEventsPerSec, cfg.PartitionEventsPerSec)
	days := time.Duration(cfg.DedupRetention).Hours() / 24
	dedup := DedupBytes(QuotedPlaysPerDay, days, cfg.DedupEntryBytes)
	sinks := "sinks: give --sink-rate (cmd/playsbench's end-to-end events/s)"
	if cfg.SinkEventsPerSec > 0 {
		sinks = fmt.Sprintf("sinks = ceil(%.0f / %.0f events/s per sink) = %d", pp.PeakPerSec, cfg.SinkEventsPerSec, pp.Sinks)
	}
	m.Items = append(m.Items, MissionItem{
		Claim:   "12B play events a day, 3x peak: plays pipeline and dedup store",
		Verdict: fmt.Sprintf("peak %.0f events/s; %d partitions; %s; dedup store %s for %.0f days of play ids", pp.PeakPerSec, pp.Partitions, sinksShort(pp, cfg), Bytes(dedup), days),
		Arithmetic: []string{
			fmt.Sprintf("peak = 12e9 / 86 400 × %.0f = %.0f events/s", cfg.PeakFactor, pp.PeakPerSec),
			sinks,
			fmt.Sprintf("partitions = ceil(%.0f / %.0f events/s per partition) = %.0f, at least the sinks and a multiple of them = %d", pp.PeakPerSec, cfg.PartitionEventsPerSec, math.Ceil(pp.PeakPerSec/cfg.PartitionEventsPerSec), pp.Partitions),
			fmt.Sprintf("dedup = 12e9 plays/day × %.0f days × %.0f B per play id = %s", days, cfg.DedupEntryBytes, Bytes(dedup)),
		},
		Values: map[string]float64{"plays_peak_per_s": pp.PeakPerSec, "plays_sinks": float64(pp.Sinks), "plays_partitions": float64(pp.Partitions), "dedup_store_bytes": dedup},
	})
	if sim != nil {
		m.Sim = fmt.Sprintf("%d-track scaled catalog, %d sessions per skew at %.0f concurrent streams, first 20 %% not counted; 10 TB scaled by ScaleCache (same share of requests in the head)",
			cfg.SimTracks, cfg.SimSessions, sim.concurrency)
	}
	m.ElapsedS = time.Since(start).Seconds()
	return m, nil
}

// nextSkew is the first skew after s in rows (the first row's for NaN).
func nextSkew(rows []SkewRow, s float64) float64 {
	for _, r := range rows {
		if math.IsNaN(s) || r.Skew > s {
			return r.Skew
		}
	}
	return math.NaN()
}

func ceilMark(r SkewRow) string {
	if r.AtCeiling() {
		return " *"
	}
	return ""
}

func sinksShort(p PlaysPipeline, cfg Config) string {
	if cfg.SinkEventsPerSec == 0 {
		return "sinks need --sink-rate"
	}
	return fmt.Sprintf("%d sinks", p.Sinks)
}

func nanToNeg(v float64) float64 {
	if math.IsNaN(v) {
		return -1
	}
	return v
}

// skewFor is the Zipf exponent at which the top k of n take share of the
// requests (bisection; ZipfHead grows with s).
func skewFor(k, n, share float64) float64 {
	lo, hi := 0.0, 5.0
	for range 60 {
		mid := (lo + hi) / 2
		if ZipfHead(k, n, mid) < share {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi
}

// WriteText writes the check as plain text.
func (m *Mission) WriteText(w io.Writer) error {
	for i, it := range m.Items {
		fmt.Fprintf(w, "%d. %s\n   %s\n", i+1, it.Claim, it.Verdict)
		for _, a := range it.Arithmetic {
			fmt.Fprintf(w, "     %s\n", a)
		}
	}
	fmt.Fprintf(w, "\n%6s %16s %16s %16s %16s\n", "skew", "static top share", "edge byte hit", "edge chunk hit", "sim ceiling")
	for _, r := range m.Skews {
		fmt.Fprintf(w, "%6.1f %16s %16s %16s %16s\n", r.Skew, pct(r.StaticHead), pct(r.ByteHitRatio)+ceilMark(r), pct(r.ChunkHit), pct(r.Ceiling))
	}
	_, err := fmt.Fprintf(w, "simulation: %s (%.0f s)\n", m.Sim, m.ElapsedS)
	return err
}

// WriteMarkdown writes the check as the README section's body.
func (m *Mission) WriteMarkdown(w io.Writer) error {
	for i, it := range m.Items {
		fmt.Fprintf(w, "%d. **%s.** %s.\n\n", i+1, it.Claim, it.Verdict)
		for _, a := range it.Arithmetic {
			fmt.Fprintf(w, "   - %s\n", a)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "Hit ratio of 10 TB per POP by skew (static: the top tracks 10 TB holds at every tier, independent requests; edge: simulated, bytes of requests the edge answered as hits):\n\n")
	fmt.Fprintf(w, "| skew | static top share | edge byte hit | edge chunk hit | simulation ceiling |\n|---|---|---|---|---|\n")
	for _, r := range m.Skews {
		fmt.Fprintf(w, "| %.1f | %s | %s%s | %s | %s |\n", r.Skew, pct(r.StaticHead), pct(r.ByteHitRatio), ceilMark(r), pct(r.ChunkHit), pct(r.Ceiling))
	}
	fmt.Fprintf(w, "\n(*: at the simulation's ceiling, a lower bound: the cache holds all the replay asks for.)\n")
	_, err := fmt.Fprintf(w, "\nSimulation: %s; %.0f s on the shared 2-core machine.\n", m.Sim, m.ElapsedS)
	return err
}
