// Command loadtest drives simulated listeners against a POP and reports
// verified bytes, latency percentiles and hit ratios; "loadtest sim" runs
// the cache policy study without servers. See package loadtest.
//
//	loadtest --addr-file pop.json --duration 60s --json out.json --html out.html
//	loadtest --spawn --duration 60s
//	loadtest sim --tracks 20000 --requests 2000000
//	loadtest plan --tracks 100000000 --avg-duration 3m30s --json
//	loadtest plan --like-run out.json --json
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/loadtest"
	"github.com/musiccdn/cdn/pop"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	args := os.Args[1:]
	var err error
	switch {
	case len(args) > 0 && args[0] == "sim":
		err = simMain(ctx, args[1:])
	case len(args) > 0 && args[0] == "plan":
		err = planMain(ctx, args[1:], os.Stdout)
	default:
		err = runMain(ctx, args)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		if errors.Is(err, flag.ErrHelp) || errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

func runMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	def := loadtest.DefaultConfig()
	var (
		addrFile  = fs.String("addr-file", "", "JSON address file written by cmd/pop --addr-file")
		spawn     = fs.Bool("spawn", false, "start a POP in this process and run against it")
		null      = fs.Bool("null", false, "run against an in-process null server (measures the tool itself)")
		edges     = fs.Int("edges", 3, "edges to start with --spawn")
		shields   = fs.Int("shields", 2, "shields to start with --spawn")
		country   = fs.String("country-header", def.CountryHeader, "header carrying the listener's country to edges, as the POP's load balancer sets it (empty: none)")
		dataDir   = fs.String("data-dir", "", "data directory for --spawn (default: a temporary one)")
		catalog   = fs.String("catalog", "synthetic:100000", "the POP's catalog: synthetic:N")
		seed      = fs.Uint64("seed", 1, "seed of the synthetic catalog and of the workload")
		duration  = fs.Duration("duration", def.Duration, "wall-clock time during which requests are issued")
		rate      = fs.Float64("rate", def.Workload.SessionRate, "listener sessions arriving per second (Poisson)")
		compress  = fs.Float64("compression", def.Compression, "simulated seconds of listening per wall-clock second")
		skew      = fs.Float64("skew", def.Workload.Skew, "Zipf exponent of track popularity")
		meanTr    = fs.Float64("mean-tracks", def.Workload.MeanTracks, "mean tracks per session")
		timeout   = fs.Duration("timeout", def.RequestTimeout, "per-request timeout")
		maxSess   = fs.Int("max-sessions", def.MaxSessions, "cap on sessions in progress")
		noVerify  = fs.Bool("no-verify", false, "do not check body bytes (lengths and Content-Range still are)")
		jsonOut   = fs.String("json", "", "write the result as JSON to this file")
		htmlOut   = fs.String("html", "", "write a self-contained HTML report to this file")
		maxErr    = fs.Float64("max-error-rate", 0, "fail (exit 1) when errors exceed this fraction of requests")
		maxVerify = fs.Float64("max-verify-rate", 0, "fail (exit 1) when verify failures exceed this fraction of requests")
		quiet     = fs.Bool("quiet", false, "no progress line")
		verbose   = fs.Bool("v", false, "log every problem (the first 100) to stderr")
		cpuProf   = fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
		manifests = fs.String("manifests", "origin", "where listeners get manifests: origin, or edge (edges with manifest.enabled mint them)")
		failover  = fs.Bool("failover", false, "retry a range request that failed (transport error or 5xx) once at the next edge, and keep the session there, as a player behind a load balancer would")
		reqLog    = fs.String("requests-log", "", "write one CSV line per range request and track start to this file (t_ms,kind,edge,ttfb_ms,ok,home)")
		popConfig = fs.String("pop-config", "", "the POP's YAML config (configs/pop.yaml): --spawn starts that POP; with --addr-file it describes the target in the JSON report's params, for plan --like-run")
		edgeCache = fs.String("edge-cache", "", "each edge's memory cache for --spawn, e.g. 64MiB (default: pop's 256MiB or --pop-config's)")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	n, err := parseCatalog(*catalog)
	if err != nil {
		return err
	}
	cfg := def
	cfg.Workload.Tracks = n
	cfg.Workload.Seed = *seed
	cfg.Workload.SessionRate = *rate
	cfg.Workload.Skew = *skew
	cfg.Workload.MeanTracks = *meanTr
	cfg.Duration = *duration
	cfg.Compression = *compress
	cfg.RequestTimeout = *timeout
	cfg.MaxSessions = *maxSess
	cfg.NoVerify = *noVerify
	cfg.CountryHeader = *country
	cfg.Failover = *failover
	switch *manifests {
	case "origin":
	case "edge":
		cfg.ManifestsFromEdges = true
	default:
		return fmt.Errorf("%w: --manifests %q: origin or edge", errUsage, *manifests)
	}
	if *reqLog != "" {
		f, err := os.Create(*reqLog)
		if err != nil {
			return err
		}
		defer f.Close()
		fmt.Fprintln(f, "t_ms,kind,edge,ttfb_ms,ok,home")
		cfg.RequestLog = f
	}
	if !*quiet {
		cfg.Progress = os.Stderr
	}
	level := slog.LevelError
	if *verbose {
		level = slog.LevelWarn
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}

	popCfg := pop.DefaultConfig()
	if *popConfig != "" {
		if err := config.Load(*popConfig, &popCfg); err != nil {
			return fmt.Errorf("%w: --pop-config: %v", errUsage, err)
		}
	}
	if *spawn {
		// Flags given override the file; without a file the flags'
		// defaults are cmd/pop's.
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if *popConfig == "" || set["edges"] {
			popCfg.Edges = *edges
		}
		if *popConfig == "" || set["shields"] {
			popCfg.Shields = *shields
		}
		popCfg.Catalog, popCfg.Seed, popCfg.DataDir = *catalog, *seed, *dataDir
		if *edgeCache != "" {
			sz, err := config.ParseSize(*edgeCache)
			if err != nil {
				return fmt.Errorf("%w: --edge-cache: %v", errUsage, err)
			}
			popCfg.EdgeCache = sz
		}
	}
	if *spawn || *popConfig != "" {
		cfg.POP = popParams(popCfg)
	}

	var targets loadtest.Targets
	switch {
	case btoi(*addrFile != "")+btoi(*spawn)+btoi(*null) != 1:
		return fmt.Errorf("%w: give exactly one of --addr-file, --spawn, --null", errUsage)
	case *addrFile != "":
		targets, err = loadtest.LoadTargets(*addrFile)
		if err != nil {
			return err
		}
	case *spawn:
		t, closeFn, err := spawnPOP(ctx, popCfg)
		if err != nil {
			return fmt.Errorf("spawn: %w", err)
		}
		defer func() {
			if err := closeFn(); err != nil {
				fmt.Fprintln(os.Stderr, "loadtest: stop POP:", err)
			}
		}()
		targets = t
	case *null:
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: loadtest.NewNullPOP(n, *seed)}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		base := "http://" + ln.Addr().String()
		targets = loadtest.Targets{Origin: base, Edges: []string{base}}
	}

	if *cpuProf != "" {
		f, err := os.Create(*cpuProf)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	res, err := loadtest.Run(ctx, cfg, targets)
	if *cpuProf != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return err
	}
	if err := res.WriteText(os.Stdout); err != nil {
		return err
	}
	if res.PlaysUnsupported {
		fmt.Fprintln(os.Stdout, "note: the origin answered 404 to POST /v1/plays (no play pipeline): plays_sent is 0")
	}
	if *jsonOut != "" {
		if err := loadtest.WriteFile(*jsonOut, res.WriteJSON); err != nil {
			return err
		}
	}
	if *htmlOut != "" {
		if err := loadtest.WriteFile(*htmlOut, res.WriteHTML); err != nil {
			return err
		}
	}
	return res.Check(*maxErr, *maxVerify)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// parseCatalog reads "synthetic:N". The tool verifies bytes against the
// synthetic generator, so a directory catalog cannot be load-tested.
func parseCatalog(s string) (int, error) {
	rest, ok := strings.CutPrefix(s, "synthetic:")
	if !ok {
		return 0, fmt.Errorf("%w: --catalog %q: only synthetic:N can be verified", errUsage, s)
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%w: --catalog %q: bad N", errUsage, s)
	}
	return n, nil
}
