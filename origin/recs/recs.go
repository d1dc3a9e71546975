// Package recs recommends tracks: which tracks are likely to follow a
// given one (for the player's queue and the edge prefetcher) and which
// tracks a user may like.
//
// A Service trains an implicit-feedback ALS model (package als) on the
// ledger's per-(user, track) play counts, maps the content embeddings that
// ingest computed from each track's audio (package content) onto the item
// factors so that tracks without plays get factors too, precomputes each
// track's nearest neighbours, and swaps the new model in atomically: it
// keeps answering from the old model while it trains.
//
// The caller's loop:
//
//	svc, err := recs.New(cfg, ledger, catalog, embeddings, rights, logger, reg)
//	go svc.Run(ctx)                    // trains now, then every cfg.RetrainEvery
//	mux.Handle("/v1/recs/", svc.Handler())
//	ids, err := svc.Next(ctx, "t1", "SE", 3) // in-process callers
package recs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/musiccdn/cdn/origin/recs/als"
	"github.com/musiccdn/cdn/origin/recs/content"
)

// PlayCounts is the source of training data: the plays ledger. fn is
// called once per (user, track) pair with the pair's qualifying play
// count; an error from fn must stop the walk and be returned.
type PlayCounts interface {
	UserTrackCounts(ctx context.Context, fn func(userID, trackID string, plays int64) error) error
}

// Rights answers whether a track may be played in a country at a time.
// It must be safe for concurrent use and fast (it is called for each
// candidate of every uncached request).
type Rights interface {
	Allowed(trackID, country string, at time.Time) bool
}

// Catalog lists the tracks that exist (media.Source has this method). Only
// catalog tracks are recommended.
type Catalog interface {
	List(ctx context.Context, after string, limit int) ([]string, error)
}

// EmbeddingSource returns the content embedding ingest stored for a track
// (see Embed), or an error if the track has none.
type EmbeddingSource interface {
	Embedding(ctx context.Context, trackID string) ([]float32, error)
}

// Embed returns the content embedding of mono PCM audio at sampleRate Hz:
// a vector of EmbeddingDim numbers, a pure function of the input. Ingest
// calls it on the decoded audio and stores the result with the track.
func Embed(pcm []float32, sampleRate int) []float32 { return content.Embed(pcm, sampleRate) }

// EmbeddingDim is the length of every vector Embed returns.
const EmbeddingDim = content.Dim

var (
	// ErrNotFound is returned for a track or user the current model does
	// not know.
	ErrNotFound = errors.New("recs: not found")
	// ErrNotReady is returned before the first model has been trained.
	ErrNotReady = errors.New("recs: no model trained yet")
)

// Service trains models and answers recommendation requests. It is safe
// for concurrent use.
type Service struct {
	cfg        Config
	counts     PlayCounts
	catalog    Catalog
	embeddings EmbeddingSource
	rights     Rights
	log        *slog.Logger
	now        func() time.Time
	metrics    *metrics
	cache      *ristretto.Cache[string, *response]
	enc        *encoder

	model atomic.Pointer[model]

	// trainMu serializes trainings; the model pointer above needs no lock.
	trainMu sync.Mutex
	gen     uint64 // generation of the last model built, under trainMu

	closeOnce sync.Once
}

// New returns a service with no model yet: call Train or Run. reg may be
// nil, in which case metrics are not exported.
func New(cfg Config, counts PlayCounts, catalog Catalog, embeddings EmbeddingSource, rights Rights, logger *slog.Logger, reg *prometheus.Registry) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if counts == nil || catalog == nil || rights == nil {
		return nil, errors.New("recs: play counts, catalog and rights are required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var registerer prometheus.Registerer // nil unless reg is: a nil *Registry is not a nil Registerer
	if reg != nil {
		registerer = reg
	}
	m, err := newMetrics(registerer)
	if err != nil {
		return nil, fmt.Errorf("recs: register metrics: %w", err)
	}
	enc, err := newEncoder()
	if err != nil {
		return nil, fmt.Errorf("recs: zstd encoder: %w", err)
	}
	cache, err := ristretto.NewCache(&ristretto.Config[string, *response]{
		NumCounters: max(1000, cfg.CacheBytes/50), // ~10 per entry of ~500 B
		MaxCost:     cfg.CacheBytes,
		BufferItems: 64,
		Cost:        func(r *response) int64 { return r.cost() },
	})
	if err != nil {
		return nil, fmt.Errorf("recs: response cache: %w", err)
	}
	return &Service{
		cfg:        cfg,
		counts:     counts,
		catalog:    catalog,
		embeddings: embeddings,
		rights:     rights,
		log:        logger,
		now:        time.Now,
		metrics:    m,
		cache:      cache,
		enc:        enc,
	}, nil
}

// Close releases the response cache. It is safe to call twice.
func (s *Service) Close() error {
	s.closeOnce.Do(s.cache.Close)
	return nil
}

// Ready reports whether a model is loaded.
func (s *Service) Ready() bool { return s.model.Load() != nil }

// Train builds a new model from the current play counts, catalog and
// embeddings and swaps it in. Requests keep being answered from the
// previous model meanwhile; on error the previous model stays.
func (s *Service) Train(ctx context.Context) error {
	s.trainMu.Lock()
	defer s.trainMu.Unlock()
	start := time.Now()
	in, err := s.gather(ctx)
	if err != nil {
		s.metrics.trainings.WithLabelValues("error").Inc()
		return err
	}
	m, err := build(ctx, s.cfg, in)
	if err != nil {
		s.metrics.trainings.WithLabelValues("error").Inc()
		return fmt.Errorf("recs: train: %w", err)
	}
	s.gen++
	m.gen = s.gen
	m.trained = s.now()
	s.model.Store(m)
	took := time.Since(start)
	s.metrics.trainings.WithLabelValues("ok").Inc()
	s.metrics.trainSeconds.Set(took.Seconds())
	s.metrics.tracks.Set(float64(len(m.tracks)))
	s.metrics.users.Set(float64(len(m.users)))
	s.metrics.cold.Set(float64(m.coldCount))
	s.log.Info("recs model trained", "generation", m.gen, "tracks", len(m.tracks),
		"users", len(m.users), "pairs", in.plays.NNZ(), "cold_tracks", m.coldCount,
		"unplaceable_tracks", m.unplaceable, "dropped_pairs", in.dropped, "took", took,
		"als_took", m.alsTook, "cold_start_took", m.coldTook, "neighbours_took", m.neighTook)
	return nil
}

// Run trains a model at once if there is none, then retrains every
// cfg.RetrainEvery until ctx is done. Errors are logged; the service keeps
// the last good model.
func (s *Service) Run(ctx context.Context) {
	if s.model.Load() == nil {
		if err := s.Train(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("recs training failed", "err", err)
		}
	}
	t := time.NewTicker(s.cfg.RetrainEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Train(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("recs training failed", "err", err)
			}
		}
	}
}

