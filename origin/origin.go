// Package origin assembles the origin server. It has two handlers, one
// per listener:
//
// The public handler (Config.Listen), for players: playback manifests with
// signed edge URLs after a rights check (GET /v1/manifest/<track> with the
// user's bearer token, whose country decides; each manifest carries a play
// id and its play ticket, see package playticket),
// a first next-tracks list (GET /v1/recs/next/<track>?n=3&country=CC),
// /healthz, /readyz, and the services mounted with Mount (plays POST,
// licences, user recommendations), and cover art and track metadata
// (GET /img/<album>/<size>.jpg, GET /v1/tracks/<id>: see package artwork),
// also on the internal listener for the shields' http routes.
//
// The internal handler (Config.InternalAddr), for the private network:
// the catalog's files for shields (GET|HEAD /media/<track>/<kbps>.ogg|.seek,
// RFC 9110 ranges and conditional requests) behind the tier credential
// (package tierauth: 403 and nothing opened without it), /metrics,
// /healthz, /readyz, and the services mounted with MountInternal
// (royalty reports), and a rights check for the edges' prefetcher
// (GET /v1/rights/<track>?country=CC, tier credential). A path not routed on a listener is a 404 there.
//
//	listener  path                        caller         credential        cost of one request
//	public    GET /v1/manifest/<t>        players        user session JWT  one JWT check, one rights look-up, 10 URL signatures, 1 ticket
//	public    GET /v1/recs/next/<t>       players        none              n <= MaxNext (50): recs.neighbours_k rights look-ups (rarely, a scan of every track keeping the best n); without a model, <= maxNextScan (2048)
//	internal  GET|HEAD /media/<t>/<k>.ext shields        tier credential   one file (<= ~10 MB), httprange.DefaultMaxRanges ranges
//	internal  GET /v1/snapshot            edges          tier credential   one catalog walk per 5 min for all callers; a few MB sent
//	internal  GET /v1/rights/<t>          edges          tier credential   one rights look-up
//	internal  GET /img/..., /v1/tracks/.. shields        tier credential   one small image or JSON (also public, for anyone)
//	internal  GET /v1/recs/next/<t>       edges          tier credential   as the public one
//	internal  GET /metrics                operators      network only      one scrape
//	internal  GET /v1/royalties/...       finance jobs   network only      one ledger query
//	internal  POST /v1/admin/purge|restore operators     admin token       <= 1000 tracks, 3 calls per node (origin/admin)
//	both      GET /healthz, /readyz       load balancers none              constant
//
// Both listeners run with the limits of Config.HTTP (header, read, write
// and idle timeouts, header size); /media/ responses get their own write
// deadline, HTTP.MediaWriteTimeout, since a whole file may be large.
//
// A cmd main (cmd/origin, pop) does:
//
//	cfg := origin.DefaultConfig()     // then config.Load, flags
//	svc, err := origin.Start(ctx, cfg, logger, registry) // Server + plays, recs, licences mounted
//	pub := cfg.HTTP.Server(svc.PublicHandler(), logger)  // on cfg.Listen
//	in := cfg.HTTP.Server(svc.InternalHandler(), logger) // on cfg.InternalAddr
//	... on SIGTERM: svc.SetReady(false); pub.Shutdown(ctx); in.Shutdown(ctx); svc.Close()
//
// New alone builds the Server without those services (tests, and anyone
// mounting their own with Mount and MountInternal).
package origin

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/hmacring"
	"github.com/musiccdn/cdn/httprange"
	"github.com/musiccdn/cdn/identity"
	"github.com/musiccdn/cdn/metric"
	"github.com/musiccdn/cdn/origin/admin"
	"github.com/musiccdn/cdn/origin/api"
	"github.com/musiccdn/cdn/origin/artwork"
	"github.com/musiccdn/cdn/origin/media"
	"github.com/musiccdn/cdn/origin/plays"
	"github.com/musiccdn/cdn/origin/recs"
	"github.com/musiccdn/cdn/origin/rights"
	"github.com/musiccdn/cdn/playticket"
	"github.com/musiccdn/cdn/tierauth"
	"github.com/musiccdn/cdn/urlsign"
)

