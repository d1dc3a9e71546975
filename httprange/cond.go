package httprange

import (
	"bytes"
	"net/http"
	"time"
)

// Preconditions are the raw values of a request's conditional headers; a
// nil field means the header is absent.
type Preconditions struct {
	IfMatch           []byte
	IfNoneMatch       []byte
	IfModifiedSince   []byte
	IfUnmodifiedSince []byte
}

// Validators are the current representation's validators.
type Validators struct {
	ETag         []byte    // strong, quoted ("..."); empty if none
	LastModified time.Time // zero if unknown
}

// Outcome is the result of evaluating preconditions.
type Outcome int

const (
	// Proceed means serve the representation (200 or 206).
	Proceed Outcome = iota
	// NotModified means 304 Not Modified (GET and HEAD only).
	NotModified
	// PreconditionFailed means 412 Precondition Failed.
	PreconditionFailed
)

func (o Outcome) String() string {
	switch o {
	case NotModified:
		return "304"
	case PreconditionFailed:
		return "412"
	}
	return "proceed"
}

// Evaluate applies RFC 9110 §13.2.2's precedence for a GET or HEAD:
// If-Match, else If-Unmodified-Since; then If-None-Match, else
// If-Modified-Since. If-Range is separate (RangeApplies), since it only
// decides whether Range is honoured.
func Evaluate(p Preconditions, v Validators) Outcome {
	// Step 1: If-Match uses the strong comparison (§13.1.1).
	if p.IfMatch != nil {
		if !matchList(p.IfMatch, v.ETag, true) {
			return PreconditionFailed
		}
	} else if p.IfUnmodifiedSince != nil {
		// Step 2: a date that does not parse is ignored (§13.1.4).
		if t, ok := parseDate(p.IfUnmodifiedSince); ok && !v.LastModified.IsZero() && v.LastModified.After(t) {
			return PreconditionFailed
		}
	}
	// Step 3: If-None-Match uses the weak comparison (§13.1.2); for GET
	// and HEAD a match means 304.
	if p.IfNoneMatch != nil {
		if matchList(p.IfNoneMatch, v.ETag, false) {
			return NotModified
		}
		return Proceed
	}
	// Step 4: If-Modified-Since, only when If-None-Match is absent.
	if p.IfModifiedSince != nil {
		if t, ok := parseDate(p.IfModifiedSince); ok && !v.LastModified.IsZero() && !v.LastModified.After(t) {
			return NotModified
		}
	}
	return Proceed
}

// RangeApplies reports whether a Range header should be honoured given the
// request's If-Range value (nil when absent). RFC 9110 §13.1.5: an entity
// tag must match strongly (a weak tag never matches); an HTTP-date must
// equal Last-Modified exactly. Otherwise the whole representation is sent.
func RangeApplies(ifRange []byte, v Validators) bool {
	if ifRange == nil {
		return true
	}
	ifRange = trimOWS(ifRange)
	if len(ifRange) > 0 && (ifRange[0] == '"' || bytes.HasPrefix(ifRange, []byte("W/"))) {
		return len(v.ETag) > 0 && !bytes.HasPrefix(ifRange, []byte("W/")) && bytes.Equal(ifRange, v.ETag)
	}
	t, ok := parseDate(ifRange)
	return ok && !v.LastModified.IsZero() && v.LastModified.Truncate(time.Second).Equal(t)
}

// matchList reports whether the header value ("*" or a comma-separated
// list of entity-tags) matches etag. With strong, weak tags never match.
func matchList(list, etag []byte, strong bool) bool {
	list = trimOWS(list)
	if len(list) == 1 && list[0] == '*' {
		// "*" matches any current representation (§13.1.1, §13.1.2).
		return len(etag) > 0
	}
	if len(etag) == 0 {
		return false
	}
	for len(list) > 0 {
		var tag []byte
		if i := bytes.IndexByte(list, ','); i >= 0 {
			tag, list = trimOWS(list[:i]), list[i+1:]
		} else {
			tag, list = trimOWS(list), nil
		}
		weak := bytes.HasPrefix(tag, []byte("W/"))
		if weak {
			if strong {
				continue
			}
			tag = tag[2:]
		}
		if bytes.Equal(tag, etag) {
			return true
		}
	}
	return false
}

func parseDate(b []byte) (time.Time, bool) {
	t, err := http.ParseTime(string(b))
	return t, err == nil
}
