// Package ogg reads and writes Ogg pages (RFC 3533) and reassembles the
// packets they carry. It is the framing layer under package vorbis (the
// decoder the player and ingest use) and under ingest, which re-paginates encoder output so that every
// tier has a page boundary, and so a seek table entry, at least every
// quarter second.
//
// The reader verifies every page's CRC, so a corrupted or truncated range is
// an error rather than garbage fed to the decoder.
package ogg

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Header type flags of a page.
const (
	FlagContinued = 0x01 // the first packet continues one from the previous page
	FlagBOS       = 0x02 // first page of a logical stream
	FlagEOS       = 0x04 // last page of a logical stream
)

// NoGranule is the granule position of a page on which no packet ends.
const NoGranule = -1

// MaxPageSize is the largest possible page: header, 255 lacing values and
// 255 full segments.
const MaxPageSize = 27 + 255 + 255*255

// ErrCRC is returned for a page whose checksum does not match.
var ErrCRC = errors.New("ogg: page checksum mismatch")

// Page is one Ogg page.
type Page struct {
	Offset  int64 // byte offset of the page in the stream it was read from
	Flags   byte
	Granule int64 // NoGranule when no packet ends on this page
	Serial  uint32
	Seq     uint32
	// Lacing is the segment table; Body the concatenated segments.
	Lacing []byte
	Body   []byte
}

// Size is the page's length in bytes, header included.
func (p *Page) Size() int { return 27 + len(p.Lacing) + len(p.Body) }

// Packets splits the body by the lacing values. The first element is a
// continuation of the previous page's last packet when FlagContinued is set;
// the last element is incomplete (continues on the next page) when the
// final lacing value is 255, which Open reports.
func (p *Page) Packets() (parts [][]byte, open bool) {
	off, size := 0, 0
	for _, l := range p.Lacing {
		size += int(l)
		if l < 255 {
			parts = append(parts, p.Body[off:off+size])
			off += size
			size = 0
		}
	}
	if size > 0 || (len(p.Lacing) > 0 && p.Lacing[len(p.Lacing)-1] == 255) {
		parts = append(parts, p.Body[off:off+size])
		open = true
	}
	return parts, open
}

// Reader reads consecutive pages from a byte stream.
type Reader struct {
	r   *bufio.Reader
	off int64
	hdr [27]byte
}

// NewReader returns a reader of the pages in r, whose first byte is at
// stream offset off (a range response starts mid-file).
func NewReader(r io.Reader, off int64) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 16<<10), off: off}
}

// Offset is the stream offset of the next page.
func (r *Reader) Offset() int64 { return r.off }

// Next reads the next page. It returns io.EOF at a clean end of input and
// io.ErrUnexpectedEOF inside a page. The page's slices are freshly
// allocated, so the caller may keep them.
func (r *Reader) Next() (Page, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		return Page{}, err
	}
	h := r.hdr[:]
	if string(h[0:4]) != "OggS" {
		return Page{}, fmt.Errorf("ogg: no capture pattern at offset %d", r.off)
	}
	if h[4] != 0 {
		return Page{}, fmt.Errorf("ogg: unsupported version %d at offset %d", h[4], r.off)
	}
	p := Page{
		Offset:  r.off,
		Flags:   h[5],
		Granule: int64(binary.LittleEndian.Uint64(h[6:14])),
		Serial:  binary.LittleEndian.Uint32(h[14:18]),
		Seq:     binary.LittleEndian.Uint32(h[18:22]),
	}
	want := binary.LittleEndian.Uint32(h[22:26])
	p.Lacing = make([]byte, h[26])
	if _, err := io.ReadFull(r.r, p.Lacing); err != nil {
		return Page{}, noEOF(err)
	}
	n := 0
	for _, l := range p.Lacing {
		n += int(l)
	}
	p.Body = make([]byte, n)
	if _, err := io.ReadFull(r.r, p.Body); err != nil {
		return Page{}, noEOF(err)
	}
	h[22], h[23], h[24], h[25] = 0, 0, 0, 0
	crc := update(0, h)
	crc = update(crc, p.Lacing)
	crc = update(crc, p.Body)
	if crc != want {
		return Page{}, fmt.Errorf("%w at offset %d", ErrCRC, r.off)
	}
	r.off += int64(p.Size())
	return p, nil
}

