package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Node metadata travels in memberlist's alive messages (at most
// memberlist.MetaMaxSize = 512 bytes). The encoding is versioned so a newer
// node can add fields that older nodes skip:
//
//	byte    version (metaVersion)
//	string  role      (u8 length, bytes)
//	string  pop
//	string  http address
//	uvarint weight
//	byte    flags (optional; bit 0: leaving). Absent means 0.
//	...     later versions append; older decoders ignore the rest
//
// It arrives from other nodes over the (authenticated) gossip, and is
// parsed with bounds checks all the same: FuzzDecodeMeta.

const (
	metaVersion   = 1
	maxMetaString = 160 // 1 + 3 x (1+160) + 2 bytes stays under 512
)

// meta is what a node tells the others about itself.
type meta struct {
	Role     string
	POP      string
	HTTPAddr string
	Weight   int
	// Leaving is set by Leave just before the leave message: the others
	// take the node out of their Views at once, and record its departure
	// as "left" rather than "dead" (memberlist's leave notification does
	// not say which).
	Leaving bool
}

// encodeMeta appends the encoding of m to dst. Strings longer than
// maxMetaString are a programming error (Config.Validate bounds them).
func encodeMeta(dst []byte, m meta) []byte {
	dst = append(dst, metaVersion)
	for _, s := range []string{m.Role, m.POP, m.HTTPAddr} {
		if len(s) > maxMetaString {
			panic(fmt.Sprintf("cluster: metadata string of %d bytes", len(s)))
		}
		dst = append(dst, byte(len(s)))
		dst = append(dst, s...)
	}
	dst = binary.AppendUvarint(dst, uint64(m.Weight))
	var flags byte
	if m.Leaving {
		flags |= flagLeaving
	}
	return append(dst, flags)
}

const flagLeaving = 1

var errBadMeta = errors.New("bad node metadata")

// decodeMeta parses metadata written by encodeMeta of this or a later
// version.
func decodeMeta(b []byte) (meta, error) {
	var m meta
	if len(b) == 0 {
		return m, fmt.Errorf("%w: empty", errBadMeta)
	}
	if b[0] < metaVersion {
		return m, fmt.Errorf("%w: version %d", errBadMeta, b[0])
	}
	b = b[1:]
	for _, s := range []*string{&m.Role, &m.POP, &m.HTTPAddr} {
		if len(b) == 0 || int(b[0]) > len(b)-1 {
			return m, fmt.Errorf("%w: truncated", errBadMeta)
		}
		n := int(b[0])
		*s = string(b[1 : 1+n])
		b = b[1+n:]
	}
	w, n := binary.Uvarint(b)
	if n <= 0 {
		return m, fmt.Errorf("%w: truncated weight", errBadMeta)
	}
	if w < 1 || w > maxWeight {
		return m, fmt.Errorf("%w: weight %d", errBadMeta, w)
	}
	m.Weight = int(w)
	if b = b[n:]; len(b) > 0 {
		m.Leaving = b[0]&flagLeaving != 0
	}
	return m, nil
}
