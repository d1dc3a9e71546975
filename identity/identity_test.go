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
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/country"
)

var testNow = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// verifierOf is a Verifier that accepts is's tokens.
func verifierOf(t testing.TB, is *Issuer) *Verifier {
	t.Helper()
	v, err := NewVerifier(Config{PublicKeys: []string{is.PublicKey()}})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func newIssuer(t testing.TB) *Issuer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return NewIssuerFromKey(priv, func() time.Time { return testNow })
}

func sign(t testing.TB, m jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestVerify is the table of tokens that must be refused, and the ones
// that must pass. Mutations caught: dropping WithValidMethods and the
// keyfunc's method check (alg none still fails in jwt/v5 without
// UnsafeAllowNoneSignatureType, but the HS256 row then reaches the key set
// and is refused only because the key type differs: the row stays as a
// guard); dropping WithExpirationRequired (the no-exp row passes);
// dropping the sub or country checks (the missing/bad rows pass);
// Leeway = 0 (the "expired 10 s ago" row fails); ignoring Issuer or
// Audience (their rows pass).
func TestVerify(t *testing.T) {
	is := newIssuer(t)
	other := newIssuer(t)
	pub := is.key.Public().(ed25519.PublicKey)
	good := jwt.MapClaims{"sub": "u1", "country": "SE", "exp": testNow.Add(time.Hour).Unix()}
	with := func(k string, v any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for kk, vv := range good {
			c[kk] = vv
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	none := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good)
	hs := sign(t, jwt.SigningMethodHS256, []byte(pub), good)
	hsB64 := sign(t, jwt.SigningMethodHS256, []byte(base64.StdEncoding.EncodeToString(pub)), good)
	ok := sign(t, jwt.SigningMethodEdDSA, is.key, good)
	parts := strings.Split(ok, ".")

	tests := []struct {
		name  string
		token string
		cfg   func(*Config)
		want  User // zero: refused
	}{
		{"good", ok, nil, User{"u1", "SE"}},
		{"issued by Issue", must(is.Issue(User{"demo-SE", "SE"}, time.Hour)), nil, User{"demo-SE", "SE"}},
		{"second configured key", sign(t, jwt.SigningMethodEdDSA, other.key, good), func(c *Config) { c.PublicKeys = append(c.PublicKeys, other.PublicKey()) }, User{"u1", "SE"}},
		{"expired 10 s ago, within leeway", sign(t, jwt.SigningMethodEdDSA, is.key, with("exp", testNow.Add(-10*time.Second).Unix())), nil, User{"u1", "SE"}},
		{"alg none", none, nil, User{}},
		{"HS256 keyed with the public key", hs, nil, User{}},
		{"HS256 keyed with the base64 public key", hsB64, nil, User{}},
		{"wrong key", sign(t, jwt.SigningMethodEdDSA, other.key, good), nil, User{}},
		{"expired", sign(t, jwt.SigningMethodEdDSA, is.key, with("exp", testNow.Add(-time.Hour).Unix())), nil, User{}},
		{"no exp", sign(t, jwt.SigningMethodEdDSA, is.key, with("exp", nil)), nil, User{}},
		{"not yet valid", sign(t, jwt.SigningMethodEdDSA, is.key, with("nbf", testNow.Add(time.Hour).Unix())), nil, User{}},
		{"missing sub", sign(t, jwt.SigningMethodEdDSA, is.key, with("sub", nil)), nil, User{}},
		{"bad sub", sign(t, jwt.SigningMethodEdDSA, is.key, with("sub", "a b")), nil, User{}},
		{"long sub", sign(t, jwt.SigningMethodEdDSA, is.key, with("sub", strings.Repeat("a", 65))), nil, User{}},
		{"missing country", sign(t, jwt.SigningMethodEdDSA, is.key, with("country", nil)), nil, User{}},
		{"bad country", sign(t, jwt.SigningMethodEdDSA, is.key, with("country", "XX")), nil, User{}},
		{"lower-case country", sign(t, jwt.SigningMethodEdDSA, is.key, with("country", "se")), nil, User{}},
		{"country not a string", sign(t, jwt.SigningMethodEdDSA, is.key, with("country", 46)), nil, User{}},
		{"tampered payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"u2","country":"SE","exp":9999999999}`)) + "." + parts[2], nil, User{}},
		{"no signature", parts[0] + "." + parts[1] + ".", nil, User{}},
		{"two parts", parts[0] + "." + parts[1], nil, User{}},
		{"empty", "", nil, User{}},
		{"garbage", "not.a.jwt", nil, User{}},
		{"too long", strings.Repeat("a", MaxTokenBytes+1), nil, User{}},
		{"issuer required, absent", ok, func(c *Config) { c.Issuer = "idp" }, User{}},
		{"issuer matches", sign(t, jwt.SigningMethodEdDSA, is.key, with("iss", "idp")), func(c *Config) { c.Issuer = "idp" }, User{"u1", "SE"}},
		{"issuer differs", sign(t, jwt.SigningMethodEdDSA, is.key, with("iss", "evil")), func(c *Config) { c.Issuer = "idp" }, User{}},
		{"audience required, absent", ok, func(c *Config) { c.Audience = "cdn" }, User{}},
		{"audience matches", sign(t, jwt.SigningMethodEdDSA, is.key, with("aud", "cdn")), func(c *Config) { c.Audience = "cdn" }, User{"u1", "SE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{PublicKeys: []string{is.PublicKey()}}
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			v, err := NewVerifier(cfg)
			if err != nil {
				t.Fatal(err)
			}
			u, err := v.Verify(tt.token, testNow)
			if u != tt.want {
				t.Fatalf("Verify = %+v, %v; want %+v", u, err, tt.want)
			}
			if tt.want == (User{}) && err == nil {
				t.Fatal("refused without an error")
			}
			if err != nil && !errors.Is(err, ErrInvalidToken) && !errors.Is(err, ErrNoToken) {
				t.Fatalf("error %v wraps neither ErrInvalidToken nor ErrNoToken", err)
			}
		})
	}
}

// TestVerifyConcurrent runs Verify from many goroutines with different
// clocks; under -race it catches shared state in the verifier (an append
// into the options' backing array did exactly that: mutation tried, the
// race detector reports it).
func TestVerifyConcurrent(t *testing.T) {
	is := newIssuer(t)
	is.Iss, is.Aud = "idp", "cdn" // five options: their slice has spare capacity
	v, err := NewVerifier(Config{PublicKeys: []string{is.PublicKey()}, Issuer: "idp", Audience: "cdn"})
	if err != nil {
		t.Fatal(err)
	}
	tok := must(is.Issue(User{"u1", "SE"}, time.Hour))
	done := make(chan error, 8)
	for i := range 8 {
		go func() {
			var err error
			for j := range 50 {
				at := testNow.Add(time.Duration(i*50+j) * time.Second)
				if _, e := v.Verify(tok, at); e != nil {
					err = e
				}
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}

func TestConfigKeys(t *testing.T) {
	is := newIssuer(t)
	der, err := x509.MarshalPKIXPublicKey(is.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	v, err := NewVerifier(Config{PublicKeys: []string{pemKey}})
	if err != nil {
		t.Fatalf("PEM key: %v", err)
	}
	if _, err := v.Verify(must(is.Issue(User{"u", "US"}, time.Minute)), testNow); err != nil {
		t.Fatalf("PEM-configured verifier: %v", err)
	}
	for _, bad := range [][]string{nil, {""}, {"AAAA"}, {"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"}} {
		if _, err := NewVerifier(Config{PublicKeys: bad}); err == nil {
			t.Errorf("NewVerifier(%q) accepted", bad)
		}
	}
	err = Config{PublicKeys: []string{is.PublicKey(), "bad"}}.Validate()
	if err == nil || !strings.Contains(err.Error(), "public_keys[1]") {
		t.Errorf("Validate error %v does not name public_keys[1]", err)
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		h    []string
		want string
		err  error
	}{
		{nil, "", ErrNoToken},
		{[]string{"Bearer abc"}, "abc", nil},
		{[]string{"bearer abc"}, "abc", nil},
		{[]string{"Bearer  abc"}, "abc", nil},
		{[]string{"Bearer "}, "", ErrNoToken},
		{[]string{"Basic abc"}, "", ErrInvalidToken},
		{[]string{"Bearerabc"}, "", ErrInvalidToken},
		{[]string{"Bearer a", "Bearer b"}, "", ErrInvalidToken},
	}
	for _, tt := range tests {
		h := http.Header{}
		for _, v := range tt.h {
			h.Add("Authorization", v)
		}
		got, err := BearerToken(h)
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("BearerToken(%q) = %q, %v; want %q, %v", tt.h, got, err, tt.want, tt.err)
		}
	}
}

// FuzzVerify feeds arbitrary Authorization headers through the bearer and
// JWT parse path: it must never panic, and anything it accepts must carry a
// valid user id and country (a forged token cannot be accepted since the
// fuzzer does not hold the key; seeds include a real one).
func FuzzVerify(f *testing.F) {
	is := newIssuer(f)
	v := verifierOf(f, is)
	tok := must(is.Issue(User{"u1", "SE"}, time.Hour))
	f.Add("Bearer " + tok)
	f.Add("Bearer " + tok[:len(tok)-3])
	f.Add("Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1In0.")
	f.Add("bearer a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, h string) {
		r := &http.Request{Header: http.Header{"Authorization": {h}}}
		u, err := v.FromRequest(r, testNow)
		if err != nil {
			return
		}
		if !catalog.ValidUserID(u.ID) || !country.Valid(u.Country) {
			t.Fatalf("accepted %q as %+v", h, u)
		}
	})
}

// BenchmarkVerify is the per-request cost of checking a session at the
// origin.
func BenchmarkVerify(b *testing.B) {
	is := newIssuer(b)
	v := verifierOf(b, is)
	tok := must(is.Issue(User{"demo-SE", "SE"}, time.Hour))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(tok, testNow); err != nil {
			b.Fatal(err)
		}
	}
}

// TestUnauthorized: a 401 with the RFC 6750 challenge, and none of the
// error's text in the body.
func TestUnauthorized(t *testing.T) {
	for _, err := range []error{ErrNoToken, fmt.Errorf("%w: secret detail", ErrInvalidToken)} {
		w := httptest.NewRecorder()
		Unauthorized(w, err)
		if w.Code != 401 || !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer ") || strings.Contains(w.Body.String(), "secret") {
			t.Errorf("Unauthorized(%v): %d %q %q", err, w.Code, w.Header().Get("WWW-Authenticate"), w.Body.String())
		}
	}
}
