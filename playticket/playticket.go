// Package playticket mints and checks play tickets: HMAC-SHA256 tags that
// bind a server-chosen play id to the user, the track, the country, the
// track's duration and the time the play was authorized. The origin's
// manifest handler mints one per manifest (and the licence handler a batch
// for offline plays); POST /v1/plays and the plays stage check one per
// event, so a play the origin did not authorize cannot be counted.
//
// HMAC and not a signature: the stage checks every event at the full
// ingest rate, a ticket costs about a microsecond to check (see
// BenchmarkVerify) against tens for Ed25519, and only the origin's own
// services mint or check tickets, so a shared secret is enough.
//
// Wire form, printable ASCII without escapes, so it rides in JSON as is:
//
//	p1.<key id>.<play id>.<user id>.<track id>.<country>.<issued unix ms>.<duration ms>.<tag>
//
// where tag is the base64url (no padding) of the first 16 bytes of
// HMAC-SHA256(secret of key id, everything before ".<tag>"). Ids are of
// [A-Za-z0-9_-], so "." separates unambiguously.
package playticket

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/country"
	"github.com/musiccdn/cdn/hmacring"
)

const (
	version = "p1"
	tagLen  = 16                 // bytes of HMAC kept: 128 bits
	tagB64  = (tagLen*8 + 5) / 6 // 22 characters
	MaxLen  = 512                // the longest ticket Verify parses
	// MinSecretLen is the shortest key secret accepted, in bytes.
	MinSecretLen = 32
	// MaxKeyIDLen bounds a key id; ids are [A-Za-z0-9_-].
	MaxKeyIDLen = hmacring.MaxKeyIDLen
)

// Claims is what a ticket binds.
type Claims struct {
	PlayID     string
	UserID     string
	TrackID    string
	Country    string
	IssuedMS   int64 // unix milliseconds the play was authorized at
	DurationMS int64 // the track's duration, which bounds ms_played
}

// Issued is IssuedMS as a time.
func (c *Claims) Issued() time.Time { return time.UnixMilli(c.IssuedMS) }

// Errors returned by Verify.
var (
	ErrMalformed  = errors.New("playticket: malformed")
	ErrUnknownKey = errors.New("playticket: unknown key")
	ErrForged     = errors.New("playticket: bad tag")
)

// Key is one ticket key: an id of 1 to MaxKeyIDLen characters of
// [A-Za-z0-9_-] and a secret of at least MinSecretLen bytes.
type Key = hmacring.Key

// Keyring mints with its first key and verifies with any, so keys rotate
// without refusing tickets in flight: add the new key second everywhere,
// then move it first, then drop the old one after the longest a ticket is
// used (an offline licence's lifetime). Safe for concurrent use.
type Keyring struct {
	ring *hmacring.Ring
}

// NewKeyring returns a keyring; keys[0] mints.
func NewKeyring(keys ...Key) (*Keyring, error) {
	r, err := hmacring.New(MinSecretLen, keys...)
	if err != nil {
		return nil, fmt.Errorf("playticket: %w", config.Prefix("keys", err))
	}
	return &Keyring{ring: r}, nil
}

// Mint returns the ticket for c, tagged with the first key. The ids must
// be valid (the catalog's id rules and an assigned country code); Mint
// returns an error otherwise, never a ticket Verify would refuse.
func (kr *Keyring) Mint(c Claims) (string, error) {
	if !catalog.ValidPlayID(c.PlayID) || !catalog.ValidUserID(c.UserID) || !catalog.ValidID(c.TrackID) ||
		!country.Valid(c.Country) || c.IssuedMS <= 0 || c.DurationMS < 0 {
		return "", fmt.Errorf("playticket: invalid claims %+v", c)
	}
	k := kr.ring.Current()
	var b strings.Builder
	b.Grow(MaxLen / 2)
	for _, s := range []string{version, k.ID(), c.PlayID, c.UserID, c.TrackID, c.Country} {
		b.WriteString(s)
		b.WriteByte('.')
	}
	b.WriteString(strconv.FormatInt(c.IssuedMS, 10))
	b.WriteByte('.')
	b.WriteString(strconv.FormatInt(c.DurationMS, 10))
	body := b.String()
	var tag [tagB64]byte
	tagOf(k, body, &tag)
	return body + "." + string(tag[:]), nil
}

