package httpcache

import (
	"net/url"
	"strings"
	"time"
)

// VaryFields returns the lower-case field names a response's Vary lists,
// and whether it lists "*" (RFC 9111 §4.1).
func VaryFields(resp Header) (fields []string, star bool) {
	for _, v := range resp.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			f = strings.ToLower(strings.TrimSpace(f))
			switch f {
			case "":
			case "*":
				star = true
			default:
				fields = append(fields, f)
			}
		}
	}
	return fields, star
}

// normalizeVary joins a request's values of one field for comparison:
// lists are combined with ", " and whitespace around commas is dropped
// (§4.1 allows normalizing by the field's syntax).
func normalizeVary(h Header, field string) (string, bool) {
	vs := h.Values(field)
	if len(vs) == 0 {
		return "", false
	}
	parts := make([]string, 0, len(vs))
	fold := field == "accept-language" || field == "accept-encoding" // case-insensitive tokens
	for _, v := range vs {
		for _, p := range strings.Split(v, ",") {
			p = strings.TrimSpace(p)
			if fold {
				p = strings.ToLower(p)
			}
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, ","), true
}

// SecondaryKey is the stored request's values of the fields a response
// varies on: what a later request must present to be served it.
type SecondaryKey []Field

// NewSecondaryKey records req's values of fields.
func NewSecondaryKey(fields []string, req Header) SecondaryKey {
	k := make(SecondaryKey, 0, len(fields))
	for _, f := range fields {
		v, ok := normalizeVary(req, f)
		if !ok {
			v = "\x00" // absent, distinct from empty
		}
		k = append(k, Field{Name: f, Value: v})
	}
	return k
}

// Matches reports whether req selects the stored response (RFC 9111
// §4.1): every varied field has the same normalized value, absent
// matching only absent.
func (k SecondaryKey) Matches(req Header) bool {
	for _, f := range k {
		v, ok := normalizeVary(req, f.Name)
		if !ok {
			v = "\x00"
		}
		if v != f.Value {
			return false
		}
	}
	return true
}

// Conditional returns the validators to send when revalidating a stored
// response (RFC 9111 §4.3.1): If-None-Match with its entity tag, and
// If-Modified-Since with its Last-Modified (or, lacking it, nothing: the
// Date is not a validator this cache trusts for a shared response).
func Conditional(stored Header) (ifNoneMatch, ifModifiedSince string) {
	et := strings.TrimSpace(stored.Get("ETag"))
	if et != "" && !strings.HasPrefix(et, `"`) && !strings.HasPrefix(et, `W/"`) {
		et = `"` + et + `"` // an unquoted tag, sent as the entity-tag it meant
	}
	return et, stored.Get("Last-Modified")
}

// HasValidator reports whether a stored response can be revalidated.
func HasValidator(stored Header) bool {
	return stored.Get("ETag") != "" || stored.Get("Last-Modified") != ""
}

// Selects304 reports whether a 304 applies to a stored response (RFC 9111
// §4.3.4): by strong or weak entity tag when the 304 has one, else by
// Last-Modified when it has one, else when the stored response is the only
// candidate (single is true).
func Selects304(stored, notModified Header, single bool) bool {
	if et := notModified.Get("ETag"); et != "" {
		return weakEqual(et, stored.Get("ETag"))
	}
	if lm := notModified.Get("Last-Modified"); lm != "" {
		return lm == stored.Get("Last-Modified")
	}
	return single
}

func weakEqual(a, b string) bool {
	return strings.TrimPrefix(strings.TrimSpace(a), "W/") == strings.TrimPrefix(strings.TrimSpace(b), "W/")
}

// Update304 returns stored's fields updated with those of a 304 (or of a
// HEAD response, §4.3.5), RFC 9111 §3.2: each field the new response has
// replaces all stored lines of that name, except hop-by-hop fields, Age
// (recomputed), Content-Length, and the fields that describe the stored
// body (Content-Encoding, Content-Range, Content-MD5) or select it (ETag:
// the 304 was matched to this response by it), which are kept as stored.
func Update304(stored, fresh Header) Header {
	keep := func(l string) bool {
		switch l {
		case "content-length", "content-encoding", "content-range", "content-md5", "etag", "transfer-encoding", "age":
			return true
		}
		return hopByHop(l)
	}
	replaced := map[string]bool{}
	for _, f := range fresh {
		if l := strings.ToLower(f.Name); !keep(l) {
			replaced[l] = true
		}
	}
	out := stored.Without(func(l string) bool { return replaced[l] })
	for _, f := range fresh {
		if replaced[strings.ToLower(f.Name)] {
			out = append(out, f)
		}
	}
	return out
}

// UnsafeMethod reports whether a method is not safe (RFC 9110 §9.2.1),
// so that a non-error response to it invalidates (RFC 9111 §4.4).
func UnsafeMethod(m string) bool {
	switch m {
	case "GET", "HEAD", "OPTIONS", "TRACE":
		return false
	}
	return true
}

// InvalidationTargets returns the request targets (path and query) whose
// stored responses an unsafe request's response invalidates (RFC 9111
// §4.4): the target itself, and the Location and Content-Location
// targets when they are on the same host (a cache must not invalidate
// another origin's responses on a response's word). status < 400 only.
func InvalidationTargets(status int, target, host string, resp Header) []string {
	if status < 200 || status >= 400 {
		return nil
	}
	out := []string{target}
	for _, name := range []string{"Location", "Content-Location"} {
		v := resp.Get(name)
		if v == "" {
			continue
		}
		base, err := url.Parse("http://" + host + target)
		if err != nil {
			continue
		}
		u, err := base.Parse(v)
		if err != nil || !strings.EqualFold(u.Host, host) || (u.Scheme != "http" && u.Scheme != "https") {
			continue
		}
		out = append(out, u.RequestURI())
	}
	return out
}

// Usable is the outcome of checking a stored response against a request.
type Usable int

const (
	// Fresh: serve it (§4.2).
	Fresh Usable = iota
	// StaleOK: serve it stale, as max-stale allows (§4.2.4).
	StaleOK
	// StaleRevalidate: serve it stale and revalidate in the background
	// (RFC 5861 §3).
	StaleRevalidate
	// Revalidate: it must be validated before use (§4.3).
	Revalidate
)

func (u Usable) String() string {
	return [...]string{"fresh", "stale-ok", "stale-while-revalidate", "revalidate"}[u]
}

// Decide applies RFC 9111 §4 (and RFC 5861 §3) to a stored response of
// the given lifetime and current age for a request with directives rq.
func Decide(rq, cc Directives, lifetime, age time.Duration) Usable {
	if cc.Immutable && !cc.NoCache && lifetime > age {
		return Fresh // RFC 8246 §2: a reload need not revalidate it
	}
	if cc.NoCache || rq.NoCache {
		return Revalidate // §5.2.2.4, §5.2.1.4
	}
	if rq.MaxAge != Absent && age > secs(rq.MaxAge) {
		return Revalidate // §5.2.1.1
	}
	if rq.MinFresh != Absent && lifetime-age < secs(rq.MinFresh) {
		return Revalidate // §5.2.1.3
	}
	if lifetime > age {
		return Fresh
	}
	// Stale. must-revalidate, proxy-revalidate and s-maxage forbid
	// serving it without validation in a shared cache (§5.2.2.2,
	// §5.2.2.8, §5.2.2.10).
	if cc.MustRevalidate || cc.ProxyRevalidate || cc.SMaxAge != Absent {
		return Revalidate
	}
	if rq.MaxStale != Absent && age-lifetime <= secs(rq.MaxStale) {
		return StaleOK
	}
	if cc.StaleWhileRevalidate != Absent && age-lifetime <= secs(cc.StaleWhileRevalidate) {
		return StaleRevalidate
	}
	return Revalidate
}

// StaleIfError reports whether a stale response may answer when
// revalidation fails (RFC 5861 §4): by the response's or the request's
// stale-if-error, and never past must-revalidate (§4.2.4).
//
// Beyond it, a stale response may answer for up to def past its lifetime
// (RFC 9111 §4.2.4: when the cache is disconnected from the origin),
// unless no-cache or s-maxage also forbids it.
func StaleIfError(rq, cc Directives, lifetime, age, def time.Duration) bool {
	if cc.MustRevalidate || cc.ProxyRevalidate {
		return false
	}
	over := age - lifetime
	if cc.StaleIfError != Absent && over <= secs(cc.StaleIfError) {
		return true
	}
	if rq.StaleIfError != Absent && over <= secs(rq.StaleIfError) {
		return true
	}
	return !cc.NoCache && cc.SMaxAge == Absent && over <= def
}
