package offline

import (
	"bytes"
	stdctx "context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/musiccdn/cdn/identity"
	"github.com/musiccdn/cdn/origin/licence"
	"github.com/musiccdn/cdn/playticket"
	"github.com/musiccdn/cdn/seektable"
)

type fixture struct {
	store *Store
	iss   *issuer
	now   *time.Time
	dir   string
	plain []byte
	seek  []byte
}

func setup(t *testing.T) *fixture {
	t.Helper()
	now := time.Unix(1_800_000_000, 0)
	iss := newIssuer(t, &now)
	dir := t.TempDir()
	st, err := NewStore(dir, iss.PublicKey(), func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	// recognisable plaintext: an Ogg-like pattern with counters
	var plain []byte
	for i := 0; len(plain) < 150_001; i++ {
		plain = fmt.Appendf(plain, "OggS page %08d of a track that must never touch the disk in clear. ", i)
	}
	plain = plain[:150_001]
	tb := &seektable.Table{SampleRate: 44100, Channels: 2, Samples: 441000, AudioStart: 100, FileSize: int64(len(plain)),
		Entries: []seektable.Entry{{Time: 0, Granule: 0, Offset: 100}, {Time: 44100, Granule: 44100, Offset: 5000}}}
	seek, _ := tb.MarshalBinary()
	return &fixture{store: st, iss: iss, now: &now, dir: dir, plain: plain, seek: seek}
}

func (f *fixture) put(t *testing.T) {
	t.Helper()
	tok := f.iss.issue(t, "u", "t1")
	if err := f.store.Put("t1", Info{Kbps: 160}, tok, bytes.NewReader(f.plain), int64(len(f.plain)), f.seek); err != nil {
		t.Fatal(err)
	}
}

func TestRandomRanges(t *testing.T) {
	f := setup(t)
	f.put(t)
	tr, err := f.store.Open("t1")
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if tr.Kbps != 160 || tr.Table.Samples != 441000 || tr.Size() != int64(len(f.plain)) {
		t.Fatalf("track = %+v", tr)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for range 300 {
		off := rng.Int64N(int64(len(f.plain)))
		n := 1 + rng.IntN(40000)
		got := make([]byte, n)
		k, err := tr.ReadAt(got, off)
		want := f.plain[off:min(int(off)+n, len(f.plain))]
		if k != len(want) || !bytes.Equal(got[:k], want) {
			t.Fatalf("ReadAt(%d bytes at %d) = %d bytes, mismatch", n, off, k)
		}
		if k < n && err != io.EOF {
			t.Fatalf("short read at the end: err = %v, want EOF", err)
		}
	}
	// no plaintext on disk
	ents, _ := os.ReadDir(f.dir)
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(f.dir, e.Name()))
		for i := 0; i+24 < len(f.plain); i += 997 {
			if bytes.Contains(b, f.plain[i:i+24]) {
				t.Fatalf("%s holds plaintext from offset %d", e.Name(), i)
			}
		}
		if bytes.Contains(b, f.seek[:20]) {
			t.Fatalf("%s holds the seek table in clear", e.Name())
		}
	}
}

func TestExpiredLicence(t *testing.T) {
	f := setup(t)
	f.put(t)
	*f.now = f.now.Add(31 * 24 * time.Hour)
	_, err := f.store.Open("t1")
	if !errors.Is(err, licence.ErrExpired) {
		t.Fatalf("Open after 31 days err = %v, want ErrExpired", err)
	}
	tok := f.iss.issue(t, "u", "t1")
	if err := f.store.Renew("t1", tok); err != nil {
		t.Fatal(err)
	}
	tr, err := f.store.Open("t1")
	if err != nil {
		t.Fatalf("Open after renewal: %v", err)
	}
	tr.Close()
	// A licence of another user is not taken for this download.
	other := f.iss.issue(t, "u2", "t1")
	if err := f.store.Renew("t1", other); err == nil {
		t.Fatal("Renew with another user's licence succeeded")
	}
	// Swapping the licence file for another user's: its key does not
	// open the files.
	os.WriteFile(filepath.Join(f.dir, "t1.lic"), []byte(other), 0o600)
	if _, err := f.store.Open("t1"); !errors.Is(err, ErrTampered) {
		t.Fatalf("Open with another user's licence err = %v, want ErrTampered", err)
	}
	os.WriteFile(filepath.Join(f.dir, "t1.lic"), []byte(tok), 0o600)
	// A renewal interrupted after re-sealing one file is finished by
	// running it again.
	tok2 := f.iss.issue(t, "u", "t1")
	l1, _ := licence.Verify(f.iss.h.PublicKey(), tok, *f.now)
	l2, _ := licence.Verify(f.iss.h.PublicKey(), tok2, *f.now)
	if err := rewrap(filepath.Join(f.dir, "t1.seek.enc"), l1.WrapKey, l2.WrapKey, context("t1", 160, "seek")); err != nil {
		t.Fatal(err)
	}
	if err := f.store.Renew("t1", tok2); err != nil {
		t.Fatalf("Renew after an interrupted one: %v", err)
	}
	tr, err = f.store.Open("t1")
	if err != nil {
		t.Fatalf("Open after the second renewal: %v", err)
	}
	got := make([]byte, len(f.plain))
	if n, _ := tr.ReadAt(got, 0); n != len(f.plain) || !bytes.Equal(got, f.plain) {
		t.Fatal("audio differs after renewals")
	}
	tr.Close()
}

