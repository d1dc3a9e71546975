package vorbis_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jfreymuth/oggvorbis"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/ogg"
	"github.com/musiccdn/cdn/player/playertest"
	"github.com/musiccdn/cdn/vorbis"
)

// rawTiers encodes a short signal with oggenc directly (libvorbis's own
// pagination, not ingest's) at each tier.
func rawTiers(t testing.TB, frames int) map[int][]byte {
	t.Helper()
	playertest.RequireOggenc(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "s.wav")
	if err := playertest.WriteSignal(src, 0, frames); err != nil {
		t.Fatal(err)
	}
	out := map[int][]byte{}
	for _, k := range catalog.Tiers {
		dst := filepath.Join(dir, fmt.Sprintf("%d.ogg", k))
		args := []string{"-Q", "-b", fmt.Sprint(k), "-o", dst, src}
		if k == 24 {
			args = append([]string{"--resample", "22050", "--downmix"}, args...)
		}
		if b, err := exec.Command("oggenc", args...).CombinedOutput(); err != nil {
			t.Fatalf("oggenc %d: %v: %s", k, err, b)
		}
		out[k], _ = os.ReadFile(dst)
	}
	return out
}

func decodeAll(t testing.TB, b []byte) ([]float32, *vorbis.Headers) {
	t.Helper()
	h, err := vorbis.ReadHeaders(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	s, err := vorbis.NewStream(h, bytes.NewReader(b[h.AudioStart:]), h.AudioStart)
	if err != nil {
		t.Fatal(err)
	}
	return readAll(t, s), h
}

// readAll reads r's samples up to io.EOF; another error fails the test.
func readAll(t testing.TB, r interface{ Read([]float32) (int, error) }) []float32 {
	t.Helper()
	var pcm []float32
	buf := make([]float32, 4096)
	for {
		n, err := r.Read(buf)
		pcm = append(pcm, buf[:n]...)
		if err == io.EOF {
			return pcm
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestMatchesOggvorbis checks the decoder against
// github.com/jfreymuth/oggvorbis v1.0.5 on oggenc output: the same samples
// and, for the 44.1 kHz tiers, exactly the source's sample count.
func TestMatchesOggvorbis(t *testing.T) {
	const frames = 44100*2 + 555
	for k, b := range rawTiers(t, frames) {
		got, h := decodeAll(t, b)
		r, err := oggvorbis.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		want := readAll(t, r)
		if len(got) != len(want) {
			t.Errorf("%d kbps: %d samples, oggvorbis %d", k, len(got)/h.Channels, len(want)/h.Channels)
			continue
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%d kbps: sample %d = %v, oggvorbis %v", k, i, got[i], want[i])
			}
		}
		if h.SampleRate == 44100 && len(got)/h.Channels != frames {
			t.Errorf("%d kbps: %d samples, source %d", k, len(got)/h.Channels, frames)
		}
	}
}

// FuzzStream feeds hostile packets, framed in valid Ogg pages so they
// pass the CRC, to the decoder after real headers: it must return errors,
// never panic or loop.
func FuzzStream(f *testing.F) {
	if _, err := exec.LookPath("oggenc"); err != nil {
		f.Skip("oggenc not installed")
	}
	dir := f.TempDir()
	src := filepath.Join(dir, "s.wav")
	if err := playertest.WriteSignal(src, 0, 4410); err != nil {
		f.Fatal(err)
	}
	if out, err := exec.Command("oggenc", "-Q", "-b", "96", "-o", filepath.Join(dir, "s.ogg"), src).CombinedOutput(); err != nil {
		f.Fatalf("oggenc: %v: %s", err, out)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "s.ogg"))
	h, err := vorbis.ReadHeaders(bytes.NewReader(b))
	if err != nil {
		f.Fatal(err)
	}
	// seed with the real audio packets, each prefixed by its length/8
	pr := ogg.NewPacketReader(ogg.NewReader(bytes.NewReader(b[h.AudioStart:]), h.AudioStart))
	var seed []byte
	for {
		pk, err := pr.Next()
		if err != nil || len(seed) > 1000 {
			break
		}
		if len(pk.Data) < 8*255 {
			seed = append(seed, byte((len(pk.Data)+7)/8))
			seed = append(seed, pk.Data...)
			seed = append(seed, make([]byte, (len(pk.Data)+7)/8*8-len(pk.Data))...)
		}
	}
	f.Add(seed)
	mut := append([]byte(nil), seed...)
	for i := 50; i < len(mut); i += 97 {
		mut[i] ^= 0x5a
	}
	f.Add(mut)
	f.Fuzz(func(t *testing.T, in []byte) {
		var stream []byte
		g := int64(0)
		for seq := uint32(0); len(in) > 0; seq++ {
			n := min(int(in[0])*8, len(in)-1)
			pkt := in[1 : 1+n]
			in = in[1+n:]
			g += 128
			pg := ogg.Page{Serial: 1, Seq: seq, Granule: g, Lacing: ogg.Lacing(len(pkt)), Body: pkt}
			if len(in) == 0 {
				pg.Flags = ogg.FlagEOS
			}
			stream = ogg.Append(stream, &pg)
		}
		s, err := vorbis.NewStream(h, bytes.NewReader(stream), h.AudioStart)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]float32, 4096)
		for range 100000 {
			if _, err := s.Read(buf); err != nil {
				return
			}
		}
		t.Fatal("Read never ended")
	})
}

// BenchmarkDecode reports the decoder's real-time factor per tier: seconds
// of audio decoded per second of process CPU time ("rtf"), on a 10 s
// track ingested like the catalog's.
func BenchmarkDecode(b *testing.B) {
	if _, err := exec.LookPath("oggenc"); err != nil {
		b.Skip("oggenc not installed")
	}
	benchDir := b.TempDir()
	if err := playertest.Catalog(context.Background(), benchDir, []string{"bench"}, []int{10 * 44100}); err != nil {
		b.Fatal(err)
	}
	for _, k := range catalog.Tiers {
		data, err := os.ReadFile(filepath.Join(benchDir, "bench", fmt.Sprintf("%d.ogg", k)))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("kbps=%d", k), func(b *testing.B) {
			h, err := vorbis.ReadHeaders(bytes.NewReader(data))
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]float32, 8192)
			var samples int64
			cpu0 := cpuTime()
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			for b.Loop() {
				s, _ := vorbis.NewStream(h, bytes.NewReader(data[h.AudioStart:]), h.AudioStart)
				for {
					n, err := s.Read(buf)
					samples += int64(n / h.Channels)
					if err != nil {
						break
					}
				}
			}
			cpu := cpuTime() - cpu0
			audio := float64(samples) / float64(h.SampleRate)
			b.ReportMetric(audio/cpu.Seconds(), "rtf")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
