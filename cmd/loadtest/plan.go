package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/loadtest"
	"github.com/musiccdn/cdn/loadtest/plan"
)

// planMain is "loadtest plan": sizing answers, --like-run, --check-mission.
func planMain(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("loadtest plan", flag.ContinueOnError)
	cfg := plan.DefaultConfig()
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: loadtest plan [flags]

Sizes a deployment: catalog bytes always; with --edge-cache or
--target-hit-ratio, the edge byte hit ratio (simulated, see loadtest/README.md);
with --streams, egress and (with --edge-throughput or --bench-file) edges per
POP; with --plays-per-day, the plays pipeline. Every answer carries its
formula and inputs (text, --json, --html). Flags override -config's file
(configs/plan.yaml); sizes take units (10TB, 512GiB), rates bps/Mbps/Gbps.

  loadtest plan --tracks 100000000 --avg-duration 3m30s --json
  loadtest plan --like-run run.json --json
  loadtest plan --check-mission --markdown

flags:
`)
		fs.PrintDefaults()
	}
	path := fs.String("config", "", "YAML file of the inputs (configs/plan.yaml); flags given override it")
	fs.Var((*int64Flag)(&cfg.Tracks), "tracks", "catalog size, tracks")
	fs.Var(&cfg.AvgDuration, "avg-duration", "mean track length (catalog bytes depend on the durations only through it)")
	fs.Var((*intList)(&cfg.TiersKbps), "tiers", "encoded tiers in kbit/s, comma-separated")
	fs.Var((*floatList)(&cfg.TierMix), "tier-mix", "share of streams at each tier, same order, any scale")
	fs.Var((*int64Flag)(&cfg.Streams), "streams", "concurrent streams per POP at peak (default 0: no egress answers)")
	fs.IntVar(&cfg.POPsPerRegion, "pops-per-region", cfg.POPsPerRegion, "POPs one region's shields serve")
	fs.Float64Var(&cfg.Skew, "skew", cfg.Skew, "Zipf exponent of track popularity")
	fs.StringVar(&cfg.PopularityCSV, "popularity-csv", "", "CSV of play counts (count in the last column, one track per row): the skew is fitted to it")
	fs.Float64Var(&cfg.SkipProb, "skip-prob", cfg.SkipProb, "chance a track is skipped")
	fs.Float64Var(&cfg.SeekProb, "seek-prob", cfg.SeekProb, "chance a track not skipped sees a forward seek")
	fs.Float64Var(&cfg.MeanTracks, "mean-tracks", cfg.MeanTracks, "mean tracks per listening session")
	fs.Float64Var(&cfg.TargetHitRatio, "target-hit-ratio", 0, "edge byte hit ratio wanted, in (0,1): the plan gives the edge cache per POP for it")
	fs.Var(&cfg.EdgeCache, "edge-cache", "edge tier's memory per POP, all edges together (e.g. 10TB): the plan gives its hit ratio")
	fs.Var(&cfg.ShieldCache, "shield-cache", "shield tier's cache per region (default 0: origin egress assumes shields miss everything)")
	fs.BoolVar(&cfg.Prefetch, "prefetch", cfg.Prefetch, "model the edges' next-track prefetch")
	fs.Var((*rateFlag)(&cfg.EdgeThroughputBps), "edge-throughput", "one edge's measured throughput, e.g. 9.4Gbps (from a bench/ run)")
	fs.StringVar(&cfg.BenchFile, "bench-file", "", "wrk report of a bench/ run (bench/out/wrk-edge.txt): its Transfer/sec replaces --edge-throughput")
	fs.Var((*rateFlag)(&cfg.ShieldThroughputBps), "shield-throughput", "one shield's throughput (default: --edge-throughput)")
	fs.Float64Var(&cfg.PlaysPerDay, "plays-per-day", 0, "play events a day, all POPs (default 0: no plays answers)")
	fs.Float64Var(&cfg.PeakFactor, "peak-factor", cfg.PeakFactor, "peak play rate over the day's mean")
	fs.Float64Var(&cfg.SinkEventsPerSec, "sink-rate", 0, "one ledger sink's events/s, from cmd/playsbench's end-to-end line on your hardware")
	fs.Float64Var(&cfg.PartitionEventsPerSec, "partition-rate", cfg.PartitionEventsPerSec, "events/s one topic partition carries")
	fs.Var(&cfg.DedupRetention, "dedup-retention", "how long play ids are kept for dedup (plays retention)")
	fs.Float64Var(&cfg.DedupEntryBytes, "dedup-entry-bytes", cfg.DedupEntryBytes, "dedup store bytes per play id")
	fs.IntVar(&cfg.SimTracks, "sim-tracks", cfg.SimTracks, "tracks of the scaled catalog the cache simulation runs on")
	fs.IntVar(&cfg.SimSessions, "sim-sessions", cfg.SimSessions, "listener sessions simulated per cache size")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the simulation")
	var (
		jsonOut  = fs.Bool("json", false, "print one JSON object instead of text")
		htmlOut  = fs.String("html", "", "also write an HTML page with the answers and plots to this file")
		likeRun  = fs.String("like-run", "", "a finished load-tool run's JSON report: predict its edge byte hit ratio (other inputs are ignored)")
		replays  = fs.Int("replays", 3, "with --like-run: replays to average (ristretto's sampled eviction varies by about a point)")
		mission  = fs.Bool("check-mission", false, "recompute the mission's quoted figures (see loadtest/README.md)")
		markdown = fs.Bool("markdown", false, "with --check-mission: print Markdown (the README section)")
		verify   = fs.Int("verify-scaling", 0, "simulate a catalog of this many tracks in full and scaled to --sim-tracks, at skews 0.8/1.0/1.2 and caches of 0.2 % and 2 %, and print the three hit ratios")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if err := config.LoadWithFlags(*path, &cfg, fs); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	switch {
	case *likeRun != "":
		res, err := plan.LikeRun(*likeRun, *replays)
		if err != nil {
			return err
		}
		if *jsonOut {
			return writeJSON(out, res)
		}
		return res.WriteText(out)
	case *verify > 0:
		rows, err := plan.VerifyScaling(ctx, cfg, *verify, []float64{0.8, 1.0, 1.2}, []float64{0.002, 0.02})
		if err != nil {
			return err
		}
		if *jsonOut {
			return writeJSON(out, rows)
		}
		fmt.Fprintf(out, "| skew | cache | full %d tracks | scaled to %d, matched head (g) | scaled, same fraction |\n|---|---|---|---|---|\n", *verify, cfg.SimTracks)
		for _, r := range rows {
			fmt.Fprintf(out, "| %.1f | %.1f %% | %.2f %% | %.2f %% (%.3g %%) | %.2f %% |\n", r.Skew, 100*r.Fraction, 100*r.Full, 100*r.Matched, 100*r.MatchedG, 100*r.SameFrac)
		}
		return nil
	case *mission:
		m, err := plan.CheckMission(ctx, cfg)
		if err != nil {
			return err
		}
		if *jsonOut {
			return writeJSON(out, m)
		}
		if *markdown {
			return m.WriteMarkdown(out)
		}
		return m.WriteText(out)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	res, err := plan.Plan(ctx, cfg)
	if err != nil {
		return err
	}
	if *htmlOut != "" {
		if err := loadtest.WriteFile(*htmlOut, res.WriteHTML); err != nil {
			return err
		}
	}
	if *jsonOut {
		return writeJSON(out, res)
	}
	return res.WriteText(out)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// int64Flag, rateFlag, intList and floatList bind flags to Config fields
// (config.LoadWithFlags re-applies given flags over the file).
type int64Flag int64

func (f *int64Flag) String() string { return strconv.FormatInt(int64(*f), 10) }

func (f *int64Flag) Set(s string) error {
	v, err := strconv.ParseInt(strings.ReplaceAll(strings.TrimSpace(s), "_", ""), 10, 64)
	if err != nil {
		return fmt.Errorf("not an integer: %q", s)
	}
	*f = int64Flag(v)
	return nil
}

type rateFlag float64

func (f *rateFlag) String() string { return strconv.FormatFloat(float64(*f), 'g', -1, 64) + "bps" }

func (f *rateFlag) Set(s string) error {
	v, err := plan.ParseBitRate(s)
	if err != nil {
		return err
	}
	*f = rateFlag(v)
	return nil
}

type intList []int

func (l *intList) String() string {
	if l == nil {
		return ""
	}
	s := make([]string, len(*l))
	for i, v := range *l {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ",")
}

func (l *intList) Set(s string) error {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return fmt.Errorf("not an integer: %q", f)
		}
		out = append(out, v)
	}
	*l = out
	return nil
}

type floatList []float64

func (l *floatList) String() string {
	if l == nil {
		return ""
	}
	s := make([]string, len(*l))
	for i, v := range *l {
		s[i] = strconv.FormatFloat(v, 'g', -1, 64)
	}
	return strings.Join(s, ",")
}

func (l *floatList) Set(s string) error {
	v, err := floats(s)
	if err != nil {
		return err
	}
	*l = v
	return nil
}
