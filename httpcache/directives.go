package httpcache

import (
	"strings"
)

// Absent is the value of a delta-seconds directive that was not given.
const Absent = -1

// maxDelta is the largest delta-seconds a cache must handle; larger
// values are clamped to it (RFC 9111 §1.2.2).
const maxDelta = 2147483648

// Directives are the Cache-Control directives a shared cache acts on
// (RFC 9111 §5.2), from a request or a response. Delta-seconds fields
// are Absent when the directive was not given.
type Directives struct {
	MaxAge               int64 // §5.2.1.1, §5.2.2.1
	SMaxAge              int64 // §5.2.2.10
	MaxStale             int64 // §5.2.1.2; maxDelta when given without a value
	MinFresh             int64 // §5.2.1.3
	StaleWhileRevalidate int64 // RFC 5861 §3
	StaleIfError         int64 // RFC 5861 §4

	NoCache         bool // §5.2.1.4, §5.2.2.4 (unqualified)
	NoStore         bool // §5.2.1.5, §5.2.2.5
	Private         bool // §5.2.2.7 (unqualified)
	Public          bool // §5.2.2.9
	MustRevalidate  bool // §5.2.2.2
	ProxyRevalidate bool // §5.2.2.8
	MustUnderstand  bool // §5.2.2.3
	NoTransform     bool // §5.2.1.6, §5.2.2.6
	OnlyIfCached    bool // §5.2.1.7
	Immutable       bool // RFC 8246

	// NoCacheFields and PrivateFields are the lower-case field names of a
	// qualified no-cache or private (§5.2.2.4, §5.2.2.7): a shared cache
	// may store the response without those fields.
	NoCacheFields []string
	PrivateFields []string

	// surrogate is set when Surrogate-Control gave this cache a max-age,
	// surrogateMaxAge (see WithSurrogate).
	surrogate       bool
	surrogateMaxAge int64

	// Invalid is set when a delta-seconds directive had a value that is
	// not one (max-age=abc): the response is then treated as stale
	// (§4.2.1 leaves the choice; stale is the safe one).
	Invalid bool
}

// ParseCacheControl parses the Cache-Control field lines of one message
// (RFC 9111 §5.2, list syntax of RFC 9110 §5.6.1). Directive names are
// case-insensitive; values may be tokens or quoted strings; unknown
// directives are ignored (§5.2.3). When a directive repeats, the first
// occurrence wins (§4.2.1). It never fails: what it cannot read it
// ignores.
func ParseCacheControl(lines ...string) Directives {
	d := Directives{surrogateMaxAge: Absent, MaxAge: Absent, SMaxAge: Absent, MaxStale: Absent, MinFresh: Absent,
		StaleWhileRevalidate: Absent, StaleIfError: Absent}
	for _, line := range lines {
		for len(line) > 0 {
			var name, value string
			var quoted, hasValue bool
			name, value, quoted, hasValue, line = nextDirective(line)
			if name == "" {
				continue
			}
			name = strings.ToLower(name)
			switch name {
			case "max-age":
				d.MaxAge = d.delta(d.MaxAge, value, hasValue, quoted)
			case "s-maxage":
				d.SMaxAge = d.delta(d.SMaxAge, value, hasValue, quoted)
			case "max-stale":
				if d.MaxStale == Absent {
					if !hasValue {
						d.MaxStale = maxDelta
					} else {
						d.MaxStale = d.delta(d.MaxStale, value, hasValue, quoted)
					}
				}
			case "min-fresh":
				d.MinFresh = d.delta(d.MinFresh, value, hasValue, quoted)
			case "stale-while-revalidate":
				d.StaleWhileRevalidate = d.delta(d.StaleWhileRevalidate, value, hasValue, quoted)
			case "stale-if-error":
				d.StaleIfError = d.delta(d.StaleIfError, value, hasValue, quoted)
			case "no-cache":
				if fs := fieldList(value); hasValue && len(fs) > 0 {
					d.NoCacheFields = append(d.NoCacheFields, fs...)
				} else {
					d.NoCache = true
				}
			case "no-store":
				d.NoStore = true
			case "private":
				if fs := fieldList(value); hasValue && len(fs) > 0 {
					d.PrivateFields = append(d.PrivateFields, fs...)
				} else {
					d.Private = true
				}
			case "public":
				d.Public = true
			case "must-revalidate":
				d.MustRevalidate = true
			case "proxy-revalidate":
				d.ProxyRevalidate = true
			case "must-understand":
				d.MustUnderstand = true
			case "no-transform":
				d.NoTransform = true
			case "only-if-cached":
				d.OnlyIfCached = true
			case "immutable":
				d.Immutable = true
			}
		}
	}
	return d
}

