package playticket

import (
	"bytes"
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/musiccdn/cdn/catalog"
)

var testNow = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func testRing(t testing.TB, ids ...string) *Keyring {
	t.Helper()
	var keys []Key
	for _, id := range ids {
		keys = append(keys, Key{ID: id, Secret: bytes.Repeat([]byte(id[:1]), 32)})
	}
	kr, err := NewKeyring(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

var testClaims = Claims{PlayID: NewID(testNow), UserID: "demo-SE", TrackID: "t42", Country: "SE", IssuedMS: testNow.UnixMilli(), DurationMS: 215000}

func TestRoundTrip(t *testing.T) {
	kr := testRing(t, "a")
	tk, err := kr.Mint(testClaims)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kr.Verify(tk)
	if err != nil || c != testClaims {
		t.Fatalf("Verify(%q) = %+v, %v; want %+v", tk, c, err, testClaims)
	}
	// Rotation: a ring whose first key is new still verifies the old.
	rot := testRing(t, "b", "a")
	if c, err := rot.Verify(tk); err != nil || c != testClaims {
		t.Fatalf("rotated ring: %+v, %v", c, err)
	}
	if _, err := testRing(t, "b").Verify(tk); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("ring without the key: %v, want ErrUnknownKey", err)
	}
	// Same id, other secret.
	other, _ := NewKeyring(Key{ID: "a", Secret: bytes.Repeat([]byte("z"), 32)})
	if _, err := other.Verify(tk); !errors.Is(err, ErrForged) {
		t.Fatalf("other secret: %v, want ErrForged", err)
	}
}

// TestTamper changes each field of a ticket in turn: every change must be
// refused. Mutations caught: leaving a field out of the MAC input (only
// possible by hashing less than the whole body: every row here then
// passes for that field; the per-character loop catches a MAC over all but
// the last bytes), comparing only part of the tag (the "tag" rows),
// accepting a second version.
func TestTamper(t *testing.T) {
	kr := testRing(t, "a", "b")
	tk, _ := kr.Mint(testClaims)
	f := strings.Split(tk, ".")
	if len(f) != 9 {
		t.Fatalf("ticket %q has %d fields", tk, len(f))
	}
	repl := []string{"p2", "b", NewID(testNow.Add(time.Millisecond)), "demo-US", "t43", "US", "1700000000000", "999999", strings.Repeat("A", 22)}
	for i := range f {
		g := append([]string(nil), f...)
		g[i] = repl[i]
		bad := strings.Join(g, ".")
		if _, err := kr.Verify(bad); err == nil {
			t.Errorf("field %d changed to %q: accepted", i, repl[i])
		}
	}
	// Every single-character change of the tagged body (each character
	// replaced by another of its class) is refused: the tag covers every
	// byte.
	body := tk[:len(tk)-tagB64-1]
	for i := range len(body) {
		c := body[i]
		var r byte
		switch {
		case c == '.':
			continue
		case c >= '0' && c <= '8':
			r = c + 1
		case c == '9':
			r = '1'
		default:
			r = 'Q'
			if c == 'Q' {
				r = 'R'
			}
		}
		bad := tk[:i] + string(r) + tk[i+1:]
		if _, err := kr.Verify(bad); err == nil {
			t.Errorf("body byte %d changed %q -> %q: accepted", i, c, r)
		}
	}
	// One bit of the tag, first and last character.
	for _, i := range []int{len(tk) - 1, len(tk) - tagB64} {
		b := []byte(tk)
		b[i] ^= 1
		if _, err := kr.Verify(string(b)); err == nil {
			t.Errorf("tag byte %d flipped: accepted", i)
		}
	}
	for _, bad := range []string{"", ".", tk + ".", tk[:len(tk)-1], "x" + tk, strings.Replace(tk, ".", "..", 1), tk + strings.Repeat("A", MaxLen)} {
		if _, err := kr.Verify(bad); err == nil {
			t.Errorf("Verify(%q) accepted", bad)
		}
	}
}

func TestMintRefusesBadClaims(t *testing.T) {
	kr := testRing(t, "a")
	for _, c := range []Claims{
		{PlayID: "p.1", UserID: "u", TrackID: "t", Country: "SE", IssuedMS: 1},
		{PlayID: "p", UserID: "", TrackID: "t", Country: "SE", IssuedMS: 1},
		{PlayID: "p", UserID: "u", TrackID: "t", Country: "S", IssuedMS: 1},
		{PlayID: "p", UserID: "u", TrackID: "t", Country: "SE", IssuedMS: 0},
		{PlayID: "p", UserID: "u", TrackID: "t", Country: "SE", IssuedMS: 1, DurationMS: -1},
	} {
		if tk, err := kr.Mint(c); err == nil {
			t.Errorf("Mint(%+v) = %q", c, tk)
		}
	}
}

func TestNewKeyring(t *testing.T) {
	for _, keys := range [][]Key{nil, {{ID: "", Secret: make([]byte, 32)}}, {{ID: "a.b", Secret: make([]byte, 32)}}, {{ID: "a", Secret: make([]byte, 31)}}, {{ID: "a", Secret: make([]byte, 32)}, {ID: "a", Secret: make([]byte, 32)}}} {
		if _, err := NewKeyring(keys...); err == nil {
			t.Errorf("NewKeyring(%v) accepted", keys)
		}
	}
}

func TestNewIDOrder(t *testing.T) {
	var ids []string
	for i := range 100 {
		ids = append(ids, NewID(testNow.Add(time.Duration(i)*time.Millisecond)))
	}
	if !sort.StringsAreSorted(ids) {
		t.Fatalf("ids not in time order: %v", ids)
	}
	for i, id := range ids {
		at, ok := IDTime(id)
		if !ok || !at.Equal(testNow.Add(time.Duration(i)*time.Millisecond)) {
			t.Fatalf("IDTime(%q) = %v, %v", id, at, ok)
		}
		if !catalog.ValidPlayID(id) {
			t.Fatalf("NewID made %q, not a valid id", id)
		}
	}
	if NewID(testNow) == NewID(testNow) {
		t.Fatal("two ids in one millisecond are equal")
	}
	for _, bad := range []string{"", "8ZZZZZZZZZZZZZZZZZZZZZZZZZ", "0000000000000000000000000u", "000000000000000000000000000"} {
		if _, ok := IDTime(bad); ok {
			t.Errorf("IDTime(%q) ok", bad)
		}
	}
}

// FuzzVerify: Verify never panics, and whatever it accepts re-mints to the
// same ticket (so the parser and the minter agree on every byte).
func FuzzVerify(f *testing.F) {
	kr := testRing(f, "a")
	tk, _ := kr.Mint(testClaims)
	f.Add(tk)
	f.Add(tk[:len(tk)-2])
	f.Add("p1.a.b.c.d.SE.1.2.AAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := kr.Verify(s)
		if err != nil {
			return
		}
		again, err := kr.Mint(c)
		if err != nil || again != s {
			t.Fatalf("Verify(%q) = %+v, which mints %q, %v", s, c, again, err)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	kr := testRing(b, "a", "b")
	tk, _ := kr.Mint(testClaims)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kr.Verify(tk); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMint(b *testing.B) {
	kr := testRing(b, "a")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kr.Mint(testClaims); err != nil {
			b.Fatal(err)
		}
	}
}
