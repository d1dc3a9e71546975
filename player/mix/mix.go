// Package mix is the player's mixing state machine: it pulls PCM from the
// current track and the next one and produces the output stream, with
// sample-exact gapless joins, an equal-power crossfade and a short fade on
// skips. It has no goroutines, clock or I/O: the engine calls Render with
// an output buffer and hands over the next track with SetNext, so tests
// drive it with in-memory sources and check every sample.
//
// # Rules
//
//   - Gapless: with no crossfade, the next track's first frame follows the
//     current track's last frame in the same Render call; nothing is
//     inserted or dropped.
//   - Crossfade of F frames: when the next track is known, the current one
//     starts fading out exactly F' = min(F, its remaining frames, the next
//     track's length) frames before its end, while the next fades in, with
//     gains cos and sin of (i+0.5)/F'·π/2, so their squares sum to 1 at
//     every frame. The fade ends exactly on the current track's last frame.
//   - Next track late: if it is not set by the time the fade should start,
//     the fade is shortened to what is left of the current track when it
//     arrives, or, if it arrives after the end, the join is gapless.
//   - Skip: every playing voice fades out from its present gain over
//     SkipFade frames while the new track fades in over the same frames.
//   - Underrun: when a source has no frames ready, Render stops early and
//     reports it; the caller decides between waiting (rendering to a file)
//     and emitting silence (a real-time device).
//
// The mixed signal is clipped to [-1, 1].
package mix

import (
	"errors"
	"io"
	"math"
)

// Source is one track's PCM in the output format: interleaved frames of
// Config.Channels samples at the output rate.
type Source interface {
	// Read copies up to len(p)/channels frames into p and returns the
	// number of frames. It returns 0, nil when no frame is ready yet (the
	// data is late) and io.EOF after the last frame. It must not block.
	Read(p []float32) (frames int, err error)
	// Remaining is the number of frames left to read, or -1 if unknown
	// (then the track cannot be crossfaded out).
	Remaining() int64
}

// Config sets the fades, in frames.
type Config struct {
	Channels  int // interleaved channels; default 2
	Crossfade int // frames; 0 (the default) for gapless joins
	SkipFade  int // frames; default 441 (10 ms at 44.1 kHz)
	// OnRender, when set, is called after each step with the tag of every
	// voice and the frames of it mixed into the output (at any gain): what
	// the 30-second play rule counts.
	OnRender func(tag any, frames int)
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Channels <= 0 || c.Crossfade < 0 || c.SkipFade <= 0 {
		return errors.New("mix: channels and skip fade must be positive, crossfade non-negative")
	}
	return nil
}

// DefaultConfig returns stereo, gapless, 10 ms skip fades at 44.1 kHz.
func DefaultConfig() Config { return Config{Channels: 2, SkipFade: 441} }

// envelope is a gain curve: an equal-power fade in (from 0) or fade out
// (from g0) over n frames, or a constant gain when n == 0.
type envelope struct {
	in bool
	g0 float64
	n  int
	i  int
}

func (e *envelope) gain() float64 {
	if e.n == 0 {
		return e.g0
	}
	x := (float64(e.i) + 0.5) / float64(e.n) * math.Pi / 2
	if e.in {
		return math.Sin(x)
	}
	return e.g0 * math.Cos(x)
}

// left is how many frames the fade has to run (0 when steady).
func (e *envelope) left() int {
	if e.n == 0 {
		return 0
	}
	return e.n - e.i
}

type voice struct {
	src   Source
	tag   any
	env   envelope
	carry []float32 // frames read but not yet mixed
	done  bool      // source returned io.EOF and carry is empty
}

// Mixer mixes the voices. It is not safe for concurrent use.
type Mixer struct {
	cfg     Config
	voices  []*voice // the last one is the current track
	next    *voice
	scratch []float32
	// Ended collects tags of voices that finished or faded out, in order,
	// since the last TakeEnded.
	ended []any
}

// New returns a mixer.
func New(cfg Config) (*Mixer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Mixer{cfg: cfg}, nil
}

// SetNext sets the track that follows the current one. tag identifies it in
// Current and TakeEnded. A next track already set is replaced.
func (m *Mixer) SetNext(src Source, tag any) {
	m.next = &voice{src: src, tag: tag, env: envelope{g0: 1}}
}

// HasNext reports whether a next track is set and not yet started.
func (m *Mixer) HasNext() bool { return m.next != nil }

// Current returns the tag of the current track, or nil when idle.
func (m *Mixer) Current() any {
	if len(m.voices) == 0 {
		return nil
	}
	return m.voices[len(m.voices)-1].tag
}

// TakeEnded returns the tags of the tracks that have stopped sounding since
// the last call.
func (m *Mixer) TakeEnded() []any {
	e := m.ended
	m.ended = nil
	return e
}

// Discard drops the frames the mixer has read ahead from the current
// track, for a seek: the next frame rendered is the source's next frame.
func (m *Mixer) Discard() {
	if len(m.voices) > 0 {
		v := m.voices[len(m.voices)-1]
		v.carry = v.carry[:0]
	}
}

// Skip starts the next track (set by SetNext) now: every playing voice,
// including both sides of a crossfade in progress, fades out from its
// present gain over SkipFade frames while the next track fades in over the
// same frames. With no next track set, everything fades out.
func (m *Mixer) Skip() {
	for _, v := range m.voices {
		if v.env.n > 0 && !v.env.in && v.env.left() <= m.cfg.SkipFade {
			continue // already fading out at least as fast
		}
		v.env = envelope{g0: v.env.gain(), n: m.cfg.SkipFade}
	}
	if m.next != nil {
		nv := m.next
		m.next = nil
		nv.env = envelope{in: true, n: m.cfg.SkipFade}
		m.voices = append(m.voices, nv)
	}
}

