// Package player is the playback engine: it streams tracks from the edges
// (or plays encrypted downloads), decodes them ahead of time, and renders a
// queue with sample-exact gapless joins or an equal-power crossfade.
//
// The caller's loop:
//
//	p, _ := player.New(cfg)
//	s := p.Start(ctx, []string{"t1", "t2", "t3"})
//	defer s.Close()
//	buf := make([]float32, 2*4096) // interleaved stereo at cfg.OutputRate
//	for {
//		n, err := s.Render(buf)     // blocks only on an underrun when not RealTime
//		sink.Write(buf[:2*n])
//		if err == io.EOF { break }  // the queue is done
//	}
//	// from another goroutine or between Render calls: s.Skip(), s.Seek(d)
//
// Dual buffer: while track A plays, track B (the next in the queue) is
// prepared (manifest, tier, seek table, first bytes) and decoded into its
// own buffer from PrestartLead before A ends, so decoder start-up is never
// on the critical path; the next PrefetchCount tracks have their first
// HeadTime of audio fetched from PrefetchLead before A ends, with X-Next-Tracks
// sent to the edge. The tier of each track is chosen once, when it is
// prepared, by package abr; a track never switches tier.
//
// Play reports: the mixer reports every frame it renders per track; when a
// track reaches PlayThreshold (30 s) of rendered audio, one event with a
// fresh play id is queued on disk and sent (package plays).
package player

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/country"
	"github.com/musiccdn/cdn/origin/api"
	"github.com/musiccdn/cdn/player/abr"
	"github.com/musiccdn/cdn/player/offline"
	"github.com/musiccdn/cdn/player/plays"
	"github.com/musiccdn/cdn/seektable"
)

// Config configures a Player.
type Config struct {
	// Origin is the origin API base URL (manifests, plays, licences).
	Origin string
	// Edges are edge base URLs; a track's files are fetched from one of
	// them, chosen by hashing the track id, the others as fallbacks.
	Edges []string
	// Token is the user's bearer token from the identity provider, sent
	// with manifests, licences and play events. The origin takes the
	// user and country from it.
	Token string
	// Country is the user's ISO 3166-1 alpha-2 code (the token's);
	// manifests carry the country the origin applied. Default "SE".
	Country string
	// UserID is the token's user (its sub), which play events name;
	// DeviceID names this device in licences. Defaults "anonymous" and
	// "device".
	UserID, DeviceID string
	// OutputRate is the output sample rate in Hz; output is stereo.
	// Default 44100.
	OutputRate int
	// Crossfade between tracks, 0 (the default) for gapless; at most 12s.
	Crossfade time.Duration
	// SkipFade is the fade on a skip, 5 to 50 ms. Default 10ms.
	SkipFade time.Duration
	// MaxKbps is the user's highest tier; 0 for no limit.
	MaxKbps int
	// PrestartLead: the next track is prepared and decoded from this long
	// before the current one ends. At least 10s; default 20s.
	PrestartLead time.Duration
	// PrefetchLead: the first HeadTime of audio of the next PrefetchCount
	// tracks (with their headers and seek tables) is fetched from this
	// long before the current one ends. Default 30s.
	PrefetchLead  time.Duration
	PrefetchCount int // default 3
	// HeadTime is how much audio a prefetch fetches, as bytes at the
	// tier's nominal bitrate; 0 fetches only the headers. Default 5s.
	HeadTime time.Duration
	// BufferAhead is the most decoded audio a track buffers. Default 30s.
	BufferAhead time.Duration
	// RealTime makes Render fill underruns with silence instead of
	// waiting, as a device callback must.
	RealTime bool
	// PlayThreshold is the rendered audio that makes a play. Default 30s.
	PlayThreshold time.Duration
	// Reporter receives play events; nil disables reporting.
	Reporter *plays.Reporter
	// Offline, when set, plays from encrypted downloads only.
	Offline *offline.Store
	// ABR tunes the tier choice. Without Tiers (the default) it is
	// abr.DefaultConfig(catalog.Tiers) with MaxKbps; with Tiers it is
	// used as given (MaxKbps is then not applied).
	ABR abr.Config
	// HTTPClient; default a client with no overall timeout.
	HTTPClient *http.Client
	// Now is the clock for event timestamps; default time.Now.
	Now func() time.Time
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the defaults for an origin and edges.
func DefaultConfig(origin string, edges []string) Config {
	return Config{
		Origin: origin, Edges: edges, Country: "SE", UserID: "anonymous", DeviceID: "device",
		OutputRate: 44100, SkipFade: 10 * time.Millisecond,
		PrestartLead: 20 * time.Second, PrefetchLead: 30 * time.Second, PrefetchCount: 3, HeadTime: 5 * time.Second,
		BufferAhead: 30 * time.Second, PlayThreshold: catalog.PlayThreshold,
	}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.Offline == nil && (c.Origin == "" || len(c.Edges) == 0):
		return errors.New("player: need an origin and at least one edge, or an offline store")
	case !country.Valid(c.Country):
		return fmt.Errorf("player: country %q: want an ISO 3166-1 alpha-2 code in upper case", c.Country)
	case c.OutputRate < 8000 || c.OutputRate > 192000:
		return fmt.Errorf("player: output rate %d", c.OutputRate)
	case c.Crossfade < 0 || c.Crossfade > 12*time.Second:
		return fmt.Errorf("player: crossfade %v: want 0 to 12s", c.Crossfade)
	case c.SkipFade < 5*time.Millisecond || c.SkipFade > 50*time.Millisecond:
		return fmt.Errorf("player: skip fade %v: want 5 to 50ms", c.SkipFade)
	case c.PrestartLead < 10*time.Second || c.PrefetchLead < 0 || c.PrefetchCount < 0 || c.HeadTime < 0:
		return errors.New("player: prestart lead under 10s, or negative prefetch settings")
	case c.BufferAhead < time.Second || c.PlayThreshold <= 0:
		return errors.New("player: buffer ahead under 1s or no play threshold")
	case c.MaxKbps < 0:
		return errors.New("player: negative max kbps")
	}
	return nil
}

