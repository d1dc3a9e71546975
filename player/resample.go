package player

// resampler converts decoded PCM of any channel count and rate to stereo at
// the output rate. At the output rate with two channels it copies samples
// unchanged, so gapless joins stay bit-exact; otherwise it interpolates
// linearly (mono is duplicated, more than two channels keep the first
// two). Positions are absolute: output frame j is taken at input position
// j·in/out, so a resampler restarted after a seek lines up with one that
// played through.
type resampler struct {
	in, out int64
	ch      int
	next    int64     // absolute index of the next output frame
	base    int64     // absolute input frame index of buf[0]
	buf     []float32 // stereo input frames from base on
}

func newResampler(inRate, outRate, ch int, startOut int64) *resampler {
	r := &resampler{in: int64(inRate), out: int64(outRate), ch: ch, next: startOut}
	r.base = startOut * r.in / r.out
	return r
}

// inputStart is the absolute input frame the resampler needs first.
func (r *resampler) inputStart() int64 { return r.base }

func (r *resampler) passthrough() bool { return r.in == r.out && r.ch == 2 }

// push adds interleaved input frames and appends the output frames that
// can be computed to dst.
func (r *resampler) push(dst, p []float32) []float32 {
	if r.passthrough() {
		r.next += int64(len(p) / 2)
		return append(dst, p...)
	}
	for i := 0; i+r.ch <= len(p); i += r.ch {
		l := p[i]
		rr := l
		if r.ch > 1 {
			rr = p[i+1]
		}
		r.buf = append(r.buf, l, rr)
	}
	return r.drain(dst, -1)
}

// finish appends the remaining output frames up to total (absolute),
// holding the last input frame past the end of input.
func (r *resampler) finish(dst []float32, total int64) []float32 {
	if r.passthrough() {
		return dst
	}
	return r.drain(dst, total)
}

func (r *resampler) drain(dst []float32, total int64) []float32 {
	have := r.base + int64(len(r.buf)/2)
	for {
		if total >= 0 && r.next >= total {
			break
		}
		num := r.next * r.in
		idx := num / r.out
		frac := float32(num%r.out) / float32(r.out)
		if idx+1 >= have && total < 0 {
			break
		}
		if len(r.buf) == 0 {
			break
		}
		a := min(idx-r.base, int64(len(r.buf)/2-1))
		b := min(a+1, int64(len(r.buf)/2-1))
		if a < 0 {
			a, b = 0, 0
		}
		for c := range int64(2) {
			x, y := r.buf[2*a+c], r.buf[2*b+c]
			dst = append(dst, x+(y-x)*frac)
		}
		r.next++
	}
	// drop input no longer needed
	keep := r.next*r.in/r.out - r.base
	if keep > 0 && total < 0 {
		keep = min(keep, int64(len(r.buf)/2))
		r.buf = append(r.buf[:0], r.buf[2*keep:]...)
		r.base += keep
	}
	return dst
}
