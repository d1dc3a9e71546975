package origin

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/origin/licence"
	"github.com/musiccdn/cdn/origin/media"
	"github.com/musiccdn/cdn/origin/plays"
	"github.com/musiccdn/cdn/origin/recs"
)

// LicenceConfig configures offline licences.
type LicenceConfig struct {
	// SigningKey is the Ed25519 seed (32 bytes, base64) that signs
	// licences. Empty: a key is made at start, so licences do not survive
	// a restart (fine for one machine, not for a deployment).
	SigningKey string `yaml:"signing_key"`
	// WrapSecret (hex, at least 32 bytes) derives the per-track keys that
	// unlock downloads; changing it makes every download unplayable.
	// Empty: made at start, like SigningKey.
	WrapSecret string `yaml:"wrap_secret"`
	// TTL is how long a licence lasts. Default 720h (30 days).
	TTL config.Duration `yaml:"ttl"`
}

// Validate reports every invalid field.
func (c LicenceConfig) Validate() error {
	var errs []error
	if c.SigningKey != "" {
		if b, err := base64.StdEncoding.DecodeString(c.SigningKey); err != nil || len(b) != ed25519.SeedSize {
			errs = append(errs, config.Errorf("signing_key", "want a base64 Ed25519 seed of %d bytes", ed25519.SeedSize))
		}
	}
	if c.WrapSecret != "" {
		if b, err := hex.DecodeString(c.WrapSecret); err != nil || len(b) < 32 {
			errs = append(errs, config.Errorf("wrap_secret", "want hex, at least 32 bytes"))
		}
	}
	if c.TTL <= 0 {
		errs = append(errs, config.Errorf("ttl", "must be positive"))
	}
	return errors.Join(errs...)
}

// Services is the origin with all its services mounted: media, rights and
// manifests (Server), offline licences, the play-counting pipeline (with
// its embedded Kafka broker when no brokers are configured) and
// recommendations trained from the ledger.
type Services struct {
	*Server
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
	var rightsFor Rights
	probe, err := New(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), opts...)
	if err != nil {
		return nil, err
	}
	rightsFor = probe.Rights()
	trust := plays.Trust{Tickets: probe.Tickets(), Sessions: probe.Users()}
	if svc.Plays, err = plays.New(ctx, pc, rightsFor, trust, logger.With("service", "plays"), reg); err != nil {
		return nil, fmt.Errorf("origin: plays: %w", err)
	}
	var emb recs.EmbeddingSource = noEmbeddings{}
	if d, isDir := probe.Source().(*media.Dir); isDir {
		emb = d
	}
	if svc.Recs, err = recs.New(cfg.Recs, svc.Plays.Ledger(), probe.Source(), emb, rightsFor, logger.With("service", "recs"), reg); err != nil {
		return nil, fmt.Errorf("origin: recs: %w", err)
	}
	opts = append(opts, WithSource(probe.Source()), WithRights(rightsFor), WithRecommender(svc.Recs), WithTickets(probe.Tickets()))
	if svc.Server, err = New(cfg, logger, reg, opts...); err != nil {
		return nil, err
	}

	lc, err := cfg.Licence.keys()
	if err != nil {
		return nil, err
	}
	lc.TTL = time.Duration(cfg.Licence.TTL)
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
	svc.Mount("POST /v1/licences", svc.Licence)
	svc.Mount("GET /v1/licences/key", svc.Licence)
	svc.Mount("POST /v1/plays", svc.Plays.Handler())
	svc.Mount("GET /v1/royalties/", svc.Plays.Handler())
	svc.Mount("GET /v1/recs/user/", svc.Recs.Handler())

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

// keys decodes the configured licence keys, or makes fresh ones.
func (c LicenceConfig) keys() (licence.Config, error) {
	seed := make([]byte, ed25519.SeedSize)
	wrap := make([]byte, 32)
	if c.SigningKey != "" {
		b, err := base64.StdEncoding.DecodeString(c.SigningKey)
		if err != nil {
			return licence.Config{}, fmt.Errorf("origin: licence.signing_key: %w", err)
		}
		seed = b
	} else {
		rand.Read(seed)
	}
	if c.WrapSecret != "" {
		b, err := hex.DecodeString(c.WrapSecret)
		if err != nil {
			return licence.Config{}, fmt.Errorf("origin: licence.wrap_secret: %w", err)
		}
		wrap = b
	} else {
		rand.Read(wrap)
	}
	return licence.DefaultConfig(ed25519.NewKeyFromSeed(seed), wrap), nil
}

// noEmbeddings is the embedding source of a catalog without audio (the
// synthetic one).
type noEmbeddings struct{}

func (noEmbeddings) Embedding(context.Context, string) ([]float32, error) {
	return nil, media.ErrNotFound
}