// Append appends the encoding of p, with its checksum, to dst.
func Append(dst []byte, p *Page) []byte {
	start := len(dst)
	var h [27]byte
	copy(h[:], "OggS")
	h[5] = p.Flags
	binary.LittleEndian.PutUint64(h[6:], uint64(p.Granule))
	binary.LittleEndian.PutUint32(h[14:], p.Serial)
	binary.LittleEndian.PutUint32(h[18:], p.Seq)
	h[26] = byte(len(p.Lacing))
	dst = append(dst, h[:]...)
	dst = append(dst, p.Lacing...)
	dst = append(dst, p.Body...)
	crc := update(0, dst[start:])
	binary.LittleEndian.PutUint32(dst[start+22:], crc)
	return dst
}

// Lacing returns the lacing values of a packet of n bytes that ends on the
// page (a packet of a multiple of 255 bytes needs a final 0).
func Lacing(n int) []byte {
	l := make([]byte, 0, n/255+1)
	for n >= 255 {
		l = append(l, 255)
		n -= 255
	}
	return append(l, byte(n))
}

// PacketReader reassembles packets from pages.
type PacketReader struct {
	pages   *Reader
	queue   []Packet
	partial []byte
	// havePartial is false until a packet has begun on a page this reader
	// saw, so a fragment continued from before the first page is dropped.
	havePartial bool
}

// Packet is one reassembled packet and where it ended.
type Packet struct {
	Data []byte
	// PageEnd is true when this is the last packet completed on its page;
	// Granule is then the page's granule position.
	PageEnd bool
	Granule int64
	// Page is the offset of the page on which the packet ended, EOS whether
	// that page ends the stream.
	Page int64
	EOS  bool
}

// NewPacketReader returns a reader of the packets in the pages of r. When
// the first page read continues a packet from an earlier page, that
// fragment is dropped: the reader starts at the first packet that begins
// on a page it has seen, as a decoder seeking into the middle of a stream
// must.
func NewPacketReader(r *Reader) *PacketReader { return &PacketReader{pages: r} }

// Next returns the next complete packet, or io.EOF after the last one.
func (pr *PacketReader) Next() (Packet, error) {
	for len(pr.queue) == 0 {
		p, err := pr.pages.Next()
		if err != nil {
			return Packet{}, err
		}
		pr.load(&p)
	}
	pk := pr.queue[0]
	pr.queue = pr.queue[1:]
	return pk, nil
}

func (pr *PacketReader) load(p *Page) {
	parts, open := p.Packets()
	complete := len(parts)
	if open {
		complete--
	}
	for i, data := range parts {
		if i == 0 {
			if p.Flags&FlagContinued != 0 {
				if !pr.havePartial {
					if i == complete {
						// still inside a packet we never saw begin
						return
					}
					continue
				}
				data = append(pr.partial, data...)
			}
			pr.partial, pr.havePartial = nil, false
		}
		if i == complete {
			pr.partial, pr.havePartial = append([]byte(nil), data...), true
			return
		}
		pk := Packet{Data: data, Page: p.Offset}
		if i == complete-1 {
			pk.PageEnd = true
			pk.Granule = p.Granule
			pk.EOS = p.Flags&FlagEOS != 0
		}
		pr.queue = append(pr.queue, pk)
	}
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// crcTable is the CRC-32 of RFC 3533: polynomial 0x04c11db7, no
// reflection, zero initial value and no final xor.
var crcTable = func() (t [256]uint32) {
	for i := range t {
		c := uint32(i) << 24
		for range 8 {
			if c&0x80000000 != 0 {
				c = c<<1 ^ 0x04c11db7
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

func update(crc uint32, p []byte) uint32 {
	for _, b := range p {
		crc = crc<<8 ^ crcTable[byte(crc>>24)^b]
	}
	return crc
}
