package offline

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/musiccdn/cdn/origin/licence"
	"github.com/musiccdn/cdn/seektable"
)

type fixture struct {
	store *Store
	iss   *licence.Handler
	now   *time.Time
	dir   string
	plain []byte
	seek  []byte
}

func setup(t *testing.T) *fixture {
	t.Helper()
	now := time.Unix(1_800_000_000, 0)
	_, priv, _ := ed25519.GenerateKey(nil)
	cfg := licence.DefaultConfig(priv, bytes.Repeat([]byte{9}, 32))
	cfg.Now = func() time.Time { return now }
	iss, err := licence.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
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
	tok, _ := f.iss.Issue(licence.Request{TrackID: "t1", UserID: "u", DeviceID: "d", Country: "SE"})
	if err := f.store.Put("t1", 160, tok, bytes.NewReader(f.plain), int64(len(f.plain)), f.seek); err != nil {
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
	tok, _ := f.iss.Issue(licence.Request{TrackID: "t1", UserID: "u", DeviceID: "d", Country: "SE"})
	if err := f.store.Renew("t1", tok); err != nil {
		t.Fatal(err)
	}
	tr, err := f.store.Open("t1")
	if err != nil {
		t.Fatalf("Open after renewal: %v", err)
	}
	tr.Close()
	// a licence for another user's device carries another key
	other, _ := f.iss.Issue(licence.Request{TrackID: "t1", UserID: "u2", DeviceID: "d", Country: "SE"})
	f.store.Renew("t1", other)
	if _, err := f.store.Open("t1"); !errors.Is(err, ErrTampered) {
		t.Fatalf("Open with another user's licence err = %v, want ErrTampered", err)
	}
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
