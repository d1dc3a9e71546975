// Package pop starts a whole point of presence on one machine: an origin,
// shields in front of it and edges in front of them, each a real server on
// its own loopback ports (a public and an internal listener each), with
// embedded defaults (a synthetic or directory catalog, random token and
// tier keys). cmd/pop runs it for trying the system out;
// the load tool's --spawn and end-to-end tests start it in-process.
package pop

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/musiccdn/cdn/addrfile"
	"github.com/musiccdn/cdn/cluster"
	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/daemon"
	"github.com/musiccdn/cdn/identity"
	"github.com/musiccdn/cdn/origin"
	"github.com/musiccdn/cdn/origin/admin"
	"github.com/musiccdn/cdn/tier"
	"github.com/musiccdn/cdn/tierauth"
)

// Config configures a POP. Fields map onto configs/pop.yaml.
type Config struct {
	// Edges is the number of edge nodes. Default 3.
	Edges int `yaml:"edges"`
	// Shields is the number of shields. Default 2.
	Shields int `yaml:"shields"`
	// Catalog is "synthetic:N" or a catalog directory. Default
	// "synthetic:100000".
	Catalog string `yaml:"catalog"`
	// Seed seeds the synthetic catalog; a load tool verifying bytes must
	// use the same value. Default 1.
	Seed uint64 `yaml:"seed"`
	// DataDir holds the POP's state: the embedded Kafka broker's log and
	// the SQLite ledger, under origin/. Default: a new temporary
	// directory, removed on Close.
	DataDir string `yaml:"data_dir"`
	// Host is the loopback address every node listens on. Default
	// "127.0.0.1".
	Host string `yaml:"host"`
	// CountryHeader is the edges' country_header: the header a load
	// balancer would set with the client's country. When set, edges fail
	// closed (a request without it, with two, or with an invalid code is
	// 403). On loopback there is no load balancer to set it, so it is off
	// by default; set it to try the check with curl -H. Default "".
	CountryHeader string `yaml:"country_header"`
	// EdgeCache and ShieldCache size each node's memory cache. Defaults
	// 256 MiB and 512 MiB: a POP of 5 nodes on a small machine.
	EdgeCache   config.Size `yaml:"edge_cache"`
	ShieldCache config.Size `yaml:"shield_cache"`
	// ShieldDisk is each shield's disk tier, under DataDir/<shield name>.
	// Default 2 GiB; 0 for memory only.
	ShieldDisk config.Size `yaml:"shield_disk"`
	// ChunkSize is the cache chunk size of every node. Default 256 KiB.
	ChunkSize config.Size `yaml:"chunk_size"`
	// GossipProfile is the memberlist timer profile of the edges' and
	// shields' clusters: "lan" (deployment timers, a dead node is dropped
	// in about 6 s) or "fast" (tests and demos). Default "lan".
	GossipProfile string `yaml:"gossip_profile"`
	// TierKeys are the tier credential keys of every node (see
	// tierauth). Default none: a random key is made at start, shared by
	// the POP's nodes.
	TierKeys []tierauth.KeyConfig `yaml:"tier_keys"`
	// AdminToken is the origin's admin bearer token (POST
	// /v1/admin/purge on its internal listener), written to the addr
	// file as "admin_token". Default none: a random one is made at
	// start.
	AdminToken string `yaml:"admin_token"`
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Edges:         3,
		Shields:       2,
		Catalog:       "synthetic:100000",
		Seed:          1,
		Host:          "127.0.0.1",
		CountryHeader: "",
		EdgeCache:     256 << 20,
		ShieldCache:   512 << 20,
		ShieldDisk:    2 << 30,
		ChunkSize:     256 << 10,
		GossipProfile: cluster.ProfileLAN,
	}
}

// Validate reports every invalid field.
func (c Config) Validate() error {
	var errs config.Errors
	if c.Edges < 1 || c.Edges > 64 {
		errs.Add("edges", "must be from 1 to 64")
	}
	if c.Shields < 1 || c.Shields > 16 {
		errs.Add("shields", "must be from 1 to 16")
	}
	if c.Catalog == "" {
		errs.Add("catalog", "must be set")
	}
	if c.GossipProfile != cluster.ProfileLAN && c.GossipProfile != cluster.ProfileFast {
		errs.Add("gossip_profile", "must be %q or %q", cluster.ProfileLAN, cluster.ProfileFast)
	}
	if len(c.TierKeys) > 0 {
		if _, err := tierauth.New(c.TierKeys); err != nil {
			errs.Prefix("tier_keys", err)
		}
	}
	if c.AdminToken != "" && len(c.AdminToken) < 32 {
		errs.Add("admin_token", "at least 32 characters")
	}
	if ip := net.ParseIP(c.Host); ip == nil || !ip.IsLoopback() {
		errs.Add("host", "%q is not a loopback address", c.Host)
	}
	return errs.Err()
}

