// Command origin runs the origin services: the catalog's media with full
// range support, rights, playback manifests with signed edge URLs,
// offline licences, the exactly-once play-counting pipeline (with an
// embedded Kafka broker unless plays.brokers is configured) and
// recommendations.
//
//	origin -config configs/origin.yaml
//	origin ingest --catalog DIR [--id ID] FILE...
//	origin demo-identity [--country SE,US] [--ttl 24h]
//
// demo-identity stands in for the identity provider when the origin runs
// alone (cmd/pop has its own): it makes a fresh Ed25519 key pair and
// prints, as JSON, its public key (for identity.public_keys) and a bearer
// token per country for user demo-<CC>. The private key is not kept.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/musiccdn/cdn/addrfile"
	"github.com/musiccdn/cdn/cmd/internal/startup"
	"github.com/musiccdn/cdn/daemon"
	"github.com/musiccdn/cdn/identity"
	"github.com/musiccdn/cdn/origin"
	"github.com/musiccdn/cdn/origin/recs"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "demo-identity" {
		if err := demoIdentity(os.Args[2:], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "origin demo-identity:", err)
			os.Exit(2)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "ingest" {
		if err := runIngest(context.Background(), os.Args[2:], os.Stdout, recs.Embed); err != nil {
			fmt.Fprintln(os.Stderr, "origin ingest:", err)
			os.Exit(1)
		}
		return
	}
	fs := flag.NewFlagSet("origin", flag.ExitOnError)
	conf := startup.Bind(fs, "configs/origin.yaml", origin.DefaultConfig, func(fs *flag.FlagSet, cfg *origin.Config) {
		fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "public listen address (player API), host:port")
		fs.StringVar(&cfg.InternalAddr, "internal-addr", cfg.InternalAddr, "internal listen address (/media for shields, /metrics, /v1/royalties), host:port on the private network")
		fs.StringVar(&cfg.Catalog, "catalog", cfg.Catalog, `catalog: "synthetic:N" or a catalog directory`)
		fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the synthetic catalog (the load tool must use the same)")
		fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "data directory (embedded Kafka log, SQLite ledger)")
	})
	addrFile := fs.String("addr-file", "", "add the origin's URLs to this POP address file (created if missing; shared safely with the edges and shields)")
	drain := fs.Duration("drain-timeout", 30*time.Second, "how long in-flight requests get to finish on SIGTERM")
	fs.Parse(os.Args[1:])
	cfg, err := conf.Load()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	logger := startup.Logger(os.Stderr, false)
	reg := startup.Registry()
	o, err := origin.Start(context.Background(), cfg, logger, reg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "origin:", err)
		os.Exit(1)
	}
	defer o.Close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "origin: listen:", err)
		os.Exit(1)
	}
	iln, err := net.Listen("tcp", cfg.InternalAddr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "origin: internal_addr:", err)
		os.Exit(1)
	}
	logger.Info("serving", "addr", "http://"+ln.Addr().String(), "internal", "http://"+iln.Addr().String(), "catalog", cfg.Catalog, "kafka", o.KafkaAddr())
	if *addrFile != "" {
		if err := addrfile.Add(*addrFile, addrfile.Entry{Role: "origin", Public: "http://" + ln.Addr().String(), Internal: "http://" + iln.Addr().String(), Kafka: o.KafkaAddr()}); err != nil {
			fmt.Fprintln(os.Stderr, "origin:", err)
			os.Exit(1)
		}
	}
	pub := &daemon.HTTP{Server: cfg.HTTP.Server(o.PublicHandler(), logger), Listener: ln}
	internal := &daemon.HTTP{Server: cfg.HTTP.Server(o.InternalHandler(), logger), Listener: iln}
	reload := func() error {
		if conf.Path() == "" {
			return errors.New("origin: started without -config: nothing to reload")
		}
		// What the flags set stays as it is.
		next, err := conf.Reload()
		if err != nil {
			return err
		}
		err = o.Reload(next)
		if err != nil {
			logger.Warn("reload refused, running configuration kept", "err", err)
		}
		return err
	}
	o.Admin.OnReload(reload)
	if err := daemon.Run(context.Background(), logger, *drain, &readiness{pub, o.Server, reload}, internal); err != nil {
		logger.Error("exit", "err", err)
		o.Close()
		os.Exit(1)
	}
}

// readiness fails /readyz before the listener closes, and reloads the
// configuration on SIGHUP.
type readiness struct {
	*daemon.HTTP
	o      *origin.Server
	reload func() error
}

func (r *readiness) ReloadConfig() error { return r.reload() }

func (r *readiness) Shutdown(ctx context.Context) error {
	r.o.SetReady(false)
	return r.HTTP.Shutdown(ctx)
}

// demoIdentity prints {"public_key": ..., "users": [{"user_id", "country",
// "token"}...]} for a fresh key pair.
func demoIdentity(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("origin demo-identity", flag.ContinueOnError)
	countries := fs.String("country", "SE", "comma-separated countries, one demo user each")
	ttl := fs.Duration("ttl", 24*time.Hour, "token lifetime")
	if err := fs.Parse(args); err != nil {
		return err
	}
	idp, err := identity.NewIssuer()
	if err != nil {
		return err
	}
	res := struct {
		PublicKey string          `json:"public_key"`
		Users     []addrfile.User `json:"users"` // as the addr file holds them
	}{PublicKey: idp.PublicKey()}
	for _, cc := range strings.Split(*countries, ",") {
		u := identity.User{ID: "demo-" + cc, Country: cc}
		tok, err := idp.Issue(u, *ttl)
		if err != nil {
			return err
		}
		res.Users = append(res.Users, addrfile.User{UserID: u.ID, Country: cc, Token: tok})
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}
