package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/musiccdn/cdn/loadtest/cachesim"
)

// simMain runs the cache policy study ("loadtest sim"): no servers.
func simMain(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("loadtest sim", flag.ContinueOnError)
	def := cachesim.DefaultStudyConfig()
	var (
		tracks    = fs.Int("tracks", def.Stream.Workload.Tracks, "catalog size N")
		seed      = fs.Uint64("seed", def.Stream.Workload.Seed, "seed of the catalog and the workload")
		accesses  = fs.Int("requests", def.Stream.Accesses, "chunk requests to replay per skew")
		chunk     = fs.Int64("chunk-size", def.Stream.ChunkSize, "edge chunk size in bytes")
		skews     = fs.String("skews", "0.8,1.0,1.2,1.4", "Zipf exponents, comma-separated")
		fractions = fs.String("sizes", "0.001,0.01,0.05,0.1", "cache sizes as fractions of catalog bytes, comma-separated")
		warmup    = fs.Float64("warmup", def.Warmup, "fraction of the stream not counted (cache fill)")
		window    = fs.Int("window-percent", 0, "edge memory's LRU window, percent of its bytes (default: cache.DefaultWindowPercent)")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := def
	cfg.Stream.Workload.Tracks = *tracks
	cfg.Stream.Workload.Seed = *seed
	cfg.Stream.Accesses = *accesses
	cfg.Stream.ChunkSize = *chunk
	cfg.Warmup = *warmup
	cfg.WindowPercent = *window
	var err error
	if cfg.Skews, err = floats(*skews); err != nil {
		return fmt.Errorf("%w: --skews: %v", errUsage, err)
	}
	if cfg.Fractions, err = floats(*fractions); err != nil {
		return fmt.Errorf("%w: --sizes: %v", errUsage, err)
	}
	fmt.Fprintf(os.Stderr, "catalog %d tracks, %.1f GB; %d chunk requests per skew, first %.0f%% warm-up\n",
		*tracks, float64(cachesim.CatalogBytes(*tracks, *seed))/1e9, *accesses, 100**warmup)
	rows, err := cachesim.Study(cfg, func(r cachesim.Row) {
		fmt.Fprintf(os.Stderr, "skew %.1f size %.1f%% %-9s obj %.2f%% byte %.2f%%\n",
			r.Skew, 100*r.Fraction, r.Policy, 100*r.Stats.HitRatio(), 100*r.Stats.ByteHitRatio())
	})
	if err != nil {
		return err
	}
	return cachesim.WriteTable(os.Stdout, rows)
}

func floats(s string) ([]float64, error) {
	var out []float64
	for f := range strings.SplitSeq(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}
