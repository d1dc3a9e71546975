// Package tiermain is the command line shared by cmd/edge and cmd/shield:
// flags and YAML over a role's defaults, logging, metrics, cluster join,
// serving until SIGTERM. It is CLI code, kept out of the tier library.
package tiermain

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"os"
	rdebug "runtime/debug"
	"time"

	"github.com/musiccdn/cdn/addrfile"
	"github.com/musiccdn/cdn/cluster"
	"github.com/musiccdn/cdn/cmd/internal/startup"
	"github.com/musiccdn/cdn/daemon"
	"github.com/musiccdn/cdn/tier"
)

// Main is the whole of cmd/edge and cmd/shield: it loads the YAML file
// named by -config over the role's defaults, applies the flags given, and
// serves until SIGINT/SIGTERM. It returns the process exit code.
func Main(role tier.Role, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet(string(role), flag.ContinueOnError)
	fs.SetOutput(stderr)
	conf := startup.Bind(fs, "configs/"+string(role)+".yaml", func() tier.Config {
		if role == tier.Shield {
			return tier.DefaultShieldConfig()
		}
		return tier.DefaultEdgeConfig()
	}, func(fs *flag.FlagSet, cfg *tier.Config) {
		fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "public listen address, host:port")
		fs.StringVar(&cfg.InternalAddr, "internal-addr", cfg.InternalAddr, "internal listen address (peer fills, /metrics, /debug), host:port on the private network")
		fs.StringVar(&cfg.Name, "name", cfg.Name, "node name in Cache-Status and logs")
	})
	drain := fs.Duration("drain-timeout", 30*time.Second, "how long in-flight requests get to finish on SIGTERM")
	debug := fs.Bool("debug", false, "log at debug level")
	debugAddr := fs.String("debug-addr", "", "serve Go's pprof profiles on this address (e.g. 127.0.0.1:6060); off by default")
	addrFile := fs.String("addr-file", "", "add this node's public and internal URLs to this POP address file (created if missing; shared safely by the POP's processes)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := conf.Load()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	logger := startup.Logger(os.Stderr, *debug)
	reg := startup.Registry()
	if *debugAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		go func() { logger.Warn("debug listener", "err", http.ListenAndServe(*debugAddr, mux)) }()
	}
	limit := cfg.MemoryBudget()
	if os.Getenv("GOMEMLIMIT") == "" {
		rdebug.SetMemoryLimit(limit)
	} else {
		limit = rdebug.SetMemoryLimit(-1)
	}
	logger.Info("memory limit", "bytes", limit, "cache_bytes", int64(cfg.Cache.MemoryBytes))
	n, err := tier.NewNode(cfg, logger, reg, nil)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	ctx, stop := context.WithCancelCause(context.Background())
	defer stop(nil)
	if conf.Path() != "" {
		// SIGHUP and POST /admin/reload read the file again, over the
		// role's defaults, with the same flags on top.
		n.ReloadFrom(conf.Reload)
	}
	if n.Members != nil {
		// Keep trying the seeds in the background: a node may start
		// before them. A node whose name another member has stops.
		go func() {
			for {
				jctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := n.Join(jctx, nil)
				cancel()
				if err == nil || errors.Is(err, cluster.ErrClosed) || ctx.Err() != nil {
					return
				}
				if errors.Is(err, cluster.ErrDuplicateName) {
					stop(err)
					return
				}
				logger.Warn("joining the cluster", "err", err)
				select {
				case <-time.After(5 * time.Second):
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	if err := n.CheckFills(ctx); err != nil {
		fmt.Fprintln(stderr, err)
		n.Kill()
		return 1
	}
	if *addrFile != "" {
		if err := addrfile.Add(*addrFile, addrfile.Entry{Role: string(role), Public: n.URL(), Internal: n.InternalURL()}); err != nil {
			fmt.Fprintln(stderr, err)
			n.Kill()
			return 1
		}
	}
	err = daemon.Run(ctx, logger, *drain, n)
	if cause := context.Cause(ctx); errors.Is(cause, cluster.ErrDuplicateName) {
		fmt.Fprintln(stderr, cause)
		return 1
	}
	if err != nil {
		logger.Error("exit", "err", err)
		return 1
	}
	return 0
}