// Status says why Render returned before filling its buffer.
type Status int

const (
	Full     Status = iota // the buffer is full
	Underrun               // a source has no frame ready
	Idle                   // nothing is playing and no next track is set
)

// Render mixes into out (whole frames) and returns the number of frames
// written and why it stopped.
func (m *Mixer) Render(out []float32) (int, Status) {
	ch := m.cfg.Channels
	total := len(out) / ch
	done := 0
	for done < total {
		if len(m.voices) == 0 {
			if m.next == nil {
				return done, Idle
			}
			m.voices = append(m.voices, m.next)
			m.next = nil
		}
		m.maybeCrossfade()
		n := total - done
		// stop at the next event: a fade's end or the start of a crossfade
		for _, v := range m.voices {
			if l := v.env.left(); l > 0 {
				n = min(n, l)
			}
		}
		if at := m.untilCrossfade(); at >= 0 {
			n = min(n, at)
		}
		// fetch n frames from each voice, or fewer if one runs short
		cur := m.voices[len(m.voices)-1]
		for _, v := range m.voices {
			m.fill(v, n)
			// a voice fading out may end early; otherwise mix only what
			// every voice has (an underrun) and stop the current track on
			// its last frame
			if have := len(v.carry) / ch; have < n && (!v.done || v == cur) {
				n = have
			}
		}
		if n == 0 {
			if cur.done && len(cur.carry) == 0 {
				m.finish(cur)
				continue
			}
			if m.cleanup() {
				continue
			}
			return done, Underrun
		}
		dst := out[done*ch : (done+n)*ch]
		clear(dst)
		for _, v := range m.voices {
			k := min(n, len(v.carry)/ch)
			for f := range k {
				g := float32(v.env.gain())
				for c := range ch {
					dst[f*ch+c] += g * v.carry[f*ch+c]
				}
				if v.env.n > 0 {
					v.env.i++
				}
			}
			v.carry = v.carry[k*ch:]
			if m.cfg.OnRender != nil && k > 0 {
				m.cfg.OnRender(v.tag, k)
			}
			if v.env.n > 0 && v.env.i >= v.env.n {
				if v.env.in {
					v.env = envelope{g0: 1}
				} else {
					v.env = envelope{g0: 0}
					v.done = true
					v.carry = nil
				}
			}
		}
		for i, s := range dst {
			dst[i] = max(-1, min(1, s))
		}
		done += n
		m.cleanup()
	}
	return done, Full
}

// fill tops up v's carry to n frames.
func (m *Mixer) fill(v *voice, n int) {
	ch := m.cfg.Channels
	for !v.done && len(v.carry)/ch < n {
		want := (n - len(v.carry)/ch) * ch
		if cap(m.scratch) < want {
			m.scratch = make([]float32, want)
		}
		k, err := v.src.Read(m.scratch[:want])
		v.carry = append(v.carry, m.scratch[:k*ch]...)
		if err == io.EOF {
			v.done = true
			return
		}
		if err != nil || k == 0 {
			return
		}
	}
}

// cleanup removes voices that are done and whose frames are all mixed; it
// reports whether it removed any. A current track that ends hands over to
// the next in the same Render call.
func (m *Mixer) cleanup() bool {
	removed := false
	kept := m.voices[:0]
	for _, v := range m.voices {
		if v.done && len(v.carry) == 0 {
			m.ended = append(m.ended, v.tag)
			removed = true
			continue
		}
		kept = append(kept, v)
	}
	clear(m.voices[len(kept):])
	m.voices = kept
	return removed
}

func (m *Mixer) finish(v *voice) {
	v.done, v.carry = true, nil
	m.cleanup()
}

// xfadeLen is the length of the crossfade from the current voice to the
// next one, or -1 when none applies.
func (m *Mixer) xfadeLen() (int64, *voice) {
	if m.cfg.Crossfade == 0 || m.next == nil || len(m.voices) == 0 {
		return -1, nil
	}
	cur := m.voices[len(m.voices)-1]
	if !cur.env.in && cur.env.n > 0 || cur.done {
		return -1, nil // already fading out, or ended
	}
	rem := cur.src.Remaining()
	nl := m.next.src.Remaining()
	if rem < 0 || nl <= 0 {
		return -1, nil
	}
	rem += int64(len(cur.carry) / m.cfg.Channels)
	return min(int64(m.cfg.Crossfade), nl), cur
}

// untilCrossfade returns the frames before the crossfade must start, or
// -1 when none is due.
func (m *Mixer) untilCrossfade() int {
	f, cur := m.xfadeLen()
	if f < 0 {
		return -1
	}
	rem := cur.src.Remaining() + int64(len(cur.carry)/m.cfg.Channels)
	return int(max(0, rem-f))
}

// maybeCrossfade starts the crossfade when the current voice is within the
// fade length of its end.
func (m *Mixer) maybeCrossfade() {
	f, cur := m.xfadeLen()
	if f < 0 {
		return
	}
	rem := cur.src.Remaining() + int64(len(cur.carry)/m.cfg.Channels)
	if rem > f || rem == 0 {
		return
	}
	n := int(rem)
	cur.env = envelope{g0: cur.env.gain(), n: n}
	nv := m.next
	m.next = nil
	nv.env = envelope{in: true, n: n}
	m.voices = append(m.voices, nv)
}
