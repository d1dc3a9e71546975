package mix

import (
	"io"
	"math"
	"math/rand/v2"
	"testing"
)

// src is an in-memory Source that returns frames in random chunks and can
// hold back frames to simulate late data.
type src struct {
	pcm   []float32
	pos   int // samples
	rng   *rand.Rand
	avail int // samples ready; -1 for all
}

func newSrc(pcm []float32, seed uint64) *src {
	return &src{pcm: pcm, rng: rand.New(rand.NewPCG(seed, 1)), avail: -1}
}

func (s *src) Read(p []float32) (int, error) {
	if s.pos >= len(s.pcm) {
		return 0, io.EOF
	}
	end := len(s.pcm)
	if s.avail >= 0 {
		end = min(end, s.avail)
	}
	n := min(len(p)/2, (end-s.pos)/2, 1+s.rng.IntN(700))
	copy(p, s.pcm[s.pos:s.pos+2*n])
	s.pos += 2 * n
	return n, nil
}

func (s *src) Remaining() int64 { return int64(len(s.pcm)-s.pos) / 2 }

// ramp returns frames of a continuous stereo ramp starting at sample start.
func ramp(start, frames int) []float32 {
	p := make([]float32, 2*frames)
	for i := range frames {
		v := float32(start+i) / 1e6
		p[2*i], p[2*i+1] = v, -v
	}
	return p
}

// render drives m with random buffer sizes until idle.
func render(t *testing.T, m *Mixer, rng *rand.Rand, onRender func(out []float32)) []float32 {
	t.Helper()
	var out []float32
	for range 100000 {
		buf := make([]float32, 2*(1+rng.IntN(3000)))
		n, st := m.Render(buf)
		out = append(out, buf[:2*n]...)
		if onRender != nil {
			onRender(out)
		}
		if st == Idle {
			return out
		}
	}
	t.Fatal("mixer never went idle")
	return nil
}

func TestGapless(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	lens := []int{44100 + 17, 30011, 52919}
	m, _ := New(DefaultConfig())
	var want []float32
	at := 0
	var srcs []*src
	for i, l := range lens {
		srcs = append(srcs, newSrc(ramp(at, l), uint64(i)))
		want = append(want, ramp(at, l)...)
		at += l
	}
	m.SetNext(srcs[0], 0)
	next := 1
	got := render(t, m, rng, func([]float32) {
		if !m.HasNext() && next < len(srcs) {
			m.SetNext(srcs[next], next)
			next++
		}
	})
	if len(got) != len(want) {
		t.Fatalf("rendered %d samples, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("sample %d = %v, want %v", i, got[i], want[i])
		}
	}
}

// constant returns frames with value a on the left and b on the right.
func constant(frames int, a, b float32) []float32 {
	p := make([]float32, 2*frames)
	for i := range frames {
		p[2*i], p[2*i+1] = a, b
	}
	return p
}

func TestCrossfade(t *testing.T) {
	const fade = 4410
	for _, c := range []struct {
		name         string
		lenA, lenB   int
		wantFade     int
		wantTotalLen int
	}{
		{"normal", 20000, 20000, fade, 40000 - fade},
		{"next shorter than fade", 20000, 1000, 1000, 20000},
		{"current shorter than fade", 3000, 20000, 2999, 20001},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, _ := New(Config{Channels: 2, Crossfade: fade, SkipFade: 441})
			// A on the left, B on the right: each channel shows one gain
			m.SetNext(newSrc(constant(c.lenA, 0.5, 0), 1), "A")
			m.Render(make([]float32, 2)) // A is current
			m.SetNext(newSrc(constant(c.lenB, 0, 0.5), 2), "B")
			got := render(t, m, rand.New(rand.NewPCG(3, 4)), nil)
			if len(got)/2 != c.wantTotalLen-1 {
				t.Fatalf("rendered %d frames, want %d", len(got)/2, c.wantTotalLen-1)
			}
			faded := 0
			for f := 0; f < len(got)/2; f++ {
				ga, gb := float64(got[2*f])/0.5, float64(got[2*f+1])/0.5
				if ga > 0 && gb > 0 {
					if math.Abs(ga*ga+gb*gb-1) > 1e-5 {
						t.Fatalf("frame %d: gains %v, %v not equal-power", f, ga, gb)
					}
					x := (float64(faded) + 0.5) / float64(c.wantFade) * math.Pi / 2
					if math.Abs(gb-math.Sin(x)) > 1e-5 {
						t.Fatalf("fade frame %d: gain in %v, want %v", faded, gb, math.Sin(x))
					}
					faded++
				}
			}
			if d := faded - c.wantFade; d < -1 || d > 1 {
				t.Errorf("fade lasted %d frames, want %d", faded, c.wantFade)
			}
		})
	}
}