// Addrs says where a POP's nodes are: the address file (package
// addrfile defines it once).
type Addrs = addrfile.File

// InternalAddrs are the base URLs of the nodes' internal listeners.
type InternalAddrs = addrfile.Internal

// User is a demo user and its bearer token.
type User = addrfile.User

// DemoCountries are the countries cmd/pop makes a demo user for: the
// issue's seven and the rest of the load tool's default mix.
var DemoCountries = []string{"SE", "US", "DE", "GB", "BR", "JP", "IN", "MX", "FR", "ES"}

// DemoTokenTTL is how long the demo users' tokens last.
const DemoTokenTTL = 24 * time.Hour

// POP is a running point of presence.
type POP struct {
	cfg     Config
	log     *slog.Logger
	origin  *origin.Services
	httpSrv *daemon.HTTP // origin, public
	intSrv  *daemon.HTTP // origin, internal
	shields []*tier.Node
	edges   []*tier.Node
	// shieldCfg and edgeCfg are each node's configuration with the
	// addresses it got, so a node restarts where it was (Restart).
	shieldCfg []tier.Config
	edgeCfg   []tier.Config
	mu        sync.Mutex // guards shields, edges during a restart
	originOpt []origin.Option
	edgeEdit  func(*tier.Config)
	gossip    []string // seed addresses
	// popTicket is the POP's play ticket key (edges mint with it) and
	// idpPublic the demo identity provider's public key.
	popTicket tier.Key
	idpPublic string
	tmp       string
	addrs     Addrs
	wg        sync.WaitGroup
	errc      chan error
	closed    sync.Once
}

// Option changes how Start builds a POP, for tests.
type Option func(*POP)

// WithEdgeConfig lets edit change each edge's configuration before it
// starts (tests and figures: drain delay, handoff, a disk tier).
func WithEdgeConfig(edit func(*tier.Config)) Option {
	return func(p *POP) { p.edgeEdit = edit }
}

// WithOriginOptions passes opts to the origin (a test's catalog, clock).
func WithOriginOptions(opts ...origin.Option) Option {
	return func(p *POP) { p.originOpt = append(p.originOpt, opts...) }
}