// Config is the origin's configuration, one to one with its YAML file.
type Config struct {
	// Listen is the host:port of the public listener (players: manifests,
	// plays, licences, recommendations). Default "127.0.0.1:8080". New
	// does not listen: it only builds the handlers.
	Listen string `yaml:"listen"`
	// InternalAddr is the host:port of the internal listener, on the
	// private network only: /media/ for shields (tier credential
	// required), /metrics, /v1/royalties/. Default "127.0.0.1:8081".
	InternalAddr string `yaml:"internal_addr"`
	// TierKeys check the tier credential shields send to /media/ and edges
	// to the internal API (package tierauth), and the first signs the
	// admin purge fan-out to the nodes' /admin/: the same keys as the
	// POP's edges and shields, the current one first. Required.
	TierKeys []tierauth.KeyConfig `yaml:"tier_keys"`
	// HTTP are the limits of both listeners.
	HTTP HTTPConfig `yaml:"http"`
	// Name names this node in logs. Default "origin".
	Name string `yaml:"name"`
	// Catalog is "synthetic:N" (tracks t0 to t<N-1> generated from Seed;
	// 1 <= N <= MaxSyntheticTracks) or the path of a catalog directory
	// (see media.Dir). Default "synthetic:100000".
	Catalog string `yaml:"catalog"`
	// Seed seeds the synthetic catalog and its synthetic rights; load
	// tools that verify bytes must use the same value. Default 1.
	Seed uint64 `yaml:"seed"`
	// Keys sign the manifest URLs: Keys[0] signs, and edges must accept
	// it (edges hold the current and previous keys). At least one; no
	// default, since a built-in key would be a shared secret.
	Keys []KeyConfig `yaml:"keys"`
	// TokenTTL is how long a manifest's signed URLs stay valid. Longer
	// lets a paused player resume without a new manifest; shorter limits
	// how long a leaked URL works. At most MaxTokenTTL, and it must not
	// exceed the edges' token_max_ttl (edges refuse tokens that live
	// longer than that). Default 6h.
	TokenTTL config.Duration `yaml:"token_ttl"`
	// RightsFile is a rights TSV file (see rights.Load). Empty means the
	// synthetic rights of the synthetic catalog (about 10 % of pairs
	// denied), or for a directory catalog the worldwide policy (every
	// valid country allowed).
	RightsFile string `yaml:"rights_file"`
	// DataDir holds the origin's state: the embedded Kafka broker's log
	// and the SQLite ledger (under DataDir/plays) unless plays names a
	// broker and a PostgreSQL DSN. Default "data".
	DataDir string `yaml:"data_dir"`
	// Identity verifies the bearer tokens of the public API (manifests,
	// plays, licences): the identity provider's Ed25519 public keys.
	// Required; no default.
	Identity identity.Config `yaml:"identity"`
	// TicketKeys sign and check play tickets (see package playticket):
	// TicketKeys[0] mints, any verifies. Every origin instance sharing a
	// plays topic must hold the same keys. Secrets are hex, at least 32
	// bytes. Empty: one random key made at start, so tickets die with the
	// process (fine for one machine, wrong for a deployment).
	TicketKeys []KeyConfig `yaml:"ticket_keys"`
	// Licence configures offline licences (POST /v1/licences).
	Licence LicenceConfig `yaml:"licence"`
	// Plays configures the play-counting pipeline (POST /v1/plays).
	Plays plays.Config `yaml:"plays"`
	// Recs configures recommendations (GET /v1/recs/...).
	Recs recs.Config `yaml:"recs"`
	// Admin configures purges and takedowns (POST /v1/admin/purge on the
	// internal listener, package origin/admin): the admin token and the
	// POPs' nodes. Its file defaults to DataDir/takedowns.json.
	Admin admin.Config `yaml:"admin"`
}

// KeyConfig is one URL signing or play ticket key: {id, secret}, the id
// 1 to 16 characters of [A-Za-z0-9_-], the secret hex encoded, at least
// 16 bytes (32 hex digits) for a signing key and 32 bytes (64 hex digits)
// for a ticket key.
type KeyConfig = hmacring.Config