// fieldList splits a qualified directive's quoted list of field names.
func fieldList(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.ToLower(strings.TrimSpace(f)); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// SurrogateDirectives parses the Surrogate-Control fields of a response
// (W3C Edge Architecture 1.0) for the surrogate named target: directives
// suffixed ";name" apply only to that surrogate, the others to all. The
// directives are read as Cache-Control's.
func SurrogateDirectives(lines []string, target string) (Directives, bool) {
	var kept []string
	for _, line := range lines {
		for _, el := range splitList(line) {
			if d, t, ok := strings.Cut(el, ";"); ok {
				if !strings.EqualFold(strings.TrimSpace(t), target) {
					continue
				}
				el = d
			}
			kept = append(kept, el)
		}
	}
	if len(kept) == 0 {
		return ParseCacheControl(), false
	}
	return ParseCacheControl(strings.Join(kept, ",")), true
}

// WithSurrogate returns cc with the freshness a response's
// Surrogate-Control gives the surrogate named target, which takes
// precedence over Cache-Control's (and Expires) for that cache.
func (cc Directives) WithSurrogate(resp Header, target string) Directives {
	if target == "" {
		return cc
	}
	if sc, ok := SurrogateDirectives(resp.Values("Surrogate-Control"), target); ok && sc.MaxAge != Absent {
		cc.surrogate, cc.surrogateMaxAge = true, sc.MaxAge
		cc.Invalid = false
		// Its own revalidation rules replace Cache-Control's for this
		// cache, except must-revalidate, which still holds.
		cc.NoCache, cc.SMaxAge, cc.ProxyRevalidate = false, Absent, false
	}
	return cc
}

// splitList splits a field value at the commas outside quoted strings.
func splitList(s string) []string {
	var out []string
	inq, start := false, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && inq:
			i++
		case s[i] == '"':
			inq = !inq
		case s[i] == ',' && !inq:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// delta parses a delta-seconds value (§1.2.2) for a directive whose
// current value is cur: the first occurrence wins.
func (d *Directives) delta(cur int64, v string, hasValue, quoted bool) int64 {
	if cur != Absent {
		return cur
	}
	n, ok := parseDelta(v)
	if !hasValue || !ok {
		d.Invalid = true
		return 0
	}
	_ = quoted // a quoted delta is accepted (§5.2: recipients should)
	return n
}

// parseDelta parses 1*DIGIT, clamping at maxDelta.
func parseDelta(v string) (int64, bool) {
	if v == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < maxDelta {
			n = n*10 + int64(c-'0')
		}
	}
	return min(n, maxDelta), true
}

// nextDirective reads one list element from s: name, its value (unquoted),
// whether it was quoted or had "=", and the rest of s after the comma.
// Whitespace around "=" makes the element invalid (name ""), as the
// grammar has none there.
func nextDirective(s string) (name, value string, quoted, hasValue bool, rest string) {
	s = strings.TrimLeft(s, " \t")
	i := 0
	for i < len(s) && isTchar(s[i]) {
		i++
	}
	name, s = s[:i], s[i:]
	valid := name != ""
	if len(s) > 0 && s[0] == '=' {
		hasValue = true
		s = s[1:]
		if len(s) > 0 && s[0] == '"' {
			quoted = true
			var b strings.Builder
			j := 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				valid = false // unterminated
			}
			value = b.String()
			s = s[min(j+1, len(s)):]
		} else {
			j := 0
			for j < len(s) && isTchar(s[j]) {
				j++
			}
			value, s = s[:j], s[j:]
		}
	}
	// Anything but OWS before the comma spoils the element.
	s = strings.TrimLeft(s, " \t")
	if len(s) > 0 && s[0] != ',' {
		valid = false
		// Skip to the next comma outside a quoted string.
		inq := false
		j := 0
		for ; j < len(s); j++ {
			switch {
			case s[j] == '\\' && inq:
				j++
			case s[j] == '"':
				inq = !inq
			case s[j] == ',' && !inq:
				goto out
			}
		}
	out:
		s = s[min(j, len(s)):]
	}
	if len(s) > 0 && s[0] == ',' {
		s = s[1:]
	}
	if !valid {
		return "", "", false, false, s
	}
	return name, value, quoted, hasValue, s
}

// isTchar reports whether c is a token character (RFC 9110 §5.6.2).
func isTchar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