// Start builds and starts every node and returns once all are ready.
func Start(ctx context.Context, cfg Config, logger *slog.Logger, opts ...Option) (*POP, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	p := &POP{cfg: cfg, log: logger, errc: make(chan error, 4*(cfg.Edges+cfg.Shields)+2)}
	for _, o := range opts {
		o(p)
	}
	if p.cfg.AdminToken == "" {
		tok := make([]byte, 24)
		rand.Read(tok)
		p.cfg.AdminToken = base64.RawURLEncoding.EncodeToString(tok)
	}
	p.addrs.AdminToken = p.cfg.AdminToken
	ok := false
	defer func() {
		if !ok {
			p.Close()
		}
	}()
	if p.cfg.DataDir == "" {
		dir, err := os.MkdirTemp("", "pop-")
		if err != nil {
			return nil, err
		}
		p.tmp, p.cfg.DataDir = dir, dir
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	gossipKey := make([]byte, 32)
	rand.Read(gossipKey)
	member := func(role, name string) cluster.Config {
		mc := cluster.DefaultConfig()
		mc.NodeName, mc.Role, mc.POP = name, role, "local"
		mc.BindAddr, mc.BindPort = cfg.Host, 0
		mc.SecretKeys = []string{base64.StdEncoding.EncodeToString(gossipKey)}
		mc.Profile = cfg.GossipProfile
		if mc.Profile == cluster.ProfileLAN {
			mc.SuspicionMult = 3 // as configs/deploy: a dead node is routed around in under 5 s
		}
		return mc
	}
	keyID := "k" + time.Now().UTC().Format("20060102")
	tierKeys := cfg.TierKeys
	if len(tierKeys) == 0 {
		tierSecret := make([]byte, 32)
		rand.Read(tierSecret)
		tierKeys = []tierauth.KeyConfig{{ID: "tier" + time.Now().UTC().Format("20060102"), Secret: hex.EncodeToString(tierSecret)}}
	}
	if err := p.startOrigin(keyID, hex.EncodeToString(secret), tierKeys); err != nil {
		return nil, err
	}
	// node is what every tier node of the POP shares: a loopback
	// address, the tier credential, the routes, the chunk size, gossip.
	node := func(c tier.Config, role, name string, memory config.Size) tier.Config {
		c.Name = name
		c.Listen = net.JoinHostPort(cfg.Host, "0")
		c.InternalAddr = net.JoinHostPort(cfg.Host, "0")
		c.TierKeys = tierKeys
		c.Routes = Routes()
		c.Cache.MemoryBytes, c.Cache.ChunkSize = memory, cfg.ChunkSize
		c.Cluster = member(role, name)
		return c
	}
	// start starts a node and records it, its pinned configuration and
	// its addresses in the lists of its role.
	start := func(c tier.Config, nodes *[]*tier.Node, cfgs *[]tier.Config, public, internal *[]string) error {
		s, err := p.startTier(ctx, c)
		if err != nil {
			return err
		}
		*nodes = append(*nodes, s)
		*cfgs = append(*cfgs, pinned(c, s))
		*public = append(*public, s.URL())
		*internal = append(*internal, s.InternalURL())
		return nil
	}
	for i := range cfg.Shields {
		sc := node(tier.DefaultShieldConfig(), cluster.RoleShield, fmt.Sprintf("shield-%d", i+1), cfg.ShieldCache)
		sc.Upstreams = []string{p.addrs.Internal.Origin}
		if cfg.ShieldDisk > 0 {
			sc.Cache.DiskDir = filepath.Join(p.cfg.DataDir, sc.Name)
			sc.Cache.DiskBytes = cfg.ShieldDisk
		}
		if err := start(sc, &p.shields, &p.shieldCfg, &p.addrs.Shields, &p.addrs.Internal.Shields); err != nil {
			return nil, err
		}
	}
	for i := range cfg.Edges {
		ec := node(tier.DefaultEdgeConfig(), cluster.RoleEdge, fmt.Sprintf("edge-%d", i+1), cfg.EdgeCache)
		ec.Upstreams = p.addrs.Shields
		ec.Keys = []tier.Key{{ID: keyID, Secret: hex.EncodeToString(secret)}}
		ec.CountryHeader = cfg.CountryHeader
		ec.Prefetch.OriginURL = p.addrs.Internal.Origin
		// Edges mint manifests from the origin's snapshot: track
		// starts survive the origin.
		ec.Manifest.Enabled = true
		ec.Manifest.OriginURL = p.addrs.Internal.Origin
		ec.Manifest.Identity.PublicKeys = []string{p.idpPublic}
		ec.Manifest.TicketKeys = []tier.Key{p.popTicket}
		if p.edgeEdit != nil {
			p.edgeEdit(&ec)
		}
		if err := start(ec, &p.edges, &p.edgeCfg, &p.addrs.Edges, &p.addrs.Internal.Edges); err != nil {
			return nil, err
		}
	}
	p.origin.Admin.SetPOPs([]admin.POPConfig{{Name: "local", Shields: p.addrs.Internal.Shields, Edges: p.addrs.Internal.Edges}})
	if err := p.waitReady(ctx); err != nil {
		return nil, err
	}
	// Every edge sees every edge and shield before the POP is called
	// ready, so the first requests already route by ownership.
	for _, e := range p.edges {
		err := e.Members.WaitFor(ctx, func() bool {
			return len(e.Members.Members(cluster.RoleEdge)) == cfg.Edges && len(e.Members.Members(cluster.RoleShield)) == cfg.Shields
		})
		if err != nil {
			return nil, fmt.Errorf("pop: cluster did not converge: %w", err)
		}
	}
	ok = true
	return p, nil
}

func (p *POP) startOrigin(keyID, secret string, tierKeys []tierauth.KeyConfig) error {
	// The demo identity provider: a key pair made here, whose public key
	// the origin trusts and whose tokens go into the addr file.
	idp, err := identity.NewIssuer()
	if err != nil {
		return err
	}
	oc := origin.DefaultConfig()
	oc.Catalog, oc.Seed = p.cfg.Catalog, p.cfg.Seed
	oc.Keys = []origin.KeyConfig{{ID: keyID, Secret: secret}}
	oc.TierKeys = tierKeys
	oc.Identity.PublicKeys = []string{idp.PublicKey()}
	ticketSecret := make([]byte, 32)
	rand.Read(ticketSecret)
	// The POP's own ticket key: the edges mint manifests' play tickets
	// with it (issue 16), the origin accepts it after its own.
	popSecret := make([]byte, 32)
	rand.Read(popSecret)
	p.popTicket = tier.Key{ID: "pop-" + keyID, Secret: hex.EncodeToString(popSecret)}
	p.idpPublic = idp.PublicKey()
	oc.TicketKeys = []origin.KeyConfig{{ID: keyID, Secret: hex.EncodeToString(ticketSecret)}, {ID: p.popTicket.ID, Secret: p.popTicket.Secret}}
	// The demo users stand for whole populations of the load tool's
	// simulated listeners (one user per country), so the per-user limits
	// meant for one person's player are raised here.
	oc.Plays.UserRate, oc.Plays.UserBurst = 10_000, 100_000
	for _, cc := range DemoCountries {
		u := identity.User{ID: "demo-" + cc, Country: cc}
		tok, err := idp.Issue(u, DemoTokenTTL)
		if err != nil {
			return err
		}
		p.addrs.Users = append(p.addrs.Users, User{UserID: u.ID, Country: cc, Token: tok})
	}
	oc.DataDir = filepath.Join(p.cfg.DataDir, "origin")
	oc.Admin.Token = p.cfg.AdminToken
	ln, err := net.Listen("tcp", net.JoinHostPort(p.cfg.Host, "0"))
	if err != nil {
		return err
	}
	iln, err := net.Listen("tcp", net.JoinHostPort(p.cfg.Host, "0"))
	if err != nil {
		ln.Close()
		return err
	}
	oc.Listen, oc.InternalAddr = ln.Addr().String(), iln.Addr().String()
	logger := p.log.With("node", "origin")
	o, err := origin.Start(context.Background(), oc, logger, prometheus.NewRegistry(), p.originOpt...)
	if err != nil {
		ln.Close()
		iln.Close()
		return err
	}
	p.origin = o
	p.addrs.Kafka = o.KafkaAddr()
	p.addrs.LicenceKey = base64.StdEncoding.EncodeToString(o.Licence.PublicKey())
	p.httpSrv = &daemon.HTTP{Server: oc.HTTP.Server(o.PublicHandler(), logger), Listener: ln}
	p.intSrv = &daemon.HTTP{Server: oc.HTTP.Server(o.InternalHandler(), logger), Listener: iln}
	p.addrs.Origin = "http://" + ln.Addr().String()
	p.addrs.Internal.Origin = "http://" + iln.Addr().String()
	p.serve(p.httpSrv)
	p.serve(p.intSrv)
	return nil
}

// startTier starts a node and joins it to the cluster of the nodes
// started before it.
// Routes are the routes of a POP's edges and shields: the audio path, and
// RFC 9111 caches (package httpcache) for the origin's cover art and track
// metadata (package artwork), filled from the same upstreams.
func Routes() []tier.Route {
	return []tier.Route{
		{Mode: tier.ModeAudio},
		{Prefix: "/img/", Mode: tier.ModeHTTP},
		{Prefix: "/v1/tracks/", Mode: tier.ModeHTTP},
	}
}

func (p *POP) startTier(ctx context.Context, cfg tier.Config) (*tier.Node, error) {
	n, err := tier.NewNode(cfg, p.log, prometheus.NewRegistry(), nil)
	if err != nil {
		return nil, err
	}
	// The first node joins no one (no seeds): that still counts as
	// joined for its /readyz.
	if err := n.Join(ctx, p.gossip[:min(1, len(p.gossip))]); err != nil {
		n.Kill()
		return nil, err
	}
	p.gossip = append(p.gossip, n.Members.Addr())
	p.serve(n)
	return n, nil
}

func (p *POP) serve(s daemon.Service) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := s.Serve(); err != nil {
			p.errc <- err
		}
	}()
}

