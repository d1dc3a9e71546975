package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/player/wav"
	"github.com/musiccdn/cdn/seektable"
	"github.com/musiccdn/cdn/vorbis"
)

// testDirs returns a fresh directory for sources and the empty catalog
// root inside it. It skips t when oggenc (Debian package vorbis-tools) is
// missing, except under CI (CI set), where scripts/test.sh installs it and
// its absence fails t.
func testDirs(t *testing.T) (dir, root string) {
	t.Helper()
	if _, err := exec.LookPath("oggenc"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("oggenc not installed (Debian package vorbis-tools): scripts/test.sh installs it")
		}
		t.Skip("oggenc not installed (Debian package vorbis-tools)")
	}
	dir = t.TempDir()
	root = filepath.Join(dir, "catalog")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, root
}

// writeSine writes a stereo 44.1 kHz WAV of the given frames.
func writeSine(t *testing.T, path string, frames int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := wav.NewWriter(f, 44100, 2)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]float32, 2*frames)
	for i := range frames {
		p[2*i] = float32(0.4 * math.Sin(2*math.Pi*440*float64(i)/44100))
		p[2*i+1] = float32(0.4 * math.Sin(2*math.Pi*220*float64(i)/44100))
	}
	if err := w.Write(p); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestIngest(t *testing.T) {
	dir, root := testDirs(t)
	src := filepath.Join(dir, "song.wav")
	const frames = 44100*2 + 1234
	writeSine(t, src, frames)

	var embedded bool
	cfg := DefaultConfig(root)
	cfg.Embed = func(pcm []float32, rate int) []float32 {
		embedded = true
		return []float32{float32(len(pcm)), float32(rate)}
	}
	in, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, err := in.Ingest(context.Background(), "song", src)
	if err != nil {
		t.Fatal(err)
	}
	if m.Samples != frames || m.SampleRate != 44100 || m.DurationMS != frames*1000/44100 {
		t.Errorf("meta = %+v, want %d samples at 44100 Hz", m, frames)
	}
	if !embedded || len(m.Embedding) != 2 || m.Embedding[0] != frames {
		t.Errorf("embedding = %v, want [%d 44100]", m.Embedding, frames)
	}
	js, err := os.ReadFile(filepath.Join(root, "song", "track.json"))
	if err != nil {
		t.Fatal(err)
	}
	var onDisk Meta
	if err := json.Unmarshal(js, &onDisk); err != nil || onDisk.Samples != frames || len(onDisk.Tiers) != 5 {
		t.Errorf("track.json = %s (%v)", js, err)
	}
	for _, kbps := range catalog.Tiers {
		audio, err := os.ReadFile(filepath.Join(root, "song", itoa(kbps)+".ogg"))
		if err != nil {
			t.Fatal(err)
		}
		sb, err := os.ReadFile(filepath.Join(root, "song", itoa(kbps)+".seek"))
		if err != nil {
			t.Fatal(err)
		}
		tb, err := seektable.Decode(sb)
		if err != nil {
			t.Fatalf("%d kbps: %v", kbps, err)
		}
		if tb.FileSize != int64(len(audio)) {
			t.Errorf("%d kbps: table file size %d, file %d", kbps, tb.FileSize, len(audio))
		}
		// at least one entry per second
		prev := int64(0)
		for _, e := range tb.Entries {
			if e.Time-prev > int64(tb.SampleRate) {
				t.Errorf("%d kbps: %d samples between entries", kbps, e.Time-prev)
			}
			prev = e.Time
		}
		if tb.Samples-prev > int64(tb.SampleRate) {
			t.Errorf("%d kbps: last entry %d samples before the end", kbps, tb.Samples-prev)
		}
		// decoding the whole file gives exactly the table's sample count
		h, err := vorbis.ReadHeaders(bytes.NewReader(audio))
		if err != nil {
			t.Fatal(err)
		}
		got := countFrom(t, h, audio, h.AudioStart)
		if got != tb.Samples {
			t.Errorf("%d kbps: decoded %d samples, table says %d", kbps, got, tb.Samples)
		}
		if tb.SampleRate == 44100 && got != frames {
			t.Errorf("%d kbps: decoded %d samples, source has %d", kbps, got, frames)
		}
		// decoding from every entry starts at or before its time, and ends
		// at the same sample
		for _, e := range tb.Entries {
			s, err := vorbis.NewStream(h, bytes.NewReader(audio[e.Offset:]), e.Offset)
			if err != nil {
				t.Fatal(err)
			}
			pos, err := s.Pos()
			if err != nil {
				if err == io.EOF && e.Time >= tb.Samples-int64(tb.SampleRate) {
					continue // the last page may hold no output after priming
				}
				t.Fatalf("%d kbps entry %+v: %v", kbps, e, err)
			}
			if pos-tb.Origin != e.Time {
				t.Errorf("%d kbps: decoding from %d starts at %d, entry says %d", kbps, e.Offset, pos-tb.Origin, e.Time)
			}
		}
	}
	left, _ := os.ReadDir(root)
	if len(left) != 1 || left[0].Name() != "song" {
		t.Errorf("catalog holds %v, want only song", left)
	}

	// re-ingesting replaces the track
	if _, err := in.Ingest(context.Background(), "song", src); err != nil {
		t.Fatal(err)
	}
	left, _ = os.ReadDir(root)
	if len(left) != 1 {
		t.Errorf("after re-ingest catalog holds %v", left)
	}
}

func countFrom(t *testing.T, h *vorbis.Headers, audio []byte, off int64) int64 {
	t.Helper()
	s, err := vorbis.NewStream(h, bytes.NewReader(audio[off:]), off)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]float32, 8192)
	var n int64
	for {
		k, err := s.Read(buf)
		n += int64(k / h.Channels)
		if err == io.EOF {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestIngestErrors(t *testing.T) {
	dir, root := testDirs(t)
	garbage := filepath.Join(dir, "x.mp3")
	os.WriteFile(garbage, []byte("definitely not audio"), 0o644)
	fakeWAV := filepath.Join(dir, "bad.wav")
	os.WriteFile(fakeWAV, []byte("RIFF\x00\x00\x00\x00WAVEjunkjunkjunk"), 0o644)

	cfg := DefaultConfig(root)
	cfg.OggEnc = filepath.Join(dir, "no-such-oggenc")
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "vorbis-tools") {
		t.Errorf("New(missing encoder) err = %v, want a hint to install vorbis-tools", err)
	}
	cfg = DefaultConfig(root)
	cfg.FFmpeg = filepath.Join(dir, "no-such-ffmpeg")
	in, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ id, src string }{
		{"missing", filepath.Join(dir, "nope.wav")},
		{"garbage", garbage},
		{"badwav", fakeWAV},
		{"bad/id", fakeWAV},
	} {
		if _, err := in.Ingest(context.Background(), c.id, c.src); err == nil {
			t.Errorf("Ingest(%q, %q) succeeded", c.id, c.src)
		}
	}
	if left, _ := os.ReadDir(root); len(left) != 0 {
		t.Errorf("failed ingests left %v in the catalog", left)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
