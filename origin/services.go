package origin

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/identity"
	"github.com/musiccdn/cdn/origin/admin"
	"github.com/musiccdn/cdn/origin/licence"
	"github.com/musiccdn/cdn/origin/media"
	"github.com/musiccdn/cdn/origin/plays"
	"github.com/musiccdn/cdn/origin/recs"
	"github.com/musiccdn/cdn/tierauth"
)

// LicenceConfig configures offline licences.
type LicenceConfig struct {
	// SigningKey is the Ed25519 seed (32 bytes, base64) that signs
	// licences. Players pin its public key (cmd/pop writes it to the addr
	// file as "licence_key"). Empty: a key is made at start, so licences
	// do not survive a restart (fine for one machine, not for a
	// deployment).
	SigningKey string `yaml:"signing_key"`
	// TTL is how long a licence lasts. Default 720h (30 days); at most
	// plays.retention less a day, so that every offline play id it
	// carries is still deduplicated when it is reported.
	TTL config.Duration `yaml:"ttl"`
	// OfflinePlays is how many pre-issued play ids and tickets a licence
	// carries for plays made offline (about 200 bytes each). Default 20;
	// 0 to 200.
	OfflinePlays int `yaml:"offline_plays"`
	// UserRate and UserBurst limit licences per user (token bucket):
	// requests per second sustained and at once. Defaults 0.2 and 50; a
	// rate of 0 disables the limit.
	UserRate  float64 `yaml:"user_rate"`
	UserBurst int     `yaml:"user_burst"`
}

// Validate reports every invalid field.
func (c LicenceConfig) Validate() error {
	var errs config.Errors
	if c.SigningKey != "" {
		if b, err := base64.StdEncoding.DecodeString(c.SigningKey); err != nil || len(b) != ed25519.SeedSize {
			errs.Add("signing_key", "want a base64 Ed25519 seed of %d bytes", ed25519.SeedSize)
		}
	}
	if c.TTL <= 0 {
		errs.Add("ttl", "must be positive")
	}
	if c.OfflinePlays < 0 || c.OfflinePlays > 200 {
		errs.Add("offline_plays", "must be 0 to 200, got %d", c.OfflinePlays)
	}
	if c.UserRate < 0 {
		errs.Add("user_rate", "must not be negative")
	}
	if c.UserRate > 0 && c.UserBurst < 1 {
		errs.Add("user_burst", "must be positive when user_rate is set")
	}
	return errs.Err()
}

// Services is the origin with all its services mounted: media, rights and
// manifests (Server), offline licences, the play-counting pipeline (with
// its embedded Kafka broker when no brokers are configured) and
// recommendations trained from the ledger.
type Services struct {
	*Server
	Admin   *admin.API
	Licence *licence.Handler
	Plays   *plays.Service
	Recs    *recs.Service

	cancel context.CancelFunc
	done   chan struct{}
}

