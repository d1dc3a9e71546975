package httpcache

import (
	"net/http"
	"strings"
	"time"
)

// Field is one header field line.
type Field struct{ Name, Value string }

// Header is a message's header fields in order, as received. Names are
// compared case-insensitively.
type Header []Field

// Get returns the first value of name, or "".
func (h Header) Get(name string) string {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// Has reports whether a field named name is present.
func (h Header) Has(name string) bool {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return true
		}
	}
	return false
}

// Values returns every value of name, in order.
func (h Header) Values(name string) []string {
	var v []string
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			v = append(v, f.Value)
		}
	}
	return v
}

// Without returns h less the fields named in drop (lower case).
func (h Header) Without(drop func(lower string) bool) Header {
	out := make(Header, 0, len(h))
	for _, f := range h {
		if !drop(strings.ToLower(f.Name)) {
			out = append(out, f)
		}
	}
	return out
}

// hopByHop reports whether a field is hop-by-hop (RFC 9110 §7.6.1) or
// otherwise never stored nor forwarded as received (RFC 9111 §3.1).
func hopByHop(lower string) bool {
	switch lower {
	case "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
		"upgrade", "proxy-authenticate", "proxy-authorization", "proxy-authentication-info":
		return true
	}
	return false
}

// StripHopByHop removes hop-by-hop fields, including those Connection
// names (RFC 9110 §7.6.1).
func StripHopByHop(h Header) Header {
	named := map[string]bool{}
	for _, v := range h.Values("Connection") {
		for _, n := range strings.Split(v, ",") {
			if n = strings.ToLower(strings.TrimSpace(n)); n != "" {
				named[n] = true
			}
		}
	}
	return h.Without(func(l string) bool { return hopByHop(l) || named[l] })
}

// parseHTTPDate parses an HTTP-date (RFC 9110 §5.6.7) in any of its three
// forms.
func parseHTTPDate(s string) (time.Time, bool) {
	t, err := http.ParseTime(strings.TrimSpace(s))
	return t, err == nil
}
