package licence

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/musiccdn/cdn/identity"
	"github.com/musiccdn/cdn/origin/media"
	"github.com/musiccdn/cdn/playticket"
)

type fixture struct {
	h       *Handler
	iss     *identity.Issuer
	tickets *playticket.Keyring
}

func newFixture(t testing.TB, now *time.Time) *fixture {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(nil)
	iss := identity.NewIssuerFromKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32)), func() time.Time { return *now })
	v, err := identity.NewVerifier(identity.Config{PublicKeys: []string{iss.PublicKey()}})
	if err != nil {
		t.Fatal(err)
	}
	kr, _ := playticket.NewKeyring(playticket.Key{ID: "k", Secret: bytes.Repeat([]byte{5}, 32)})
	cfg := DefaultConfig(priv)
	cfg.Sessions, cfg.Tickets = v, kr
	cfg.Track = func(_ context.Context, id string) (int64, error) {
		if id == "nosuch" {
			return 0, media.ErrNotFound
		}
		return 180_000, nil
	}
	cfg.UserBurst = 7 // TestRequests makes 7 requests as u1, then one too many
	cfg.Now = func() time.Time { return *now }
	cfg.Allow = func(_ context.Context, track, country string) error {
		if country == "KP" {
			return errors.New("no rights")
		}
		return nil
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{h: h, iss: iss, tickets: kr}
}

