// Package httprange evaluates the parts of RFC 9110 that decide what a
// cache answers to a GET or HEAD of a byte-addressable file: the
// preconditions of section 13 (If-Match, If-None-Match, If-Modified-Since,
// If-Unmodified-Since, If-Range) and the Range header of section 14.
//
// Everything here but Serve (the thin net/http wrapper for the origin and
// test stand-ins) is a pure function of header values, the file's size and
// its validators, so the edge, the shield and the origin share one tested
// decision (Decide) and cannot answer one request differently; the hot
// path does not allocate: Decide and Parse append into a caller-owned
// slice. The package also holds the wire words around a range response
// that more than one component writes or reads: Content-Range, the
// multipart/byteranges part framing and Cache-Status (RFC 9211).
// httprangetest is the conformance table every server of ranges runs.
package httprange

import (
	"bytes"
	"errors"
	"math"
	"slices"
)

// Range is a satisfiable byte range: Start and End are inclusive offsets
// (as in Content-Range), Start <= End < size.
type Range struct {
	Start, End int64
}

// Len is the number of bytes in r.
func (r Range) Len() int64 { return r.End - r.Start + 1 }

var (
	// ErrInvalid means the Range header is not a valid bytes range-set.
	// RFC 9110 §14.2: a server MUST ignore a Range it does not understand,
	// so the response is the whole 200.
	ErrInvalid = errors.New("httprange: invalid range")
	// ErrUnsatisfiable means no range in the set overlaps the
	// representation. RFC 9110 §15.5.17: 416 with Content-Range bytes */size.
	ErrUnsatisfiable = errors.New("httprange: range not satisfiable")
	// ErrTooMany means the set has more ranges than allowed even after
	// coalescing. RFC 9110 §14.2 lets a server ignore such a set (a defence
	// against many small or overlapping ranges), so the response is the
	// whole 200.
	ErrTooMany = errors.New("httprange: too many ranges")
)

// Parse parses the value of a Range header for a representation of size
// bytes, appending the satisfiable ranges to dst. Overlapping or adjacent
// ranges are coalesced (RFC 9110 §14.2 allows it) and the result is sorted,
// so a client cannot make one response carry the same bytes many times.
// At most max ranges are returned; more gives ErrTooMany.
//
// Parse does not allocate when dst has room for the result.
func Parse(dst []Range, header []byte, size int64, max int) ([]Range, error) {
	// RFC 9110 §14.1.1: ranges-specifier = range-unit "=" range-set, and
	// range units are compared case-insensitively. Only "bytes" is known.
	eq := bytes.IndexByte(header, '=')
	if eq < 0 || !equalFold(trimOWS(header[:eq]), "bytes") {
		return dst, ErrInvalid
	}
	set := header[eq+1:]
	base := len(dst)
	empty := true
	for len(set) > 0 {
		var spec []byte
		if i := bytes.IndexByte(set, ','); i >= 0 {
			spec, set = set[:i], set[i+1:]
		} else {
			spec, set = set, nil
		}
		spec = trimOWS(spec)
		if len(spec) == 0 {
			// §5.6.1: a recipient MUST accept and ignore empty list
			// elements ("bytes=0-1,,2-3").
			continue
		}
		empty = false
		r, ok, err := parseSpec(spec, size)
		if err != nil {
			return dst[:base], err
		}
		if ok {
			dst = append(dst, r)
		}
	}
	if empty {
		return dst[:base], ErrInvalid
	}
	if len(dst) == base {
		// §14.1.1: a range-set is satisfiable only if at least one of
		// its ranges is.
		return dst, ErrUnsatisfiable
	}
	dst = append(dst[:base], coalesce(dst[base:])...)
	if max > 0 && len(dst)-base > max {
		return dst[:base], ErrTooMany
	}
	return dst, nil
}

