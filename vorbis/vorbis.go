// Package vorbis decodes an Ogg Vorbis byte stream into PCM with exact
// sample positions. It sits on jfreymuth/vorbis (the packet decoder used by
// github.com/jfreymuth/oggvorbis v1.0.5) and package ogg (framing), and adds
// what a gapless player needs and the oggvorbis Reader does not give:
//
//   - decoding may start at any page (a seek issues one range request from
//     a page offset found in the seek table) given the three header packets
//     read once from the start of the file;
//   - every output sample has a position, derived from granule positions:
//     decoded samples are held until a page's granule position is known,
//     then placed so that they end on it. At the start of a stream that
//     rule trims the encoder's leading samples and at the end of stream it
//     trims the padding (Vorbis I spec, A.2), so a decoded track has
//     exactly the encoder's sample count, and joins are sample-exact.
package vorbis

import (
	"errors"
	"fmt"
	"io"

	"github.com/jfreymuth/vorbis"

	"github.com/musiccdn/cdn/ogg"
)

// Headers are the three Vorbis header packets of a stream and where its
// audio pages begin.
type Headers struct {
	packets    [3][]byte
	SampleRate int
	Channels   int
	// AudioStart is the byte offset of the first page after the headers.
	AudioStart int64
}

// ReadHeaders reads the header pages from r, which starts at offset 0 of
// the file. It reads no further than the end of the page that completes the
// setup header.
func ReadHeaders(r io.Reader) (*Headers, error) {
	pr := ogg.NewReader(r, 0)
	pk := ogg.NewPacketReader(pr)
	h := &Headers{}
	var d vorbis.Decoder
	for i := range 3 {
		p, err := pk.Next()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("decoder: header %d: %w", i, err)
		}
		if err := d.ReadHeader(p.Data); err != nil {
			return nil, fmt.Errorf("decoder: header %d: %w", i, err)
		}
		h.packets[i] = p.Data
		if i == 2 {
			if !p.PageEnd {
				return nil, errors.New("decoder: audio shares the setup header's page")
			}
			h.AudioStart = pr.Offset()
		}
	}
	h.SampleRate, h.Channels = d.SampleRate(), d.Channels()
	if h.SampleRate <= 0 || h.Channels <= 0 {
		return nil, errors.New("decoder: bad identification header")
	}
	return h, nil
}

// Stream decodes audio pages into interleaved float32 samples.
type Stream struct {
	h       *Headers
	pk      *ogg.PacketReader
	dec     vorbis.Decoder
	scratch []float32

	pending []float32 // decoded, position not yet known
	ready   []float32 // positioned, not yet read
	readyAt int64     // position of ready[0]
	known   bool      // whether positions are known yet
	next    int64     // position of the sample after the last one made ready
	eos     bool
	err     error

	fromStart bool // decoding began at the first audio page
}

// NewStream returns a stream decoding from r, whose first byte is at file
// offset off: h.AudioStart to play from the start, or the offset of a page
// from the seek table. Positions are inferred from the first granule
// position met, so off must not be the last (end-of-stream) page unless it
// is also the first: its granule marks the trimmed end, not where decoding
// began. Seek tables written by ingest never point there.
func NewStream(h *Headers, r io.Reader, off int64) (*Stream, error) {
	s := &Stream{h: h, pk: ogg.NewPacketReader(ogg.NewReader(r, off)), fromStart: off == h.AudioStart}
	for i, p := range h.packets {
		if err := s.dec.ReadHeader(p); err != nil {
			return nil, fmt.Errorf("decoder: header %d: %w", i, err)
		}
	}
	s.scratch = make([]float32, s.dec.BufferSize())
	return s, nil
}

// Channels is the number of interleaved channels.
func (s *Stream) Channels() int { return s.h.Channels }

// SampleRate is the stream's rate in Hz.
func (s *Stream) SampleRate() int { return s.h.SampleRate }