// HTTPConfig bounds what one connection may hold, on both listeners.
type HTTPConfig struct {
	// ReadHeaderTimeout bounds reading a request's header (slowloris).
	// Default 5s.
	ReadHeaderTimeout config.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request, body included (slow
	// POST bodies). Default 30s.
	ReadTimeout config.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds writing a response, from the end of its
	// request's header (slow readers). API answers are small. Default 30s.
	WriteTimeout config.Duration `yaml:"write_timeout"`
	// MediaWriteTimeout replaces WriteTimeout for /media/ responses,
	// which may be a whole file of ~10 MB to a shield: at 1 Mbit/s that
	// is 80 s. Shields ask for 256 KiB chunks within their own
	// upstream_timeout, so this only matters to whole-file reads.
	// Default 2m.
	MediaWriteTimeout config.Duration `yaml:"media_write_timeout"`
	// IdleTimeout closes a keep-alive connection idle this long.
	// Default 120s.
	IdleTimeout config.Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes bounds a request's header (request line included).
	// Default 16KiB.
	MaxHeaderBytes config.Size `yaml:"max_header_bytes"`
}

// DefaultHTTPConfig returns the defaults documented on HTTPConfig.
func DefaultHTTPConfig() HTTPConfig {
	return HTTPConfig{
		ReadHeaderTimeout: config.Duration(5 * time.Second),
		ReadTimeout:       config.Duration(30 * time.Second),
		WriteTimeout:      config.Duration(30 * time.Second),
		MediaWriteTimeout: config.Duration(2 * time.Minute),
		IdleTimeout:       config.Duration(120 * time.Second),
		MaxHeaderBytes:    16 << 10,
	}
}

// Validate reports every invalid field.
func (c HTTPConfig) Validate() error {
	var errs config.Errors
	for _, d := range []struct {
		field string
		v     config.Duration
	}{
		{"read_header_timeout", c.ReadHeaderTimeout}, {"read_timeout", c.ReadTimeout}, {"write_timeout", c.WriteTimeout},
		{"media_write_timeout", c.MediaWriteTimeout}, {"idle_timeout", c.IdleTimeout},
	} {
		if d.v <= 0 {
			errs.Add(d.field, "must be positive")
		}
	}
	if c.MaxHeaderBytes < 1<<10 || c.MaxHeaderBytes > 1<<20 {
		errs.Add("max_header_bytes", "must be from 1KiB to 1MiB")
	}
	return errs.Err()
}

// Server returns an http.Server for h with these limits (no address: the
// caller serves it on its listener).
func (c HTTPConfig) Server(h http.Handler, logger *slog.Logger) *http.Server {
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: time.Duration(c.ReadHeaderTimeout),
		ReadTimeout:       time.Duration(c.ReadTimeout),
		WriteTimeout:      time.Duration(c.WriteTimeout),
		IdleTimeout:       time.Duration(c.IdleTimeout),
		MaxHeaderBytes:    int(c.MaxHeaderBytes),
	}
	if logger != nil {
		hs.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelDebug)
	}
	return hs
}

// MaxSyntheticTracks bounds N in "synthetic:N".
const MaxSyntheticTracks = 1_000_000_000

// DefaultConfig returns the defaults documented on Config. It has no Keys,
// so it does not validate until one is added.
func DefaultConfig() Config {
	return Config{
		Listen:   "127.0.0.1:8080",
		Name:     "origin",
		Catalog:  "synthetic:100000", // as configs/origin.yaml, cmd/pop and the load tool
		Seed:     1,
		TokenTTL: config.Duration(6 * time.Hour),
		DataDir:  "data",
		Licence:  LicenceConfig{TTL: config.Duration(30 * 24 * time.Hour), OfflinePlays: 20, UserRate: 0.2, UserBurst: 50},
		Plays:    plays.DefaultConfig(),
		Recs:     recs.DefaultConfig(),
		Admin:    admin.DefaultConfig(),

		InternalAddr: "127.0.0.1:8081",
		HTTP:         DefaultHTTPConfig(),
	}
}

// Validate checks every field and returns all problems found, joined,
// each a *config.FieldError naming the field's YAML path
// ("keys[0].secret"), so config.Load can point at its line.
func (c Config) Validate() error {
	var errs config.Errors
	listenPort(&errs, "listen", c.Listen)
	if p, ok := listenPort(&errs, "internal_addr", c.InternalAddr); ok && c.InternalAddr == c.Listen && p != 0 {
		errs.Add("internal_addr", "must differ from listen")
	}
	if len(c.TierKeys) == 0 {
		errs.Add("tier_keys", "required: /media/ on the internal listener serves only fills with a tier credential")
	} else if _, err := tierauth.New(c.TierKeys); err != nil {
		errs.Prefix("tier_keys", err)
	}
	errs.Prefix("http", c.HTTP.Validate())
	if c.Name == "" {
		errs.Add("name", "must not be empty")
	}
	if _, _, err := parseCatalog(c.Catalog); err != nil {
		errs.Add("catalog", "%v", err)
	}
	if len(c.Keys) == 0 {
		errs.Add("keys", "at least one signing key is required")
	} else if _, err := keyring(c.Keys); err != nil {
		errs.Prefix("keys", err)
	}
	if c.TokenTTL <= 0 || c.TokenTTL > config.Duration(MaxTokenTTL) {
		errs.Add("token_ttl", "must be positive and at most %v (the edges' default token_max_ttl)", MaxTokenTTL)
	}
	errs.Prefix("identity", c.Identity.Validate())
	if _, err := ticketKeyring(c.TicketKeys); err != nil {
		errs.Prefix("ticket_keys", err)
	}
	errs.Prefix("licence", c.Licence.Validate())
	pc := c.Plays
	if pc.DataDir == "" {
		pc.DataDir = filepath.Join(c.DataDir, "plays") // as Start fills it in
	}
	errs.Prefix("plays", pc.Validate())
	if time.Duration(c.Licence.TTL) > pc.Retention-24*time.Hour {
		errs.Add("licence.ttl", "must be at most plays.retention less a day (%s): offline play ids must stay deduplicated until reported", pc.Retention-24*time.Hour)
	}
	errs.Prefix("recs", c.Recs.Validate())
	errs.Prefix("admin", c.Admin.Validate())
	return errs.Err()
}

