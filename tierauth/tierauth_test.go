package tierauth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/musiccdn/cdn/ident"
)

var (
	cur  = KeyConfig{ID: "t2", Secret: strings.Repeat("ab", 32)}
	prev = KeyConfig{ID: "t1", Secret: strings.Repeat("cd", 32)}
	t0   = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
)

func mustNew(t testing.TB, keys ...KeyConfig) *Keyring {
	t.Helper()
	kr, err := New(keys)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// TestVerify covers every way a credential is refused.
// Mutations caught: dropping the method or the target from the MAC (wrong
// method / wrong path rows), dropping the skew check or using only one
// side of it (skewed rows), looking only at keys[0] (previous key row),
// accepting any key id (unknown key row), non-strict base64 (padding-bits
// row).
func TestVerify(t *testing.T) {
	signer := mustNew(t, cur)
	old := mustNew(t, prev)
	other := mustNew(t, KeyConfig{ID: "t2", Secret: strings.Repeat("ef", 32)})
	verifier := mustNew(t, cur, prev)
	const target = "/media/t5/320.ogg"
	good := signer.Sign("GET", target, t0)
	tampered := []byte(good)
	tampered[len(tampered)-2] ^= 1
	// Flip the last character's low bits: base64 of 32 bytes has 2 unused
	// bits in its last character, which strict decoding must refuse.
	padBits := []byte(good)
	last := padBits[len(padBits)-1]
	padBits[len(padBits)-1] = strictB64Alphabet[(strings.IndexByte(strictB64Alphabet, last) | 1)]
	for _, tc := range []struct {
		name   string
		cred   string
		method string
		target string
		now    time.Time
		want   error
	}{
		{"good", good, "GET", target, t0, nil},
		{"good, 59 s late", good, "GET", target, t0.Add(59 * time.Second), nil},
		{"good, 59 s early", good, "GET", target, t0.Add(-59 * time.Second), nil},
		{"previous key", old.Sign("GET", target, t0), "GET", target, t0, nil},
		{"missing", "", "GET", target, t0, ErrMissing},
		{"unknown key id", mustNew(t, KeyConfig{ID: "zz", Secret: cur.Secret}).Sign("GET", target, t0), "GET", target, t0, ErrUnknownKey},
		{"wrong secret, same id", other.Sign("GET", target, t0), "GET", target, t0, ErrSignature},
		{"tampered", string(tampered), "GET", target, t0, ErrSignature},
		{"wrong path", good, "GET", "/media/t5/24.ogg", t0, ErrSignature},
		{"wrong query", good, "GET", target + "?x=1", t0, ErrSignature},
		{"wrong method", good, "HEAD", target, t0, ErrSignature},
		{"expired", good, "GET", target, t0.Add(61 * time.Second), ErrSkew},
		{"from the future", good, "GET", target, t0.Add(-61 * time.Second), ErrSkew},
		{"timestamp changed", strings.Replace(good, ".1", ".2", 1), "GET", target, t0, ErrSignature},
		{"padding bits", string(padBits), "GET", target, t0, ErrMalformed},
		{"two fields", "t2.123", "GET", target, t0, ErrMalformed},
		{"four fields", good + ".x", "GET", target, t0, ErrMalformed},
		{"signed number", strings.Replace(good, ".1", ".+1", 1), "GET", target, t0, ErrMalformed},
		{"short signature", good[:len(good)-1], "GET", target, t0, ErrMalformed},
		{"bad key id", "a.b" + good[2:], "GET", target, t0, ErrMalformed},
		{"garbage", "...", "GET", target, t0, ErrMalformed},
	} {
		err := verifier.Verify([]byte(tc.cred), []byte(tc.method), []byte(tc.target), tc.now)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: Verify(%q, %s %s) = %v, want %v", tc.name, tc.cred, tc.method, tc.target, err, tc.want)
		}
	}
}

const strictB64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

func TestNewErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		keys []KeyConfig
		want string
	}{
		{nil, "at least one key"},
		{[]KeyConfig{{ID: "", Secret: cur.Secret}}, "[0].id"},
		{[]KeyConfig{{ID: "a.b", Secret: cur.Secret}}, "[0].id"},
		{[]KeyConfig{cur, {ID: "t2", Secret: prev.Secret}}, "[1].id"},
		{[]KeyConfig{{ID: "a", Secret: "xyz"}}, "[0].secret: not hex"},
		{[]KeyConfig{{ID: "a", Secret: strings.Repeat("ab", 31)}}, "[0].secret: 31 bytes"},
	} {
		if _, err := New(tc.keys); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error containing %q", tc.keys, err, tc.want)
		}
	}
}

// TestVerifyDoesNotAllocate guards the fill path. Mutations caught:
// hmac.New per call, a non-pooled Sum buffer, base64 DecodeString.
func TestVerifyDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	kr := mustNew(t, cur, prev)
	cred := []byte(kr.Sign("GET", "/peer/media/t1/96.ogg", t0))
	method, target := []byte("GET"), []byte("/peer/media/t1/96.ogg")
	allocs := testing.AllocsPerRun(1000, func() {
		if err := kr.Verify(cred, method, target, t0); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Verify allocates %.1f times per call, want 0", allocs)
	}
}

func BenchmarkVerify(b *testing.B) {
	kr := mustNew(b, cur, prev)
	cred := []byte(kr.Sign("GET", "/media/t1/96.ogg", t0))
	method, target := []byte("GET"), []byte("/media/t1/96.ogg")
	b.ReportAllocs()
	for b.Loop() {
		kr.Verify(cred, method, target, t0)
	}
}

// FuzzParse: the header parser never panics, and whatever it accepts is
// made only of the allowed alphabets; Verify of arbitrary input never
// succeeds without the key.
func FuzzParse(f *testing.F) {
	kr := mustNew(f, cur)
	f.Add(kr.Sign("GET", "/media/t1/24.ogg", t0))
	f.Add("")
	f.Add("a.1.")
	f.Add("t2.1764244800." + strings.Repeat("A", 43))
	f.Add("t2..." + strings.Repeat("A", 43))
	f.Fuzz(func(t *testing.T, s string) {
		kid, ts, sig, ok := Parse([]byte(s))
		if ok {
			if len(kid)+len(ts)+len(sig)+2 != len(s) || !ident.Valid(kid, MaxKeyIDLen) || len(sig) != sigLen {
				t.Fatalf("Parse(%q) accepted %q %q %q", s, kid, ts, sig)
			}
			if _, ok := ident.ParseUnix(ts); !ok {
				t.Fatalf("Parse(%q) accepted timestamp %q", s, ts)
			}
		}
		if err := kr.Verify([]byte(s), []byte("GET"), []byte("/media/t1/24.ogg"), t0); err == nil && s != kr.Sign("GET", "/media/t1/24.ogg", t0) {
			t.Fatalf("Verify accepted %q", s)
		}
	})
}

// TestKnownAnswer pins the wire format with a vector computed outside Go
// (Python's hmac, as bench/vs-nginx.sh does):
// HMAC-SHA256(secret, "tierauth-v1\0<kid>\0<method>\0<target>\0<ts>"),
// base64url without padding.
func TestKnownAnswer(t *testing.T) {
	kr := mustNew(t, cur)
	at := time.Unix(1764244800, 0)
	const want = "t2.1764244800.uhpbbhOcpxtCrl-R1s9pAqja3u88tsGMbjburJs3Ay0"
	if got := kr.Sign("GET", "/media/t5/320.ogg", at); got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
	if err := kr.Verify([]byte(want), []byte("GET"), []byte("/media/t5/320.ogg"), at); err != nil {
		t.Fatal(err)
	}
}