// Pos returns the position, in samples per channel (the granule scale), of
// the next sample Read returns. It decodes ahead if needed and returns an
// error if no position can be established.
func (s *Stream) Pos() (int64, error) {
	for len(s.ready) == 0 && !s.eos && s.err == nil {
		s.decodePage()
	}
	if !s.known {
		if s.err != nil {
			return 0, s.err
		}
		return 0, io.EOF
	}
	return s.readyAt, nil
}

// Read fills p with interleaved samples; it returns the number of float32
// values written, always a multiple of Channels(), and io.EOF after the
// last sample of the stream.
func (s *Stream) Read(p []float32) (int, error) {
	ch := s.h.Channels
	p = p[:len(p)/ch*ch]
	for len(s.ready) == 0 {
		if s.eos {
			return 0, io.EOF
		}
		if s.err != nil {
			return 0, s.err
		}
		s.decodePage()
	}
	n := copy(p, s.ready)
	s.ready = s.ready[n:]
	s.readyAt += int64(n / ch)
	return n, nil
}

// Skip discards samples until the position is pos (no-op when already at
// or past it), so a seek lands on the exact sample.
func (s *Stream) Skip(pos int64) error {
	ch := int64(s.h.Channels)
	for {
		at, err := s.Pos()
		if err != nil {
			return err
		}
		if at >= pos {
			return nil
		}
		n := min(int64(len(s.ready)), (pos-at)*ch)
		s.ready = s.ready[n:]
		s.readyAt += n / ch
	}
}

// decodePage decodes packets up to the end of the next page with a granule
// position and moves them to ready.
func (s *Stream) decodePage() {
	ch := s.h.Channels
	for {
		pk, err := s.pk.Next()
		if err != nil {
			if err == io.EOF {
				// no EOS page: what is positioned is all there is
				s.eos = true
				s.ready = append(s.ready, s.pendingIfKnown()...)
				return
			}
			s.err = fmt.Errorf("decoder: %w", err)
			return
		}
		out, err := s.decodePacket(pk.Data)
		if err != nil {
			// a corrupt packet: skip it as libvorbis does, with fresh state
			s.dec.Clear()
			out = nil
		}
		s.pending = append(s.pending, out...)
		if !pk.PageEnd || pk.Granule == ogg.NoGranule {
			continue
		}
		frames := int64(len(s.pending) / ch)
		if !s.known {
			start := pk.Granule - frames
			if pk.EOS && s.fromStart {
				// a one-page stream: the granule marks the end, and the
				// excess is end padding, not leading samples
				start = 0
			}
			if start < 0 {
				// start trimming: the first samples precede position 0
				drop := min(-start, frames)
				s.pending = s.pending[drop*int64(ch):]
				start = 0
			}
			s.known = true
			s.readyAt = start
			if len(s.ready) > 0 {
				s.readyAt -= int64(len(s.ready) / ch)
			}
			s.next = start
		}
		end := s.next + int64(len(s.pending)/ch)
		if pk.EOS && pk.Granule < end {
			keep := max(0, pk.Granule-s.next)
			s.pending = s.pending[:keep*int64(ch)]
			end = s.next + keep
		}
		if len(s.ready) == 0 {
			s.ready = s.ready[:0]
		}
		s.ready = append(s.ready, s.pending...)
		s.pending = s.pending[:0]
		s.next = end
		if pk.EOS {
			s.eos = true
		}
		return
	}
}

func (s *Stream) pendingIfKnown() []float32 {
	if !s.known {
		return nil
	}
	p := s.pending
	s.pending = nil
	return p
}

// decodePacket decodes one packet, turning a panic of the packet decoder
// on hostile input into an error: bytes come from the network.
func (s *Stream) decodePacket(p []byte) (out []float32, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("decoder: malformed packet: %v", r)
		}
	}()
	return s.dec.DecodeInto(p, s.scratch)
}
