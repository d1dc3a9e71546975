// Package tier is the caching HTTP tier shared by the edge and the shield:
// a fasthttp server that answers RFC 9110 range and conditional requests
// for Ogg Vorbis files and seek tables from a chunk store (package cache),
// filling misses from the next tier up over HTTP with failover.
//
// The upstream side has the shape of a reverse proxy (see fetcher): a
// pool of upstreams shared by a node's audio fetchers, each upstream with
// its one client, its in-flight count and its passive health (Available:
// not marked down, and fewer requests in flight than its connections); a
// one-method selector per kind of upstream (shieldSelector: the live
// shields in the track's rendezvous order, else the configured list from
// the track's hash; ownerSelector: the owning edge from the PeerPicker,
// with bounded load); and one failover loop that tries the selected
// upstreams in order within the caller's deadline and blames an upstream
// only for its own failures. An edge's main store fills from the shields
// (after a membership change asking the track's previous holder first),
// its hot store from the owning edge, hedged to the shields; the http
// routes use the same selector and loop; the prefetcher warms through a
// small prefetchNode interface.
//
// The two roles differ only in configuration: an edge serves players at
// /a/<track>/<kbps>.ogg?t=<token>, checks the signed token locally (no call
// to the origin on the hot path) and fills from shields; a shield serves
// /media/<track>/<kbps>.ogg to edges and fills from the origin.
//
// Every node has two listeners. Endpoints, who may call them, with which
// credential, and the most one request may cost:
//
//	listener        path                    caller            credential            cost of one request
//	edge listen     GET|HEAD /a/...         players           signed URL token      max_ranges ranges of one file; fills at most the chunks asked for
//	edge listen     GET /v1/manifest/<t>    players           user session (JWT)    manifest.enabled: one JWT check, one look-up in the snapshot, ~10 URL signatures, one play ticket (see manifests.go)
//	edge listen     /healthz, /readyz       load balancer     none                  constant
//	edge internal   GET|HEAD /peer/media/.. other edges       tier credential       as /a/, never forwarded again
//	edge internal   /metrics, /debug/pprof/ operators         network only          one scrape; a CPU profile of up to its seconds
//	both internal   POST /admin/purge       origin, operators tier credential       <= 1000 tracks: 10 object purges each, a disk flush
//	both internal   POST /admin/restore     origin, operators tier credential       <= 1000 map entries
//	both internal   POST /admin/reload      operators         tier credential       one read of the configuration file
//	shield listen   GET|HEAD /media/...     edges             tier credential       as /a/ (fills from the origin)
//	shield listen   /healthz, /readyz       edges, LB         none                  constant
//	shield internal /metrics, /debug/pprof/ operators         network only          as the edge's
//
// The admin endpoints are described in admin.go: purges (and takedowns,
// which also revoke the track's older tokens on the hit path), and reload
// of the fields a running node can change (Reload). A peer request with
// X-Peer-Only-If-Cached (a handoff fill, see PeerPicker.Handoff) is answered
// from the store or refused with a 504; it never fetches.
//
// Without a valid tier credential (package tierauth) a fill path is a 403
// before anything is read or fetched, counted in
// <role>_token_rejections_total{reason="tier"}. Anything else on a
// listener is a 404. No audio, peer or admin endpoint takes a request
// body: a body is refused (413) and the server never buffers more than
// maxRequestBody of one (the public listener of a node with http routes
// takes up to maxRouteBody, for those routes' unsafe methods).
//
// The player's endpoint, GET or HEAD /a/<track>/<kbps>.<ogg|seek>?t=<token>
// at an edge: any player may call it, with a urlsign token minted by the
// origin for exactly that object and the client's country, expiring within
// token_max_ttl; with country_header set, the load balancer's one copy of
// that header must name the token's country. A refused request is a 403
// that reads nothing from the cache or upstream. The most one request may
// cost: one metadata fill and the chunks its ranges cover (at most
// max_ranges ranges, coalesced), each collapsed with every other request's
// fill of the same chunk; a body streamed chunk by chunk, never assembled
// beyond max_buffered_body; and, for a track start, prefetch.tracks rights
// look-ups and warms, queued and dropped when the queue is full. A missing
// object costs one upstream request per cache.negative_ttl.
//
// Beside the audio path, Config.Routes may add http routes: a path prefix
// served by a shared RFC 9111 cache (package httpcache) in front of its
// upstreams, for cover art and API responses (see httpRoute for who may
// call them and what a request may cost). An edge whose routes are all
// http needs no token keys, shields or cluster, nor tier_keys: without
// them it signs nothing and serves no tier-credential path (its /admin/
// endpoints are a 403; SIGHUP still reloads it).
package tier

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/musiccdn/cdn/cache"
	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/cluster"
	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/hmacring"
	"github.com/musiccdn/cdn/httprange"
	"github.com/musiccdn/cdn/tierauth"
	"github.com/musiccdn/cdn/urlsign"
)

