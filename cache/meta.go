package cache

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/cespare/xxhash/v2"
)

// On disk, an object's metadata is a record of the disk tier like a
// chunk (so it has the same header, checksum and torn-write handling),
// under diskMetaKey of the object:
//
//	version  1 byte (metaVersion)
//	size     8 bytes, little endian
//	checked  8 bytes, unix nanoseconds: when last confirmed upstream
//	lastmod  8 bytes, unix seconds, -1 for none
//	etag     2-byte length, bytes
//	ctype    2-byte length, bytes
const metaVersion = 1

// diskMetaKey is the disk-tier key of an object's metadata; a salt keeps
// it apart from the object's chunk keys.
func diskMetaKey(objKey uint64) uint64 { return mix(objKey ^ diskMetaSalt) }

const diskMetaSalt = 0x6d657461_6469736b

var errBadMeta = errors.New("cache: bad metadata record")

func encodeMeta(m *Meta) []byte {
	b := make([]byte, 0, 29+4+len(m.ETag)+len(m.ContentType))
	b = append(b, metaVersion)
	b = binary.LittleEndian.AppendUint64(b, uint64(m.Size))
	b = binary.LittleEndian.AppendUint64(b, uint64(m.checked.UnixNano()))
	lm := int64(-1)
	if !m.LastModified.IsZero() {
		lm = m.LastModified.Unix()
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(lm))
	b = appendString16(b, m.ETag)
	return appendString16(b, m.ContentType)
}

func appendString16(b []byte, s string) []byte {
	if len(s) > 0xffff {
		s = s[:0xffff]
	}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// decodeMeta parses a metadata record; anything malformed is an error,
// never a partial Meta.
func decodeMeta(b []byte) (*Meta, error) {
	if len(b) < 25 || b[0] != metaVersion {
		return nil, errBadMeta
	}
	size := int64(binary.LittleEndian.Uint64(b[1:]))
	checked := int64(binary.LittleEndian.Uint64(b[9:]))
	lm := int64(binary.LittleEndian.Uint64(b[17:]))
	rest := b[25:]
	etag, rest, ok := cutString16(rest)
	if !ok {
		return nil, errBadMeta
	}
	ctype, rest, ok := cutString16(rest)
	if !ok || len(rest) != 0 || size < 0 || len(etag) < 2 || lm < -1 {
		return nil, errBadMeta
	}
	var last time.Time
	if lm >= 0 {
		last = time.Unix(lm, 0)
	}
	m := NewMeta(size, etag, last, ctype)
	if lm < 0 {
		m.LastModifiedHTTP = ""
	}
	m.checked = time.Unix(0, checked)
	m.etagKey = xxhash.Sum64String(etag)
	return &m, nil
}

func cutString16(b []byte) (string, []byte, bool) {
	if len(b) < 2 {
		return "", nil, false
	}
	n := int(binary.LittleEndian.Uint16(b))
	if len(b) < 2+n {
		return "", nil, false
	}
	return string(b[2 : 2+n]), b[2+n:], true
}