// waitReady polls every node's /readyz until all answer 200.
func (p *POP) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	a := p.addrs
	urls := append([]string{a.Origin, a.Internal.Origin}, a.Shields...)
	urls = append(append(append(urls, a.Edges...), a.Internal.Shields...), a.Internal.Edges...)
	client := &http.Client{Timeout: time.Second}
	for _, u := range urls {
		for {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u+"/readyz", nil)
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("pop: %s not ready: %w", u, ctx.Err())
			case err := <-p.errc:
				return fmt.Errorf("pop: a node failed to start: %w", err)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return nil
}

// Addrs returns where the nodes are.
func (p *POP) Addrs() Addrs { return p.addrs }

// Origin is the origin with its services.
func (p *POP) Origin() *origin.Services { return p.origin }

// Edges are the edge nodes.
func (p *POP) Edges() []*tier.Node {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.edges)
}

// Shields are the shield nodes.
func (p *POP) Shields() []*tier.Node {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.shields)
}

// pinned is cfg with the addresses node got, so that a restart binds the
// same ones (the other nodes and the addr file keep pointing at them).
func pinned(cfg tier.Config, n *tier.Node) tier.Config {
	cfg.Listen = n.Addr()
	cfg.InternalAddr = strings.TrimPrefix(n.InternalURL(), "http://")
	if n.Members != nil {
		_, port, _ := net.SplitHostPort(n.Members.Addr())
		cfg.Cluster.BindPort, _ = strconv.Atoi(port)
	}
	return cfg
}