// parseCatalog returns n > 0 for "synthetic:N", or the directory.
func parseCatalog(s string) (n int, dir string, err error) {
	if num, ok := strings.CutPrefix(s, "synthetic:"); ok {
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 || n > MaxSyntheticTracks {
			return 0, "", fmt.Errorf("want synthetic:N with 1 <= N <= %d, got %q", MaxSyntheticTracks, s)
		}
		return n, "", nil
	}
	if s == "" {
		return 0, "", errors.New(`want "synthetic:N" or a directory`)
	}
	return 0, s, nil
}

// listenPort checks addr, the listen address of field, and returns its
// port; ok is false when it is not host:port with a port of 0 to 65535.
func listenPort(errs *config.Errors, field, addr string) (port int, ok bool) {
	_, ps, err := net.SplitHostPort(addr)
	if err != nil {
		errs.Add(field, "want host:port, got %q", addr)
		return 0, false
	}
	if port, err = strconv.Atoi(ps); err != nil || port < 0 || port > 65535 {
		errs.Add(field, "bad port %q", ps)
		return 0, false
	}
	return port, true
}

// keyring decodes the URL signing keys. Errors are *config.FieldError
// naming the entry at fault ("[1].secret").
func keyring(kc []KeyConfig) (*urlsign.Keyring, error) {
	keys, err := hmacring.Decode(kc, urlsign.MinSecretLen)
	if err != nil {
		return nil, err
	}
	return urlsign.NewKeyring(keys...)
}

// ticketKeyring decodes the ticket keys, or makes a random one when none
// are configured. Errors are as keyring's.
func ticketKeyring(kc []KeyConfig) (*playticket.Keyring, error) {
	if len(kc) == 0 {
		secret := make([]byte, 32)
		rand.Read(secret)
		return playticket.NewKeyring(playticket.Key{ID: "boot", Secret: secret})
	}
	keys, err := hmacring.Decode(kc, playticket.MinSecretLen)
	if err != nil {
		return nil, err
	}
	return playticket.NewKeyring(keys...)
}

// Rights decides whether a track may be played in a country at a time;
// *rights.Table, rights.Synthetic and rights.Worldwide implement it.
type Rights interface {
	Allowed(trackID, country string, at time.Time) bool
}

// Option changes how New builds a Server, for tests and embedding.
type Option func(*Server)

// WithClock makes the server read the time (token expiries, rights
// windows) from now instead of time.Now.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithSource serves src instead of the catalog named by Config.Catalog.
// Rights then come from Config.RightsFile, else rights.Synthetic{Seed} for
// a *media.Synthetic src, else rights.Worldwide.
func WithSource(src media.Source) Option { return func(s *Server) { s.src = src } }

// Recommender gives the tracks likely to follow a track, for a country
// (the recommendations service).
type Recommender interface {
	Next(ctx context.Context, trackID, country string, n int) ([]string, error)
}

// WithRecommender answers /v1/recs/next from r; when r has no answer for a
// track (an error or an empty list: no plays and no audio embedding yet),
// the catalog order stands in.
func WithRecommender(r Recommender) Option { return func(s *Server) { s.recs = r } }

// WithTickets mints play tickets with kr instead of the keys of
// Config.TicketKeys (Start shares one keyring between the manifest handler
// and the plays pipeline, which matters when the keys are random).
func WithTickets(kr *playticket.Keyring) Option { return func(s *Server) { s.tickets = kr } }

// WithRights decides rights with r instead of the policy Config implies.
func WithRights(r Rights) Option { return func(s *Server) { s.rights = r } }

// Server is the origin. Its handler is safe for concurrent use.
type Server struct {
	cfg     Config
	cfgMu   sync.Mutex // guards the reloadable fields of cfg (Reload)
	log     *slog.Logger
	src     media.Source
	rights  Rights
	keyring atomic.Pointer[urlsign.Keyring] // swapped by Reload
	recs    Recommender
	users   *identity.Verifier
	tickets *playticket.Keyring
	now     func() time.Time
	mux     *http.ServeMux // public
	imux    *http.ServeMux // internal
	ready   atomic.Bool
	tier    atomic.Pointer[tierauth.Keyring] // swapped by Reload

	mediaRequests *prometheus.CounterVec // code
	mediaSeconds  prometheus.Histogram
	mediaBytes    prometheus.Counter
	apiRequests   *prometheus.CounterVec // handler, code
	apiSeconds    *prometheus.HistogramVec
	tierRejected  prometheus.Counter

	snap snapshotCache // GET /v1/snapshot
}

