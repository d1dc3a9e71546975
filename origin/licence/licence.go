// Package licence issues and checks offline-playback licences. The origin
// mounts Handler at POST /v1/licences (and GET /v1/licences/key for the
// public key); the player verifies licences locally with Verify.
//
// A licence grants one user on one device the key that unwraps the content
// keys of one track's downloads until it expires (30 days by default). The
// wrap key is derived from a server secret, the user, the device and the
// track, so a renewed licence carries the same key and downloads made
// under an expired licence play again once it is renewed online. Licences
// are signed with Ed25519: anyone can check them, only the origin can make
// them, and any change to a licence breaks the signature.
//
// Wire form: base64url(JSON payload) "." base64url(Ed25519 signature over
// the payload bytes).
package licence

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/musiccdn/cdn/origin/media"
)

// Licence is the signed content of a licence.
type Licence struct {
	Version  int    `json:"v"`
	TrackID  string `json:"track_id"`
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id"`
	Issued   int64  `json:"issued"`  // unix seconds
	Expires  int64  `json:"expires"` // unix seconds; not valid at or after
	// WrapKey is the AES-128 key that wraps the track's content keys.
	WrapKey []byte `json:"wrap_key"`
}

// Errors returned by Verify.
var (
	ErrMalformed = errors.New("licence: malformed")
	ErrSignature = errors.New("licence: bad signature")
	ErrExpired   = errors.New("licence: expired")
)

// Verify checks a licence's signature with pub and its expiry against now.
// An expired licence is returned with ErrExpired, so callers can say when.
func Verify(pub ed25519.PublicKey, token string, now time.Time) (Licence, error) {
	payload, sig, ok := strings.Cut(token, ".")
	if !ok || len(pub) != ed25519.PublicKeySize {
		return Licence{}, ErrMalformed
	}
	pb, err1 := base64.RawURLEncoding.Strict().DecodeString(payload)
	sb, err2 := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err1 != nil || err2 != nil || len(sb) != ed25519.SignatureSize {
		return Licence{}, ErrMalformed
	}
	if !ed25519.Verify(pub, pb, sb) {
		return Licence{}, ErrSignature
	}
	var l Licence
	if err := json.Unmarshal(pb, &l); err != nil || l.Version != 1 || len(l.WrapKey) != 16 || !media.ValidID(l.TrackID) {
		return Licence{}, ErrMalformed
	}
	if now.Unix() >= l.Expires {
		return l, fmt.Errorf("%w on %s", ErrExpired, time.Unix(l.Expires, 0).UTC().Format(time.RFC3339))
	}
	return l, nil
}

// Config configures the issuer.
type Config struct {
	// SigningKey signs licences. Required.
	SigningKey ed25519.PrivateKey
	// WrapSecret derives wrap keys; at least 32 bytes. Required. Changing
	// it makes every download unplayable.
	WrapSecret []byte
	// TTL is how long a licence lasts. Default 30 days.
	TTL time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Allow, when set, is asked before issuing (the rights check); a
	// non-nil error means 403.
	Allow func(ctx context.Context, track, country string) error
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns a config with the defaults and the given keys.
func DefaultConfig(key ed25519.PrivateKey, wrapSecret []byte) Config {
	return Config{SigningKey: key, WrapSecret: wrapSecret, TTL: 30 * 24 * time.Hour, Now: time.Now}
}

// Handler serves POST /v1/licences and GET /v1/licences/key.
type Handler struct {
	cfg Config
	log *slog.Logger
}

var _ http.Handler = (*Handler)(nil)

// New returns a handler.
func New(cfg Config) (*Handler, error) {
	if len(cfg.SigningKey) != ed25519.PrivateKeySize {
		return nil, errors.New("licence: no Ed25519 signing key")
	}
	if len(cfg.WrapSecret) < 32 {
		return nil, errors.New("licence: wrap secret shorter than 32 bytes")
	}
	if cfg.TTL <= 0 {
		return nil, errors.New("licence: TTL must be positive")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Handler{cfg: cfg, log: log}, nil
}

// PublicKey is the key players verify licences with.
func (h *Handler) PublicKey() ed25519.PublicKey {
	return h.cfg.SigningKey.Public().(ed25519.PublicKey)
}

// Request is the body of POST /v1/licences.
type Request struct {
	TrackID  string `json:"track_id"`
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id"`
	Country  string `json:"country"`
}

// Response is the answer to POST /v1/licences.
type Response struct {
	Licence string `json:"licence"`
	Expires int64  `json:"expires"`
}

// KeyResponse is the answer to GET /v1/licences/key.
type KeyResponse struct {
	PublicKey []byte `json:"public_key"` // Ed25519, 32 bytes
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
	var req Request
	dec := json.NewDecoder(io.LimitReader(r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		http.Error(w, "bad request body", http.StatusBadRequest)
		return
	}
	if !media.ValidID(req.TrackID) || !validName(req.UserID) || !validName(req.DeviceID) || !validCountry(req.Country) {
		http.Error(w, "bad track, user, device or country", http.StatusBadRequest)
		return
	}
	if h.cfg.Allow != nil {
		if err := h.cfg.Allow(r.Context(), req.TrackID, req.Country); err != nil {
			h.log.Info("licence refused", "track", req.TrackID, "country", req.Country, "err", err)
			http.Error(w, "not licensed in this country", http.StatusForbidden)
			return
		}
	}
	tok, l := h.Issue(req)
	writeJSON(w, http.StatusOK, Response{Licence: tok, Expires: l.Expires})
}

// Issue makes and signs a licence for the request (already validated).
func (h *Handler) Issue(req Request) (string, Licence) {
	now := h.cfg.Now()
	l := Licence{
		Version:  1,
		TrackID:  req.TrackID,
		UserID:   req.UserID,
		DeviceID: req.DeviceID,
		Issued:   now.Unix(),
		Expires:  now.Add(h.cfg.TTL).Unix(),
		WrapKey:  h.wrapKey(req),
	}
	pb, _ := json.Marshal(l)
	sig := ed25519.Sign(h.cfg.SigningKey, pb)
	return base64.RawURLEncoding.EncodeToString(pb) + "." + base64.RawURLEncoding.EncodeToString(sig), l
}

func (h *Handler) wrapKey(req Request) []byte {
	m := hmac.New(sha256.New, h.cfg.WrapSecret)
	for _, s := range []string{"licence-wrap-v1", req.UserID, req.DeviceID, req.TrackID} {
		m.Write([]byte(s))
		m.Write([]byte{0})
	}
	return m.Sum(nil)[:16]
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(b)
}

// validName accepts user and device ids: 1 to 64 of [A-Za-z0-9_-].
func validName(s string) bool { return media.ValidID(s) }

func validCountry(cc string) bool {
	return len(cc) == 2 && cc[0] >= 'A' && cc[0] <= 'Z' && cc[1] >= 'A' && cc[1] <= 'Z'
}
