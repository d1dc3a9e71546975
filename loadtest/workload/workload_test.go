package workload

import (
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"
	"time"
)

func TestGeneratorDeterministic(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Tracks = 5000
	draw := func(seed uint64) []Session {
		c := cfg
		c.Seed = seed
		g, err := NewGenerator(c)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]Session, 300)
		for i := range out {
			out[i] = g.Next()
		}
		return out
	}
	a, b := draw(7), draw(7)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two generators with seed 7 produced different sessions")
	}
	if reflect.DeepEqual(a, draw(8)) {
		t.Fatal("seeds 7 and 8 produced the same sessions")
	}
}

// TestZipfChiSquare checks draws against the distribution. The seed is
// fixed, so the test is deterministic; the threshold is the chi-square
// critical value at p = 0.001, which a correct sampler passes for almost
// every seed.
func TestZipfChiSquare(t *testing.T) {
	const draws = 200000
	tests := []struct {
		n        int
		s        float64
		critical float64 // chi-square, n-1 degrees of freedom, p = 0.001
	}{
		{50, 0.8, 85.35}, {50, 1.0, 85.35}, {50, 1.2, 85.35}, {50, 1.4, 85.35},
		{50, 0, 85.35}, {10, 1.0, 27.88}, {200, 0.9, 267.54},
	}
	for _, tt := range tests {
		z := NewZipf(tt.n, tt.s)
		r := rand.New(rand.NewPCG(1, 2))
		obs := make([]float64, tt.n)
		for range draws {
			obs[z.Draw(r)]++
		}
		chi, hn := 0.0, harmonic(tt.n, tt.s)
		for i := range tt.n {
			want := math.Pow(float64(i+1), -tt.s) / hn * draws
			chi += (obs[i] - want) * (obs[i] - want) / want
		}
		if chi > tt.critical {
			t.Errorf("Zipf(%d, %v): chi-square = %.1f, want <= %.2f", tt.n, tt.s, chi, tt.critical)
		}
	}
}

// TestZipfLargeCatalog: a 100M-track catalog needs no table, and the head
// takes the share the distribution gives it.
func TestZipfLargeCatalog(t *testing.T) {
	const n, draws = 100_000_000, 100000
	z := NewZipf(n, 1.0)
	r := rand.New(rand.NewPCG(3, 4))
	top := 0
	for range draws {
		k := z.Draw(r)
		if k < 0 || k >= n {
			t.Fatalf("Draw = %d, outside [0, %d)", k, n)
		}
		if k == 0 {
			top++
		}
	}
	// P(rank 0) = 1/H(n), H(n) ~ ln n + Euler-Mascheroni.
	want := 1 / (math.Log(n) + 0.5772156649) * draws
	if math.Abs(float64(top)-want) > 4*math.Sqrt(want) {
		t.Errorf("rank 0 drawn %d times in %d, want %.0f ± %.0f", top, draws, want, 4*math.Sqrt(want))
	}
}

func harmonic(n int, s float64) float64 {
	h := 0.0
	for i := 1; i <= n; i++ {
		h += math.Pow(float64(i), -s)
	}
	return h
}

// TestPlayPlans checks the properties every planned play must have, over
// many sessions.
func TestPlayPlans(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Tracks = 2000
	g, err := NewGenerator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cat := g.Catalog()
	seeks, skips, tiers := 0, 0, map[int]int{}
	for range 2000 {
		s := g.Next()
		tiers[s.Kbps]++
		at := time.Duration(0)
		for k, p := range s.Plays {
			if p.Start != at {
				t.Fatalf("session %d play %d starts at %v, want %v", s.ID, k, p.Start, at)
			}
			at += p.Played
			size := cat.Size(p.Track, s.Kbps)
			dur := time.Duration(cat.DurationMS(p.Track)) * time.Millisecond
			if p.Played > dur || p.Played <= 0 {
				t.Fatalf("session %d play %d: played %v of %v", s.ID, k, p.Played, dur)
			}
			if p.Played < dur {
				skips++
			}
			if len(p.Fetches) == 0 || p.Fetches[0].Off != 0 || p.Fetches[0].At != p.Start {
				t.Fatalf("session %d play %d: first fetch %+v, want offset 0 at %v", s.ID, k, p.Fetches, p.Start)
			}
			next := int64(0)
			for i, f := range p.Fetches {
				if f.Len <= 0 || f.Off < 0 || f.Off+f.Len > size {
					t.Fatalf("fetch %+v outside [0, %d)", f, size)
				}
				if i > 0 && f.At < p.Fetches[i-1].At {
					t.Fatalf("fetches out of order: %+v", p.Fetches)
				}
				if f.At >= p.Start+p.Played {
					t.Fatalf("fetch %+v due after the play stops at %v", f, p.Start+p.Played)
				}
				if f.Off != next {
					seeks++ // only a seek leaves a gap
					if f.Off < next {
						t.Fatalf("fetch %+v overlaps the previous one (ends %d)", f, next)
					}
				}
				next = f.Off + f.Len
			}
		}
	}
	if seeks == 0 || skips == 0 || len(tiers) != len(cfg.Classes) {
		t.Errorf("seeks %d, skips %d, tiers %v: want all kinds of behaviour", seeks, skips, tiers)
	}
}

func BenchmarkZipfDraw(b *testing.B) {
	for _, n := range []int{1000, 100000, 100_000_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			z := NewZipf(n, 1.0)
			r := rand.New(rand.NewPCG(1, 1))
			b.ReportAllocs()
			for b.Loop() {
				z.Draw(r)
			}
		})
	}
}

// BenchmarkGeneratorNext is the cost of planning one session (about 60
// requests), a small part of what a run spends per request.
func BenchmarkGeneratorNext(b *testing.B) {
	g, err := NewGenerator(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		g.Next()
	}
}
