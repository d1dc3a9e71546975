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
)

func newHandler(t *testing.T, now *time.Time) *Handler {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(nil)
	cfg := DefaultConfig(priv, bytes.Repeat([]byte{7}, 32))
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
	return h
}

func post(h http.Handler, body string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/licences", strings.NewReader(body)))
	return rec
}

func TestIssueAndVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	h := newHandler(t, &now)
	rec := post(h, `{"track_id":"t1","user_id":"u1","device_id":"d1","country":"SE"}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("POST = %d %s", rec.Code, rec.Body)
	}
	var resp Response
	json.Unmarshal(rec.Body.Bytes(), &resp)
	l, err := Verify(h.PublicKey(), resp.Licence, now)
	if err != nil {
		t.Fatal(err)
	}
	if l.TrackID != "t1" || l.Expires != now.Add(30*24*time.Hour).Unix() || len(l.WrapKey) != 16 {
		t.Errorf("licence = %+v", l)
	}
	// expiry against the injected clock
	if _, err := Verify(h.PublicKey(), resp.Licence, now.Add(30*24*time.Hour-time.Second)); err != nil {
		t.Errorf("a second before expiry: %v", err)
	}
	if _, err := Verify(h.PublicKey(), resp.Licence, now.Add(30*24*time.Hour)); !errors.Is(err, ErrExpired) {
		t.Errorf("at expiry err = %v, want ErrExpired", err)
	}
	// a renewal a month later carries the same wrap key
	later := now.Add(40 * 24 * time.Hour)
	now = later
	rec = post(h, `{"track_id":"t1","user_id":"u1","device_id":"d1","country":"SE"}`)
	var resp2 Response
	json.Unmarshal(rec.Body.Bytes(), &resp2)
	l2, err := Verify(h.PublicKey(), resp2.Licence, later)
	if err != nil || !bytes.Equal(l2.WrapKey, l.WrapKey) {
		t.Errorf("renewal: %v, same key %v", err, bytes.Equal(l2.WrapKey, l.WrapKey))
	}
	// any tampering breaks the signature
	for i := range len(resp.Licence) {
		b := []byte(resp.Licence)
		if b[i] == '.' {
			continue
		}
		b[i] ^= 1
		if _, err := Verify(h.PublicKey(), string(b), now); err == nil {
			t.Fatalf("tampered licence (byte %d) verified", i)
		}
	}
	other, _, _ := ed25519.GenerateKey(nil)
	if _, err := Verify(other, resp.Licence, now); !errors.Is(err, ErrSignature) {
		t.Errorf("wrong key err = %v, want ErrSignature", err)
	}
}

func TestRequests(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	h := newHandler(t, &now)
	for _, c := range []struct {
		body string
		want int
	}{
		{`{"track_id":"t1","user_id":"u1","device_id":"d1","country":"SE"}`, 200},
		{`{"track_id":"t1","user_id":"u1","device_id":"d1","country":"KP"}`, 403},
		{`{"track_id":"../x","user_id":"u1","device_id":"d1","country":"SE"}`, 400},
		{`{"track_id":"t1","user_id":"","device_id":"d1","country":"SE"}`, 400},
		{`{"track_id":"t1","user_id":"u1","device_id":"d1","country":"se"}`, 400},
		{`{"track_id":"t1","extra":1}`, 400},
		{`not json`, 400},
	} {
		if got := post(h, c.body).Code; got != c.want {
			t.Errorf("POST %s = %d, want %d", c.body, got, c.want)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/licences/key", nil))
	var k KeyResponse
	if json.Unmarshal(rec.Body.Bytes(), &k); !bytes.Equal(k.PublicKey, h.PublicKey()) {
		t.Errorf("GET key = %s", rec.Body)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/licences", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/licences = %d, want 405", rec.Code)
	}
}

func FuzzVerify(f *testing.F) {
	_, priv, _ := ed25519.GenerateKey(nil)
	now := time.Unix(1_800_000_000, 0)
	h, _ := New(Config{SigningKey: priv, WrapSecret: bytes.Repeat([]byte{1}, 32), TTL: time.Hour, Now: func() time.Time { return now }})
	tok, _ := h.Issue(Request{TrackID: "t1", UserID: "u", DeviceID: "d", Country: "SE"})
	f.Add(tok)
	f.Add("a.b")
	f.Fuzz(func(t *testing.T, s string) {
		l, err := Verify(h.PublicKey(), s, now)
		if err == nil && s != tok {
			// only a token signed by the key verifies
			if _, err2 := Verify(h.PublicKey(), tok, now); err2 != nil || l.TrackID != "t1" {
				t.Fatalf("forged licence %q verified", s)
			}
		}
	})
}