// TestPinnedKey: a store pinned to the origin's key refuses a licence
// signed by any other key, however valid it looks (the attack of issue 10
// row 8: one's own key and a licence expiring in 2100). Mutations caught:
// a store that verifies with a key read from the licence directory, or
// that skips the signature check on Open (the forged-licence Open row).
func TestPinnedKey(t *testing.T) {
	f := setup(t)
	f.put(t)
	good, _ := os.ReadFile(filepath.Join(f.dir, "t1.lic"))
	l, _ := licence.Verify(f.iss.h.PublicKey(), string(good), *f.now)
	_, evil, _ := ed25519.GenerateKey(nil)
	l.Expires = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	forged := licence.Sign(evil, l)
	if err := f.store.Put("t2", Info{Kbps: 160}, forged, bytes.NewReader(f.plain), int64(len(f.plain)), f.seek); !errors.Is(err, licence.ErrSignature) {
		t.Errorf("Put with a forged licence: %v, want ErrSignature", err)
	}
	if err := f.store.Renew("t1", forged); !errors.Is(err, licence.ErrSignature) {
		t.Errorf("Renew with a forged licence: %v, want ErrSignature", err)
	}
	os.WriteFile(filepath.Join(f.dir, "t1.lic"), []byte(forged), 0o600)
	if _, err := f.store.Open("t1"); !errors.Is(err, licence.ErrSignature) {
		t.Errorf("Open with a forged licence: %v, want ErrSignature", err)
	}
}

// TestTakePlay: each offline play takes the next pre-issued pair, until
// they run out; a renewal brings fresh ones. Mutations caught: not
// persisting the counter (the same id twice), no bound (ErrNoPlays row).
func TestTakePlay(t *testing.T) {
	f := setup(t)
	f.put(t)
	seen := map[string]bool{}
	for range 3 {
		p, err := f.store.TakePlay("t1")
		if err != nil || p.UserID != "u" || p.Country != "SE" || p.Ticket == "" || seen[p.PlayID] {
			t.Fatalf("TakePlay = %+v, %v", p, err)
		}
		seen[p.PlayID] = true
	}
	if _, err := f.store.TakePlay("t1"); !errors.Is(err, ErrNoPlays) {
		t.Fatalf("4th TakePlay of 3: %v, want ErrNoPlays", err)
	}
	if err := f.store.Renew("t1", f.iss.issue(t, "u", "t1")); err != nil {
		t.Fatal(err)
	}
	if p, err := f.store.TakePlay("t1"); err != nil || seen[p.PlayID] {
		t.Fatalf("after renewal: %+v, %v", p, err)
	}
	if _, err := f.store.TakePlay("t9"); !errors.Is(err, ErrNotDownloaded) {
		t.Fatalf("TakePlay(not downloaded) = %v", err)
	}
}

// issuer makes licences as the origin does, with 3 offline plays each.
type issuer struct {
	h *licence.Handler
}

func newIssuer(t *testing.T, now *time.Time) *issuer {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(nil)
	kr, _ := playticket.NewKeyring(playticket.Key{ID: "k", Secret: bytes.Repeat([]byte{9}, 32)})
	idp, _ := identity.NewIssuer()
	v, _ := identity.NewVerifier(identity.Config{PublicKeys: []string{idp.PublicKey()}})
	cfg := licence.DefaultConfig(priv)
	cfg.Sessions, cfg.Tickets, cfg.OfflinePlays = v, kr, 3
	cfg.Track = func(stdctx.Context, string) (int64, error) { return 200_000, nil }
	cfg.Now = func() time.Time { return *now }
	h, err := licence.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &issuer{h: h}
}

func (is *issuer) PublicKey() ed25519.PublicKey { return is.h.PublicKey() }

func (is *issuer) issue(t *testing.T, user, track string) string {
	t.Helper()
	tok, _, err := is.h.Issue(identity.User{ID: user, Country: "SE"}, "d", track, 200_000)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestTampering(t *testing.T) {
	f := setup(t)
	f.put(t)
	audio := filepath.Join(f.dir, "t1.ogg.enc")
	orig, _ := os.ReadFile(audio)
	rng := rand.New(rand.NewPCG(2, 2))
	for range 20 {
		b := append([]byte(nil), orig...)
		i := rng.IntN(len(b))
		b[i] ^= 1 << rng.IntN(8)
		os.WriteFile(audio, b, 0o600)
		tr, err := f.store.Open("t1")
		if err == nil {
			_, err = tr.ReadAt(make([]byte, len(f.plain)), 0)
			tr.Close()
		}
		if !errors.Is(err, ErrTampered) {
			t.Fatalf("flipped byte %d: err = %v, want ErrTampered", i, err)
		}
	}
	os.WriteFile(audio, orig, 0o600)
	lic := filepath.Join(f.dir, "t1.lic")
	tok, _ := os.ReadFile(lic)
	bad := append([]byte(nil), tok...)
	bad[10] ^= 2
	os.WriteFile(lic, bad, 0o600)
	if _, err := f.store.Open("t1"); err == nil {
		t.Fatal("Open with a tampered licence succeeded")
	}
	os.WriteFile(lic, tok, 0o600)
	if _, err := f.store.Open("t1"); err != nil {
		t.Fatalf("restored: %v", err)
	}
	if _, err := f.store.Open("t2"); !errors.Is(err, ErrNotDownloaded) {
		t.Fatalf("Open(unknown) err = %v", err)
	}
}
