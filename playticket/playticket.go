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
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/country"
	"github.com/musiccdn/cdn/ident"
)

const (
	version = "p1"
	tagLen  = 16                 // bytes of HMAC kept: 128 bits
	tagB64  = (tagLen*8 + 5) / 6 // 22 characters
	MaxLen  = 512                // the longest ticket Verify parses
	// MinSecretLen is the shortest key secret accepted, in bytes.
	MinSecretLen = 32
	// MaxKeyIDLen bounds a key id; ids are [A-Za-z0-9_-].
	MaxKeyIDLen = 16
	// MaxIDLen bounds the play, user and track ids a ticket carries (the
	// catalog's id rule).
	MaxIDLen = catalog.MaxIDLen
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

// Key is one ticket key.
type Key struct {
	ID     string
	Secret []byte
}

// Keyring mints with its first key and verifies with any, so keys rotate
// without refusing tickets in flight: add the new key second everywhere,
// then move it first, then drop the old one after the longest a ticket is
// used (an offline licence's lifetime). Safe for concurrent use.
type Keyring struct {
	keys []*key
}

type key struct {
	id   string
	pool sync.Pool // of *mac
}

// mac is one HMAC state and a scratch buffer, pooled so a check allocates
// nothing.
type mac struct {
	h   hash.Hash
	buf []byte
	sum []byte
}

// NewKeyring returns a keyring; keys[0] mints.
func NewKeyring(keys ...Key) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("playticket: no keys")
	}
	kr := &Keyring{}
	for i, k := range keys {
		if !ident.Valid(k.ID, MaxKeyIDLen) {
			return nil, fmt.Errorf("playticket: key %d: id %q: want 1 to %d of [A-Za-z0-9_-]", i, k.ID, MaxKeyIDLen)
		}
		if len(k.Secret) < MinSecretLen {
			return nil, fmt.Errorf("playticket: key %q: secret of %d bytes, want at least %d", k.ID, len(k.Secret), MinSecretLen)
		}
		for _, o := range kr.keys {
			if o.id == k.ID {
				return nil, fmt.Errorf("playticket: key id %q used twice", k.ID)
			}
		}
		secret := append([]byte(nil), k.Secret...)
		kk := &key{id: k.ID}
		kk.pool.New = func() any {
			return &mac{h: hmac.New(sha256.New, secret), buf: make([]byte, 0, MaxLen), sum: make([]byte, 0, sha256.Size)}
		}
		kr.keys = append(kr.keys, kk)
	}
	return kr, nil
}

// Mint returns the ticket for c, tagged with the first key. The ids must
// be valid (1 to MaxIDLen of [A-Za-z0-9_-], a two-letter country); Mint
// returns an error otherwise, never a ticket Verify would refuse.
func (kr *Keyring) Mint(c Claims) (string, error) {
	if !catalog.ValidPlayID(c.PlayID) || !catalog.ValidUserID(c.UserID) || !catalog.ValidID(c.TrackID) ||
		!country.Valid(c.Country) || c.IssuedMS <= 0 || c.DurationMS < 0 {
		return "", fmt.Errorf("playticket: invalid claims %+v", c)
	}
	k := kr.keys[0]
	var b strings.Builder
	b.Grow(MaxLen / 2)
	for _, s := range []string{version, k.id, c.PlayID, c.UserID, c.TrackID, c.Country} {
		b.WriteString(s)
		b.WriteByte('.')
	}
	b.WriteString(strconv.FormatInt(c.IssuedMS, 10))
	b.WriteByte('.')
	b.WriteString(strconv.FormatInt(c.DurationMS, 10))
	body := b.String()
	var tag [tagB64]byte
	k.tag(body, &tag)
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
	var k *key
	for _, kk := range kr.keys {
		if kk.id == f[1] {
			k = kk
			break
		}
	}
	if k == nil {
		return c, ErrUnknownKey
	}
	var want [tagB64]byte
	k.tag(body, &want)
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

// tag writes the base64url tag of body with k into out.
func (k *key) tag(body string, out *[tagB64]byte) {
	m := k.pool.Get().(*mac)
	m.h.Reset()
	m.buf = append(m.buf[:0], body...)
	m.h.Write(m.buf)
	m.sum = m.h.Sum(m.sum[:0])
	base64.RawURLEncoding.Encode(out[:], m.sum[:tagLen])
	k.pool.Put(m)
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
