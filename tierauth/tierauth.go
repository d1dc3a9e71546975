// Package tierauth gives the tier credential: the proof, carried on every
// internal fill (edge -> shield /media, shield -> origin /media, edge ->
// owning edge /peer/media) and on the calls between nodes beside them (an
// edge's snapshot, rights and next-track calls to the origin, the origin's
// purge fan-out to the nodes' /admin/), that a request comes from a node
// of the deployment and not from a player or anyone else on the network.
//
// A credential is one request header:
//
//	X-Tier-Auth: <key id>.<unix seconds>.<base64url HMAC-SHA256>
//
// The MAC is keyed by the secret the key id names and covers a version
// tag, the key id, the request method, the request target (path and
// query, exactly as sent on the request line) and the timestamp, so a
// credential opens one method on one path, within MaxSkew of the
// receiver's clock. A Keyring signs with its first key and accepts all of
// them (the current key and the previous one during a rotation). Verify
// compares in constant time and does not allocate, so it costs nothing
// noticeable on a fill.
//
// What it does not do: it does not stop a replay of a captured credential
// within the skew window (fills are idempotent reads, and internal
// listeners are on the private network), and it does not encrypt. Keys are
// configured as tier_keys: [{id, secret}] (secret hex, at least 32 bytes),
// the same values on every edge, shield and origin of a POP.
package tierauth

import (
	"errors"
	"strconv"
	"time"

	"github.com/musiccdn/cdn/hmacring"
	"github.com/musiccdn/cdn/ident"
)

// Header is the request header that carries the credential.
const Header = "X-Tier-Auth"

// MaxSkew is how far a credential's timestamp may be from the receiver's
// clock, either way. It bounds both clock disagreement between nodes and
// how long a captured credential can be replayed (for that one method and
// path).
const MaxSkew = 60 * time.Second

// MinSecretLen is the shortest secret accepted, in bytes.
const MinSecretLen = 32

// MaxKeyIDLen bounds key ids: 1 to 16 characters of [A-Za-z0-9_-].
const MaxKeyIDLen = hmacring.MaxKeyIDLen

// Errors returned by Verify. Every one means 403; they differ for logs.
var (
	ErrMissing    = errors.New("tierauth: no credential")
	ErrMalformed  = errors.New("tierauth: malformed credential")
	ErrUnknownKey = errors.New("tierauth: unknown key id")
	ErrSignature  = errors.New("tierauth: bad signature")
	ErrSkew       = errors.New("tierauth: timestamp outside the skew window")
)

// KeyConfig is one key as written in configuration files (tier_keys): an
// id of 1 to 16 characters of [A-Za-z0-9_-] and a hex secret of at least
// 32 bytes (64 hex digits).
type KeyConfig = hmacring.Config

// Keyring signs with its first key and verifies with any of its keys. It
// is safe for concurrent use.
type Keyring struct {
	ring *hmacring.Ring
}

// New builds a keyring from configured keys: keys[0] signs, all verify.
// Errors are *config.FieldError naming the entry at fault ("[1].secret"),
// so a caller prefixes them with its YAML field (config.Prefix).
func New(keys []KeyConfig) (*Keyring, error) {
	decoded, err := hmacring.Decode(keys, MinSecretLen)
	if err != nil {
		return nil, err
	}
	r, err := hmacring.New(MinSecretLen, decoded...)
	if err != nil {
		return nil, err
	}
	return &Keyring{ring: r}, nil
}

// Sign returns the credential for a request with method and target (path
// and query, as on the request line) at time now.
func (kr *Keyring) Sign(method, target string, now time.Time) string {
	k := kr.ring.Current()
	ts := strconv.FormatInt(now.Unix(), 10)
	return k.ID() + "." + ts + "." + k.Sign(versionTag, []byte(k.ID()), []byte(method), []byte(target), []byte(ts))
}

// Verify checks credential (the header's value) for a request with method
// and target at time now. It compares MACs in constant time and does not
// allocate.
func (kr *Keyring) Verify(credential, method, target []byte, now time.Time) error {
	if len(credential) == 0 {
		return ErrMissing
	}
	kid, ts, sig, ok := Parse(credential)
	if !ok {
		return ErrMalformed
	}
	sec, _ := ident.ParseUnix(ts)
	k := kr.ring.Lookup(kid)
	if k == nil {
		return ErrUnknownKey
	}
	// The MAC covers a version tag, the key id, the method, the target
	// and the timestamp, NUL-separated: none of them can hold a NUL (a
	// request line cannot).
	switch k.Verify(sig, versionTag, kid, method, target, ts) {
	case nil:
	case hmacring.ErrMalformed:
		return ErrMalformed
	default:
		return ErrSignature
	}
	// Checked after the MAC, so a forger learns nothing from the order.
	if d := now.Unix() - sec; d > int64(MaxSkew/time.Second) || d < -int64(MaxSkew/time.Second) {
		return ErrSkew
	}
	return nil
}

// Parse splits a credential into its key id, timestamp and signature
// fields, checking their syntax only: a key id of 1 to MaxKeyIDLen
// characters of [A-Za-z0-9_-], 1 to 12 decimal digits, and a signature of
// the length of a base64url SHA-256. The results alias credential.
func Parse(credential []byte) (kid, ts, sig []byte, ok bool) {
	var parts [3][]byte
	if !ident.Split(credential, '.', parts[:]) || !ident.Valid(parts[0], MaxKeyIDLen) {
		return nil, nil, nil, false
	}
	if _, ok := ident.ParseUnix(parts[1]); !ok || len(parts[2]) != sigLen {
		return nil, nil, nil, false
	}
	return parts[0], parts[1], parts[2], true
}

var versionTag = []byte("tierauth-v1")

const sigLen = hmacring.SigLen
