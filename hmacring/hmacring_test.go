package hmacring

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

var (
	keyA = Key{ID: "a", Secret: []byte("aaaaaaaaaaaaaaaa")}
	keyB = Key{ID: "b-2", Secret: []byte("bbbbbbbbbbbbbbbb")}
)

// reference is HMAC-SHA256 written out with crypto/hmac, fields joined by
// NUL.
func reference(secret []byte, fields ...string) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(strings.Join(fields, "\x00")))
	return h.Sum(nil)
}

// TestSum checks Sum and SumString against crypto/hmac. Mutations caught:
// dropping the NUL separator, writing one before the first field, keying
// with another key's secret, not resetting a pooled state.
func TestSum(t *testing.T) {
	r, err := New(16, keyA, keyB)
	if err != nil {
		t.Fatal(err)
	}
	for _, fields := range [][]string{{"x"}, {"v1", "a", "GET", "/media/t1"}, {"", ""}, {"ab", "c"}, {"a", "bc"}} {
		for _, k := range []Key{keyA, keyB} {
			m := r.Lookup([]byte(k.ID))
			bs := make([][]byte, len(fields))
			for i, f := range fields {
				bs[i] = []byte(f)
			}
			want := reference(k.Secret, fields...)
			// Twice, so a second use of a pooled state is checked too.
			for range 2 {
				if got := m.Sum(bs...); !bytes.Equal(got[:], want) {
					t.Errorf("key %s: Sum(%q) = %x, want %x", k.ID, fields, got, want)
				}
			}
			joined := strings.Join(fields, "\x00")
			if got := m.SumString(joined); !bytes.Equal(got[:], want) {
				t.Errorf("key %s: SumString(%q) = %x, want %x", k.ID, joined, got, want)
			}
			if got, want := m.Sign(bs...), base64.RawURLEncoding.EncodeToString(want); got != want {
				t.Errorf("key %s: Sign(%q) = %s, want %s", k.ID, fields, got, want)
			}
		}
	}
}

// TestRotation: a ring signs with its first key and verifies with all.
// Mutations caught: Current returning the last key, Lookup matching a
// prefix of an id, Verify ignoring the key.
func TestRotation(t *testing.T) {
	old, _ := New(16, keyA)
	cur, _ := New(16, keyB, keyA)
	if got := cur.Current().ID(); got != "b-2" {
		t.Fatalf("Current().ID() = %q, want b-2", got)
	}
	field := []byte("object")
	for _, tc := range []struct {
		signer *Ring
		want   bool
	}{{old, true}, {cur, true}} {
		m := tc.signer.Current()
		sig := []byte(m.Sign(field))
		k := cur.Lookup([]byte(m.ID()))
		if k == nil || k.Verify(sig, field) != nil {
			t.Errorf("a signature by %s does not verify on the rotated ring", m.ID())
		}
	}
	if old.Lookup([]byte("b-2")) != nil {
		t.Error("the old ring knows the new key")
	}
	for _, id := range []string{"", "b", "b-", "b-2x", "A"} {
		if cur.Lookup([]byte(id)) != nil || cur.LookupString(id) != nil {
			t.Errorf("Lookup(%q) found a key", id)
		}
	}
	if cur.LookupString("a") != cur.Lookup([]byte("a")) || cur.LookupString("a") == nil {
		t.Error("LookupString and Lookup disagree on a")
	}
	// The same fields signed by another key do not verify.
	sig := []byte(old.Current().Sign(field))
	if err := cur.Lookup([]byte("b-2")).Verify(sig, field); err != ErrMismatch {
		t.Errorf("Verify(a's signature) with b = %v, want ErrMismatch", err)
	}
}

// TestVerify: the signature must be the strict encoding of the MAC of
// exactly these fields. Mutations caught: non-strict base64 (the
// padding-bits row), skipping the length check (the short and long rows),
// comparing a prefix only.
func TestVerify(t *testing.T) {
	r, _ := New(16, keyA)
	m := r.Current()
	f1, f2 := []byte("one"), []byte("two")
	sig := m.Sign(f1, f2)
	// The last character of a 43-character encoding carries 2 padding
	// bits; setting one spells the same MAC another way.
	last := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", sig[len(sig)-1])
	alt := sig[:len(sig)-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last^1])
	flipped := []byte(sig)
	flipped[3] ^= 1
	if flipped[3] == '.' {
		flipped[3] = 'A'
	}
	for _, tc := range []struct {
		name   string
		sig    string
		fields [][]byte
		want   error
	}{
		{"good", sig, [][]byte{f1, f2}, nil},
		{"other fields", sig, [][]byte{f2, f1}, ErrMismatch},
		{"joined fields", sig, [][]byte{[]byte("one\x00two")}, nil},
		{"one field fewer", sig, [][]byte{f1}, ErrMismatch},
		{"flipped", string(flipped), [][]byte{f1, f2}, ErrMismatch},
		{"padding bits", alt, [][]byte{f1, f2}, ErrMalformed},
		{"short", sig[:42], [][]byte{f1, f2}, ErrMalformed},
		{"long", sig + "A", [][]byte{f1, f2}, ErrMalformed},
		{"padded", sig + "=", [][]byte{f1, f2}, ErrMalformed},
		{"not base64", strings.Repeat("*", SigLen), [][]byte{f1, f2}, ErrMalformed},
		{"empty", "", [][]byte{f1, f2}, ErrMalformed},
	} {
		if got := m.Verify([]byte(tc.sig), tc.fields...); got != tc.want {
			t.Errorf("%s: Verify(%q) = %v, want %v", tc.name, tc.sig, got, tc.want)
		}
	}
}

