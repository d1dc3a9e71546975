package httpcache

import (
	"slices"
	"time"
)

// entry is one stored response (RFC 9111 §3): its status, header fields,
// the request values it was selected by (Vary), the inputs of its age
// and its body, whole or in pieces (§3.3), held in the store as blobs.
// An entry is immutable once published: an update builds a new one.
type entry struct {
	id       uint64 // blob keys derive from it
	status   int
	header   Header // without hop-by-hop fields, Age and Content-Length
	vary     SecondaryKey
	cc       Directives
	age      Age
	lifetime time.Duration
	stored   time.Time // for choosing the most recent of several (§4.1)

	// size is the representation's length; complete reports whether
	// pieces cover all of it (then there is one piece, from 0).
	size     int64
	complete bool
	pieces   []piece // sorted by start, disjoint, not adjacent
}

type piece struct {
	start, n int64
	blob     uint64
}

// covers returns the piece holding bytes [first, last], if one does.
func (e *entry) covers(first, last int64) (piece, bool) {
	for _, p := range e.pieces {
		if first >= p.start && last < p.start+p.n {
			return p, true
		}
	}
	return piece{}, false
}

// firstGap is the first byte no piece holds, or size when none is missing.
func (e *entry) firstGap() int64 {
	pos := int64(0)
	for _, p := range e.pieces {
		if p.start > pos {
			return pos
		}
		pos = max(pos, p.start+p.n)
	}
	return pos
}

// blobKey is the store key of a piece of entry id: the ids are random,
// the start is mixed in.
func blobKey(id uint64, start int64) uint64 {
	return mix(id ^ mix(uint64(start)+0x9e3779b97f4a7c15))
}

func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// mergePieces returns pieces with [start, start+len(data)) added under
// blob key k, merged with its neighbours where they touch (the merged
// bytes are returned, to be stored under k).
func mergePieces(pieces []piece, read func(piece) ([]byte, bool), start int64, data []byte, k uint64) ([]piece, []byte, []uint64, bool) {
	lo, hi := start, start+int64(len(data))
	var drop []uint64
	out := make([]piece, 0, len(pieces)+1)
	buf := data
	for _, p := range pieces {
		if p.start+p.n < lo || p.start > hi {
			out = append(out, p)
			continue
		}
		b, ok := read(p)
		if !ok {
			return nil, nil, nil, false
		}
		nlo, nhi := min(lo, p.start), max(hi, p.start+p.n)
		merged := make([]byte, nhi-nlo)
		copy(merged[p.start-nlo:], b)
		copy(merged[lo-nlo:], buf)
		lo, hi, buf = nlo, nhi, merged
		drop = append(drop, p.blob)
	}
	out = append(out, piece{start: lo, n: hi - lo, blob: k})
	slices.SortFunc(out, func(a, b piece) int { return int(a.start - b.start) })
	return out, buf, drop, true
}