// Role is what a node serves and to whom.
type Role string

const (
	// Edge serves players with signed URLs and fills from shields.
	Edge Role = "edge"
	// Shield serves edges and fills from the origin.
	Shield Role = "shield"
)

// Config configures a tier node. Fields map one to one onto the YAML files
// in configs/.
type Config struct {
	// Name identifies the node in Cache-Status and logs. Default: the role.
	Name string `yaml:"name"`
	// Role is "edge" or "shield".
	Role Role `yaml:"role"`
	// Listen is the address of the public listener: players' /a/ paths on
	// an edge, the fill endpoint /media/ (tier credential required) on a
	// shield, and /healthz and /readyz. Default "127.0.0.1:0".
	Listen string `yaml:"listen"`
	// InternalAddr is the address of the internal listener, for the
	// private network only: /peer/media/ (edge) and /admin/ (both; tier
	// credential required), /metrics, /debug/pprof/, /healthz and
	// /readyz. Always plain HTTP. Default "127.0.0.1:0".
	InternalAddr string `yaml:"internal_addr"`
	// TierKeys are the tier credential keys (package tierauth): the first
	// signs this node's fills, all are accepted on its fill endpoints.
	// The same keys on every edge, shield and origin of a POP. Required.
	TierKeys []tierauth.KeyConfig `yaml:"tier_keys"`
	// Upstreams are the base URLs of the next tier up: shields for an
	// edge, the origin for a shield. A request's track picks its first
	// upstream by hashing; the others are tried in order on failure.
	// Required with an audio route; http routes without their own
	// upstreams use these too.
	Upstreams []string `yaml:"upstreams"`
	// Routes are the path prefixes the public listener serves and how: an
	// audio route first, then the node's own endpoints (an edge's
	// /v1/manifest/ with manifest.enabled, /healthz, /readyz), then the
	// http route with the longest matching prefix. Default
	// (no routes key): one audio route, today's signed chunked path. See
	// Route.
	Routes []Route `yaml:"routes"`
	// UpstreamTimeout bounds one attempt at one upstream, connect to last
	// byte. Default 5 s.
	UpstreamTimeout config.Duration `yaml:"upstream_timeout"`
	// PeerHedgeAfter is how long an edge waits for the owning edge's
	// answer to a peer fill before it sends the same fill to the shields
	// too and takes the first good answer (edge, with a cluster only):
	// a hung owner then costs a listener at most this much per fill. A
	// few times the LAN's round trip plus an owner's cache hit; too low
	// and cold fills are sent twice (counted in
	// edge_peer_hedged_total). 0 disables hedging (the owner gets the
	// whole upstream_timeout). Default 50ms.
	PeerHedgeAfter config.Duration `yaml:"peer_hedge_after"`
	// FillCA is a PEM file of the CA certificates that verify https
	// upstreams (shields' fill listeners for an edge, the origin for a
	// shield) and https owners. Empty: the system's roots. A file that
	// does not load, or a configured https upstream whose certificate it
	// does not verify at start-up, stops start-up: fills never fall back
	// to plain HTTP or to skipping verification. Default "".
	FillCA string `yaml:"fill_ca"`
	// MemoryLimit is the Go runtime's soft memory limit for the process
	// (debug.SetMemoryLimit, as GOMEMLIMIT), applied by cmd/edge and
	// cmd/shield. 0 (the default) derives it from the budgets:
	// MemoryOverhead times cache.memory_bytes (plus hot_cache.memory_bytes
	// on an edge in a cluster), plus 64 MiB, plus ManifestMemory on an edge minting manifests (see
	// MemoryBudget); the GOMEMLIMIT environment variable wins when set.
	MemoryLimit config.Size `yaml:"memory_limit"`
	// WarnEvery is the least time between two "upstream failure"
	// warnings for one upstream; the warnings held back are counted in
	// the next. Default 10s.
	WarnEvery config.Duration `yaml:"warn_every"`
	// MaxRanges is the most ranges one request may ask for, after
	// overlapping and adjacent ranges are coalesced; a longer set is
	// ignored (the whole file is sent) as RFC 9110 §14.2 allows.
	// Default 16 (httprange.DefaultMaxRanges, the origin's fixed limit:
	// a tier set above it can be sent a set the origin ignores).
	MaxRanges int `yaml:"max_ranges"`
	// MaxBufferedBody is the largest single-range body assembled in memory
	// before it is sent; larger bodies are streamed chunk by chunk, and a
	// failure mid-stream aborts the connection. Default 4 MiB.
	MaxBufferedBody config.Size `yaml:"max_buffered_body"`
	// DrainDelay is how long /readyz fails before the listener closes on
	// shutdown, so a load balancer stops sending new requests first.
	// Default 0.
	DrainDelay config.Duration `yaml:"drain_delay"`
	// Cache configures the chunk store.
	Cache cache.Config `yaml:"cache"`

	// HotCache is an edge's small cache for chunks of tracks another
	// edge owns (edge, with a cluster only): a chunk is kept once it has
	// been read HotMinReads times within HotWindow, so the POP holds one
	// copy of most tracks and a few copies of the hottest. Default 64 MiB.
	HotCache cache.Config `yaml:"hot_cache"`
	// HotMinReads is the reads within HotWindow that promote a chunk into
	// the hot cache. Default 4.
	HotMinReads int `yaml:"hot_min_reads"`
	// HotWindow is the hot-cache rate window. Default 10s.
	HotWindow config.Duration `yaml:"hot_window"`
	// LoadFactor is bounded load's c (edge, with a cluster): no edge is
	// sent more than c times the mean in-flight peer work, beyond
	// LoadFloor requests each. Default 1.25 and 32; load_factor at least
	// 1, load_floor at least 1.
	LoadFactor float64 `yaml:"load_factor"`
	LoadFloor  int64   `yaml:"load_floor"`
	// Prefetch warms the next tracks (edge only).
	Prefetch PrefetchConfig `yaml:"prefetch"`
	// NoHandoff turns off handoff fills (edge, with a cluster): for
	// HandoffWindow after the edges' membership changes, an owner's miss
	// first asks the edge that held the track before (only what it has
	// cached), then the shields. Default false (handoff on).
	NoHandoff bool `yaml:"no_handoff"`
	// Manifest makes the edge mint playback manifests from a snapshot of
	// the origin's catalog and rights (edge only), so track starts
	// survive the origin.
	Manifest ManifestConfig `yaml:"manifest"`
	// Cluster is the node's gossip membership in its POP. Without a role
	// (the default) the node runs alone: an edge routes to Upstreams by
	// hashing and owns every track. When cluster.http_addr is empty it is
	// filled in with where peers fill from this node: an edge's internal
	// listener (peer fills), a shield's public listener (its /media).
	Cluster cluster.Config `yaml:"cluster"`

	// Keys verify player tokens (edge only): the current key first, then
	// the previous ones still accepted.
	Keys []Key `yaml:"keys"`
	// CountryHeader names the request header in which the POP's load
	// balancer puts the client's country (edge only), an upper-case ISO
	// 3166-1 alpha-2 code. When set, the check fails closed: a request
	// without the header, with it twice, or with a code that is not an
	// assigned country is refused (403), and so is a token for another
	// country. The load balancer must overwrite any copy the client sent.
	// Default "": not checked (cmd/pop on loopback, no load balancer).
	CountryHeader string `yaml:"country_header"`
	// TokenMaxTTL is the longest lifetime a player token may have left
	// (edge only): a token whose expiry lies further than now+TokenMaxTTL
	// is refused (403, reason "ttl"), whoever signed it, so a leaked
	// far-future token is useless. The origin's token_ttl must not exceed
	// it. Default 24h.
	TokenMaxTTL config.Duration `yaml:"token_max_ttl"`
	// TLSCert and TLSKey are PEM files; when both are set the public
	// listener serves HTTPS: an edge's player-facing one, a shield's fill
	// listener (edges then verify it with their fill_ca).
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
}