func TestCrossfadeNeverClips(t *testing.T) {
	m, _ := New(Config{Channels: 2, Crossfade: 5000, SkipFade: 441})
	m.SetNext(newSrc(constant(8000, 1, -1), 1), 1)
	m.Render(make([]float32, 2))
	m.SetNext(newSrc(constant(8000, 1, -1), 2), 2)
	for i, v := range render(t, m, rand.New(rand.NewPCG(5, 6)), nil) {
		if v > 1 || v < -1 {
			t.Fatalf("sample %d = %v, above full scale", i, v)
		}
	}
}

func TestCrossfadeNextLate(t *testing.T) {
	const fade = 4000
	// B arrives 1000 frames before A's end: the fade shortens to 1000
	m, _ := New(Config{Channels: 2, Crossfade: fade, SkipFade: 441})
	m.SetNext(newSrc(constant(10000, 0.5, 0), 1), "A")
	if n, _ := m.Render(make([]float32, 2*9000)); n != 9000 {
		t.Fatalf("rendered %d, want 9000", n)
	}
	m.SetNext(newSrc(constant(10000, 0, 0.5), 2), "B")
	got := render(t, m, rand.New(rand.NewPCG(7, 8)), nil)
	if len(got)/2 != 10000 {
		t.Fatalf("rendered %d more frames, want 10000 (1000 faded)", len(got)/2)
	}
	if got[0] >= 0.5 || got[2*999+1] <= 0.49 || got[2*1000] != 0 {
		t.Errorf("late fade not over the last 1000 frames of A: %v %v %v", got[0], got[2*999+1], got[2*1000])
	}

	// B arrives after A's end: a gapless join, nothing lost
	m, _ = New(Config{Channels: 2, Crossfade: fade, SkipFade: 441})
	m.SetNext(newSrc(constant(5000, 0.5, 0), 1), "A")
	n, st := m.Render(make([]float32, 2*6000))
	if n != 5000 || st != Idle {
		t.Fatalf("Render = %d, %v, want 5000, Idle", n, st)
	}
	b := newSrc(constant(5000, 0, 0.5), 2)
	b.avail = 0 // set but not ready yet
	m.SetNext(b, "B")
	if n, st := m.Render(make([]float32, 200)); n != 0 || st != Underrun {
		t.Fatalf("Render with B not ready = %d, %v, want 0, Underrun", n, st)
	}
	b.avail = -1
	got = render(t, m, rand.New(rand.NewPCG(9, 10)), nil)
	if len(got)/2 != 5000 || got[1] != 0.5 {
		t.Errorf("after late B: %d frames, first %v; want 5000 at full gain", len(got)/2, got[1])
	}
}

func TestSkipDuringFade(t *testing.T) {
	const fade, skip = 4000, 441
	m, _ := New(Config{Channels: 2, Crossfade: fade, SkipFade: skip})
	m.SetNext(newSrc(constant(10000, 0.5, 0), 1), "A")
	m.Render(make([]float32, 2))
	m.SetNext(newSrc(constant(10000, 0, 0.5), 2), "B")
	// into the fade
	m.Render(make([]float32, 2*(10000-1-fade+1000)))
	c := newSrc(constant(10000, 0.25, 0.25), 3)
	m.SetNext(c, "C")
	m.Skip()
	out := make([]float32, 2*(skip+10))
	if n, _ := m.Render(out); n != skip+10 {
		t.Fatalf("rendered %d", n)
	}
	// after the skip fade only C sounds, at full gain
	if out[2*(skip+5)] != 0.25 || out[2*(skip+5)+1] != 0.25 {
		t.Errorf("after skip fade got %v, %v, want 0.25, 0.25", out[2*(skip+5)], out[2*(skip+5)+1])
	}
	// no click: successive frames differ by at most a gain step
	prev := float32(0)
	for f := range skip {
		if d := math.Abs(float64(out[2*f] - prev)); f > 0 && d > 0.01 {
			t.Fatalf("frame %d jumps by %v", f, d)
		}
		prev = out[2*f]
	}
	ended := m.TakeEnded()
	if len(ended) != 2 {
		t.Errorf("ended = %v, want A and B", ended)
	}
	if m.Current() != "C" {
		t.Errorf("Current() = %v, want C", m.Current())
	}
}