// Generation is the generation number of the current model (0 for none);
// it increases by one per successful training.
func (s *Service) Generation() uint64 {
	if m := s.model.Load(); m != nil {
		return m.gen
	}
	return 0
}

// Next returns up to n tracks likely to follow trackID, excluding trackID
// itself and, unless country is "", tracks not playable in country now:
// its nearest neighbours in the item-factor space, best first. A catalog
// track the model could not place (no plays and no embedding) gets the
// most played tracks instead.
func (s *Service) Next(ctx context.Context, trackID, country string, n int) ([]string, error) {
	m := s.model.Load()
	if m == nil {
		return nil, ErrNotReady
	}
	i, ok := m.trackIdx[trackID]
	if !ok {
		return nil, ErrNotFound
	}
	return m.next(i, n, s.allowed(country)), nil
}

// User returns up to n tracks for userID that they have not played, best
// first; if country is not empty, only tracks playable there now.
func (s *Service) User(ctx context.Context, userID, country string, n int) ([]string, error) {
	m := s.model.Load()
	if m == nil {
		return nil, ErrNotReady
	}
	u, ok := m.userIdx[userID]
	if !ok {
		return nil, ErrNotFound
	}
	var allow func(string) bool // nil: no filter, no over-fetch
	if country != "" {
		allow = s.allowed(country)
	}
	return m.forUser(u, n, allow), nil
}

// allowed returns the rights filter for country now; every track passes
// when country is "".
func (s *Service) allowed(country string) func(string) bool {
	if country == "" {
		return func(string) bool { return true }
	}
	now := s.now()
	return func(id string) bool { return s.rights.Allowed(id, country, now) }
}

// input is what one training reads from the outside world.
type input struct {
	tracks     []string
	plays      *als.Matrix // users × tracks
	users      []string
	embeddings [][]float32 // by track; nil where missing
	dropped    int         // pairs for tracks not in the catalog
}

// catalogPage is how many ids a training asks the catalog for at once.
const catalogPage = 1000

// gather reads the catalog, the play counts and the embeddings.
func (s *Service) gather(ctx context.Context) (*input, error) {
	in := &input{}
	trackIdx := make(map[string]int32)
	after := ""
	for {
		ids, err := s.catalog.List(ctx, after, catalogPage)
		if err != nil {
			return nil, fmt.Errorf("recs: list catalog: %w", err)
		}
		for _, id := range ids {
			if _, dup := trackIdx[id]; dup {
				continue
			}
			if len(in.tracks) >= math.MaxInt32 {
				return nil, errors.New("recs: catalog too large")
			}
			trackIdx[id] = int32(len(in.tracks))
			in.tracks = append(in.tracks, id)
		}
		if len(ids) < catalogPage {
			break
		}
		after = ids[len(ids)-1]
	}
	userIdx := make(map[string]int32)
	var b als.Builder
	err := s.counts.UserTrackCounts(ctx, func(user, track string, plays int64) error {
		if plays <= 0 {
			return nil
		}
		t, ok := trackIdx[track]
		if !ok {
			in.dropped++
			return nil
		}
		u, ok := userIdx[user]
		if !ok {
			u = int32(len(in.users))
			userIdx[user] = u
			in.users = append(in.users, user)
		}
		b.Add(u, t, float32(plays))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("recs: read play counts: %w", err)
	}
	in.plays = b.Build(len(in.users), len(in.tracks))
	if s.embeddings != nil {
		in.embeddings = make([][]float32, len(in.tracks))
		missing := 0
		for i, id := range in.tracks {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			e, err := s.embeddings.Embedding(ctx, id)
			if err != nil || len(e) != content.Dim {
				missing++
				continue
			}
			in.embeddings[i] = e
		}
		if missing > 0 {
			s.log.Debug("recs tracks without a usable embedding", "count", missing)
		}
	}
	return in, nil
}
