// Package licence issues and checks offline-playback licences. The origin
// mounts Handler at POST /v1/licences (and GET /v1/licences/key for the
// public key); the player verifies licences locally with api.VerifyLicence
// (the wire form and its check are in origin/api), against a
// public key it was configured with (never one fetched and trusted on
// first use).
//
// A licence grants one user on one device the key that unwraps the content
// keys of one track's downloads until it expires (30 days by default), and
// carries a batch of pre-issued play ids with their play tickets, so that
// plays made offline can be reported later (see "Offline plays" below).
//
// Who may ask: POST /v1/licences needs the user's bearer session; the user
// and country are the token's, never the body's. Only a track that exists
// and that the user's country may play gets a licence. Each user is rate
// limited (a token bucket). The most one request costs: a 4 KiB body, one
// track lookup, one rights check, OfflinePlays HMACs and one Ed25519
// signature.
//
// The wrap key is random per licence. It is not derived from the user,
// device and track ids (anyone holding a server secret and those public
// ids could compute it; and every licence for the same ids would carry the
// same key). A renewed licence therefore carries a new key: the player
// re-seals its downloads' content keys under it (player/offline Renew),
// holding the old licence's key only for that moment. Random per licence
// rather than wrapped to a registered device key: a device key pair would
// add a registration endpoint and key storage on the device for no gain
// here, since the licence reaches only the authenticated user over TLS and
// the device must hold the unwrapped key to play anyway.
//
// Offline plays: each licence carries OfflinePlays (play id, ticket)
// pairs minted at issue time for (user, track, the user's country, the
// track's duration). Each play made offline consumes one pair; the player
// queues the event and posts it when next online, with the pair, like any
// play. The ticket's issue time is the licence's, so the pipeline's
// "ms_played <= time since issue + 5 s" bound is loose for them and the
// duration bound decides; a ticket used twice is counted once (same play
// id). When the pairs run out, further offline plays of that track are not
// reported until the licence is renewed online. Licence TTL must stay
// below the plays pipeline's retention (31 days) so no play id outlives
// its dedup window.
//
// Wire form: base64url(JSON payload) "." base64url(Ed25519 signature over
// the payload bytes).
package licence

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/identity"
	"github.com/musiccdn/cdn/origin/api"
	"github.com/musiccdn/cdn/origin/media"
	"github.com/musiccdn/cdn/playticket"
	"github.com/musiccdn/cdn/ratelimit"
)

// The licence's wire form and its check live in origin/api, so that the
// player verifies licences without importing this server package; these
// names are kept for the issuer's side.
type (
	// Licence is the signed content of a licence.
	Licence = api.Licence
	// OfflinePlay is one pre-issued play.
	OfflinePlay = api.OfflinePlay
	// Request is the body of POST /v1/licences.
	Request = api.LicenceRequest
	// Response is the answer to POST /v1/licences.
	Response = api.LicenceResponse
	// KeyResponse is the answer to GET /v1/licences/key.
	KeyResponse = api.LicenceKeyResponse
)

// Version is the licence format version this package makes and accepts.
const Version = api.LicenceVersion

// Errors returned by Verify.
var (
	ErrMalformed = api.ErrLicenceMalformed
	ErrSignature = api.ErrLicenceSignature
	ErrExpired   = api.ErrLicenceExpired
)

// Verify is api.VerifyLicence.
func Verify(pub ed25519.PublicKey, token string, now time.Time) (Licence, error) {
	return api.VerifyLicence(pub, token, now)
}