// New validates cfg, opens the catalog and the rights, registers the
// origin's metrics with reg, and returns a server that reports ready. A
// nil logger discards logs; a nil reg gets a fresh registry.
func New(cfg Config, logger *slog.Logger, reg *prometheus.Registry, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("origin: config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	kr, err := keyring(cfg.Keys)
	if err != nil {
		return nil, fmt.Errorf("origin: %w", err)
	}
	tk, err := tierauth.New(cfg.TierKeys)
	if err != nil {
		return nil, fmt.Errorf("origin: tier_keys: %w", err)
	}
	s := &Server{
		cfg:  cfg,
		log:  logger.With("node", cfg.Name),
		now:  time.Now,
		mux:  http.NewServeMux(),
		imux: http.NewServeMux(),
	}
	s.keyring.Store(kr)
	s.tier.Store(tk)
	for _, o := range opts {
		o(s)
	}
	if err := s.defaultParts(); err != nil {
		return nil, err
	}
	if err := s.registerMetrics(reg); err != nil {
		return nil, fmt.Errorf("origin: metrics: %w", err)
	}

	s.mux.HandleFunc("GET /v1/manifest/{track...}", s.api("manifest", s.serveManifest))
	s.mux.HandleFunc("GET /v1/recs/next/{track...}", s.api("recs_next", s.serveNext))
	// The edges' prefetcher: rights and next tracks on the internal
	// listener, behind the tier credential.
	s.imux.HandleFunc("GET /v1/rights/{track...}", s.tierOnly(s.api("rights", s.serveRights)))
	s.imux.HandleFunc("GET /v1/recs/next/{track...}", s.tierOnly(s.api("recs_next", s.serveNext)))
	art := artwork.New(s.src)
	s.mux.HandleFunc("GET /img/", s.api("image", art.ServeImage))
	s.mux.HandleFunc("GET /v1/tracks/", s.api("track", art.ServeTrack))
	// The same for the shields' http routes, behind the tier credential.
	s.imux.HandleFunc("GET /img/", s.tierOnly(s.api("image", art.ServeImage)))
	s.imux.HandleFunc("GET /v1/tracks/", s.tierOnly(s.api("track", art.ServeTrack)))
	healthz := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	}
	readyz := func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ready\n")
	}
	for _, m := range []*http.ServeMux{s.mux, s.imux} {
		m.HandleFunc("GET /healthz", healthz)
		m.HandleFunc("GET /readyz", readyz)
	}
	s.imux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	s.imux.HandleFunc("GET "+SnapshotPath, s.api("snapshot", s.serveSnapshot))
	s.ready.Store(true)
	return s, nil
}

func (s *Server) registerMetrics(reg prometheus.Registerer) error {
	m := metric.NewSet(reg)
	s.mediaRequests = m.CounterVec("origin_media_requests_total",
		"Requests under /media/, by response status code.", "code")
	s.mediaSeconds = m.Histogram("origin_media_request_duration_seconds",
		"Time to serve a request under /media/, body included.", prometheus.ExponentialBuckets(0.0005, 2, 16))
	s.mediaBytes = m.Counter("origin_media_bytes_sent_total",
		"Body bytes written for requests under /media/.")
	s.apiRequests = m.CounterVec("origin_api_requests_total",
		"API requests (manifest, recs_next, image, track, licence, licence_key, ...), by handler and status code.", "handler", "code")
	s.apiSeconds = m.HistogramVec("origin_api_request_duration_seconds",
		"Time to serve an API request, by handler.", prometheus.ExponentialBuckets(0.0005, 2, 14), "handler")
	rejections := m.CounterVec("origin_token_rejections_total",
		"Requests refused with 403 for want of a credential, by reason (tier: /media/ or another internal path without a valid tier credential).", "reason")
	s.tierRejected = rejections.WithLabelValues("tier")
	return m.Err()
}

// PublicHandler is the public listener's handler: the player API and
// what Mount added.
func (s *Server) PublicHandler() http.Handler { return s.mux }

// Handler is PublicHandler, under the name it had before the listeners
// were split.
func (s *Server) Handler() http.Handler { return s.PublicHandler() }

// InternalHandler is the internal listener's handler: /media/ paths are
// checked for the tier credential, then parsed by the media handler
// itself (so a malformed path is a counted 400, never a mux redirect);
// everything else goes through the internal mux.
func (s *Server) InternalHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, catalog.MediaPrefix) {
			s.serveMedia(w, r)
			return
		}
		s.imux.ServeHTTP(w, r)
	})
}

