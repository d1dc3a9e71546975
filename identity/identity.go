// Package identity verifies the bearer tokens of the service's identity
// provider: `Authorization: Bearer <JWT>`, signed with EdDSA (Ed25519), with
// the claims sub (the user id), country (ISO 3166-1 alpha-2) and exp. The
// identity provider itself is outside this project; Issuer stands in for it
// in cmd/pop and in tests.
//
// Only EdDSA is accepted: a token whose header names alg "none", an HMAC
// (HS256 keyed with the public key is the classic confusion attack) or RSA
// is refused before any key is tried. Several public keys may be
// configured, so the provider can rotate its key: publish the new public
// key to every origin, then start signing with it, then drop the old one
// once the last token it signed has expired.
//
// Verification costs one Ed25519 signature check (about 50 µs of CPU,
// see BenchmarkVerify) per request per configured key tried; tokens carry
// no key id, so with two keys a token of the second costs two checks.
package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/country"
)

// Leeway is the clock skew allowed between the identity provider and the
// origin when checking exp (and nbf/iat when present).
const Leeway = 30 * time.Second

// MaxTokenBytes bounds the bearer token a request may carry; a larger one
// is refused without being parsed.
const MaxTokenBytes = 4096

// Config configures a Verifier. It maps onto the origin's `identity`
// YAML section.
type Config struct {
	// PublicKeys are the identity provider's Ed25519 public keys: each
	// the base64 (standard) of the 32-byte key, or a PEM "PUBLIC KEY"
	// block (PKIX). A token signed by any of them is accepted. At least
	// one; no default.
	PublicKeys []string `yaml:"public_keys"`
	// Issuer, when set, must equal the token's iss claim. Default "" (not
	// checked).
	Issuer string `yaml:"issuer"`
	// Audience, when set, must be one of the token's aud values. Default
	// "" (not checked).
	Audience string `yaml:"audience"`
}

// Validate reports every invalid field, each naming its YAML field.
func (c Config) Validate() error {
	var errs config.Errors
	if len(c.PublicKeys) == 0 {
		errs.Add("public_keys", "at least one Ed25519 public key is required")
	}
	for i, k := range c.PublicKeys {
		if _, err := ParsePublicKey(k); err != nil {
			errs.Add(fmt.Sprintf("public_keys[%d]", i), "%v", err)
		}
	}
	return errs.Err()
}

// ParsePublicKey decodes an Ed25519 public key given as the base64 of its
// 32 bytes or as a PEM PKIX block.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-----BEGIN") {
		blk, _ := pem.Decode([]byte(s))
		if blk == nil {
			return nil, errors.New("bad PEM block")
		}
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, errors.New("bad PKIX public key")
		}
		ek, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, errors.New("not an Ed25519 public key")
		}
		return ek, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("want the base64 of a %d-byte Ed25519 public key, or PEM", ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// User is who a verified token names.
type User struct {
	// ID is the token's sub: a user id by catalog.ValidUserID.
	ID string
	// Country is the token's country claim, an assigned ISO 3166-1
	// alpha-2 code: where the user is entitled to play from.
	Country string
}

// Errors returned by Verify and FromRequest. Callers answer every one of
// them with 401; the text is for logs.
var (
	ErrNoToken      = errors.New("identity: no bearer token")
	ErrInvalidToken = errors.New("identity: invalid token")
)

// Verifier checks tokens. It is safe for concurrent use.
type Verifier struct {
	keys jwt.VerificationKeySet
	opts []jwt.ParserOption
}

// NewVerifier validates cfg and returns a verifier.
func NewVerifier(cfg Config) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	v := &Verifier{}
	for _, s := range cfg.PublicKeys {
		k, _ := ParsePublicKey(s)
		v.keys.Keys = append(v.keys.Keys, k)
	}
	v.opts = []jwt.ParserOption{
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(Leeway),
		jwt.WithStrictDecoding(),
	}
	if cfg.Issuer != "" {
		v.opts = append(v.opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		v.opts = append(v.opts, jwt.WithAudience(cfg.Audience))
	}
	return v, nil
}

// claims are the token's claims this service reads.
type claims struct {
	jwt.RegisteredClaims
	Country string `json:"country"`
}

// Verify checks token's signature, algorithm, expiry (at now, with
// Leeway), issuer and audience when configured, and its sub and country.
// Every failure wraps ErrInvalidToken.
func (v *Verifier) Verify(token string, now time.Time) (User, error) {
	if token == "" {
		return User{}, ErrNoToken
	}
	if len(token) > MaxTokenBytes {
		return User{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalidToken, MaxTokenBytes)
	}
	var c claims
	// Clipped, so concurrent calls never append into a shared array.
	opts := append(slices.Clip(v.opts), jwt.WithTimeFunc(func() time.Time { return now }))
	p := jwt.NewParser(opts...)
	_, err := p.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		// WithValidMethods already refused every other alg; this is the
		// second lock on the same door.
		if _, ok := t.Method.(*jwt.SigningMethodEd25519); !ok {
			return nil, errors.New("not EdDSA")
		}
		return v.keys, nil
	})
	if err != nil {
		return User{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if !catalog.ValidUserID(c.Subject) {
		return User{}, fmt.Errorf("%w: bad or missing sub", ErrInvalidToken)
	}
	if !country.Valid(c.Country) {
		return User{}, fmt.Errorf("%w: bad or missing country", ErrInvalidToken)
	}
	return User{ID: c.Subject, Country: c.Country}, nil
}

// FromRequest verifies the bearer token of r's Authorization header.
func (v *Verifier) FromRequest(r *http.Request, now time.Time) (User, error) {
	tok, err := BearerToken(r.Header)
	if err != nil {
		return User{}, err
	}
	return v.Verify(tok, now)
}

// BearerToken returns the token of the one Authorization header, which
// must use the Bearer scheme (RFC 6750 section 2.1; the scheme is
// case-insensitive).
func BearerToken(h http.Header) (string, error) {
	vals := h.Values("Authorization")
	switch {
	case len(vals) == 0:
		return "", ErrNoToken
	case len(vals) > 1:
		return "", fmt.Errorf("%w: more than one Authorization header", ErrInvalidToken)
	}
	scheme, tok, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", fmt.Errorf("%w: not a bearer token", ErrInvalidToken)
	}
	tok = strings.TrimLeft(tok, " ")
	if tok == "" {
		return "", ErrNoToken
	}
	return tok, nil
}

