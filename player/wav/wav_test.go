package wav

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	in := []float32{0, 0.5, -0.5, 1, -1, 2, -2, 0.25}
	path := filepath.Join(t.TempDir(), "x.wav")
	f, _ := os.Create(path)
	w, err := NewWriter(f, 22050, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(in); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(in[:3]); err == nil {
		t.Error("Write of a partial frame succeeded")
	}
	w.Close()
	f.Close()
	b, _ := os.ReadFile(path)
	pcm, rate, ch, err := Read(bytes.NewReader(b))
	if err != nil || rate != 22050 || ch != 2 || len(pcm) != len(in) {
		t.Fatalf("Read = %d samples, %d Hz, %d ch, %v", len(pcm), rate, ch, err)
	}
	for i, v := range in {
		want := max(-1, min(1, v))
		if d := pcm[i] - want; d > 1e-4 || d < -1e-4 {
			t.Errorf("sample %d = %v, want %v", i, pcm[i], want)
		}
	}
	// a pipe keeps the unknown-length header, which Read accepts
	var buf bytes.Buffer
	w, _ = NewWriter(&buf, 44100, 1)
	w.Write(in)
	w.Close()
	if pcm, _, _, err := Read(&buf); err != nil || len(pcm) != len(in) {
		t.Fatalf("Read(streamed) = %d, %v", len(pcm), err)
	}
}

func TestInt16(t *testing.T) {
	for _, c := range []struct {
		in   float32
		want int16
	}{{0, 0}, {1, 32767}, {-1, -32767}, {1.5, 32767}, {-1.5, -32768}, {0.5, 16384}} {
		if got := Int16(c.in); got != c.want {
			t.Errorf("Int16(%v) = %d, want %d", c.in, got, c.want)
		}
	}
}