// Config configures the issuer.
type Config struct {
	// SigningKey signs licences. Required.
	SigningKey ed25519.PrivateKey
	// Sessions verifies the caller's bearer token. Required.
	Sessions *identity.Verifier
	// Tickets mints the offline plays' tickets. Required.
	Tickets *playticket.Keyring
	// Track returns a track's duration, or an error wrapping
	// media.ErrNotFound for a track that does not exist (404). Required.
	Track func(ctx context.Context, id string) (durationMS int64, err error)
	// Allow, when set, is asked before issuing (the rights check); a
	// non-nil error means 403.
	Allow func(ctx context.Context, track, country string) error
	// TTL is how long a licence lasts. Default 30 days.
	TTL time.Duration
	// OfflinePlays is how many pre-issued plays a licence carries (each
	// about 200 bytes of licence). Default 20.
	OfflinePlays int
	// UserRate and UserBurst limit licences per user: UserRate per second
	// sustained, UserBurst at once; 0 disables. Defaults 0.2 (one every 5
	// s) and 50 (a playlist downloaded at once).
	UserRate  float64
	UserBurst int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns a config with the defaults and the given key; the
// caller still sets Sessions, Tickets and Track.
func DefaultConfig(key ed25519.PrivateKey) Config {
	return Config{SigningKey: key, TTL: 30 * 24 * time.Hour, OfflinePlays: 20, UserRate: 0.2, UserBurst: 50, Now: time.Now}
}

// Handler serves POST /v1/licences and GET /v1/licences/key.
type Handler struct {
	cfg   Config
	log   *slog.Logger
	limit *ratelimit.Limiter
}

var _ http.Handler = (*Handler)(nil)

// New returns a handler.
func New(cfg Config) (*Handler, error) {
	switch {
	case len(cfg.SigningKey) != ed25519.PrivateKeySize:
		return nil, errors.New("licence: no Ed25519 signing key")
	case cfg.Sessions == nil || cfg.Tickets == nil || cfg.Track == nil:
		return nil, errors.New("licence: Sessions, Tickets and Track are required")
	case cfg.TTL <= 0:
		return nil, errors.New("licence: TTL must be positive")
	case cfg.OfflinePlays < 0 || cfg.OfflinePlays > 200:
		return nil, errors.New("licence: OfflinePlays must be 0..200")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	lim := ratelimit.New(ratelimit.Config{Rate: cfg.UserRate, Burst: float64(cfg.UserBurst), MaxKeys: 100_000})
	return &Handler{cfg: cfg, log: log, limit: lim}, nil
}

// PublicKey is the key players verify licences with.
func (h *Handler) PublicKey() ed25519.PublicKey {
	return h.cfg.SigningKey.Public().(ed25519.PublicKey)
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/v1/licences/key" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		writeJSON(w, http.StatusOK, KeyResponse{PublicKey: h.PublicKey()})
	case r.URL.Path == "/v1/licences" && r.Method == http.MethodPost:
		h.issue(w, r)
	case r.URL.Path == "/v1/licences" || r.URL.Path == "/v1/licences/key":
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	default:
		http.NotFound(w, r)
	}
}

func (h *Handler) issue(w http.ResponseWriter, r *http.Request) {
	now := h.cfg.Now()
	user, err := h.cfg.Sessions.FromRequest(r, now)
	if err != nil {
		identity.Unauthorized(w, err)
		return
	}
	if ok, wait := h.limit.Allow(user.ID, 1, now); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(ratelimit.RetryAfter(wait)))
		http.Error(w, "too many licences", http.StatusTooManyRequests)
		return
	}
	var req Request
	dec := json.NewDecoder(io.LimitReader(r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		http.Error(w, "bad request body", http.StatusBadRequest)
		return
	}
	if !catalog.ValidID(req.TrackID) || !catalog.ValidID(req.DeviceID) {
		http.Error(w, "bad track or device", http.StatusBadRequest)
		return
	}
	dur, err := h.cfg.Track(r.Context(), req.TrackID)
	switch {
	case errors.Is(err, media.ErrNotFound):
		http.Error(w, "not found", http.StatusNotFound)
		return
	case err != nil:
		h.log.Error("licence: track lookup", "track", req.TrackID, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if h.cfg.Allow != nil {
		if err := h.cfg.Allow(r.Context(), req.TrackID, user.Country); err != nil {
			h.log.Info("licence refused", "track", req.TrackID, "country", user.Country, "err", err)
			http.Error(w, "not licensed in this country", http.StatusForbidden)
			return
		}
	}
	tok, l, err := h.Issue(user, req.DeviceID, req.TrackID, dur)
	if err != nil {
		h.log.Error("licence: issue", "track", req.TrackID, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusOK, Response{Licence: tok, Expires: l.Expires})
}

// Issue makes and signs a licence of track (durationMS long) for user on
// device: a random wrap key and OfflinePlays pre-issued plays.
func (h *Handler) Issue(user identity.User, device, track string, durationMS int64) (string, Licence, error) {
	now := h.cfg.Now()
	l := Licence{
		Version:  Version,
		TrackID:  track,
		UserID:   user.ID,
		DeviceID: device,
		Country:  user.Country,
		Issued:   now.Unix(),
		Expires:  now.Add(h.cfg.TTL).Unix(),
		WrapKey:  make([]byte, 16),
		Plays:    make([]OfflinePlay, 0, h.cfg.OfflinePlays),
	}
	if _, err := rand.Read(l.WrapKey); err != nil {
		return "", Licence{}, fmt.Errorf("licence: random key: %w", err)
	}
	for range h.cfg.OfflinePlays {
		id := playticket.NewID(now)
		tk, err := h.cfg.Tickets.Mint(playticket.Claims{PlayID: id, UserID: user.ID, TrackID: track, Country: user.Country,
			IssuedMS: now.UnixMilli(), DurationMS: durationMS})
		if err != nil {
			return "", Licence{}, err
		}
		l.Plays = append(l.Plays, OfflinePlay{PlayID: id, Ticket: tk})
	}
	pb, err := json.Marshal(l)
	if err != nil {
		return "", Licence{}, fmt.Errorf("licence: %w", err)
	}
	sig := ed25519.Sign(h.cfg.SigningKey, pb)
	return base64.RawURLEncoding.EncodeToString(pb) + "." + base64.RawURLEncoding.EncodeToString(sig), l, nil
}

// Sign signs l as is, for tests of licence checking (a licence the origin
// did not make must be refused by players pinned to another key).
func Sign(key ed25519.PrivateKey, l Licence) string {
	pb, _ := json.Marshal(l)
	return base64.RawURLEncoding.EncodeToString(pb) + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, pb))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(b)
}