// Verify checks t and returns its claims, whose strings are substrings of
// t. It allocates nothing.
func (kr *Keyring) Verify(t string) (Claims, error) {
	var c Claims
	if len(t) > MaxLen || len(t) < tagB64+1 || t[len(t)-tagB64-1] != '.' {
		return c, ErrMalformed
	}
	body, gotTag := t[:len(t)-tagB64-1], t[len(t)-tagB64:]
	var f [8]string
	rest := body
	for i := range f {
		j := strings.IndexByte(rest, '.')
		if i == len(f)-1 {
			if j >= 0 {
				return c, ErrMalformed
			}
			f[i] = rest
			break
		}
		if j < 0 {
			return c, ErrMalformed
		}
		f[i], rest = rest[:j], rest[j+1:]
	}
	if f[0] != version || !catalog.ValidPlayID(f[2]) || !catalog.ValidUserID(f[3]) || !catalog.ValidID(f[4]) ||
		!country.Valid(f[5]) {
		return c, ErrMalformed
	}
	issued, ok1 := parseNonNeg(f[6])
	dur, ok2 := parseNonNeg(f[7])
	if !ok1 || !ok2 || issued == 0 {
		return c, ErrMalformed
	}
	k := kr.ring.LookupString(f[1])
	if k == nil {
		return c, ErrUnknownKey
	}
	var want [tagB64]byte
	tagOf(k, body, &want)
	// Constant time, so the tag cannot be guessed byte by byte.
	var diff byte
	for i := range tagB64 {
		diff |= want[i] ^ gotTag[i]
	}
	if diff != 0 {
		return c, ErrForged
	}
	return Claims{PlayID: f[2], UserID: f[3], TrackID: f[4], Country: f[5], IssuedMS: issued, DurationMS: dur}, nil
}

// tagOf writes the base64url tag of body with k into out.
func tagOf(k *hmacring.MAC, body string, out *[tagB64]byte) {
	sum := k.SumString(body)
	base64.RawURLEncoding.Encode(out[:], sum[:tagLen])
}

// parseNonNeg parses 1 to 15 decimal digits (unix ms until the year
// 33658, and any duration), without allocating.
func parseNonNeg(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 15 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// crockford is Crockford's base32 alphabet, which sorts like the values it
// encodes.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// IDLen is the length of a play id made by NewID.
const IDLen = 26

// NewID returns a new play id: 26 characters of Crockford base32 encoding
// a 48-bit unix-millisecond timestamp followed by 80 random bits (the ULID
// layout). Ids sort, as strings, by the millisecond they were made in,
// which the ledger's dedup store uses to prune by time.
func NewID(now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	rand.Read(b[6:])
	// 128 bits as 26 base32 digits: the first digit holds the top 3 bits.
	var out [IDLen]byte
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	for i := IDLen - 1; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// IDTime returns the millisecond a NewID id was made in, and false when id
// is not one.
func IDTime(id string) (time.Time, bool) {
	if len(id) != IDLen {
		return time.Time{}, false
	}
	var ms uint64
	// The first 10 digits hold 50 bits: 2 zero bits, then the 48-bit time.
	for i := 0; i < 10; i++ {
		d := strings.IndexByte(crockford, id[i])
		if d < 0 {
			return time.Time{}, false
		}
		ms = ms<<5 | uint64(d)
	}
	if ms>>48 != 0 {
		return time.Time{}, false
	}
	for i := 10; i < IDLen; i++ {
		if strings.IndexByte(crockford, id[i]) < 0 {
			return time.Time{}, false
		}
	}
	return time.UnixMilli(int64(ms)), true
}
