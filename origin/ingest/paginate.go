package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jfreymuth/vorbis"

	"github.com/musiccdn/cdn/ogg"
	"github.com/musiccdn/cdn/seektable"
)

// paged is an encoder's output rewritten with short pages, and its seek
// table.
type paged struct {
	ogg   []byte
	table *seektable.Table
}

// repaginate rewrites an Ogg Vorbis stream so that no page spans more than
// maxSpan samples of audio (plus one packet), keeping the header pages
// byte for byte and every packet and granule position intact, and returns
// it with a seek table holding one entry per audio page. libvorbis pages
// hold about 4 KiB, which is three seconds at 24 kbit/s: too coarse for
// seeking and for the one-entry-per-second rule.
//
// Every output page starts with a fresh packet, so decoding from page P
// primes on P's first packet k and yields samples from granule(k) on; that
// is the entry's time. Per-packet granule positions are not in the input
// (only the last packet of a page carries one), so they are computed by
// decoding: each packet adds exactly the samples it decodes to.
func repaginate(src []byte, span time.Duration) (*paged, error) {
	pages := ogg.NewReader(bytes.NewReader(src), 0)
	pr := ogg.NewPacketReader(pages)
	var dec vorbis.Decoder
	var serial uint32
	var seq uint32
	var audioStart int64
	for i := range 3 {
		pk, err := pr.Next()
		if err != nil {
			return nil, fmt.Errorf("header %d: %w", i, noEOF(err))
		}
		if err := dec.ReadHeader(pk.Data); err != nil {
			return nil, fmt.Errorf("header %d: %w", i, err)
		}
		if i == 2 {
			if !pk.PageEnd {
				return nil, errors.New("audio shares the setup header's page")
			}
			audioStart = pages.Offset()
		}
	}
	// count the header pages for the sequence numbers, and take the serial
	hp := ogg.NewReader(bytes.NewReader(src[:audioStart]), 0)
	for {
		p, err := hp.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		serial, seq = p.Serial, p.Seq+1
	}

	type packet struct {
		data []byte
		cum  int64 // samples decoded up to and including this packet
	}
	var pkts []packet
	buf := make([]float32, dec.BufferSize())
	var cum int64
	origin, haveOrigin := int64(0), false
	final := int64(-1)
	for {
		pk, err := pr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("audio: %w", err)
		}
		out, err := dec.DecodeInto(pk.Data, buf)
		if err != nil {
			return nil, fmt.Errorf("audio packet %d: %w", len(pkts), err)
		}
		cum += int64(len(out) / dec.Channels())
		pkts = append(pkts, packet{pk.Data, cum})
		if pk.PageEnd && pk.Granule != ogg.NoGranule {
			if !haveOrigin {
				origin, haveOrigin = pk.Granule-cum, true
			}
			if pk.EOS {
				final = pk.Granule
				break
			}
		}
	}
	if !haveOrigin || len(pkts) == 0 {
		return nil, errors.New("no audio")
	}
	if final < 0 {
		final = origin + cum
	}
	granule := func(i int) int64 {
		if i == len(pkts)-1 {
			return final
		}
		return origin + pkts[i].cum
	}
	timeOrigin := max(origin, 0)
	maxSpan := int64(span.Seconds() * float64(dec.SampleRate()))

	out := append(make([]byte, 0, len(src)+len(src)/16), src[:audioStart]...)
	t := &seektable.Table{
		SampleRate: dec.SampleRate(),
		Channels:   dec.Channels(),
		Samples:    final - timeOrigin,
		Origin:     timeOrigin,
		AudioStart: audioStart,
	}
	var page ogg.Page
	first := 0 // index of the page's first packet
	for i, pk := range pkts {
		lacing := ogg.Lacing(len(pk.data))
		if len(lacing) > 255 {
			return nil, fmt.Errorf("packet %d of %d bytes does not fit a page", i, len(pk.data))
		}
		page.Lacing = append(page.Lacing, lacing...)
		page.Body = append(page.Body, pk.data...)
		last := i == len(pkts)-1
		g := granule(i)
		full := !last && len(page.Lacing)+len(ogg.Lacing(len(pkts[i+1].data))) > 255
		long := g-granule(first) >= maxSpan
		if !(last || full || (long && g >= 0)) {
			continue
		}
		if g < 0 && !last {
			return nil, errors.New("negative granule position at a forced page break")
		}
		if !last || len(t.Entries) == 0 {
			// No entry for the end-of-stream page: a decoder starting
			// there cannot tell end padding from position (see
			// vorbis.NewStream), so seeks into it start one page earlier.
			e := seektable.Entry{Time: max(granule(first)-timeOrigin, 0), Granule: granule(first), Offset: int64(len(out))}
			t.Entries = append(t.Entries, e)
		}
		page.Serial, page.Seq, page.Granule, page.Flags = serial, seq, g, 0
		if last {
			page.Flags = ogg.FlagEOS
		}
		out = ogg.Append(out, &page)
		seq++
		page.Lacing, page.Body = page.Lacing[:0], page.Body[:0]
		first = i + 1
	}
	t.FileSize = int64(len(out))
	return &paged{ogg: out, table: t}, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
