package urlsign

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var (
	now  = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	keyA = Key{ID: "a", Secret: []byte("0123456789abcdef")}
	keyB = Key{ID: "b", Secret: []byte("fedcba9876543210")}
)

func TestVerify(t *testing.T) {
	old, _ := NewKeyring(keyA)
	cur, _ := NewKeyring(keyB, keyA) // rotated: b signs, a still accepted
	next, _ := NewKeyring(Key{ID: "c", Secret: []byte("cccccccccccccccc")}, keyB)
	good := cur.Sign("t1/24.ogg", "SE", now.Add(time.Hour))
	prev := old.Sign("t1/24.ogg", "SE", now.Add(time.Hour))
	flip := func(s string, i int) string {
		b := []byte(s)
		b[i] ^= 1
		return string(b)
	}
	parts := strings.Split(good, ".")
	cases := []struct {
		name, token, track string
		kr                 *Keyring
		err                error
	}{
		{"good", good, "t1/24.ogg", cur, nil},
		{"previous key still accepted", prev, "t1/24.ogg", cur, nil},
		{"key rotated out", prev, "t1/24.ogg", next, ErrUnknownKey},
		{"other track", good, "t2/24.ogg", cur, ErrSignature},
		// Issue 10 row 9: a token is bound to the object, tier and kind
		// included.
		{"row 9: other tier", good, "t1/320.ogg", cur, ErrSignature},
		{"row 9: seek table with an audio token", good, "t1/24.seek", cur, ErrSignature},
		{"object prefix", good, "t1/24.og", cur, ErrSignature},
		{"track only (v1 binding)", good, "t1", cur, ErrSignature},
		{"expired", cur.Sign("t1/24.ogg", "SE", now), "t1/24.ogg", cur, ErrExpired},
		{"tampered MAC", flip(good, len(good)-2), "t1/24.ogg", cur, ErrSignature},
		{"tampered expiry", strings.Join([]string{parts[0], "9999999999", parts[2], parts[3]}, "."), "t1/24.ogg", cur, ErrSignature},
		{"tampered country", strings.Join([]string{parts[0], parts[1], "NO", parts[3]}, "."), "t1/24.ogg", cur, ErrSignature},
		{"lower-case country", strings.Join([]string{parts[0], parts[1], "se", parts[3]}, "."), "t1/24.ogg", cur, ErrMalformed},
		{"three fields", "b.1.SE", "t1/24.ogg", cur, ErrMalformed},
		{"five fields", good + ".x", "t1/24.ogg", cur, ErrMalformed},
		{"empty", "", "t1/24.ogg", cur, ErrMalformed},
		{"short MAC", strings.Join([]string{parts[0], parts[1], parts[2], "abc"}, "."), "t1/24.ogg", cur, ErrMalformed},
		{"signed expiry", strings.Join([]string{parts[0], "-5", parts[2], parts[3]}, "."), "t1/24.ogg", cur, ErrMalformed},
	}
	for _, tc := range cases {
		c, err := tc.kr.Verify([]byte(tc.token), []byte(tc.track), now)
		if !errors.Is(err, tc.err) {
			t.Errorf("Verify(%s) = %v, want %v", tc.name, err, tc.err)
		}
		if err == nil && string(c.Country[:]) != "SE" {
			t.Errorf("Verify(%s): country %q", tc.name, c.Country)
		}
	}
}

func TestNewKeyring(t *testing.T) {
	bad := [][]Key{
		nil,
		{{ID: "", Secret: keyA.Secret}},
		{{ID: "has.dot", Secret: keyA.Secret}},
		{{ID: "a", Secret: []byte("short")}},
		{keyA, keyA},
	}
	for _, keys := range bad {
		if _, err := NewKeyring(keys...); err == nil {
			t.Errorf("NewKeyring(%v) succeeded", keys)
		}
	}
}

func TestVerifyAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	kr, _ := NewKeyring(keyA)
	tok := []byte(kr.Sign("t1/24.ogg", "SE", now.Add(time.Hour)))
	track := []byte("t1/24.ogg")
	if n := testing.AllocsPerRun(100, func() { kr.Verify(tok, track, now) }); n != 0 {
		t.Errorf("Verify allocates %v times", n)
	}
}

// FuzzVerify: no input panics, and no token but the one signed verifies.
func FuzzVerify(f *testing.F) {
	kr, _ := NewKeyring(keyA)
	good := kr.Sign("t1/24.ogg", "SE", now.Add(time.Hour))
	f.Add(good, "t1/24.ogg")
	f.Add("a.1.SE.xx", "t1/24.ogg")
	f.Add("....", "")
	f.Add("a.999999999999.SE."+strings.Repeat("A", 43), "t1/24.ogg")
	f.Add(good, "t1/320.ogg")
	f.Add(good, "t1/24.seek")
	f.Fuzz(func(t *testing.T, tok, object string) {
		c, err := kr.Verify([]byte(tok), []byte(object), now)
		if err == nil && (tok != good || object != "t1/24.ogg") {
			t.Fatalf("Verify(%q, %q) accepted a token that was not signed for it", tok, object)
		}
		if err == nil && (string(c.Country[:]) != "SE" || c.Expiry != now.Add(time.Hour).Unix()) {
			t.Fatalf("Verify(%q) = %+v, not the signed claims", tok, c)
		}
		// The signer's output always verifies for its own object, and
		// for no other.
		if len(object) < 64 && !strings.ContainsRune(object, 0) {
			tok2 := kr.Sign(object, "SE", now.Add(time.Minute))
			if _, err := kr.Verify([]byte(tok2), []byte(object), now); err != nil {
				t.Fatalf("Verify(Sign(%q)) = %v", object, err)
			}
			if _, err := kr.Verify([]byte(tok2), []byte(object+"x"), now); err == nil {
				t.Fatalf("Sign(%q) verified for %q", object, object+"x")
			}
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	kr, _ := NewKeyring(keyA)
	tok := []byte(kr.Sign("t1/24.ogg", "SE", now.Add(time.Hour)))
	track := []byte("t1/24.ogg")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kr.Verify(tok, track, now); err != nil {
			b.Fatal(err)
		}
	}
}

func TestNonCanonicalMAC(t *testing.T) {
	kr, _ := NewKeyring(keyA)
	good := kr.Sign("t1/24.ogg", "SE", now.Add(time.Hour))
	// The last of 43 base64 characters carries 2 unused bits; flipping
	// them must not yield a second valid spelling.
	alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, good[len(good)-1])
	for d := 1; d < 4; d++ {
		tok := good[:len(good)-1] + string(alphabet[last^d])
		if _, err := kr.Verify([]byte(tok), []byte("t1/24.ogg"), now); err == nil {
			t.Fatalf("non-canonical spelling %q verified", tok)
		}
	}
}
