package httprange

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
)

// DefaultMaxRanges is the most ranges one request may ask for, after
// coalescing, at every tier unless configured otherwise (the edge's and
// shield's max_ranges default; the origin's fixed limit). A set with more
// is ignored and the whole representation sent (RFC 9110 §14.2 allows it,
// against requests for many tiny parts).
const DefaultMaxRanges = 16

// Request holds the raw values of the request headers that decide a GET or
// HEAD of a byte-addressable file; a nil field means the header is absent.
type Request struct {
	Preconditions
	Range   []byte
	IfRange []byte
}

// Decision is what to answer.
type Decision struct {
	// Status is 200, 206, 304, 412 or 416.
	Status int
	// Ranges are the ranges to send with a 206: one is a plain 206 with
	// Content-Range, more a multipart/byteranges body. Empty otherwise.
	Ranges []Range
}

// Decide evaluates a GET or HEAD of a representation of size bytes with
// validators v, in RFC 9110 §13.2.2's order: the preconditions (304 or
// 412), then If-Range, then Range (206, 416, or an invalid or abusive set
// ignored: 200). Ranges are appended to dst, sorted and coalesced, at most
// maxRanges of them (0: no limit).
//
// Decide is pure and does not allocate when dst has room for the ranges.
func Decide(dst []Range, req Request, size int64, v Validators, maxRanges int) Decision {
	switch Evaluate(req.Preconditions, v) {
	case NotModified:
		return Decision{Status: http.StatusNotModified, Ranges: dst[:0]}
	case PreconditionFailed:
		return Decision{Status: http.StatusPreconditionFailed, Ranges: dst[:0]}
	}
	if len(req.Range) == 0 || !RangeApplies(req.IfRange, v) {
		return Decision{Status: http.StatusOK, Ranges: dst[:0]}
	}
	rs, err := Parse(dst[:0], req.Range, size, maxRanges)
	switch {
	case errors.Is(err, ErrUnsatisfiable):
		// §15.5.17, with Content-Range: bytes */size.
		return Decision{Status: http.StatusRequestedRangeNotSatisfiable, Ranges: rs[:0]}
	case err != nil:
		// Invalid or too many: ignore the header, send it all (§14.2).
		return Decision{Status: http.StatusOK, Ranges: rs[:0]}
	}
	return Decision{Status: http.StatusPartialContent, Ranges: rs}
}

// AppendContentRange appends the value of the Content-Range header for
// range r of a representation of size bytes: "bytes first-last/size"
// (RFC 9110 §14.4).
func AppendContentRange(dst []byte, r Range, size int64) []byte {
	dst = append(dst, "bytes "...)
	dst = strconv.AppendInt(dst, r.Start, 10)
	dst = append(dst, '-')
	dst = strconv.AppendInt(dst, r.End, 10)
	dst = append(dst, '/')
	return strconv.AppendInt(dst, size, 10)
}

// AppendUnsatisfied appends the Content-Range value of a 416: "bytes */size".
func AppendUnsatisfied(dst []byte, size int64) []byte {
	dst = append(dst, "bytes */"...)
	return strconv.AppendInt(dst, size, 10)
}

// ParseContentRange parses a Content-Range value "bytes first-last/size"
// (RFC 9110 §14.4) as a fill, the HTTP cache or a load tool reads it from
// an upstream: ok only for a satisfied range inside a known size (first <=
// last < size). The unit is matched case-insensitively (§14.1) and
// surrounding whitespace is ignored; a complete length of "*" is refused,
// since every reader here needs the size.
func ParseContentRange(h []byte) (r Range, size int64, ok bool) {
	h = bytes.Trim(h, " \t")
	if len(h) < 6 || !bytes.EqualFold(h[:6], []byte("bytes ")) {
		return Range{}, 0, false
	}
	h = h[6:]
	dash, slash := bytes.IndexByte(h, '-'), bytes.IndexByte(h, '/')
	if dash < 0 || slash < dash {
		return Range{}, 0, false
	}
	var okA, okB, okC bool
	r.Start, okA = exactDigits(h[:dash])
	r.End, okB = exactDigits(h[dash+1 : slash])
	size, okC = exactDigits(h[slash+1:])
	if !okA || !okB || !okC || r.End < r.Start || size <= r.End {
		return Range{}, 0, false
	}
	return r, size, true
}

// ParseUnsatisfied parses the Content-Range value of a 416, "bytes */size".
func ParseUnsatisfied(h []byte) (size int64, ok bool) {
	rest, found := bytes.CutPrefix(h, []byte("bytes */"))
	if !found {
		return 0, false
	}
	return exactDigits(rest)
}

// exactDigits parses 1*DIGIT that fits an int64 exactly: unlike a Range
// position, a Content-Range past int64 is refused, not clamped.
func exactDigits(b []byte) (int64, bool) {
	if len(b) > 18 {
		return 0, false
	}
	return parseDigits(b)
}

// AppendPartHeader appends the delimiter and headers that open one part of
// a multipart/byteranges body (RFC 9110 §14.6; RFC 2046 §5.1.1): CRLF,
// "--" boundary, Content-Type and Content-Range, and the blank line.
func AppendPartHeader(dst []byte, boundary, contentType string, r Range, size int64) []byte {
	dst = append(dst, "\r\n--"...)
	dst = append(dst, boundary...)
	if contentType != "" {
		dst = append(dst, "\r\nContent-Type: "...)
		dst = append(dst, contentType...)
	}
	dst = append(dst, "\r\nContent-Range: "...)
	dst = AppendContentRange(dst, r, size)
	return append(dst, "\r\n\r\n"...)
}

// AppendPartsEnd appends the close delimiter of a multipart/byteranges body.
func AppendPartsEnd(dst []byte, boundary string) []byte {
	dst = append(dst, "\r\n--"...)
	dst = append(dst, boundary...)
	return append(dst, "--\r\n"...)
}

// MultipartType is the Content-Type of a multipart/byteranges body.
func MultipartType(boundary string) string {
	return "multipart/byteranges; boundary=" + boundary
}
