// Package content turns decoded audio into a fixed-length content
// embedding: statistics of a log-mel spectrogram and of its frame-to-frame
// change. Ingest computes it once per track; recommendations map it onto
// the collaborative item factors so that a track with no plays yet can be
// recommended from its first day (the idea of van den Oord, Dieleman and
// Schrauwen, "Deep content-based music recommendation", NeurIPS 2013, with
// hand-made features and a linear map in place of the network).
package content

import (
	"math"

	"gonum.org/v1/gonum/dsp/fourier"
)

// Bands is the number of mel bands.
const Bands = 32

// Dim is the length of every embedding: per band the mean log energy
// (relative to the track's overall level, so loudness does not matter),
// its standard deviation over time, and the mean absolute change between
// consecutive frames (the temporal dynamics).
const Dim = 3 * Bands

const (
	minHz = 40.0
	maxHz = 11025.0
	// silenceDB drops frames this far below the loudest frame, so fades
	// and padding do not shift the statistics.
	silenceDB = 60.0
)

// Embed returns the Dim-long embedding of mono PCM samples (nominally in
// [-1, 1]) at sampleRate Hz. It is a pure function: the same input always
// gives the same output. Audio too short for one analysis frame, or
// silent, gives the zero vector.
func Embed(pcm []float32, sampleRate int) []float32 {
	out := make([]float32, Dim)
	if sampleRate < 1000 {
		return out
	}
	// Frames of ~46 ms (2048 samples at 44.1 kHz), half overlapping.
	n := 1
	for n < int(0.046*float64(sampleRate)) {
		n <<= 1
	}
	hop := n / 2
	if len(pcm) < n {
		return out
	}
	fb := melBank(n, sampleRate)
	fft := fourier.NewFFT(n)
	window := make([]float64, n)
	for i := range window {
		window[i] = 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/float64(n))
	}
	seq := make([]float64, n)
	coef := make([]complex128, n/2+1)
	power := make([]float64, n/2+1)
	var frames [][Bands]float64
	var level []float64
	for start := 0; start+n <= len(pcm); start += hop {
		for i := range seq {
			seq[i] = float64(pcm[start+i]) * window[i]
		}
		fft.Coefficients(coef, seq)
		for i, c := range coef {
			power[i] = real(c)*real(c) + imag(c)*imag(c)
		}
		var f [Bands]float64
		var total float64
		for b, tri := range fb {
			var e float64
			for j, w := range tri.weights {
				e += w * power[tri.lo+j]
			}
			total += e
			f[b] = 10 * math.Log10(e+1e-12)
		}
		frames = append(frames, f)
		level = append(level, 10*math.Log10(total+1e-12))
	}
	loudest := math.Inf(-1)
	for _, l := range level {
		loudest = max(loudest, l)
	}
	if loudest < -100 {
		return out // digital silence
	}
	var mean, sq, delta [Bands]float64
	var kept, pairs float64
	var overall float64
	prev := -1
	for t, f := range frames {
		if level[t] < loudest-silenceDB {
			prev = -1
			continue
		}
		kept++
		for b, v := range f {
			mean[b] += v
			sq[b] += v * v
			overall += v
		}
		if prev >= 0 {
			pairs++
			for b, v := range f {
				delta[b] += math.Abs(v - frames[prev][b])
			}
		}
		prev = t
	}
	overall /= kept * Bands
	// Scale dB figures down to roughly unit range so the three groups
	// weigh alike in distances.
	const scale = 1.0 / 20
	for b := 0; b < Bands; b++ {
		m := mean[b] / kept
		v := max(0, sq[b]/kept-m*m)
		out[b] = float32((m - overall) * scale)
		out[Bands+b] = float32(math.Sqrt(v) * scale)
		if pairs > 0 {
			out[2*Bands+b] = float32(delta[b] / pairs * scale)
		}
	}
	return out
}

type triangle struct {
	lo      int
	weights []float64
}

// melBank returns Bands triangular filters over the bins of an n-point
// real FFT, evenly spaced on the mel scale between minHz and the lesser of
// maxHz and Nyquist. Each filter has at least one bin, so low sample rates
// and short frames still give Bands finite values.
func melBank(n, sampleRate int) []triangle {
	mel := func(hz float64) float64 { return 2595 * math.Log10(1+hz/700) }
	hz := func(m float64) float64 { return 700 * (math.Pow(10, m/2595) - 1) }
	top := min(maxHz, float64(sampleRate)/2)
	lo, hi := mel(minHz), mel(top)
	binHz := float64(sampleRate) / float64(n)
	edges := make([]float64, Bands+2)
	for i := range edges {
		edges[i] = hz(lo+(hi-lo)*float64(i)/float64(Bands+1)) / binHz
	}
	bank := make([]triangle, Bands)
	for b := range bank {
		l, c, r := edges[b], edges[b+1], edges[b+2]
		first := int(math.Ceil(l))
		last := max(first, int(math.Floor(r)))
		last = min(last, n/2)
		first = min(first, last)
		t := triangle{lo: first}
		for k := first; k <= last; k++ {
			x := float64(k)
			var w float64
			switch {
			case x <= c:
				w = (x - l) / math.Max(c-l, 1e-9)
			default:
				w = (r - x) / math.Max(r-c, 1e-9)
			}
			t.weights = append(t.weights, math.Max(w, 0))
		}
		// A filter narrower than one bin would see nothing; give it the
		// nearest bin.
		var sum float64
		for _, w := range t.weights {
			sum += w
		}
		if sum == 0 {
			t.lo = min(int(math.Round(c)), n/2)
			t.weights = []float64{1}
		}
		bank[b] = t
	}
	return bank
}