// RestartEdge restarts edge i as an operator would: drain it (readyz
// fails, in-flight requests finish), leave the cluster, start it again on
// the same addresses and rejoin. The others route its tracks elsewhere
// while it is away. It returns once the edge is ready and sees the
// whole POP again.
func (p *POP) RestartEdge(ctx context.Context, i int) error {
	return p.restart(ctx, &p.edges[i], p.edgeCfg[i])
}

// RestartShield restarts shield i the same way; with a disk tier it
// comes back with what it held (warm restart).
func (p *POP) RestartShield(ctx context.Context, i int) error {
	return p.restart(ctx, &p.shields[i], p.shieldCfg[i])
}

func (p *POP) restart(ctx context.Context, slot **tier.Node, cfg tier.Config) error {
	p.mu.Lock()
	old := *slot
	p.mu.Unlock()
	if err := old.Shutdown(ctx); err != nil {
		return fmt.Errorf("pop: restart %s: %w", cfg.Name, err)
	}
	var seeds []string
	for _, n := range append(p.Edges(), p.Shields()...) {
		if n != old {
			seeds = append(seeds, n.Members.Addr())
		}
	}
	n, err := tier.NewNode(cfg, p.log, prometheus.NewRegistry(), nil)
	if err != nil {
		return fmt.Errorf("pop: restart %s: %w", cfg.Name, err)
	}
	if len(seeds) > 0 {
		if err := n.Join(ctx, seeds[:1]); err != nil {
			n.Kill()
			return fmt.Errorf("pop: restart %s: %w", cfg.Name, err)
		}
	}
	p.mu.Lock()
	*slot = n
	p.mu.Unlock()
	p.serve(n)
	return n.Members.WaitFor(ctx, func() bool {
		return len(n.Members.Members(cluster.RoleEdge)) == p.cfg.Edges && len(n.Members.Members(cluster.RoleShield)) == p.cfg.Shields
	})
}

// Err delivers a node's serve error, should one stop.
func (p *POP) Err() <-chan error { return p.errc }

// WriteAddrFile writes the addr file atomically (write, then rename), so a
// reader never sees half of it.
func (p *POP) WriteAddrFile(path string) error { return addrfile.Write(path, p.addrs) }

// Shutdown drains every node, edges first, within ctx.
func (p *POP) Shutdown(ctx context.Context) error {
	var errs []error
	p.closed.Do(func() {
		for _, s := range p.Edges() {
			errs = append(errs, s.Shutdown(ctx))
		}
		for _, s := range p.Shields() {
			errs = append(errs, s.Shutdown(ctx))
		}
		if p.httpSrv != nil {
			errs = append(errs, p.httpSrv.Shutdown(ctx))
		}
		if p.intSrv != nil {
			errs = append(errs, p.intSrv.Shutdown(ctx))
		}
		if p.origin != nil {
			errs = append(errs, p.origin.Close())
		}
		p.wg.Wait()
		if p.tmp != "" {
			errs = append(errs, os.RemoveAll(p.tmp))
		}
	})
	return errors.Join(errs...)
}

// Close shuts the POP down with a 10 s drain. Safe to call twice.
func (p *POP) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return p.Shutdown(ctx)
}
