package content

import (
	"math"
	"testing"

	"github.com/musiccdn/cdn/origin/recs/synth"
)

func TestEmbedShapeAndEdgeCases(t *testing.T) {
	tests := []struct {
		name string
		pcm  []float32
		rate int
	}{
		{"empty", nil, 44100},
		{"short", make([]float32, 100), 44100},
		{"silence", make([]float32, 44100), 44100},
		{"bad rate", make([]float32, 44100), 0},
		{"low rate", synth.ClusterAudio(0, 4, 1, 8000, 1), 8000},
		{"tone", synth.ClusterAudio(1, 4, 1, 44100, 1), 44100},
	}
	for _, tt := range tests {
		e := Embed(tt.pcm, tt.rate)
		if len(e) != Dim {
			t.Errorf("Embed(%s) has length %d, want %d", tt.name, len(e), Dim)
		}
		for i, v := range e {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Errorf("Embed(%s)[%d] = %v, want finite", tt.name, i, v)
			}
		}
	}
}

func TestEmbedDeterministicAndGainInvariant(t *testing.T) {
	pcm := synth.ClusterAudio(2, 5, 9, 22050, 2)
	a := Embed(pcm, 22050)
	b := Embed(pcm, 22050)
	quiet := make([]float32, len(pcm))
	for i, v := range pcm {
		quiet[i] = v * 0.25
	}
	c := Embed(quiet, 22050)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("Embed not deterministic at %d: %v vs %v", i, a[i], b[i])
		}
		if d := math.Abs(float64(a[i] - c[i])); d > 1e-3 {
			t.Errorf("Embed(x/4)[%d] = %v, want %v (gain must not matter)", i, c[i], a[i])
		}
	}
}

// TestEmbedSeparatesClusters checks that tracks of one cluster embed
// closer to their own cluster's centroid than to any other, for most tracks.
func TestEmbedSeparatesClusters(t *testing.T) {
	const clusters, perCluster, rate = 6, 8, 8000
	emb := make([][][]float32, clusters)
	for c := 0; c < clusters; c++ {
		for j := 0; j < perCluster; j++ {
			emb[c] = append(emb[c], Embed(synth.ClusterAudio(c, clusters, uint64(100*c+j), rate, 1), rate))
		}
	}
	// Leave-one-out nearest centroid.
	correct, total := 0, 0
	for c := range emb {
		for j, e := range emb[c] {
			best, bestD := -1, math.Inf(1)
			for c2 := range emb {
				cent := make([]float64, Dim)
				n := 0
				for j2, e2 := range emb[c2] {
					if c2 == c && j2 == j {
						continue
					}
					n++
					for i, v := range e2 {
						cent[i] += float64(v)
					}
				}
				var d float64
				for i := range cent {
					x := cent[i]/float64(n) - float64(e[i])
					d += x * x
				}
				if d < bestD {
					best, bestD = c2, d
				}
			}
			total++
			if best == c {
				correct++
			}
		}
	}
	if acc := float64(correct) / float64(total); acc < 0.9 {
		t.Errorf("nearest-centroid accuracy %.2f, want >= 0.9", acc)
	}
}

func BenchmarkEmbed(b *testing.B) {
	pcm := synth.ClusterAudio(1, 4, 1, 44100, 10)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		Embed(pcm, 44100)
	}
}