// Start builds the origin and starts its background work (the plays
// pipeline, scheduled retraining). Close stops it.
func Start(ctx context.Context, cfg Config, logger *slog.Logger, reg *prometheus.Registry, opts ...Option) (*Services, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	svc := &Services{done: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			svc.Close()
		}
	}()

	// Plays first: recommendations train from its ledger, and the
	// origin's next-track answers come from recommendations.
	pc := cfg.Plays
	if pc.DataDir == "" {
		pc.DataDir = filepath.Join(cfg.DataDir, "plays")
	}
	// The parts the services share with the server, built once: the
	// options given, then the config's defaults for the rest.
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("origin: config: %w", err)
	}
	probe := &Server{cfg: cfg}
	for _, o := range opts {
		o(probe)
	}
	if err := probe.defaultParts(); err != nil {
		return nil, err
	}
	// Takedowns (origin/admin): a taken-down track gets no manifest, no
	// licence, no recommendation, no rights answer for the edges'
	// prefetcher, no artwork or track JSON and no /media/ bytes. Plays
	// keep the rights as they were: a play made before a takedown still
	// counts.
	ac := cfg.Admin
	if ac.File == "" {
		ac.File = filepath.Join(cfg.DataDir, "takedowns.json")
	}
	tk, err := tierauth.New(cfg.TierKeys)
	if err != nil {
		return nil, fmt.Errorf("origin: tier_keys: %w", err)
	}
	if svc.Admin, err = admin.New(ac, tk, logger.With("service", "admin"), reg); err != nil {
		return nil, fmt.Errorf("origin: %w", err)
	}
	shown := takedownSource{probe.Source(), svc.Admin.TakenDown}
	rightsFor := takedownRights{probe.Rights(), svc.Admin.TakenDown}
	trust := plays.Trust{Tickets: probe.Tickets(), Sessions: probe.Users()}
	if svc.Plays, err = plays.New(ctx, pc, probe.Rights(), trust, logger.With("service", "plays"), reg); err != nil {
		return nil, fmt.Errorf("origin: plays: %w", err)
	}
	var emb recs.EmbeddingSource = noEmbeddings{}
	if d, isDir := probe.Source().(*media.Dir); isDir {
		emb = d
	}
	if svc.Recs, err = recs.New(cfg.Recs, svc.Plays.Ledger(), probe.Source(), emb, rightsFor, logger.With("service", "recs"), reg); err != nil {
		return nil, fmt.Errorf("origin: recs: %w", err)
	}
	opts = append(opts, WithSource(shown), WithRights(rightsFor), WithRecommender(svc.Recs), WithTickets(probe.Tickets()), withUsers(probe.Users()))
	if svc.Server, err = New(cfg, logger, reg, opts...); err != nil {
		return nil, err
	}

	lc, err := cfg.Licence.keys()
	if err != nil {
		return nil, err
	}
	lc.TTL = time.Duration(cfg.Licence.TTL)
	lc.OfflinePlays = cfg.Licence.OfflinePlays
	lc.UserRate, lc.UserBurst = cfg.Licence.UserRate, cfg.Licence.UserBurst
	lc.Sessions, lc.Tickets = svc.Users(), svc.Tickets()
	src := svc.Source()
	lc.Track = func(ctx context.Context, id string) (int64, error) {
		tr, err := src.Track(ctx, id)
		if err != nil {
			return 0, err
		}
		return tr.DurationMS, nil
	}
	lc.Now = svc.now
	lc.Logger = logger.With("service", "licence")
	lc.Allow = func(ctx context.Context, track, country string) error {
		if !rightsFor.Allowed(track, country, svc.now()) {
			return errors.New("rights deny")
		}
		return nil
	}
	if svc.Licence, err = licence.New(lc); err != nil {
		return nil, fmt.Errorf("origin: %w", err)
	}
	svc.Mount("POST /v1/licences", svc.api("licence", svc.Licence.ServeHTTP))
	svc.Mount("GET /v1/licences/key", svc.api("licence_key", svc.Licence.ServeHTTP))
	svc.Mount("POST /v1/plays", svc.Plays.Handler())
	svc.MountInternal("GET /v1/royalties/", svc.Plays.Handler())
	svc.MountInternal("/v1/admin/", svc.Admin)
	// A user's recommendations are derived from their plays: only that
	// user's session may read them.
	svc.Mount("GET /v1/recs/user/", svc.ownUser("/v1/recs/user/", svc.Recs.Handler()))

	rctx, cancel := context.WithCancel(context.Background())
	svc.cancel = cancel
	go func() {
		defer close(svc.done)
		svc.Recs.Run(rctx)
	}()
	ok = true
	return svc, nil
}

// KafkaAddr is the address of the Kafka broker the plays pipeline uses
// (the embedded one unless brokers are configured).
func (s *Services) KafkaAddr() string { return s.Plays.BrokerAddr() }

// Close stops the background work and the services. Safe to call twice.
func (s *Services) Close() error {
	var errs []error
	if s.cancel != nil {
		s.cancel()
		<-s.done
		s.cancel = nil
	}
	if s.Recs != nil {
		errs = append(errs, s.Recs.Close())
	}
	if s.Plays != nil {
		errs = append(errs, s.Plays.Close())
	}
	return errors.Join(errs...)
}

// keys decodes the configured licence signing key, or makes a fresh one.
func (c LicenceConfig) keys() (licence.Config, error) {
	seed := make([]byte, ed25519.SeedSize)
	if c.SigningKey != "" {
		b, err := base64.StdEncoding.DecodeString(c.SigningKey)
		if err != nil {
			return licence.Config{}, fmt.Errorf("origin: licence.signing_key: %w", err)
		}
		seed = b
	} else {
		rand.Read(seed)
	}
	return licence.DefaultConfig(ed25519.NewKeyFromSeed(seed)), nil
}

// takedownSource hides taken-down tracks: the origin has no bytes for
// them any more (a shield's fill is a 404, cached briefly as one).
type takedownSource struct {
	media.Source
	down func(string) bool
}

func (t takedownSource) Track(ctx context.Context, id string) (media.Track, error) {
	if t.down(id) {
		return media.Track{}, media.ErrNotFound
	}
	return t.Source.Track(ctx, id)
}

func (t takedownSource) Open(ctx context.Context, id string, kbps int, kind catalog.Kind) (media.Object, media.File, error) {
	if t.down(id) {
		return media.Object{}, nil, media.ErrNotFound
	}
	return t.Source.Open(ctx, id, kbps, kind)
}

// takedownRights denies taken-down tracks everywhere.
type takedownRights struct {
	Rights
	down func(string) bool
}

func (t takedownRights) Allowed(id, country string, at time.Time) bool {
	return !t.down(id) && t.Rights.Allowed(id, country, at)
}

// noEmbeddings is the embedding source of a catalog without audio (the
// synthetic one).
type noEmbeddings struct{}

func (noEmbeddings) Embedding(context.Context, string) ([]float32, error) {
	return nil, media.ErrNotFound
}

// ownUser lets through only requests whose bearer session is the user
// named by the path element after prefix: 401 without a valid session,
// 403 for another user's path.
func (s *Services) ownUser(prefix string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := s.Users().FromRequest(r, s.now())
		if err != nil {
			identity.Unauthorized(w, err)
			return
		}
		id, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, prefix), "/")
		if id != u.ID {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}
