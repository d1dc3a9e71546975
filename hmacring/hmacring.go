// Package hmacring keeps the keys of an HMAC-SHA256 credential. The URL
// tokens (package urlsign), the tier credential (package tierauth) and play
// tickets (package playticket) each sign with a Ring's first key and verify
// with any of its keys, so a key rotates without refusing credentials in
// flight: add the new key second everywhere, move it first, then drop the
// old one once nothing it signed is still in use.
//
// A key id is 1 to MaxKeyIDLen characters of [A-Za-z0-9_-], so it needs no
// escaping in a credential; each credential sets its own shortest secret.
// Configuration files give keys as {id, secret} with the secret in hex
// (Config); Decode checks them and names the entry at fault.
//
// A Ring keeps a pool of HMAC states per key, so Sum, SumString and Verify
// allocate nothing: they run on every fill and every token check.
package hmacring

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"sync"

	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/ident"
)

// MaxKeyIDLen bounds key ids: 1 to 16 characters of [A-Za-z0-9_-].
const MaxKeyIDLen = 16

// SigLen is the length of a signature as Sign writes it: the base64url,
// unpadded, of a SHA-256 MAC.
const SigLen = (sha256.Size*8 + 5) / 6 // 43

// Errors returned by MAC.Verify.
var (
	ErrMalformed = errors.New("hmacring: malformed signature")
	ErrMismatch  = errors.New("hmacring: signature does not match")
)

// Key is one key: its id and its secret.
type Key struct {
	ID     string // 1 to MaxKeyIDLen characters of [A-Za-z0-9_-]
	Secret []byte // at least the credential's shortest secret
}

// Config is one key as written in configuration files.
type Config struct {
	// ID names the key in credentials: 1 to 16 characters of
	// [A-Za-z0-9_-].
	ID string `yaml:"id"`
	// Secret is the key, hex encoded; how long it must be is the
	// credential's choice.
	Secret string `yaml:"secret"`
}

// Decode checks configured keys and decodes their secrets: each id valid
// and used once, each secret hex of at least minSecret bytes. Errors are
// *config.FieldError naming the entry at fault ("[1].secret"), so a caller
// puts its YAML field in front with config.Prefix.
func Decode(kc []Config, minSecret int) ([]Key, error) {
	keys := make([]Key, 0, len(kc))
	for i, c := range kc {
		if err := checkID(i, c.ID, keys); err != nil {
			return nil, err
		}
		secret, err := hex.DecodeString(c.Secret)
		if err != nil {
			return nil, config.Errorf(fmt.Sprintf("[%d].secret", i), "not hex")
		}
		if len(secret) < minSecret {
			return nil, config.Errorf(fmt.Sprintf("[%d].secret", i), "%d bytes, want at least %d (%d hex digits)", len(secret), minSecret, 2*minSecret)
		}
		keys = append(keys, Key{ID: c.ID, Secret: secret})
	}
	return keys, nil
}

// Ring signs with its first key and verifies with any of its keys. It is
// safe for concurrent use.
type Ring struct {
	macs []*MAC // macs[0] signs
}

// New returns a ring that signs with keys[0] and accepts all of keys
// (normally the current key and the previous one). Every id must be valid
// and used once, every secret at least minSecret bytes; the ring keeps its
// own copy of the secrets. Errors are *config.FieldError naming the key at
// fault ("[1].id").
func New(minSecret int, keys ...Key) (*Ring, error) {
	if len(keys) == 0 {
		return nil, config.Errorf("", "at least one key is needed")
	}
	r := &Ring{}
	for i, k := range keys {
		if err := checkID(i, k.ID, keys[:i]); err != nil {
			return nil, err
		}
		if len(k.Secret) < minSecret {
			return nil, config.Errorf(fmt.Sprintf("[%d].secret", i), "%d bytes, want at least %d", len(k.Secret), minSecret)
		}
		secret := append([]byte(nil), k.Secret...)
		m := &MAC{id: k.ID}
		m.pool.New = func() any { return &state{h: hmac.New(sha256.New, secret)} }
		r.macs = append(r.macs, m)
	}
	return r, nil
}

