package player

import (
	"math"
	"testing"
)

func TestResamplerDoubles(t *testing.T) {
	// mono 22050 Hz ramp to stereo 44100: exactly twice the frames,
	// interpolated, in any push sizes, and a restart mid-way lines up
	const n = 1000
	in := make([]float32, n)
	for i := range in {
		in[i] = float32(i) / n
	}
	r := newResampler(22050, 44100, 1, 0)
	var out []float32
	for i := 0; i < n; i += 37 {
		out = r.push(out, in[i:min(i+37, n)])
	}
	out = r.finish(out, 2*n)
	if len(out) != 4*n {
		t.Fatalf("got %d frames, want %d", len(out)/2, 2*n)
	}
	for j := range 2*n - 2 {
		want := float32(j) / 2 / n
		if math.Abs(float64(out[2*j]-want)) > 1e-6 || out[2*j] != out[2*j+1] {
			t.Fatalf("frame %d = %v,%v, want %v", j, out[2*j], out[2*j+1], want)
		}
	}
	r2 := newResampler(22050, 44100, 1, 501)
	start := r2.inputStart()
	got := r2.push(nil, in[start:])
	if got[0] != out[2*501] || got[2] != out[2*502] {
		t.Fatalf("restart at 501: %v, want %v", got[:4], out[2*501:2*503])
	}
}