func (f *fixture) post(t testing.TB, user, country, body string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/v1/licences", strings.NewReader(body))
	if user != "" {
		tok, err := f.iss.Issue(identity.User{ID: user, Country: country}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	f.h.ServeHTTP(rec, req)
	return rec
}

func (f *fixture) licence(t testing.TB, user, country, track, device string, now time.Time) (string, Licence) {
	t.Helper()
	rec := f.post(t, user, country, `{"track_id":"`+track+`","device_id":"`+device+`"}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("POST = %d %s", rec.Code, rec.Body)
	}
	var resp Response
	json.Unmarshal(rec.Body.Bytes(), &resp)
	l, err := Verify(f.h.PublicKey(), resp.Licence, now)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Licence, l
}

// TestIssueAndVerify: the licence is the session's user's, its key is
// random per licence, and its offline plays carry valid tickets.
// Mutations caught: a derived (deterministic) wrap key (the "two licences"
// check), the user taken from anywhere but the token, tickets minted for
// another country or without the duration (the ticket check).
func TestIssueAndVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	f := newFixture(t, &now)
	tok, l := f.licence(t, "u1", "SE", "t1", "d1", now)
	if l.TrackID != "t1" || l.UserID != "u1" || l.Country != "SE" || l.DeviceID != "d1" || l.Expires != now.Add(30*24*time.Hour).Unix() || len(l.WrapKey) != 16 {
		t.Errorf("licence = %+v", l)
	}
	if len(l.Plays) != 20 {
		t.Fatalf("%d offline plays, want 20", len(l.Plays))
	}
	seen := map[string]bool{}
	for _, p := range l.Plays {
		c, err := f.tickets.Verify(p.Ticket)
		want := playticket.Claims{PlayID: p.PlayID, UserID: "u1", TrackID: "t1", Country: "SE", IssuedMS: now.UnixMilli(), DurationMS: 180_000}
		if err != nil || c != want || seen[p.PlayID] {
			t.Fatalf("offline play %+v: %+v, %v; want %+v, distinct ids", p, c, err, want)
		}
		seen[p.PlayID] = true
	}
	if _, err := Verify(f.h.PublicKey(), tok, now.Add(30*24*time.Hour-time.Second)); err != nil {
		t.Errorf("a second before expiry: %v", err)
	}
	if _, err := Verify(f.h.PublicKey(), tok, now.Add(30*24*time.Hour)); !errors.Is(err, ErrExpired) {
		t.Errorf("at expiry err = %v, want ErrExpired", err)
	}
	// Two licences for the same (user, device, track): different keys.
	_, l2 := f.licence(t, "u1", "SE", "t1", "d1", now)
	if bytes.Equal(l2.WrapKey, l.WrapKey) {
		t.Error("two licences for the same user, device and track carry the same key")
	}
	// Any tampering breaks the signature.
	for i := range min(len(tok), 400) {
		b := []byte(tok)
		if b[i] == '.' {
			continue
		}
		b[i] ^= 1
		if _, err := Verify(f.h.PublicKey(), string(b), now); err == nil {
			t.Fatalf("tampered licence (byte %d) verified", i)
		}
	}
	other, otherPriv, _ := ed25519.GenerateKey(nil)
	if _, err := Verify(other, tok, now); !errors.Is(err, ErrSignature) {
		t.Errorf("wrong key err = %v, want ErrSignature", err)
	}
	// A licence made by someone else's key (expiring in 2100) is refused
	// by a verifier pinned to the origin's key.
	forged := l
	forged.Expires = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	if _, err := Verify(f.h.PublicKey(), Sign(otherPriv, forged), now); !errors.Is(err, ErrSignature) {
		t.Errorf("licence signed by another key: %v, want ErrSignature", err)
	}
}

// TestRequests: every refusal of POST /v1/licences. Mutations caught: no
// session check (401 rows), no track lookup (404 row), country from the
// body (the KP session row is 200; the body's "country" is an unknown
// field), no rate limit (429 row).
func TestRequests(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	f := newFixture(t, &now)
	for _, c := range []struct {
		user, country, body string
		want                int
	}{
		{"u1", "SE", `{"track_id":"t1","device_id":"d1"}`, 200},
		{"", "", `{"track_id":"t1","device_id":"d1"}`, 401},
		{"u1", "KP", `{"track_id":"t1","device_id":"d1"}`, 403},
		{"u1", "SE", `{"track_id":"nosuch","device_id":"d1"}`, 404},
		{"u1", "SE", `{"track_id":"../x","device_id":"d1"}`, 400},
		{"u1", "SE", `{"track_id":"t1","device_id":""}`, 400},
		{"u1", "SE", `{"track_id":"t1","device_id":"d1","user_id":"u2"}`, 400},
		{"u1", "KP", `{"track_id":"t1","device_id":"d1","country":"SE"}`, 400},
		{"u2", "SE", `not json`, 400},
	} {
		rec := f.post(t, c.user, c.country, c.body)
		if rec.Code != c.want {
			t.Errorf("POST %s as %q/%s = %d, want %d", c.body, c.user, c.country, rec.Code, c.want)
		}
		if rec.Code == 401 && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("401 without WWW-Authenticate")
		}
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/v1/licences", strings.NewReader(`{"track_id":"t1","device_id":"d1"}`))
	req.Header.Set("Authorization", "Bearer not.a.token")
	f.h.ServeHTTP(rec, req)
	if rec.Code != 401 {
		t.Errorf("bad token = %d, want 401", rec.Code)
	}
	// u1 has used its burst of 7, and nothing refilled (the clock
	// stands still): limited; u3 is not.
	if rec := f.post(t, "u1", "SE", `{"track_id":"t1","device_id":"d1"}`); rec.Code != 429 || rec.Header().Get("Retry-After") == "" {
		t.Errorf("u1 past the burst = %d (Retry-After %q), want 429", rec.Code, rec.Header().Get("Retry-After"))
	}
	if rec := f.post(t, "u3", "SE", `{"track_id":"t1","device_id":"d1"}`); rec.Code != 200 {
		t.Errorf("u3 = %d, want 200", rec.Code)
	}
	rec = httptest.NewRecorder()
	f.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/licences/key", nil))
	var k KeyResponse
	if json.Unmarshal(rec.Body.Bytes(), &k); !bytes.Equal(k.PublicKey, f.h.PublicKey()) {
		t.Errorf("GET key = %s", rec.Body)
	}
	rec = httptest.NewRecorder()
	f.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/licences", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/licences = %d, want 405", rec.Code)
	}
}

func FuzzVerify(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	fx := newFixture(f, &now)
	tok, _, err := fx.h.Issue(identity.User{ID: "u", Country: "SE"}, "d", "t1", 1000)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(tok)
	f.Add("a.b")
	f.Fuzz(func(t *testing.T, s string) {
		l, err := Verify(fx.h.PublicKey(), s, now)
		if err == nil && s != tok {
			// only a token signed by the key verifies
			if _, err2 := Verify(fx.h.PublicKey(), tok, now); err2 != nil || l.TrackID != "t1" {
				t.Fatalf("forged licence %q verified", s)
			}
		}
	})
}
