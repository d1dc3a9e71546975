package player

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/musiccdn/cdn/player/wav"
)

// Sink receives rendered audio: interleaved stereo float32 at the output
// rate.
type Sink interface {
	Write(p []float32) error
	Close() error
}

// WAVSink writes a 16-bit WAV file (sizes patched on Close when w can
// seek).
type WAVSink struct{ w *wav.Writer }

// NewWAVSink starts a WAV stream on w.
func NewWAVSink(w io.Writer, rate int) (*WAVSink, error) {
	ww, err := wav.NewWriter(w, rate, 2)
	if err != nil {
		return nil, err
	}
	return &WAVSink{w: ww}, nil
}

func (s *WAVSink) Write(p []float32) error { return s.w.Write(p) }
func (s *WAVSink) Close() error            { return s.w.Close() }

// RawSink writes raw signed 16-bit little-endian PCM, as `aplay -f cd`
// reads it.
type RawSink struct {
	w   io.Writer
	buf []byte
}

// NewRawSink writes to w.
func NewRawSink(w io.Writer) *RawSink { return &RawSink{w: w} }

func (s *RawSink) Write(p []float32) error {
	s.buf = s.buf[:0]
	for _, v := range p {
		s.buf = binary.LittleEndian.AppendUint16(s.buf, uint16(wav.Int16(v)))
	}
	_, err := s.w.Write(s.buf)
	return err
}

func (s *RawSink) Close() error { return nil }

// NullSink discards audio and keeps a virtual clock: the time the audio
// written so far would take to play.
type NullSink struct {
	Rate   int
	Frames int64
}

func (s *NullSink) Write(p []float32) error { s.Frames += int64(len(p) / 2); return nil }
func (s *NullSink) Close() error            { return nil }

// Now is the virtual playback time.
func (s *NullSink) Now() time.Duration {
	return time.Duration(float64(s.Frames) / float64(s.Rate) * float64(time.Second))
}

// Play renders the whole session into sink in chunks of frames and
// returns the wall time to the first audio.
func Play(s *Session, sink Sink, frames int) (time.Duration, error) {
	start := time.Now()
	var first time.Duration
	buf := make([]float32, 2*frames)
	for {
		n, err := s.Render(buf)
		if n > 0 && first == 0 {
			first = time.Since(start)
		}
		if werr := sink.Write(buf[:2*n]); werr != nil {
			return first, fmt.Errorf("player: output: %w", werr)
		}
		if err == io.EOF {
			return first, sink.Close()
		}
		if err != nil {
			return first, err
		}
	}
}
