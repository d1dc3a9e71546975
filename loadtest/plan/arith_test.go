package plan

import (
	"math"
	"testing"
)

func near(a, b, rel float64) bool {
	return math.Abs(a-b) <= rel*math.Max(math.Abs(a), math.Abs(b))
}

// TestCatalogBytes checks the catalog arithmetic against hand-computed
// cases, the mission's 1.75 PB line among them.
// Mutations caught: 1000/8 written as 1024/8 or 1000/1024 (every row),
// summing only the first tier (the five-tier rows), multiplying by
// minutes instead of seconds (every row).
func TestCatalogBytes(t *testing.T) {
	five := []int{24, 64, 96, 160, 320}
	tests := []struct {
		name   string
		tracks int64
		avgS   float64
		tiers  []int
		want   float64
	}{
		// 24+64+96+160+320 = 664 kbit/s; 664 × 125 = 83 000 B/s;
		// × 210 s = 17 430 000 B; × 1e8 = 1.743e15 B = 1.743 PB.
		{"mission: 100M tracks, 3m30s, five tiers", 100_000_000, 210, five, 1.743e15},
		// 1.75 PB needs 1.75e15 / (1e8 × 83 000) = 210.84 s.
		{"1.75 PB at 210.84 s", 100_000_000, 1.75e15 / 8.3e12, five, 1.75e15},
		// one track of 10 s at 24 kbit/s: 24 000 bit/s × 10 s / 8 = 30 000 B
		{"one track, one tier", 1, 10, []int{24}, 30_000},
		// DESIGN.md: a 3.5-minute track is ~8.4 MB at 320 kbps:
		// 320 × 125 × 210 = 8 400 000.
		{"design: 320 kbps track", 1, 210, []int{320}, 8_400_000},
		{"design: 24 kbps track", 1, 210, []int{24}, 630_000},
		// top 1 % (1M tracks) at every tier: 1e6 × 17.43 MB = 17.43 TB
		{"top 1 %", 1_000_000, 210, five, 17.43e12},
	}
	for _, tt := range tests {
		if got := CatalogBytes(tt.tracks, tt.avgS, tt.tiers); !near(got, tt.want, 1e-12) {
			t.Errorf("%s: CatalogBytes = %.6g, want %.6g", tt.name, got, tt.want)
		}
	}
}

// TestTrafficArithmetic: mix, egress, N+1, plays and dedup, by hand.
// Mutations caught: an unnormalised mix (mix_kbps ×100), N+1 without the
// +1 or with floor instead of ceil, the peak factor left out, partitions
// not rounded to a multiple of the sinks, retention in hours not days.
func TestTrafficArithmetic(t *testing.T) {
	five := []int{24, 64, 96, 160, 320}
	// 0.05×24 + 0.15×64 + 0.30×96 + 0.35×160 + 0.15×320
	// = 1.2 + 9.6 + 28.8 + 56 + 48 = 143.6
	if got := MixKbps(five, []float64{5, 15, 30, 35, 15}); !near(got, 143.6, 1e-12) {
		t.Errorf("MixKbps = %v, want 143.6", got)
	}
	// 10 000 streams × 143.6 kbit/s × 1000 × 1.1 = 1.5796e9 bit/s
	if got := EgressBps(10000, 143.6, 1.1); !near(got, 1.5796e9, 1e-12) {
		t.Errorf("EgressBps = %v, want 1.5796e9", got)
	}
	nodes := []struct {
		load, per float64
		want      int64
	}{
		{1.5796e9, 1e9, 3}, // ceil(1.58) + 1
		{2e9, 1e9, 3},      // exactly 2 + 1
		{0, 1e9, 2},        // one node and its spare
		{10.1e9, 2.5e9, 6}, // ceil(4.04) + 1
	}
	for _, n := range nodes {
		if got := NodesNPlus1(n.load, n.per); got != n.want {
			t.Errorf("NodesNPlus1(%g, %g) = %d, want %d", n.load, n.per, got, n.want)
		}
	}
	plays := []struct {
		name                       string
		perDay, factor, sink, part float64
		mean, peak                 float64
		sinks, partitions          int64
	}{
		// 12e9 / 86 400 = 138 888.9/s; × 3 = 416 666.7/s;
		// sinks ceil(416 666.7 / 50 000) = 9; partitions ceil(/20 000) = 21,
		// rounded up to a multiple of 9 = 27.
		{"mission", 12e9, 3, 50000, 20000, 138888.888, 416666.666, 9, 27},
		// no sink figure: partitions alone, ceil(416 666.7 / 20 000) = 21
		{"no sink rate", 12e9, 3, 0, 20000, 138888.888, 416666.666, 0, 21},
		// more sinks than partitions: partitions = sinks
		{"slow sinks", 86400, 1, 0.25, 100, 1, 1, 4, 4},
	}
	for _, p := range plays {
		got := Plays(p.perDay, p.factor, p.sink, p.part)
		if !near(got.MeanPerSec, p.mean, 1e-6) || !near(got.PeakPerSec, p.peak, 1e-6) || got.Sinks != p.sinks || got.Partitions != p.partitions {
			t.Errorf("%s: Plays = %+v, want mean %v peak %v sinks %d partitions %d", p.name, got, p.mean, p.peak, p.sinks, p.partitions)
		}
	}
	// 12e9 × 31 × 150 = 5.58e13 B = 55.8 TB
	if got := DedupBytes(12e9, 31, 150); !near(got, 5.58e13, 1e-12) {
		t.Errorf("DedupBytes = %v, want 5.58e13", got)
	}
}

