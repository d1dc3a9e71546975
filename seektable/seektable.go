// Package seektable is the format of the seek table stored next to every
// Ogg Vorbis tier (<kbps>.seek): a list of points mapping a time in samples
// to the byte offset of an Ogg page, so a player seeks with one range
// request from the right page and then decodes to the exact sample.
//
// # Entry meaning
//
// Decoding from the page at Entry.Offset (dropping any packet continued
// from an earlier page, as decoders do after a seek) yields output whose
// first sample is at Entry.Time or earlier. Ingest writes, for every page,
// Time = the position at which output starts when decoding from that page,
// so Lookup(t) followed by discarding t-Time samples lands exactly on t.
// Times are in samples per channel at the tier's sample rate, counted from
// the first sample of the track (granule position minus Origin).
//
// # Binary format (version 1, all integers little-endian)
//
//	offset size  field
//	0      4     magic "MSK1"
//	4      4     sample rate, Hz
//	8      1     channels
//	9      3     zero
//	12     8     samples: the track's length in samples per channel
//	20     8     origin: granule position of time 0 (signed)
//	28     8     audio start: byte offset of the first audio page
//	36     8     file size of the .ogg, bytes
//	44     4     n: number of entries
//	48     ...   n entries, each three varints (encoding/binary), deltas
//	             from the previous entry (from zero for the first):
//	             uvarint time, varint granule, uvarint offset
//	end-4  4     CRC-32 (IEEE) of every byte before it
//
// Times are non-decreasing and offsets strictly increasing; Decode rejects
// anything else, and anything truncated or trailing, so a table fetched
// from the network cannot make Lookup misbehave.
package seektable

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sort"
)

// Magic starts every encoded table.
const Magic = "MSK1"

const headerLen = 48

// MaxEntries bounds the entries Decode accepts (about 24 hours at 4
// entries per second).
const MaxEntries = 1 << 19

// Entry is one seek point.
type Entry struct {
	Time    int64 // samples per channel from the start of the track
	Granule int64 // Ogg granule position corresponding to Time
	Offset  int64 // byte offset of the Ogg page to decode from
}

// Table is a decoded seek table.
type Table struct {
	SampleRate int
	Channels   int
	Samples    int64 // track length in samples per channel
	Origin     int64 // granule position of time 0
	AudioStart int64 // byte offset of the first audio page
	FileSize   int64 // size of the .ogg file
	Entries    []Entry
}

// ErrFormat wraps every decoding error.
var ErrFormat = errors.New("seektable: bad format")

// Lookup returns the entry to decode from to reach time t (samples): the
// last entry whose Time is at most t, or the first entry when t precedes
// them all. It reports false for an empty table.
func (t *Table) Lookup(at int64) (Entry, bool) {
	if len(t.Entries) == 0 {
		return Entry{}, false
	}
	i := sort.Search(len(t.Entries), func(i int) bool { return t.Entries[i].Time > at })
	if i == 0 {
		return t.Entries[0], true
	}
	return t.Entries[i-1], true
}

// Duration returns the length in milliseconds, rounded down.
func (t *Table) DurationMS() int64 {
	if t.SampleRate == 0 {
		return 0
	}
	return t.Samples * 1000 / int64(t.SampleRate)
}

// Validate checks the invariants Decode enforces.
func (t *Table) Validate() error {
	if t.SampleRate <= 0 || t.SampleRate > 768000 {
		return fmt.Errorf("%w: sample rate %d", ErrFormat, t.SampleRate)
	}
	if t.Channels <= 0 || t.Channels > 255 {
		return fmt.Errorf("%w: channels %d", ErrFormat, t.Channels)
	}
	if t.Samples < 0 || t.AudioStart < 0 || t.FileSize < t.AudioStart {
		return fmt.Errorf("%w: negative length or offset", ErrFormat)
	}
	if len(t.Entries) > MaxEntries {
		return fmt.Errorf("%w: %d entries", ErrFormat, len(t.Entries))
	}
	for i, e := range t.Entries {
		if e.Time < 0 || e.Offset < t.AudioStart || e.Offset >= t.FileSize {
			return fmt.Errorf("%w: entry %d out of range", ErrFormat, i)
		}
		if i > 0 && (e.Time < t.Entries[i-1].Time || e.Offset <= t.Entries[i-1].Offset) {
			return fmt.Errorf("%w: entry %d out of order", ErrFormat, i)
		}
	}
	return nil
}

// MarshalBinary encodes the table.
func (t *Table) MarshalBinary() ([]byte, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	b := make([]byte, headerLen, headerLen+len(t.Entries)*6+4)
	copy(b, Magic)
	le := binary.LittleEndian
	le.PutUint32(b[4:], uint32(t.SampleRate))
	b[8] = byte(t.Channels)
	le.PutUint64(b[12:], uint64(t.Samples))
	le.PutUint64(b[20:], uint64(t.Origin))
	le.PutUint64(b[28:], uint64(t.AudioStart))
	le.PutUint64(b[36:], uint64(t.FileSize))
	le.PutUint32(b[44:], uint32(len(t.Entries)))
	var prev Entry
	for _, e := range t.Entries {
		b = binary.AppendUvarint(b, uint64(e.Time-prev.Time))
		b = binary.AppendVarint(b, e.Granule-prev.Granule)
		b = binary.AppendUvarint(b, uint64(e.Offset-prev.Offset))
		prev = e
	}
	return binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b)), nil
}

// Decode parses an encoded table and validates it.
func Decode(b []byte) (*Table, error) {
	if len(b) < headerLen+4 || string(b[:4]) != Magic {
		return nil, fmt.Errorf("%w: no header", ErrFormat)
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrFormat)
	}
	le := binary.LittleEndian
	if b[9] != 0 || b[10] != 0 || b[11] != 0 {
		return nil, fmt.Errorf("%w: reserved bytes set", ErrFormat)
	}
	t := &Table{
		SampleRate: int(le.Uint32(b[4:])),
		Channels:   int(b[8]),
		Samples:    int64(le.Uint64(b[12:])),
		Origin:     int64(le.Uint64(b[20:])),
		AudioStart: int64(le.Uint64(b[28:])),
		FileSize:   int64(le.Uint64(b[36:])),
	}
	n := int(le.Uint32(b[44:]))
	rest := body[headerLen:]
	if n > MaxEntries || n > len(rest)/3 {
		return nil, fmt.Errorf("%w: %d entries in %d bytes", ErrFormat, n, len(rest))
	}
	t.Entries = make([]Entry, n)
	var prev Entry
	for i := range n {
		dt, k := binary.Uvarint(rest)
		if k <= 0 || dt > 1<<62 {
			return nil, fmt.Errorf("%w: entry %d time", ErrFormat, i)
		}
		rest = rest[k:]
		dg, k := binary.Varint(rest)
		if k <= 0 {
			return nil, fmt.Errorf("%w: entry %d granule", ErrFormat, i)
		}
		rest = rest[k:]
		do, k := binary.Uvarint(rest)
		if k <= 0 || do > 1<<62 {
			return nil, fmt.Errorf("%w: entry %d offset", ErrFormat, i)
		}
		rest = rest[k:]
		e := Entry{Time: prev.Time + int64(dt), Granule: prev.Granule + dg, Offset: prev.Offset + int64(do)}
		if e.Time < prev.Time || e.Offset < prev.Offset {
			return nil, fmt.Errorf("%w: entry %d overflows", ErrFormat, i)
		}
		t.Entries[i] = e
		prev = e
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrFormat, len(rest))
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return t, nil
}
