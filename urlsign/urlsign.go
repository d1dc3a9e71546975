// Package urlsign makes and checks the tokens that authorize a player to
// fetch one file from an edge. A token is bound to an object, a country and
// an expiry, and is signed with HMAC-SHA256 under a key named by a key id,
// so keys can rotate: a Keyring (an hmacring.Ring) signs with its current
// key and accepts the current and the previous ones. Edges verify tokens
// locally, in constant time and without allocating, so authorization never
// costs a call to the origin.
//
// A token is four dot-separated fields, safe in a URL query:
//
//	<key id>.<expiry, unix seconds>.<country, ISO 3166-1 alpha-2>.<base64url HMAC>
//
// The MAC covers a version tag, the key id, the object name, the country
// and the expiry, so changing any of them, or using the token for another
// object, fails verification. The object is the path of the file below the
// edge's /a/: "<track>/<kbps>.<ext>", so one name binds the track, the tier
// and the kind at once; a token minted for t1/24.ogg opens neither
// t1/320.ogg nor t1/24.seek.
//
// The token's lifetime is whatever its signer chose (up to a 12-digit unix
// time). Verifiers bound it: an edge refuses a token whose expiry lies
// further ahead than its token_max_ttl (see package tier), so a leaked
// far-future token is worth nothing.
package urlsign

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/hmacring"
	"github.com/musiccdn/cdn/ident"
)

// Errors returned by Verify. All of them mean 403 to a client; they are
// distinct for metrics and logs.
var (
	ErrMalformed  = errors.New("urlsign: malformed token")
	ErrUnknownKey = errors.New("urlsign: unknown key id")
	ErrSignature  = errors.New("urlsign: bad signature")
	ErrExpired    = errors.New("urlsign: token expired")
)

// MaxKeyIDLen bounds key ids: 1 to 16 characters of [A-Za-z0-9_-].
const MaxKeyIDLen = hmacring.MaxKeyIDLen

// MinSecretLen is the shortest secret accepted, in bytes.
const MinSecretLen = 16

// Key is one signing key: an id of 1 to 16 characters of [A-Za-z0-9_-]
// and a secret of at least MinSecretLen bytes.
type Key = hmacring.Key

// Keyring holds the signing key and the keys still accepted. It is safe for
// concurrent use.
type Keyring struct {
	ring *hmacring.Ring
}

// NewKeyring returns a keyring that signs with keys[0] and accepts all of
// keys (normally the current and the previous key).
func NewKeyring(keys ...Key) (*Keyring, error) {
	r, err := hmacring.New(MinSecretLen, keys...)
	if err != nil {
		return nil, fmt.Errorf("urlsign: %w", config.Prefix("keys", err))
	}
	return &Keyring{ring: r}, nil
}

// Sign returns a token for object ("<track>/<kbps>.<ext>"), valid in
// country until expiry.
func (kr *Keyring) Sign(object, country string, expiry time.Time) string {
	k := kr.ring.Current()
	exp := strconv.FormatInt(expiry.Unix(), 10)
	sig := k.Sign(versionTag, []byte(k.ID()), []byte(object), []byte(country), []byte(exp))
	return k.ID() + "." + exp + "." + country + "." + sig
}

// Claims are what a valid token grants.
type Claims struct {
	Country [2]byte // upper-case ISO 3166-1 alpha-2
	// Expiry is unix seconds, as signed: up to year 33658. A verifier
	// that must bound a token's lifetime compares it with its own cap.
	Expiry int64
}

// EdgePath is a player's URL path for one file at the edges: the file's
// catalog.EdgePath with a token bound to that one file (track, tier and
// kind), for country until expiry.
func (kr *Keyring) EdgePath(id string, kbps int, kind catalog.Kind, country string, expiry time.Time) string {
	obj := catalog.Name(id, kbps, kind)
	return catalog.EdgePrefix + obj + "?t=" + kr.Sign(obj, country, expiry)
}

// Verify checks token for object ("<track>/<kbps>.<ext>") at time now and
// returns its claims. It compares MACs in constant time and does not
// allocate. It does not bound the expiry: see Claims.Expiry.
func (kr *Keyring) Verify(token, object []byte, now time.Time) (Claims, error) {
	kid, exp, cc, sig, ok := split(token)
	if !ok {
		return Claims{}, ErrMalformed
	}
	expiry, ok := ident.ParseUnix(exp)
	if !ok || len(cc) != 2 || !upper(cc[0]) || !upper(cc[1]) || base64.RawURLEncoding.DecodedLen(len(sig)) != sha256.Size {
		return Claims{}, ErrMalformed
	}
	k := kr.ring.Lookup(kid)
	if k == nil {
		return Claims{}, ErrUnknownKey
	}
	// The MAC covers a version tag, the key id, the object, the country
	// and the decimal expiry, NUL-separated (none of them may hold a NUL).
	switch k.Verify(sig, versionTag, kid, object, cc, exp) {
	case nil:
	case hmacring.ErrMalformed:
		return Claims{}, ErrMalformed
	default:
		return Claims{}, ErrSignature
	}
	if now.Unix() >= expiry {
		return Claims{}, ErrExpired
	}
	return Claims{Country: [2]byte{cc[0], cc[1]}, Expiry: expiry}, nil
}

// v2: the MAC covers the object name, not the track id (v1).
var versionTag = []byte("urlsign-v2")

func split(tok []byte) (kid, exp, cc, sig []byte, ok bool) {
	var parts [4][]byte
	if !ident.Split(tok, '.', parts[:]) || len(parts[0]) == 0 || len(parts[0]) > MaxKeyIDLen {
		return nil, nil, nil, nil, false
	}
	return parts[0], parts[1], parts[2], parts[3], true
}

func upper(c byte) bool { return c >= 'A' && c <= 'Z' }