// checkID checks the id of the i-th key against the rules and the keys
// before it.
func checkID(i int, id string, before []Key) error {
	if !ident.Valid(id, MaxKeyIDLen) {
		return config.Errorf(fmt.Sprintf("[%d].id", i), "want 1 to %d characters of [A-Za-z0-9_-], got %q", MaxKeyIDLen, id)
	}
	for _, k := range before {
		if k.ID == id {
			return config.Errorf(fmt.Sprintf("[%d].id", i), "key id %q used twice", id)
		}
	}
	return nil
}

// Current returns the key that signs.
func (r *Ring) Current() *MAC { return r.macs[0] }

// Lookup returns the key named id, or nil when the ring has none. It does
// not allocate.
func (r *Ring) Lookup(id []byte) *MAC {
	for _, m := range r.macs {
		if string(id) == m.id {
			return m
		}
	}
	return nil
}

// LookupString is Lookup for an id held as a string.
func (r *Ring) LookupString(id string) *MAC {
	for _, m := range r.macs {
		if id == m.id {
			return m
		}
	}
	return nil
}

// MAC computes the MACs of one key of a ring.
type MAC struct {
	id   string
	pool sync.Pool // of *state
}

// state is one HMAC state and its scratch space, pooled so a MAC
// allocates nothing.
type state struct {
	h   hash.Hash
	buf []byte // SumString's copy of its input
	sum [sha256.Size]byte
	got [sha256.Size]byte
}

// ID returns the key's id.
func (m *MAC) ID() string { return m.id }

// Sum returns the HMAC-SHA256 of fields joined by NUL bytes, so no field
// may hold a NUL (the credentials' fields cannot). It does not allocate.
func (m *MAC) Sum(fields ...[]byte) [sha256.Size]byte {
	st := m.pool.Get().(*state)
	sum := st.sumFields(fields)
	m.pool.Put(st)
	return sum
}

// SumString returns the HMAC-SHA256 of s. It does not allocate.
func (m *MAC) SumString(s string) [sha256.Size]byte {
	st := m.pool.Get().(*state)
	// hmac's hash has no WriteString: a copy into the pooled buffer
	// keeps []byte(s) from escaping to the heap.
	st.buf = append(st.buf[:0], s...)
	st.h.Reset()
	st.h.Write(st.buf)
	st.h.Sum(st.sum[:0])
	sum := st.sum
	m.pool.Put(st)
	return sum
}

// Sign returns Sum(fields...) as base64url without padding (SigLen
// characters).
func (m *MAC) Sign(fields ...[]byte) string {
	sum := m.Sum(fields...)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Verify checks that sig is Sign(fields...): ErrMalformed when sig is not
// the strict base64url of a SHA-256 MAC, ErrMismatch when it is another
// MAC. It compares in constant time and does not allocate.
func (m *MAC) Verify(sig []byte, fields ...[]byte) error {
	st := m.pool.Get().(*state)
	defer m.pool.Put(st)
	// Strict decoding: non-zero padding bits would let two spellings of
	// one MAC both verify.
	if len(sig) != SigLen {
		return ErrMalformed
	}
	if n, err := strictB64.Decode(st.got[:], sig); err != nil || n != sha256.Size {
		return ErrMalformed
	}
	sum := st.sumFields(fields)
	if !hmac.Equal(sum[:], st.got[:]) {
		return ErrMismatch
	}
	return nil
}

var (
	strictB64 = base64.RawURLEncoding.Strict()
	sep       = []byte{0}
)

func (st *state) sumFields(fields [][]byte) [sha256.Size]byte {
	st.h.Reset()
	for i, f := range fields {
		if i > 0 {
			st.h.Write(sep)
		}
		st.h.Write(f)
	}
	st.h.Sum(st.sum[:0])
	return st.sum
}
