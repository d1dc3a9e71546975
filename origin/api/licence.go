package api

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/musiccdn/cdn/catalog"
)

// Offline-playback licences (origin/licence issues them): the wire form,
// base64url(JSON payload) "." base64url(Ed25519 signature over the payload
// bytes), and the check a player makes against the public key it was
// configured with.

// LicenceVersion is the licence format version origin/licence makes and
// VerifyLicence accepts.
const LicenceVersion = 2

// Licence is the signed content of a licence.
type Licence struct {
	Version  int    `json:"v"`
	TrackID  string `json:"track_id"`
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id"`
	// Country is the user's country when the licence was issued; the
	// offline play tickets are bound to it.
	Country string `json:"country"`
	Issued  int64  `json:"issued"`  // unix seconds
	Expires int64  `json:"expires"` // unix seconds; not valid at or after
	// WrapKey is the AES-128 key that wraps the track's content keys,
	// random per licence.
	WrapKey []byte `json:"wrap_key"`
	// Plays are pre-issued play ids and tickets for plays made offline.
	Plays []OfflinePlay `json:"plays"`
}

// OfflinePlay is one pre-issued play: the event reporting it carries
// PlayID and Ticket.
type OfflinePlay struct {
	PlayID string `json:"play_id"`
	Ticket string `json:"ticket"`
}

// Errors returned by VerifyLicence.
var (
	ErrLicenceMalformed = errors.New("licence: malformed")
	ErrLicenceSignature = errors.New("licence: bad signature")
	ErrLicenceExpired   = errors.New("licence: expired")
)

// MaxLicenceLen bounds a licence token VerifyLicence parses.
const MaxLicenceLen = 64 << 10

// VerifyLicence checks a licence's signature with pub and its expiry against now.
// An expired licence is returned with ErrLicenceExpired, so callers can say when
// (and re-seal downloads under a renewed one).
func VerifyLicence(pub ed25519.PublicKey, token string, now time.Time) (Licence, error) {
	payload, sig, ok := strings.Cut(token, ".")
	if !ok || len(pub) != ed25519.PublicKeySize || len(token) > MaxLicenceLen {
		return Licence{}, ErrLicenceMalformed
	}
	pb, err1 := base64.RawURLEncoding.Strict().DecodeString(payload)
	sb, err2 := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err1 != nil || err2 != nil || len(sb) != ed25519.SignatureSize {
		return Licence{}, ErrLicenceMalformed
	}
	if !ed25519.Verify(pub, pb, sb) {
		return Licence{}, ErrLicenceSignature
	}
	var l Licence
	if err := json.Unmarshal(pb, &l); err != nil || l.Version != LicenceVersion || len(l.WrapKey) != 16 || !catalog.ValidID(l.TrackID) {
		return Licence{}, ErrLicenceMalformed
	}
	if now.Unix() >= l.Expires {
		return l, fmt.Errorf("%w on %s", ErrLicenceExpired, time.Unix(l.Expires, 0).UTC().Format(time.RFC3339))
	}
	return l, nil
}

// LicenceRequest is the body of POST /v1/licences. The user and country
// are the bearer token's.
type LicenceRequest struct {
	TrackID  string `json:"track_id"`
	DeviceID string `json:"device_id"`
}

// LicenceResponse is the answer to POST /v1/licences.
type LicenceResponse struct {
	Licence string `json:"licence"`
	Expires int64  `json:"expires"`
}

// LicenceKeyResponse is the answer to GET /v1/licences/key.
type LicenceKeyResponse struct {
	PublicKey []byte `json:"public_key"` // Ed25519, 32 bytes
}