// parseSpec parses one range-spec. ok is false for a syntactically valid
// spec that selects nothing in a representation of size bytes.
func parseSpec(spec []byte, size int64) (r Range, ok bool, err error) {
	dash := bytes.IndexByte(spec, '-')
	if dash < 0 {
		return Range{}, false, ErrInvalid
	}
	first, last := spec[:dash], spec[dash+1:]
	if len(first) == 0 {
		// suffix-range = "-" suffix-length (§14.1.1).
		n, valid := parseDigits(last)
		if !valid {
			return Range{}, false, ErrInvalid
		}
		// A zero suffix-length, or any range of an empty
		// representation, is unsatisfiable (§14.1.3).
		if n == 0 || size == 0 {
			return Range{}, false, nil
		}
		if n > size {
			n = size
		}
		return Range{Start: size - n, End: size - 1}, true, nil
	}
	start, valid := parseDigits(first)
	if !valid {
		return Range{}, false, ErrInvalid
	}
	end := int64(-1)
	if len(last) > 0 {
		if end, valid = parseDigits(last); !valid {
			return Range{}, false, ErrInvalid
		}
		// §14.1.1: an int-range is invalid if last-pos < first-pos.
		if end < start || end == math.MaxInt64 && lessDigits(last, first) {
			return Range{}, false, ErrInvalid
		}
	}
	// §14.1.3: satisfiable iff first-pos < the representation's length;
	// a last-pos at or past the end means "to the end".
	if start >= size {
		return Range{}, false, nil
	}
	if end < 0 || end >= size {
		end = size - 1
	}
	return Range{Start: start, End: end}, true, nil
}

// coalesce sorts rs and merges overlapping and adjacent ranges in place.
func coalesce(rs []Range) []Range {
	if len(rs) < 2 {
		return rs
	}
	sorted := true
	for i := 1; i < len(rs); i++ {
		if rs[i].Start < rs[i-1].Start {
			sorted = false
			break
		}
	}
	if !sorted {
		slices.SortFunc(rs, func(a, b Range) int {
			switch {
			case a.Start < b.Start:
				return -1
			case a.Start > b.Start:
				return 1
			}
			return 0
		})
	}
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if r.Start <= last.End+1 {
			last.End = max(last.End, r.End)
			continue
		}
		out = append(out, r)
	}
	return out
}

// parseDigits parses 1*DIGIT into a non-negative int64. A number past
// int64 saturates at math.MaxInt64: RFC 9110 puts no bound on a position,
// and any such position lies past the end of every representation (a
// first-pos there is unsatisfiable, a last-pos or suffix-length there means
// "to the end").
func parseDigits(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if v > (math.MaxInt64-d)/10 {
			v = math.MaxInt64
			continue
		}
		v = v*10 + d
	}
	return v, true
}

// lessDigits reports whether the decimal number a is less than b, both
// 1*DIGIT, compared exactly even past int64.
func lessDigits(a, b []byte) bool {
	for len(a) > 1 && a[0] == '0' {
		a = a[1:]
	}
	for len(b) > 1 && b[0] == '0' {
		b = b[1:]
	}
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return bytes.Compare(a, b) < 0
}

// trimOWS removes optional white space (SP / HTAB, RFC 9110 §5.6.3).
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// FirstPos is the first-pos of the first int-range of a Range header
// ("bytes=N-..."), or 0 when there is none (no header, a suffix-range
// first, invalid syntax). It is a hint, not a decision: a cache that must
// fetch an object's metadata fetches it with the chunk the request will
// want first (see cache.Store.MetaAt), before Decide can run. It does not
// allocate.
func FirstPos(header []byte) int64 {
	eq := bytes.IndexByte(header, '=')
	if eq < 0 || !equalFold(trimOWS(header[:eq]), "bytes") {
		return 0
	}
	spec := header[eq+1:]
	for {
		var next []byte
		if i := bytes.IndexByte(spec, ','); i >= 0 {
			spec, next = spec[:i], spec[i+1:]
		}
		spec = trimOWS(spec)
		if len(spec) > 0 {
			dash := bytes.IndexByte(spec, '-')
			if dash <= 0 {
				return 0
			}
			n, ok := parseDigits(spec[:dash])
			if !ok {
				return 0
			}
			return n
		}
		if next == nil {
			return 0
		}
		spec = next
	}
}