// Player holds what outlives a session: the HTTP client and the
// throughput estimate.
type Player struct {
	cfg Config
	c   *client
	log *slog.Logger
}

// New returns a player.
func New(cfg Config) (*Player, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ABR.Tiers == nil {
		ac := abr.DefaultConfig(catalog.Tiers[:])
		ac.MaxKbps = cfg.MaxKbps
		cfg.ABR = ac
	}
	est, err := abr.New(cfg.ABR)
	if err != nil {
		return nil, err
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Player{cfg: cfg, log: log, c: &client{hc: cfg.HTTPClient, origin: cfg.Origin, edges: cfg.Edges, country: cfg.Country, token: cfg.Token, est: est}}, nil
}

// EdgeRequests is the number of requests made to edges so far.
func (p *Player) EdgeRequests() int64 { return p.c.requests.Load() }

// Licence fetches a licence for a track (POST /v1/licences).
func (p *Player) Licence(ctx context.Context, track string) (string, error) {
	body, _ := json.Marshal(api.LicenceRequest{TrackID: track, DeviceID: p.cfg.DeviceID})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(p.cfg.Origin, "/")+"/v1/licences", strings.NewReader(string(body)))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	p.c.authorize(req)
	resp, err := p.c.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("player: licence %s: %w", track, err)
	}
	defer resp.Body.Close()
	var lr api.LicenceResponse
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("player: licence %s: %s", track, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&lr); err != nil {
		return "", fmt.Errorf("player: licence %s: %w", track, err)
	}
	return lr.Licence, nil
}

// Download stores a track for offline play in store: a licence from the
// origin, then the highest tier within MaxKbps and its seek table through
// an edge, encrypted as they arrive. Downloading a track already stored
// renews its licence and replaces the files. It returns the tier and the
// bytes fetched.
func (p *Player) Download(ctx context.Context, store *offline.Store, track string) (int, int64, error) {
	tok, err := p.Licence(ctx, track)
	if err != nil {
		return 0, 0, err
	}
	m, err := p.c.manifest(ctx, track)
	if err != nil {
		return 0, 0, err
	}
	kbps := catalog.Tiers[len(catalog.Tiers)-1]
	if p.cfg.MaxKbps > 0 {
		kbps = p.cfg.MaxKbps
	}
	tier := pickTier(m.Tiers, kbps)
	var fetched atomic.Int64
	seek, err := p.c.getAll(ctx, track, tier.SeekURL, "", &fetched)
	if err != nil {
		return 0, 0, err
	}
	tb, err := seektable.Decode(seek)
	if err != nil {
		return 0, 0, fmt.Errorf("player: %s: %w", track, err)
	}
	rc, err := p.c.get(ctx, track, tier.URL, 0, -1, "", &fetched)
	if err != nil {
		return 0, 0, err
	}
	defer rc.Close()
	info := offline.Info{Kbps: tier.Kbps, Samples: m.Samples, SampleRate: m.SampleRate}
	if err := store.Put(track, info, tok, rc, tb.FileSize, seek); err != nil {
		return 0, 0, err
	}
	return tier.Kbps, fetched.Load(), nil
}
