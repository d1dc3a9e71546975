package manifest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/manifest"
	"github.com/musiccdn/cdn/origin"
	"github.com/musiccdn/cdn/origin/media"
	"github.com/musiccdn/cdn/origin/origintest"
	"github.com/musiccdn/cdn/origin/rights"
)

// testOrigin is the real origin over 300 synthetic tracks (seed 7) and
// their synthetic rights (about 10 % of pairs denied).
func testOrigin(t testing.TB) *origin.Server {
	t.Helper()
	return origintest.Start(t, origintest.Config{Source: media.NewSynthetic(300, 7), Rights: rights.Synthetic{Seed: 7}}).Server
}

// TestSnapshotMintsTheOriginsManifests: a snapshot built from the
// origin's catalog and rights, encoded and decoded, mints byte for byte
// the manifest the origin itself gives, for every track and a spread of
// countries, allowed or denied. Catches: a tier, size, ETag or seek flag
// lost in the format, a country bit off by one, a URL or token not bound
// as the origin binds it, tracks out of order (binary search misses).
func TestSnapshotMintsTheOriginsManifests(t *testing.T) {
	o := testOrigin(t)
	now := time.Unix(1_790_000_000, 0)
	snap, err := manifest.Build(context.Background(), o.Source(), o.Rights(), rights.Countries(), now)
	if err != nil {
		t.Fatal(err)
	}
	var wire bytes.Buffer
	if err := snap.Encode(&wire); err != nil {
		t.Fatal(err)
	}
	got, err := manifest.Decode(&wire)
	if err != nil {
		t.Fatal(err)
	}
	if got.Len() != 300 {
		t.Fatalf("%d tracks, want 300", got.Len())
	}
	ids, _ := o.Source().List(context.Background(), "", 1000)
	denied := 0
	for i, id := range ids {
		for _, cc := range []string{"SE", "US", "DE", "JP", "BR", "ZW", rights.Countries()[i%rights.NumCountries]} {
			want, werr := o.Manifest(context.Background(), id, cc, now)
			m, merr := got.Manifest(id, cc, now, o.Keyring(), 6*time.Hour)
			if errors.Is(werr, origin.ErrDenied) {
				denied++
				if !errors.Is(merr, manifest.ErrDenied) {
					t.Fatalf("%s in %s: origin denies, snapshot gives %v", id, cc, merr)
				}
				continue
			}
			if werr != nil || merr != nil {
				t.Fatalf("%s in %s: origin %v, snapshot %v", id, cc, werr, merr)
			}
			wj, _ := json.Marshal(want)
			mj, _ := json.Marshal(m)
			if !bytes.Equal(wj, mj) {
				t.Fatalf("%s in %s:\n origin   %s\n snapshot %s", id, cc, wj, mj)
			}
		}
	}
	if denied == 0 {
		t.Error("no denial seen: the rights part is not exercised")
	}
	if _, err := got.Manifest("nope", "SE", now, o.Keyring(), time.Hour); !errors.Is(err, manifest.ErrNotFound) {
		t.Errorf("unknown track: %v", err)
	}
}

// TestDecodeRefuses: each kind of bad input is an error naming what is
// wrong, never a partial snapshot.
func TestDecodeRefuses(t *testing.T) {
	head := "musiccdn-snapshot 1 100 2\nSE,US\n"
	for name, in := range map[string]string{
		"empty":            "",
		"bad magic":        "snapshot 1 100 2\nSE,US\n",
		"count mismatch":   "musiccdn-snapshot 1 100 3\nSE,US\n",
		"dup country":      "musiccdn-snapshot 1 100 2\nSE,SE\n",
		"bad id":           head + "a/b\t1\t01\t24 10 0 \"e\"\n",
		"bad bitmap":       head + "t1\t1\t0102\t24 10 0 \"e\"\n",
		"bad tier":         head + "t1\t1\t01\t23 10 0 \"e\"\n",
		"no etag":          head + "t1\t1\t01\t24 10 0 \n",
		"no tiers":         head + "t1\t1\t01\n",
		"tier order":       head + "t1\t1\t01\t64 10 0 \"e\"\t24 10 0 \"e\"\n",
		"track order":      head + "t2\t1\t01\t24 10 0 \"e\"\nt1\t1\t01\t24 10 0 \"e\"\n",
		"negative size":    head + "t1\t1\t01\t24 -1 0 \"e\"\n",
		"zero samples":     head + "t1\t1:0:44100\t01\t24 10 0 \"e\"\n",
		"samples, no rate": head + "t1\t1:5\t01\t24 10 0 \"e\"\n",
		"bad rate":         head + "t1\t1:5:x\t01\t24 10 0 \"e\"\n",
	} {
		if s, err := manifest.Decode(strings.NewReader(in)); err == nil {
			t.Errorf("%s: Decode = %d tracks, want an error", name, s.Len())
		}
	}
	s, err := manifest.Decode(strings.NewReader(head + "t1\t1\t01\t24 10 1 \"e\"\n"))
	if err != nil || s.Len() != 1 || !s.At(0).Tiers[0].Seek {
		t.Fatalf("good input: %v", err)
	}
	// The exact sample count after the duration, as the origin writes it
	// when the catalog knows it.
	s, err = manifest.Decode(strings.NewReader(head + "t1\t2000:88201:44100\t01\t24 10 1 \"e\"\n"))
	if err != nil || s.At(0).DurationMS != 2000 || s.At(0).Samples != 88201 || s.At(0).SampleRate != 44100 {
		t.Fatalf("input with samples: %+v, %v", s.At(0), err)
	}
}

// FuzzDecode: no input makes Decode panic or return a snapshot that does
// not encode back to something Decode reads the same.
func FuzzDecode(f *testing.F) {
	f.Add("musiccdn-snapshot 1 100 2\nSE,US\nt1\t1\t01\t24 10 0 \"e\"\t64 20 1 W/\"x\"\n")
	f.Add("musiccdn-snapshot 1 0 0\n\n")
	f.Add("musiccdn-snapshot 1 100 1\nSE\nt1\t2000:88201:44100\t01\t24 10 0 \"e\"\n")
	f.Fuzz(func(t *testing.T, in string) {
		s, err := manifest.Decode(strings.NewReader(in))
		if err != nil {
			return
		}
		var b bytes.Buffer
		if err := s.Encode(&b); err != nil {
			t.Fatal(err)
		}
		s2, err := manifest.Decode(&b)
		if err != nil || s2.Len() != s.Len() {
			t.Fatalf("re-decode: %v", err)
		}
		for i := range s.Len() {
			tr := s.At(i)
			if got, ok := s2.Track(tr.ID); !ok || len(got.Tiers) != len(tr.Tiers) || !catalog.ValidID(tr.ID) {
				t.Fatalf("track %q lost", tr.ID)
			}
		}
	})
}

// BenchmarkBuild: what one snapshot costs the origin, for 100 000
// synthetic tracks and every country (25 M rights decisions).
func BenchmarkBuild(b *testing.B) {
	src := media.NewSynthetic(100000, 1)
	for b.Loop() {
		s, err := manifest.Build(context.Background(), src, rights.Synthetic{Seed: 1}, rights.Countries(), time.Now())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(s.Len()), "tracks")
	}
}