// TestNew: bad keys are refused, naming the key at fault. Mutations
// caught: dropping any of the checks, an off-by-one in the secret length.
func TestNew(t *testing.T) {
	for _, tc := range []struct {
		keys []Key
		want string
	}{
		{nil, "at least one key"},
		{[]Key{{ID: "", Secret: keyA.Secret}}, "[0].id"},
		{[]Key{keyA, {ID: "a.b", Secret: keyA.Secret}}, "[1].id"},
		{[]Key{{ID: strings.Repeat("k", 17), Secret: keyA.Secret}}, "[0].id"},
		{[]Key{keyA, keyB, {ID: "a", Secret: keyB.Secret}}, `[2].id: key id "a" used twice`},
		{[]Key{{ID: "a", Secret: keyA.Secret[:15]}}, "[0].secret: 15 bytes"},
	} {
		_, err := New(16, tc.keys...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%v) = %v, want an error containing %q", tc.keys, err, tc.want)
		}
	}
	if _, err := New(16, Key{ID: strings.Repeat("k", 16), Secret: keyA.Secret}); err != nil {
		t.Errorf("New(16-character id, 16-byte secret) = %v", err)
	}
}

// TestNewCopiesSecret: changing the caller's secret after New does not
// change the ring's key. Mutation caught: keeping the caller's slice.
func TestNewCopiesSecret(t *testing.T) {
	k := Key{ID: "a", Secret: bytes.Clone(keyA.Secret)}
	r, _ := New(16, k)
	k.Secret[0] = 'z'
	if got := r.Current().Sum([]byte("x")); !bytes.Equal(got[:], reference(keyA.Secret, "x")) {
		t.Error("the ring's key changed with the caller's secret")
	}
}

// TestDecode: configured keys decode from hex, and each fault names its
// entry. Mutations caught: dropping the hex, length, id or duplicate
// check; comparing the length of the hex instead of the bytes.
func TestDecode(t *testing.T) {
	a := Config{ID: "a", Secret: hex.EncodeToString(keyA.Secret)}
	b := Config{ID: "b", Secret: strings.Repeat("0f", 16)}
	keys, err := Decode([]Config{a, b}, 16)
	if err != nil || len(keys) != 2 || keys[0].ID != "a" || !bytes.Equal(keys[0].Secret, keyA.Secret) || keys[1].Secret[0] != 0x0f {
		t.Fatalf("Decode = %v, %v", keys, err)
	}
	for _, tc := range []struct {
		kc   []Config
		want string
	}{
		{[]Config{{ID: "a", Secret: "xyz"}}, "[0].secret: not hex"},
		{[]Config{a, {ID: "c", Secret: strings.Repeat("ab", 15)}}, "[1].secret: 15 bytes, want at least 16 (32 hex digits)"},
		{[]Config{a, {ID: "a/", Secret: b.Secret}}, "[1].id: want 1 to 16 characters"},
		{[]Config{a, b, {ID: "b", Secret: b.Secret}}, `[2].id: key id "b" used twice`},
	} {
		_, err := Decode(tc.kc, 16)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Decode(%v) = %v, want an error containing %q", tc.kc, err, tc.want)
		}
	}
}

// TestNoAllocs guards the fill and token paths. Mutations caught:
// converting SumString's string with []byte(s), returning a slice of the
// pooled state, allocating a state per call.
func TestNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	r, _ := New(16, keyA, keyB)
	f1, f2, kid := []byte("GET"), []byte("/media/t1/320.ogg"), []byte("b-2")
	sig := []byte(r.Lookup(kid).Sign(f1, f2))
	body := "p1.a.play.user.track.SE.1.2"
	n := testing.AllocsPerRun(1000, func() {
		m := r.Lookup(kid)
		if m.Verify(sig, f1, f2) != nil {
			t.Fatal("does not verify")
		}
		m.Sum(f1, f2)
		m.SumString(body)
		r.LookupString("b-2")
	})
	if n != 0 {
		t.Errorf("Lookup+Verify+Sum+SumString+LookupString: %v allocs, want 0", n)
	}
}

// FuzzVerify: no input panics; a signature verifies only for the fields
// it was made from, and Sign's output always does.
func FuzzVerify(f *testing.F) {
	r, _ := New(16, keyA)
	m := r.Current()
	f.Add([]byte(m.Sign([]byte("a"), []byte("b"))), []byte("a"), []byte("b"))
	f.Add([]byte(strings.Repeat("A", SigLen)), []byte(""), []byte("\x00"))
	f.Add([]byte("not a signature"), []byte("x"), []byte("y"))
	f.Fuzz(func(t *testing.T, sig, a, b []byte) {
		err := m.Verify(sig, a, b)
		if err != nil && err != ErrMalformed && err != ErrMismatch {
			t.Fatalf("Verify = %v", err)
		}
		want := m.Sign(a, b)
		if (err == nil) != (string(sig) == want) {
			t.Fatalf("Verify(%q, %q, %q) = %v, but Sign gives %q", sig, a, b, err, want)
		}
		if err := m.Verify([]byte(want), a, b); err != nil {
			t.Fatalf("Verify(Sign(%q, %q)) = %v", a, b, err)
		}
	})
}