// tierOnly refuses, with a 403 and before h runs, a request without a valid
// tier credential over its method and request target.
func (s *Server) tierOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := s.tier.Load().Verify([]byte(r.Header.Get(tierauth.Header)), []byte(r.Method), []byte(r.RequestURI), s.now()); err != nil {
			s.tierRejected.Inc()
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		h(w, r)
	}
}

// Mount adds h to the public mux under a net/http ServeMux pattern such
// as "POST /v1/plays". Like ServeMux.Handle it panics on a conflicting
// pattern.
func (s *Server) Mount(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// MountInternal adds h to the internal mux (see Mount). Patterns under
// /media/ are never reached.
func (s *Server) MountInternal(pattern string, h http.Handler) { s.imux.Handle(pattern, h) }

// Source is the catalog the server serves (a *media.Synthetic or a
// *media.Dir unless WithSource gave another).
func (s *Server) Source() media.Source { return s.src }

// Keyring is the keyring that signs manifest URLs.
func (s *Server) Keyring() *urlsign.Keyring { return s.keyring.Load() }

// Tickets is the play-ticket keyring manifests mint with; the plays
// pipeline checks with the same one.
func (s *Server) Tickets() *playticket.Keyring { return s.tickets }

// Users verifies the public API's bearer tokens.
func (s *Server) Users() *identity.Verifier { return s.users }

// Rights is the rights policy manifests are checked against.
func (s *Server) Rights() Rights { return s.rights }

// SetReady sets what /readyz answers: 200 when true (the state after New),
// 503 when false, e.g. while draining before shutdown.
func (s *Server) SetReady(ok bool) { s.ready.Store(ok) }

// defaultParts fills in the parts no Option gave: the session verifier,
// the ticket keyring, the catalog and the rights, from the config. Start
// calls it on a Server of its options alone, to share the parts with the
// plays and recommendation services before the one Server is built.
func (s *Server) defaultParts() error {
	cfg := s.cfg
	var err error
	if s.users == nil {
		if s.users, err = identity.NewVerifier(cfg.Identity); err != nil {
			return fmt.Errorf("origin: %w", err)
		}
	}
	if s.tickets == nil {
		if s.tickets, err = ticketKeyring(cfg.TicketKeys); err != nil {
			return fmt.Errorf("origin: ticket_keys: %w", err)
		}
	}
	if s.src == nil {
		n, dir, _ := parseCatalog(cfg.Catalog)
		if n > 0 {
			s.src = media.NewSynthetic(n, cfg.Seed)
		} else if s.src, err = media.OpenDir(dir); err != nil {
			return fmt.Errorf("origin: catalog: %w", err)
		}
	}
	if s.rights == nil {
		switch {
		case cfg.RightsFile != "":
			t, err := rights.LoadFile(cfg.RightsFile)
			if err != nil {
				return fmt.Errorf("origin: %w", err)
			}
			s.rights = t
		default:
			if _, ok := s.src.(*media.Synthetic); ok {
				s.rights = rights.Synthetic{Seed: cfg.Seed}
			} else {
				s.rights = rights.Worldwide{}
			}
		}
	}
	return nil
}

// withUsers makes the server check sessions with v (Start shares one
// verifier between the server and the plays service).
func withUsers(v *identity.Verifier) Option { return func(s *Server) { s.users = v } }

// MaxTokenTTL caps TokenTTL: the edges' default token_max_ttl, so a
// manifest's URLs are never refused for living too long by an edge left at
// its defaults.
const MaxTokenTTL = 24 * time.Hour

// serveMedia serves one file. Preconditions, ranges, multipart and 416
// are httprange's (RFC 9110 sections 13 and 14), the same decision the
// edges and shields make, fed with the ETag and Last-Modified of the exact
// version opened.
func (s *Server) serveMedia(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	defer func() {
		s.mediaRequests.WithLabelValues(strconv.Itoa(rec.status())).Inc()
		s.mediaSeconds.Observe(time.Since(start).Seconds())
		s.mediaBytes.Add(float64(rec.written))
	}()
	// Shields only: without the tier credential nothing is opened. The
	// request target is the one on the request line, as the shield
	// signed it.
	if err := s.tier.Load().Verify([]byte(r.Header.Get(tierauth.Header)), []byte(r.Method), []byte(r.RequestURI), s.now()); err != nil {
		s.tierRejected.Inc()
		http.Error(rec, "forbidden", http.StatusForbidden)
		return
	}
	// A whole file to a slow reader may take longer than the API's
	// write timeout.
	http.NewResponseController(rec).SetWriteDeadline(time.Now().Add(time.Duration(s.cfg.HTTP.MediaWriteTimeout)))
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		rec.Header().Set("Allow", "GET, HEAD")
		http.Error(rec, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	id, kbps, kind, ok := catalog.ParseMediaPath(r.URL.Path)
	if !ok {
		http.Error(rec, "bad media path", http.StatusBadRequest)
		return
	}
	obj, f, err := s.src.Open(r.Context(), id, kbps, kind)
	if err != nil {
		s.fail(rec, r, "media open", err)
		return
	}
	defer f.Close()

	v := httprange.Validators{ETag: []byte(obj.ETag), LastModified: obj.ModTime}
	committed, err := httprange.Serve(rec, r, f, obj.Size, v, kind.ContentType(), httprange.DefaultMaxRanges)
	if err != nil {
		if !committed {
			s.fail(rec, r, "media read", err)
			return
		}
		// The status line and a Content-Length are out: abort rather
		// than let a short body pass for a complete one.
		s.log.Error("media read", "track", id, "kbps", kbps, "kind", kind.Ext(), "err", err)
		panic(http.ErrAbortHandler)
	}
}

// Manifest is the playback manifest (see api.Manifest).
type Manifest = api.Manifest

// ManifestTier is one tier of a Manifest.
type ManifestTier = api.Tier

func (s *Server) serveManifest(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	user, err := s.users.FromRequest(r, now)
	if err != nil {
		identity.Unauthorized(w, err)
		return
	}
	id := r.PathValue("track")
	if !catalog.ValidID(id) {
		http.Error(w, "bad track id", http.StatusBadRequest)
		return
	}
	// The country is the token's. A ?country= that names another one is
	// refused rather than ignored, so a client that believes it asked for
	// another country's rights learns that it did not.
	if cc := r.URL.Query().Get("country"); cc != "" && cc != user.Country {
		http.Error(w, "country differs from the session's", http.StatusBadRequest)
		return
	}
	m, err := s.Manifest(r.Context(), id, user.Country, now)
	if err != nil {
		s.fail(w, r, "manifest", err)
		return
	}
	m.PlayID = playticket.NewID(now)
	if m.PlayTicket, err = s.tickets.Mint(playticket.Claims{PlayID: m.PlayID, UserID: user.ID, TrackID: id, Country: user.Country,
		IssuedMS: now.UnixMilli(), DurationMS: m.DurationMS}); err != nil {
		s.fail(w, r, "manifest ticket", err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	// The body holds bearer tokens: no shared cache may keep it.
	h.Set("Cache-Control", "private, no-store")
	json.NewEncoder(w).Encode(m)
}

// serveRights is GET /v1/rights/<track>?country=CC, internal: the edges'
// prefetcher asks whether a hinted track may be played in a country
// before fetching it (manifests now need a user's session, which an edge
// has not). 204 allowed, 403 denied, 404 unknown track, 400 bad input. It
// answers only what a manifest request would reveal, and costs one track
// lookup and one rights check.
func (s *Server) serveRights(w http.ResponseWriter, r *http.Request) {
	id, cc := r.PathValue("track"), r.URL.Query().Get("country")
	if !catalog.ValidID(id) || !rights.ValidCountry(cc) {
		http.Error(w, "bad track id or country", http.StatusBadRequest)
		return
	}
	if _, err := s.src.Track(r.Context(), id); err != nil {
		s.fail(w, r, "rights", err)
		return
	}
	if !s.rights.Allowed(id, cc, s.now()) {
		s.fail(w, r, "rights", ErrDenied)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ErrDenied is returned by Manifest when the rights deny the track in the
// country.
var ErrDenied = errors.New("origin: not licensed in this country")

// Manifest builds the manifest of track id for country at time now: the
// track's tiers with their sizes and ETags, and edge URLs signed for
// (id, country) until now+TokenTTL. It returns media.ErrNotFound for an
// unknown track and ErrDenied when the rights deny it.
func (s *Server) Manifest(ctx context.Context, id, country string, now time.Time) (Manifest, error) {
	tr, err := s.src.Track(ctx, id)
	if err != nil {
		return Manifest{}, err
	}
	if !s.rights.Allowed(id, country, now) {
		return Manifest{}, ErrDenied
	}
	// Whole seconds: the token carries unix seconds, and Expires must
	// name exactly the instant the token stops working.
	expiry := time.Unix(now.Add(time.Duration(s.cfg.TokenTTL)).Unix(), 0)
	m := Manifest{TrackID: id, DurationMS: tr.DurationMS, Samples: tr.Samples, SampleRate: tr.SampleRate, Country: country, Expires: expiry.Unix(), Tiers: []ManifestTier{}}
	kr := s.keyring.Load()
	for _, kbps := range tr.Tiers {
		obj, f, err := s.src.Open(ctx, id, kbps, catalog.Audio)
		if errors.Is(err, media.ErrNotFound) {
			continue // removed since Track listed it
		}
		if err != nil {
			return Manifest{}, err
		}
		f.Close()
		t := ManifestTier{Kbps: kbps, Bytes: obj.Size, ETag: obj.ETag, URL: kr.EdgePath(id, kbps, catalog.Audio, country, expiry)}
		_, sf, err := s.src.Open(ctx, id, kbps, catalog.SeekTable)
		switch {
		case err == nil:
			sf.Close()
			t.SeekURL = kr.EdgePath(id, kbps, catalog.SeekTable, country, expiry)
		case !errors.Is(err, media.ErrNotFound):
			return Manifest{}, err
		}
		m.Tiers = append(m.Tiers, t)
	}
	if len(m.Tiers) == 0 {
		return Manifest{}, media.ErrNotFound
	}
	return m, nil
}

// Next-tracks limits.
const (
	DefaultNext = 3
	MaxNext     = 50
	// maxNextScan bounds the ids examined for one next-tracks request, so
	// a country denied almost everything cannot make it walk the catalog.
	maxNextScan = 2048
	nextPage    = 64
)

// NextTracks is the next-track list (see api.NextTracks).
type NextTracks = api.NextTracks

func (s *Server) serveNext(w http.ResponseWriter, r *http.Request) {
	id, q := r.PathValue("track"), r.URL.Query()
	if !catalog.ValidID(id) {
		http.Error(w, "bad track id", http.StatusBadRequest)
		return
	}
	cc := q.Get("country")
	if cc != "" && !rights.ValidCountry(cc) {
		http.Error(w, "bad country", http.StatusBadRequest)
		return
	}
	n := DefaultNext
	if v := q.Get("n"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > MaxNext {
			http.Error(w, "bad n", http.StatusBadRequest)
			return
		}
	}
	var ids []string
	var err error
	if s.recs != nil {
		ids, err = s.recs.Next(r.Context(), id, cc, n)
	}
	if s.recs == nil || err != nil || len(ids) == 0 {
		ids, err = s.Next(r.Context(), id, cc, n, s.now())
	}
	if err != nil {
		s.fail(w, r, "recs next", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(NextTracks{Tracks: ids})
}

// Next returns up to n tracks that follow id in catalog order, wrapping
// around at the end and stopping before id itself, skipping tracks the
// rights deny in country (no filtering when country is ""). It stands in
// for recommendations until they exist. It returns media.ErrNotFound for
// an unknown id.
func (s *Server) Next(ctx context.Context, id, country string, n int, now time.Time) ([]string, error) {
	if _, err := s.src.Track(ctx, id); err != nil {
		return nil, err
	}
	out := make([]string, 0, n)
	after, wrapped, scanned := id, false, 0
	for len(out) < n && scanned < maxNextScan {
		page, err := s.src.List(ctx, after, nextPage)
		if err != nil {
			return nil, err
		}
		for _, t := range page {
			if t == id {
				return out, nil // full circle
			}
			scanned++
			if country == "" || s.rights.Allowed(t, country, now) {
				out = append(out, t)
				if len(out) == n {
					return out, nil
				}
			}
		}
		if len(page) < nextPage {
			if wrapped {
				return out, nil
			}
			wrapped, after = true, ""
			continue
		}
		after = page[len(page)-1]
	}
	return out, nil
}

// api wraps an API handler with its metrics.
func (s *Server) api(name string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		defer func() {
			s.apiRequests.WithLabelValues(name, strconv.Itoa(rec.status())).Inc()
			s.apiSeconds.WithLabelValues(name).Observe(time.Since(start).Seconds())
		}()
		h(rec, r)
	}
}

// fail answers err with a status and a short reason, never err's text, and
// logs what the client is not told.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, op string, err error) {
	switch {
	case errors.Is(err, media.ErrNotFound):
		http.Error(w, "not found", http.StatusNotFound)
	case errors.Is(err, ErrDenied):
		http.Error(w, "not licensed in this country", http.StatusForbidden)
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		// The client left or timed out; nobody reads this answer.
		http.Error(w, "request cancelled", http.StatusServiceUnavailable)
		s.log.Debug(op, "path", r.URL.Path, "err", err)
	default:
		http.Error(w, "internal error", http.StatusInternalServerError)
		s.log.Error(op, "path", r.URL.Path, "err", err)
	}
}

// recorder notes the status and body size of a response.
type recorder struct {
	http.ResponseWriter
	code    int
	written int64
}

func (rw *recorder) WriteHeader(code int) {
	if rw.code == 0 && code >= 200 {
		rw.code = code
	}
	rw.ResponseWriter.WriteHeader(code)
}

func (rw *recorder) Write(p []byte) (int, error) {
	if rw.code == 0 {
		rw.code = http.StatusOK
	}
	n, err := rw.ResponseWriter.Write(p)
	rw.written += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (rw *recorder) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

func (rw *recorder) status() int {
	if rw.code == 0 {
		return http.StatusOK
	}
	return rw.code
}
