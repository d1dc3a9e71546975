package recs

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
)

// TestIVFRecall compares the index's neighbours with exact ones on
// clustered unit vectors, the shape ALS item factors have.
func TestIVFRecall(t *testing.T) {
	const n, k, kk, groups = 4000, 16, 10, 40
	r := rand.New(rand.NewPCG(1, 2))
	centres := make([][]float64, groups)
	for g := range centres {
		centres[g] = make([]float64, k)
		for d := range centres[g] {
			centres[g][d] = r.NormFloat64()
		}
	}
	unit := make([]float32, n*k)
	placed := make([]bool, n)
	for i := 0; i < n; i++ {
		placed[i] = i%17 != 0 // some tracks have no factors
		g := centres[r.IntN(groups)]
		var norm float64
		v := make([]float64, k)
		for d := range v {
			v[d] = g[d] + 1.2*r.NormFloat64()
			norm += v[d] * v[d]
		}
		for d := range v {
			unit[i*k+d] = float32(v[d] / math.Sqrt(norm))
		}
	}
	exact, err := neighbours(context.Background(), unit, placed, k, kk, 2)
	if err != nil {
		t.Fatal(err)
	}
	approx, err := ivfNeighbours(context.Background(), unit, placed, k, kk, 8, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	found, total := 0, 0
	for i := 0; i < n; i++ {
		want := map[int32]bool{}
		for _, c := range exact[i*kk : (i+1)*kk] {
			if c >= 0 {
				want[c] = true
			}
		}
		for _, c := range approx[i*kk : (i+1)*kk] {
			if c == int32(i) || c >= 0 && !placed[c] {
				t.Fatalf("track %d: neighbour %d is itself or unplaced", i, c)
			}
			if want[c] {
				found++
			}
		}
		total += len(want)
		if !placed[i] && approx[i*kk] != -1 {
			t.Fatalf("unplaced track %d has neighbours", i)
		}
	}
	recall := float64(found) / float64(total)
	t.Logf("IVF recall@%d with 8 of %d lists: %.3f", kk, int(math.Sqrt(float64(n))), recall)
	if recall < 0.85 {
		t.Errorf("IVF recall@%d = %.3f, want >= 0.85", kk, recall)
	}
}