// Route modes.
const (
	// ModeAudio is the signed, chunked audio path (/a/ at an edge,
	// /media/ at a shield).
	ModeAudio = "audio"
	// ModeHTTP is a shared HTTP cache following RFC 9111 (package
	// httpcache) in front of the route's upstreams.
	ModeHTTP = "http"
)

// Route is one entry of Config.Routes.
type Route struct {
	// Prefix is the path prefix served, starting with "/". An audio
	// route's prefix is the role's audio path and may be left empty.
	Prefix string `yaml:"prefix"`
	// Mode is "audio" or "http".
	Mode string `yaml:"mode"`
	// Upstreams are an http route's base URLs: at an edge, shields (with a
	// cluster and no upstreams here, the live shields in rendezvous order,
	// as for audio); at a shield, the origin service owning the paths.
	// Default: the node's upstreams. An audio route uses the node's
	// upstreams and has none of its own.
	Upstreams []string `yaml:"upstreams"`
	// MaxObjectSize is the largest response body an http route stores;
	// larger ones are streamed through uncached. Default 8 MiB.
	MaxObjectSize config.Size `yaml:"max_object_size"`
	// MaxHeaderBytes bounds an upstream response's header block on an
	// http route; a larger one is a 502. Default 16 KiB.
	MaxHeaderBytes config.Size `yaml:"max_header_bytes"`
	// MaxEntries bounds the stored responses an http route indexes.
	// Default 100000.
	MaxEntries int `yaml:"max_entries"`
	// StaleOnError is how long past its freshness lifetime an http route
	// still serves a stored response when the upstream is unreachable or
	// answers 500, 502, 503 or 504 (RFC 9111 §4.2.4), unless the response
	// forbids it (must-revalidate, proxy-revalidate, s-maxage, no-cache);
	// a response's stale-if-error (RFC 5861) may give longer. 0 (the
	// YAML value "0s" included) means the default, 1 h; a negative value
	// turns it off.
	StaleOnError config.Duration `yaml:"stale_on_error"`
}

