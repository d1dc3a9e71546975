package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/musiccdn/cdn/loadtest"
	"github.com/musiccdn/cdn/pop"
	"github.com/musiccdn/cdn/tier"
)

// spawnPOP starts a whole POP in this process (pop.Start, the same as
// cmd/pop) and returns its addresses and a function that stops it.
func spawnPOP(ctx context.Context, cfg pop.Config) (loadtest.Targets, func() error, error) {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	p, err := pop.Start(ctx, cfg, logger)
	if err != nil {
		return loadtest.Targets{}, nil, err
	}
	// The POP's addresses are the address file the tool reads otherwise.
	return p.Addrs(), p.Close, nil
}

// popParams describes, for the report, the edges pop.Start builds from
// cfg: its edge cache and chunk size, and the edge defaults pop does not
// override (window, hot cache, prefetch).
func popParams(cfg pop.Config) *loadtest.POPParams {
	ec := tier.DefaultEdgeConfig()
	return &loadtest.POPParams{
		Edges:             cfg.Edges,
		EdgeCacheBytes:    int64(cfg.EdgeCache),
		EdgeWindowPercent: ec.Cache.WindowPercent,
		HotCacheBytes:     int64(ec.HotCache.MemoryBytes),
		HotWindowPercent:  ec.HotCache.WindowPercent,
		HotMinReads:       ec.HotMinReads,
		HotWindowS:        time.Duration(ec.HotWindow).Seconds(),
		ChunkSize:         int64(cfg.ChunkSize),
		PrefetchEnabled:   ec.Prefetch.Enabled,
		PrefetchTracks:    ec.Prefetch.Tracks,
		PrefetchSeconds:   ec.Prefetch.Seconds,
		PrefetchDedupS:    time.Duration(ec.Prefetch.Dedup).Seconds(),
		SyntheticRights:   true,
	}
}
