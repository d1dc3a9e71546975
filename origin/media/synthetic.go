package media

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/musiccdn/cdn/catalog"
)

// Synthetic is a generated catalog for load tests: tracks t0 to t<N-1>,
// each with a deterministic duration of 2 to 7 minutes and, per tier,
// deterministic pseudo-random bytes whose size matches the bitrate. Nothing
// is stored, so it scales to millions of tracks, and a client holding the
// same (N, seed) recomputes any byte range with Fill to verify what it got.
//
// Seek tables are not generated: synthetic bytes are not Ogg pages.
type Synthetic struct {
	n    int
	seed uint64

	mu  sync.Mutex
	gen map[int]uint64 // track index -> generation, bumped by Republish
}

// SyntheticEpoch is the Last-Modified of generation 0 of every object;
// generation g is SyntheticEpoch + g seconds.
var SyntheticEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// NewSynthetic returns a catalog of n tracks generated from seed.
func NewSynthetic(n int, seed uint64) *Synthetic {
	return &Synthetic{n: n, seed: seed, gen: make(map[int]uint64)}
}

var _ Source = (*Synthetic)(nil)

// N is the number of tracks.
func (s *Synthetic) N() int { return s.n }

// ID is the id of track i.
func (s *Synthetic) ID(i int) string { return "t" + strconv.Itoa(i) }

// Index parses a synthetic id ("t123") and reports whether it names a track
// of this catalog.
func (s *Synthetic) Index(id string) (int, bool) {
	if len(id) < 2 || id[0] != 't' || (id[1] == '0' && len(id) > 2) {
		return 0, false
	}
	i, err := strconv.Atoi(id[1:])
	if err != nil || i < 0 || i >= s.n {
		return 0, false
	}
	return i, true
}

// DurationMS is the duration of track i: 120 000 to 420 000 ms.
func (s *Synthetic) DurationMS(i int) int64 {
	return 120_000 + int64(mix64(s.seed^0xd1b54a32d192ed03^uint64(i))%300_001)
}

// SyntheticSampleRate is the source sample rate of every synthetic track.
const SyntheticSampleRate = 44100

// Samples is the exact length of track i in sample frames at
// SyntheticSampleRate: its duration, rounded down to a whole frame.
func (s *Synthetic) Samples(i int) int64 {
	return s.DurationMS(i) * SyntheticSampleRate / 1000
}

// Size is the byte size of track i at kbps: the bitrate times the duration
// (kbps*1000/8 bytes per second).
func (s *Synthetic) Size(i, kbps int) int64 {
	return s.DurationMS(i) * int64(kbps) / 8
}

// Generation is the current version number of track i (0 unless
// Republish was called).
func (s *Synthetic) Generation(i int) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen[i]
}

// Republish makes new bytes (and so a new ETag) for every tier of track i,
// as if the label had re-delivered it. It exists to exercise revalidation.
func (s *Synthetic) Republish(i int) {
	s.mu.Lock()
	s.gen[i]++
	s.mu.Unlock()
}

// ETag is the strong entity tag of (track i, kbps) at generation gen.
func (s *Synthetic) ETag(i, kbps int, gen uint64) string {
	return fmt.Sprintf(`"s%016x"`, s.base(i, kbps, gen))
}

// Fill writes into p the bytes of (track i, kbps, generation gen) starting
// at offset off. The caller keeps off+len(p) within Size.
func (s *Synthetic) Fill(p []byte, i, kbps int, gen uint64, off int64) {
	base := s.base(i, kbps, gen)
	w := uint64(off) >> 3
	var word [8]byte
	// Leading partial word.
	if r := int(off & 7); r != 0 {
		binary.LittleEndian.PutUint64(word[:], mix64(base+w*golden))
		n := copy(p, word[r:])
		p = p[n:]
		w++
	}
	for len(p) >= 8 {
		binary.LittleEndian.PutUint64(p, mix64(base+w*golden))
		p = p[8:]
		w++
	}
	if len(p) > 0 {
		binary.LittleEndian.PutUint64(word[:], mix64(base+w*golden))
		copy(p, word[:])
	}
}

// Verify reports the index of the first byte of p that differs from
// (track i, kbps, generation gen) at offset off, or -1 if all match.
func (s *Synthetic) Verify(p []byte, i, kbps int, gen uint64, off int64) int {
	var buf [4096]byte
	for done := 0; done < len(p); {
		n := min(len(buf), len(p)-done)
		s.Fill(buf[:n], i, kbps, gen, off+int64(done))
		for j := 0; j < n; j++ {
			if buf[j] != p[done+j] {
				return done + j
			}
		}
		done += n
	}
	return -1
}

// Track implements Source.
func (s *Synthetic) Track(_ context.Context, id string) (Track, error) {
	i, ok := s.Index(id)
	if !ok {
		return Track{}, ErrNotFound
	}
	return Track{ID: id, DurationMS: s.DurationMS(i), Samples: s.Samples(i), SampleRate: SyntheticSampleRate, Tiers: catalog.Tiers[:]}, nil
}

// Open implements Source.
func (s *Synthetic) Open(_ context.Context, id string, kbps int, kind catalog.Kind) (Object, File, error) {
	i, ok := s.Index(id)
	if !ok || !catalog.ValidTier(kbps) || kind != catalog.Audio {
		return Object{}, nil, ErrNotFound
	}
	gen := s.Generation(i)
	obj := Object{
		Track:   id,
		Kbps:    kbps,
		Kind:    catalog.Audio,
		Size:    s.Size(i, kbps),
		ETag:    s.ETag(i, kbps, gen),
		ModTime: SyntheticEpoch.Add(time.Duration(gen) * time.Second),
	}
	return obj, &synthFile{s: s, i: i, kbps: kbps, gen: gen, size: obj.Size}, nil
}

// List implements Source: ids in index order.
func (s *Synthetic) List(_ context.Context, after string, limit int) ([]string, error) {
	start := 0
	if after != "" {
		i, ok := s.Index(after)
		if !ok {
			return nil, ErrNotFound
		}
		start = i + 1
	}
	var ids []string
	for i := start; i < s.n && len(ids) < limit; i++ {
		ids = append(ids, s.ID(i))
	}
	return ids, nil
}

func (s *Synthetic) base(i, kbps int, gen uint64) uint64 {
	return mix64(mix64(s.seed^uint64(i)*0x9e3779b97f4a7c15) ^ uint64(kbps)<<32 ^ gen*0xbf58476d1ce4e5b9)
}

type synthFile struct {
	s    *Synthetic
	i    int
	kbps int
	gen  uint64
	size int64
}

func (f *synthFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("media: negative offset %d", off)
	}
	if off >= f.size {
		return 0, io.EOF
	}
	n := len(p)
	if rem := f.size - off; int64(n) > rem {
		n = int(rem)
	}
	f.s.Fill(p[:n], f.i, f.kbps, f.gen, off)
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *synthFile) Close() error { return nil }

const golden = 0x9e3779b97f4a7c15

// mix64 is splitmix64's finalizer: a fast bijective scrambler.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