// Route defaults.
const (
	defaultMaxObjectSize  = 8 << 20
	defaultMaxHeaderBytes = 16 << 10
	defaultMaxEntries     = 100000
	defaultStaleOnError   = config.Duration(time.Hour)
)

// routes returns the configured routes with defaults filled in: one
// audio route when none are configured.
func (c Config) routes() []Route {
	rs := c.Routes
	if rs == nil {
		rs = []Route{{Mode: ModeAudio}}
	}
	out := make([]Route, len(rs))
	for i, r := range rs {
		if r.Mode == ModeAudio && r.Prefix == "" {
			r.Prefix = c.audioPrefix()
		}
		if r.Mode == ModeHTTP {
			if r.MaxObjectSize == 0 {
				r.MaxObjectSize = defaultMaxObjectSize
			}
			if r.MaxHeaderBytes == 0 {
				r.MaxHeaderBytes = defaultMaxHeaderBytes
			}
			if r.MaxEntries == 0 {
				r.MaxEntries = defaultMaxEntries
			}
			if r.StaleOnError == 0 {
				r.StaleOnError = defaultStaleOnError
			}
		}
		out[i] = r
	}
	return out
}

func (c Config) audioPrefix() string {
	if c.Role == Edge {
		return catalog.EdgePrefix
	}
	return catalog.MediaPrefix
}

// hasAudio reports whether a route is in audio mode.
func (c Config) hasAudio() bool {
	for _, r := range c.routes() {
		if r.Mode == ModeAudio {
			return true
		}
	}
	return false
}

