// Command pop runs a whole POP on loopback: an origin, shields and edges,
// with embedded defaults. It prints the endpoints, writes --addr-file once
// every node is ready, and drains on SIGINT/SIGTERM.
//
//	go run ./cmd/pop --catalog synthetic:100000 --addr-file pop.json
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/musiccdn/cdn/cmd/internal/startup"
	"github.com/musiccdn/cdn/pop"
)

func main() {
	fs := flag.NewFlagSet("pop", flag.ExitOnError)
	conf := startup.Bind(fs, "configs/pop.yaml", pop.DefaultConfig, func(fs *flag.FlagSet, cfg *pop.Config) {
		fs.IntVar(&cfg.Edges, "edges", cfg.Edges, "number of edges")
		fs.IntVar(&cfg.Shields, "shields", cfg.Shields, "number of shields")
		fs.StringVar(&cfg.Catalog, "catalog", cfg.Catalog, `catalog: "synthetic:N" or a catalog directory`)
		fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "synthetic catalog seed")
		fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "data directory (default: a temporary one)")
	})
	addrFile := fs.String("addr-file", "", "write the nodes' URLs to this JSON file once ready")
	fs.Parse(os.Args[1:])
	cfg, err := conf.Load()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p, err := pop.Start(ctx, cfg, logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pop:", err)
		os.Exit(1)
	}
	a := p.Addrs()
	fmt.Printf("origin   %s\n", a.Origin)
	for _, u := range a.Shields {
		fmt.Printf("shield   %s\n", u)
	}
	for _, u := range a.Edges {
		fmt.Printf("edge     %s\n", u)
	}
	fmt.Printf("internal (private: /metrics, fills, royalties) origin %s, shields %v, edges %v\n", a.Internal.Origin, a.Internal.Shields, a.Internal.Edges)
	if u, ok := a.UserIn("SE"); ok {
		fmt.Printf("try:     curl -s -H 'Authorization: Bearer %s' '%s/v1/manifest/t1'\n", u.Token, a.Origin)
	}
	fmt.Printf("purge:   curl -s -XPOST -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' -d '{\"tracks\":[\"t1\"]}' %s/v1/admin/purge\n", a.AdminToken, a.Internal.Origin)
	if *addrFile != "" {
		if err := p.WriteAddrFile(*addrFile); err != nil {
			fmt.Fprintln(os.Stderr, "pop:", err)
			p.Close()
			os.Exit(1)
		}
		fmt.Printf("addr file %s\n", *addrFile)
	}
	code := 0
	select {
	case <-ctx.Done():
		fmt.Println("draining")
	case err := <-p.Err():
		fmt.Fprintln(os.Stderr, "pop: a node stopped:", err)
		code = 1
	}
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := p.Shutdown(sctx); err != nil {
		fmt.Fprintln(os.Stderr, "pop: shutdown:", err)
		code = 1
	}
	if *addrFile != "" {
		os.Remove(*addrFile)
	}
	os.Exit(code)
}
