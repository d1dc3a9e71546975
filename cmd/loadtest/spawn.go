package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/musiccdn/cdn/loadtest"
	"github.com/musiccdn/cdn/pop"
)

// spawnPOP starts a whole POP in this process (pop.Start, the same as
// cmd/pop) and returns its addresses and a function that stops it.
func spawnPOP(ctx context.Context, edges, shields int, catalog string, seed uint64, dataDir string) (loadtest.Targets, func() error, error) {
	cfg := pop.DefaultConfig()
	cfg.Edges, cfg.Shields, cfg.Catalog, cfg.Seed, cfg.DataDir = edges, shields, catalog, seed, dataDir
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	p, err := pop.Start(ctx, cfg, logger)
	if err != nil {
		return loadtest.Targets{}, nil, err
	}
	a := p.Addrs()
	t := loadtest.Targets{Origin: a.Origin, Shields: a.Shields, Edges: a.Edges,
		Internal: loadtest.InternalTargets{Origin: a.Internal.Origin, Edges: a.Internal.Edges, Shields: a.Internal.Shields}}
	for _, u := range a.Users {
		t.Users = append(t.Users, loadtest.User{UserID: u.UserID, Country: u.Country, Token: u.Token})
	}
	return t, p.Close, nil
}