func (c Config) validateRoutes(bad func(field, format string, args ...any)) {
	if c.Routes != nil && len(c.Routes) == 0 {
		bad("routes", "must not be empty when given")
	}
	seen := map[string]bool{}
	audio := c.audioPrefix()
	for i, r := range c.routes() {
		f := func(name string) string { return fmt.Sprintf("routes[%d].%s", i, name) }
		switch r.Mode {
		case ModeAudio:
			if r.Prefix != audio {
				bad(f("prefix"), "an audio route serves %q at a %s", audio, c.Role)
			}
			if len(r.Upstreams) > 0 {
				bad(f("upstreams"), "an audio route uses the node's upstreams")
			}
		case ModeHTTP:
			if !strings.HasPrefix(r.Prefix, "/") {
				bad(f("prefix"), "must start with /")
			}
			if len(r.Upstreams) == 0 && len(c.Upstreams) == 0 && !(c.Role == Edge && c.Cluster.Role != "") {
				bad(f("upstreams"), "an http route needs upstreams (its own or the node's)")
			}
			for j, u := range r.Upstreams {
				if !baseURLValid(u) {
					bad(fmt.Sprintf("routes[%d].upstreams[%d]", i, j), "%q is not an http(s) base URL", u)
				}
			}
			if r.MaxObjectSize < 0 {
				bad(f("max_object_size"), "must not be negative")
			}
			if r.MaxHeaderBytes < 1<<10 || r.MaxHeaderBytes > 1<<20 {
				bad(f("max_header_bytes"), "must be from 1KiB to 1MiB")
			}
			if r.MaxEntries < 1 {
				bad(f("max_entries"), "must be positive")
			}
		default:
			bad(f("mode"), "must be audio or http, not %q", r.Mode)
		}
		if seen[r.Prefix] {
			bad(f("prefix"), "%q is served by an earlier route", r.Prefix)
		}
		seen[r.Prefix] = true
	}
}

func baseURLValid(u string) bool {
	p, err := url.Parse(u)
	return err == nil && (p.Scheme == "http" || p.Scheme == "https") && p.Host != "" && (p.Path == "" || p.Path == "/")
}

// Key is a token or ticket key as written in configuration: an id and a
// hex secret (package hmacring).
type Key = hmacring.Config

// DefaultPeerHedgeAfter is PeerHedgeAfter's default: tens of LAN round
// trips, and well above an owner's cache hit.
const DefaultPeerHedgeAfter = 50 * time.Millisecond

// DefaultTokenMaxTTL is TokenMaxTTL's default: a day, four times the
// origin's default token_ttl.
const DefaultTokenMaxTTL = 24 * time.Hour

// DefaultEdgeConfig returns an edge's defaults.
func DefaultEdgeConfig() Config {
	return Config{
		Name:            "edge",
		Role:            Edge,
		Listen:          "127.0.0.1:0",
		InternalAddr:    "127.0.0.1:0",
		UpstreamTimeout: config.Duration(5 * time.Second),
		PeerHedgeAfter:  config.Duration(DefaultPeerHedgeAfter),
		WarnEvery:       config.Duration(10 * time.Second),
		MaxRanges:       httprange.DefaultMaxRanges,
		MaxBufferedBody: 4 << 20,
		Cache:           cache.DefaultConfig(),
		HotCache:        hotDefaults(),
		HotMinReads:     4,
		HotWindow:       config.Duration(10 * time.Second),
		LoadFactor:      1.25,
		LoadFloor:       32,
		Prefetch:        DefaultPrefetchConfig(),
		Manifest:        DefaultManifestConfig(),
		Cluster:         clusterDefaults(),
		TokenMaxTTL:     config.Duration(DefaultTokenMaxTTL),
	}
}

// clusterDefaults are cluster.DefaultConfig without a role: no cluster
// unless the file or flags give one.
// Its node_name is empty: the node's name is used, so that nodes on one
// host do not all take the host name (and refuse each other).
func clusterDefaults() cluster.Config {
	c := cluster.DefaultConfig()
	c.Role = ""
	c.NodeName = ""
	return c
}

func hotDefaults() cache.Config {
	c := cache.DefaultConfig()
	c.MemoryBytes = 64 << 20
	c.MaxObjects = 1 << 16
	return c
}

// DefaultShieldConfig returns a shield's defaults: a larger cache.
func DefaultShieldConfig() Config {
	c := DefaultEdgeConfig()
	c.Name, c.Role = "shield", Shield
	c.Cache.MemoryBytes = 4 << 30
	c.Prefetch.Enabled = false
	return c
}