// Challenge sets the WWW-Authenticate header of a 401 (RFC 6750 section 3).
func Challenge(w http.ResponseWriter, err error) {
	if errors.Is(err, ErrNoToken) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="musiccdn"`)
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="musiccdn", error="invalid_token"`)
}

// Unauthorized answers 401 with the challenge for err and a short reason
// (never err's text).
func Unauthorized(w http.ResponseWriter, err error) {
	Challenge(w, err)
	http.Error(w, "unauthorized", http.StatusUnauthorized)
}

// Issuer signs tokens the way the identity provider does. cmd/pop runs one
// as its demo provider; tests use it. It is safe for concurrent use.
type Issuer struct {
	key ed25519.PrivateKey
	// Iss and Aud, when set, go into the iss and aud claims.
	Iss, Aud string
	now      func() time.Time
}

// NewIssuer returns an issuer with a fresh random key.
func NewIssuer() (*Issuer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("identity: key: %w", err)
	}
	return &Issuer{key: priv, now: time.Now}, nil
}

// NewIssuerFromKey returns an issuer signing with key; now may be nil
// (time.Now).
func NewIssuerFromKey(key ed25519.PrivateKey, now func() time.Time) *Issuer {
	if now == nil {
		now = time.Now
	}
	return &Issuer{key: key, now: now}
}

// PublicKey returns the public key as Config.PublicKeys takes it (base64).
func (is *Issuer) PublicKey() string {
	return base64.StdEncoding.EncodeToString(is.key.Public().(ed25519.PublicKey))
}

// Issue returns a token for u valid for ttl from now.
func (is *Issuer) Issue(u User, ttl time.Duration) (string, error) {
	now := is.now()
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   u.ID,
			Issuer:    is.Iss,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Country: u.Country,
	}
	if is.Aud != "" {
		c.Audience = jwt.ClaimStrings{is.Aud}
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(is.key)
	if err != nil {
		return "", fmt.Errorf("identity: sign: %w", err)
	}
	return tok, nil
}

// Peek reads the user of a token without checking anything: for clients
// (the player) that need to know which user and country their own token
// names. Never use it to decide anything on a server.
func Peek(token string) (User, error) {
	var c claims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &c); err != nil {
		return User{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if !catalog.ValidUserID(c.Subject) || !country.Valid(c.Country) {
		return User{}, fmt.Errorf("%w: bad sub or country", ErrInvalidToken)
	}
	return User{ID: c.Subject, Country: c.Country}, nil
}
