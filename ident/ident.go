// Package ident holds the project's rules for the words its tokens and
// paths are made of, written once: an id (of a track, a user, a key) is 1
// to max bytes of [A-Za-z0-9_-], so it needs no escaping in a URL, JSON,
// a log line, SQL, a token or a file name; a time in a token is 1 to 12
// decimal digits of unix seconds, no sign; a token's fields are split at
// a separator. All are done without allocating, on the hot path of token
// checks.
package ident

// Valid reports whether id is 1 to max bytes of [A-Za-z0-9_-].
func Valid[T ~string | ~[]byte](id T, max int) bool {
	if len(id) == 0 || len(id) > max {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ParseUnix parses 1 to 12 decimal digits, no sign: unix seconds in a
// token.
func ParseUnix(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 12 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

// Split splits tok at every sep into exactly len(fields) fields, which
// alias tok, and reports whether it had exactly that many. It does not
// allocate.
func Split(tok []byte, sep byte, fields [][]byte) bool {
	n, start := 0, 0
	for i := 0; i <= len(tok); i++ {
		if i == len(tok) || tok[i] == sep {
			if n == len(fields) {
				return false
			}
			fields[n] = tok[start:i]
			n++
			start = i + 1
		}
	}
	return n == len(fields)
}