// Validate reports every invalid field, each error naming its YAML path.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, config.Errorf(field, format, args...))
	}
	if c.Role != Edge && c.Role != Shield {
		bad("role", "must be edge or shield, not %q", c.Role)
	}
	if c.Name == "" {
		bad("name", "must be set")
	}
	if c.Listen == "" {
		bad("listen", "must be set")
	}
	if c.InternalAddr == "" {
		bad("internal_addr", "must be set")
	} else if c.InternalAddr == c.Listen && !strings.HasSuffix(c.Listen, ":0") {
		bad("internal_addr", "must differ from listen")
	}
	audio := c.hasAudio()
	if len(c.TierKeys) == 0 && (audio || c.Cluster.Role != "") {
		// An edge signs its fills with them; a shield checks every
		// /media request with them. A node with only http routes in
		// front of an outside upstream needs none.
		bad("tier_keys", "required: every fill between tiers carries a tier credential")
	} else if _, err := tierauth.New(c.TierKeys); len(c.TierKeys) > 0 && err != nil {
		errs = append(errs, config.Prefix("tier_keys", err))
	}
	if len(c.Upstreams) == 0 && audio {
		bad("upstreams", "at least one upstream base URL is needed")
	}
	for i, u := range c.Upstreams {
		if !baseURLValid(u) {
			bad(fmt.Sprintf("upstreams[%d]", i), "%q is not an http(s) base URL", u)
		}
	}
	c.validateRoutes(bad)
	if c.UpstreamTimeout <= 0 {
		bad("upstream_timeout", "must be positive")
	}
	if c.PeerHedgeAfter < 0 {
		bad("peer_hedge_after", "must not be negative")
	} else if c.PeerHedgeAfter >= c.UpstreamTimeout && c.UpstreamTimeout > 0 {
		bad("peer_hedge_after", "must be shorter than upstream_timeout")
	}
	if c.WarnEvery <= 0 {
		bad("warn_every", "must be positive")
	}
	if c.MemoryLimit < 0 {
		bad("memory_limit", "must not be negative")
	}
	if c.FillCA != "" {
		if _, err := loadCA(c.FillCA); err != nil {
			bad("fill_ca", "%v", err)
		}
	}
	if c.Role == Edge && c.Cluster.Role != "" {
		// Peers fill from an edge's internal listener, which is plain
		// HTTP: an advertised https address, or the public (TLS) port,
		// would make every peer fill fail.
		ha := c.Cluster.HTTPAddr
		switch {
		case strings.HasPrefix(ha, "https://"):
			bad("cluster.http_addr", "%q: peers fill from the internal listener, which serves plain HTTP; advertise internal_addr", ha)
		case ha != "" && strings.TrimPrefix(ha, "http://") == c.Listen && c.Listen != c.InternalAddr:
			bad("cluster.http_addr", "%q is the public listener; peers fill from internal_addr %q", ha, c.InternalAddr)
		}
	}
	if c.Role == Shield && c.Cluster.Role != "" && c.Cluster.HTTPAddr != "" {
		// Edges fill from the advertised address: its scheme must be
		// what the fill listener serves.
		tlsOn, https := c.TLSCert != "", strings.HasPrefix(c.Cluster.HTTPAddr, "https://")
		switch {
		case tlsOn && !https:
			bad("cluster.http_addr", "%q: the fill listener serves TLS (tls_cert), advertise https://", c.Cluster.HTTPAddr)
		case !tlsOn && https:
			bad("cluster.http_addr", "%q: https, but tls_cert is not set", c.Cluster.HTTPAddr)
		}
	}
	if c.MaxRanges < 1 || c.MaxRanges > 1000 {
		bad("max_ranges", "must be from 1 to 1000")
	}
	if c.MaxBufferedBody < 64<<10 {
		bad("max_buffered_body", "must be at least 64KiB")
	}
	if c.DrainDelay < 0 {
		bad("drain_delay", "must not be negative")
	}
	errs = append(errs, config.Prefix("cache", c.Cache.Validate()))
	if c.Cluster.Role != "" {
		if c.Cluster.Role != string(c.Role) {
			bad("cluster.role", "must match role %q", c.Role)
		}
		cc := c.Cluster
		if cc.NodeName == "" {
			cc.NodeName = c.Name // filled in at start (NewNode)
		}
		if cc.HTTPAddr == "" {
			// Filled in at start (NewNode): where peers fill from.
			cc.HTTPAddr = c.InternalAddr
			if c.Role == Shield {
				cc.HTTPAddr = c.Listen
			}
		}
		errs = append(errs, config.Prefix("cluster", cc.Validate()))
	}
	if c.Role == Edge {
		errs = append(errs, config.Prefix("hot_cache", c.HotCache.Validate()))
		errs = append(errs, config.Prefix("prefetch", c.Prefetch.Validate()))
		errs = append(errs, config.Prefix("manifest", c.Manifest.Validate(c.TokenMaxTTL)))
		if c.HotMinReads < 1 {
			bad("hot_min_reads", "must be positive")
		}
		if c.HotWindow <= 0 {
			bad("hot_window", "must be positive")
		}
		if c.LoadFactor < 1 {
			bad("load_factor", "must be at least 1")
		}
		// 0 would read as "no floor", but the router has always
		// treated it as the default; refuse it rather than change its
		// meaning silently.
		if c.LoadFloor < 1 {
			bad("load_floor", "must be at least 1")
		}
	}
	if c.Role == Edge {
		if c.TokenMaxTTL <= 0 {
			bad("token_max_ttl", "must be positive")
		}
		if c.CountryHeader != "" && !validHeaderName(c.CountryHeader) {
			bad("country_header", "%q is not a header name", c.CountryHeader)
		}
	}
	if c.Role == Edge && (audio || len(c.Keys) > 0) {
		// Token keys guard the audio path only.
		if len(c.Keys) == 0 {
			bad("keys", "an edge with an audio route needs at least one token key")
		} else if _, err := c.Keyring(); err != nil {
			errs = append(errs, err) // names keys[i]
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("tls_cert", "tls_cert and tls_key go together")
	}
	return errors.Join(errs...)
}