// TestZipfHead checks the head share exactly on small catalogs and the
// Euler–Maclaurin tail against a plain sum on a large one.
// Mutations caught: dropping the tail's correction terms (the 1e6 rows
// move by more than 1e-9), summing from 0, the s = 1 branch using the
// power formula.
func TestZipfHead(t *testing.T) {
	// n = 3, s = 1: H = 1 + 1/2 + 1/3 = 11/6; top 1 = 6/11, top 2 = 9/11
	if got := ZipfHead(1, 3, 1); !near(got, 6.0/11, 1e-12) {
		t.Errorf("ZipfHead(1, 3, 1) = %v, want 6/11", got)
	}
	if got := ZipfHead(2, 3, 1); !near(got, 9.0/11, 1e-12) {
		t.Errorf("ZipfHead(2, 3, 1) = %v, want 9/11", got)
	}
	// s = 0: uniform, the head share is k/n
	if got := ZipfHead(250, 1000, 0); !near(got, 0.25, 1e-12) {
		t.Errorf("ZipfHead(250, 1000, 0) = %v, want 0.25", got)
	}
	for _, s := range []float64{0.8, 1.0, 1.2} {
		exact := 0.0
		for i := 1_000_000; i >= 1; i-- {
			exact += math.Pow(float64(i), -s)
		}
		if got := harmonic(1_000_000, s); !near(got, exact, 1e-9) {
			t.Errorf("harmonic(1e6, %v) = %.12g, want %.12g", s, got, exact)
		}
	}
	// inverse and scaling: the same catalog maps a fraction to itself
	for _, f := range []float64{1e-3, 0.01, 0.2} {
		if got := ScaleCache(f, 1e6, 1e6, 1.0); !near(got, f, 1e-6) {
			t.Errorf("ScaleCache(%v, n, n) = %v", f, got)
		}
	}
	// a smaller catalog needs a larger fraction for the same head share
	if g := ScaleCache(0.001, 1e8, 2e4, 1.0); !(g > 0.001) {
		t.Errorf("ScaleCache down to 2e4 tracks = %v, want > 0.001", g)
	}
}

// TestFitZipf recovers the exponent of exact Zipf counts.
// Mutation caught: the sign of the slope, ranks from 0 (log 0).
func TestFitZipf(t *testing.T) {
	for _, s := range []float64{0.7, 1.0, 1.3} {
		counts := make([]float64, 5000)
		for i := range counts {
			counts[len(counts)-1-i] = 1e9 * math.Pow(float64(i+1), -s) // reversed: order must not matter
		}
		if got := FitZipf(counts); !near(got, s, 1e-9) {
			t.Errorf("FitZipf(s=%v) = %v", s, got)
		}
	}
	if got := FitZipf([]float64{5}); !math.IsNaN(got) {
		t.Errorf("FitZipf of one count = %v, want NaN", got)
	}
}
