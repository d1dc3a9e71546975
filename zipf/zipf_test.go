package zipf

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

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
		z := New(tt.n, tt.s)
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
	z := New(n, 1.0)
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

func BenchmarkZipfDraw(b *testing.B) {
	for _, n := range []int{1000, 100000, 100_000_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			z := New(n, 1.0)
			r := rand.New(rand.NewPCG(1, 1))
			b.ReportAllocs()
			for b.Loop() {
				z.Draw(r)
			}
		})
	}
}
