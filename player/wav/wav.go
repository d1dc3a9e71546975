// Package wav writes and reads 16-bit PCM WAV files (RIFF/WAVE, format 1).
// The player renders to it, and tests build source files with it.
package wav

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Writer streams interleaved samples into a WAV file. The sizes in the
// header are patched on Close when the output is seekable; otherwise they
// say "unknown length" (0xFFFFFFFF), which common tools accept.
type Writer struct {
	w        io.Writer
	rate, ch int
	frames   int64
	buf      []byte
	closed   bool
}

// NewWriter writes a WAV header for rate Hz and ch channels to w.
func NewWriter(w io.Writer, rate, ch int) (*Writer, error) {
	if rate <= 0 || ch <= 0 || ch > 16 {
		return nil, fmt.Errorf("wav: bad format %d Hz, %d channels", rate, ch)
	}
	wr := &Writer{w: w, rate: rate, ch: ch}
	if _, err := w.Write(header(rate, ch, -1)); err != nil {
		return nil, fmt.Errorf("wav: %w", err)
	}
	return wr, nil
}

// Write converts interleaved float samples in [-1, 1] to 16-bit and writes
// them; len(p) must be a multiple of the channel count.
func (w *Writer) Write(p []float32) error {
	if len(p)%w.ch != 0 {
		return errors.New("wav: partial frame")
	}
	w.buf = w.buf[:0]
	for _, v := range p {
		w.buf = binary.LittleEndian.AppendUint16(w.buf, uint16(Int16(v)))
	}
	if _, err := w.w.Write(w.buf); err != nil {
		return fmt.Errorf("wav: %w", err)
	}
	w.frames += int64(len(p) / w.ch)
	return nil
}

// Frames is the number of frames written.
func (w *Writer) Frames() int64 { return w.frames }

// Close patches the header sizes when the output is an io.WriteSeeker. It
// does not close the underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	ws, ok := w.w.(io.WriteSeeker)
	if !ok {
		return nil
	}
	if _, err := ws.Seek(0, io.SeekStart); err != nil {
		return nil // a pipe: leave the unknown-length header
	}
	if _, err := ws.Write(header(w.rate, w.ch, w.frames)); err != nil {
		return fmt.Errorf("wav: %w", err)
	}
	_, err := ws.Seek(0, io.SeekEnd)
	return err
}

// Int16 converts a float sample to 16-bit PCM, clipping to full scale.
func Int16(v float32) int16 {
	x := math.Round(float64(v) * 32767)
	if x > 32767 {
		return 32767
	}
	if x < -32768 {
		return -32768
	}
	return int16(x)
}

func header(rate, ch int, frames int64) []byte {
	data := uint32(0xFFFFFFFF)
	riff := uint32(0xFFFFFFFF)
	if frames >= 0 && frames*int64(ch)*2 < math.MaxUint32-36 {
		data = uint32(frames * int64(ch) * 2)
		riff = 36 + data
	}
	b := make([]byte, 0, 44)
	le := binary.LittleEndian
	b = append(b, "RIFF"...)
	b = le.AppendUint32(b, riff)
	b = append(b, "WAVEfmt "...)
	b = le.AppendUint32(b, 16)
	b = le.AppendUint16(b, 1)
	b = le.AppendUint16(b, uint16(ch))
	b = le.AppendUint32(b, uint32(rate))
	b = le.AppendUint32(b, uint32(rate*ch*2))
	b = le.AppendUint16(b, uint16(ch*2))
	b = le.AppendUint16(b, 16)
	b = append(b, "data"...)
	return le.AppendUint32(b, data)
}

// Read parses a 16-bit PCM WAV file and returns its interleaved samples as
// floats, its rate and channel count.
func Read(r io.Reader) (pcm []float32, rate, ch int, err error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, 0, 0, err
	}
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return nil, 0, 0, errors.New("wav: not a WAVE file")
	}
	le := binary.LittleEndian
	b = b[12:]
	for len(b) >= 8 {
		id, size := string(b[0:4]), int64(le.Uint32(b[4:8]))
		b = b[8:]
		if size > int64(len(b)) {
			size = int64(len(b)) // unknown-length data chunk
		}
		switch id {
		case "fmt ":
			if size < 16 || le.Uint16(b[0:]) != 1 || le.Uint16(b[14:]) != 16 {
				return nil, 0, 0, errors.New("wav: not 16-bit PCM")
			}
			ch, rate = int(le.Uint16(b[2:])), int(le.Uint32(b[4:]))
		case "data":
			if ch == 0 {
				return nil, 0, 0, errors.New("wav: data before fmt")
			}
			n := size / 2 / int64(ch) * int64(ch)
			pcm = make([]float32, n)
			for i := range pcm {
				pcm[i] = float32(int16(le.Uint16(b[2*i:]))) / 32767
			}
			return pcm, rate, ch, nil
		}
		b = b[size+size&1:]
	}
	return nil, 0, 0, errors.New("wav: no data chunk")
}