// Keyring builds the token keyring from Keys.
func (c Config) Keyring() (*urlsign.Keyring, error) {
	keys, err := hmacring.Decode(c.Keys, urlsign.MinSecretLen)
	if err != nil {
		return nil, config.Prefix("keys", err)
	}
	return urlsign.NewKeyring(keys...)
}

// FillTLS is the TLS configuration of https fills: FillCA's roots, or
// nil (the system's) when FillCA is empty.
func (c Config) FillTLS() (*tls.Config, error) {
	if c.FillCA == "" {
		return nil, nil
	}
	pool, err := loadCA(c.FillCA)
	if err != nil {
		return nil, config.Errorf("fill_ca", "%v", err)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// loadCA reads a PEM file holding at least one certificate.
func loadCA(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	return pool, nil
}

// MemoryOverhead is the factor between a node's configured cache budgets
// and the memory it may use in all, when memory_limit is 0: the chunk
// bytes themselves, plus ristretto's and the window's metadata, fill
// buffers (a chunk per fill in flight), response buffers, connection
// buffers (fasthttp: read and write buffers per connection, 256 KiB
// socket send buffers are the kernel's) and the Go heap's headroom
// between collections.
const MemoryOverhead = 1.5

// MemoryBudget is the soft memory limit for the process: MemoryLimit, or
// MemoryOverhead times the cache budgets plus 64 MiB for the runtime,
// gossip and the binaries' fixed costs.
func (c Config) MemoryBudget() int64 {
	if c.MemoryLimit > 0 {
		return int64(c.MemoryLimit)
	}
	b := int64(c.Cache.MemoryBytes)
	if c.Role == Edge && c.Cluster.Role != "" {
		b += int64(c.HotCache.MemoryBytes)
	}
	limit := int64(float64(b)*MemoryOverhead) + 64<<20
	if c.Role == Edge && c.Manifest.Enabled {
		limit += ManifestMemory
	}
	return limit
}

// ManifestMemory is what an edge minting manifests budgets for its
// snapshot: two snapshots (the one in use and the one being decoded) of
// about 250 bytes per track, so up to about 130 000 tracks; a larger
// catalog needs memory_limit set.
const ManifestMemory = 64 << 20

// validHeaderName reports whether h is an RFC 9110 token.
func validHeaderName(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return h != ""
}
