package plays

// parseWireFast decodes the common shape of an event, a flat JSON object
// whose keys are exactly the event's fields, each at most once, with
// printable-ASCII strings without escapes, numbers and nulls as values,
// without reflection. It reports false for anything else (escapes,
// unknown or repeated keys, nested values, bad syntax), and the caller
// then uses encoding/json, whose result is the reference:
// FuzzParseWireFast checks that whenever this accepts an input,
// encoding/json decodes it to the same value. The stage and ingest parse
// every event, and encoding/json was a quarter of the pipeline's CPU.
func parseWireFast(b []byte) (w wireEvent, ok bool) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return w, false
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return w, skipWS(b, i+1) == len(b)
	}
	var seen uint8
	for {
		if i >= len(b) || b[i] != '"' {
			return w, false
		}
		key, j, ok := scanString(b, i)
		if !ok {
			return w, false
		}
		i = skipWS(b, j)
		if i >= len(b) || b[i] != ':' {
			return w, false
		}
		i = skipWS(b, i+1)
		if i >= len(b) {
			return w, false
		}
		var val []byte
		isString, isNull := false, false
		switch c := b[i]; {
		case c == '"':
			_, j, ok := scanString(b, i)
			if !ok {
				return w, false
			}
			val, isString, i = b[i:j], true, j
		case c == '-' || c >= '0' && c <= '9':
			j, ok := scanNumber(b, i)
			if !ok {
				return w, false
			}
			val, i = b[i:j], j
		case c == 'n':
			if len(b)-i < 4 || string(b[i:i+4]) != "null" {
				return w, false
			}
			isNull, i = true, i+4
		default:
			return w, false
		}
		bit, ok := fieldBit(key)
		if !ok || seen&bit != 0 {
			return w, false
		}
		seen |= bit
		if !isNull {
			if bit&numericFields != 0 {
				raw := make([]byte, len(val)) // json.RawMessage owns a copy
				copy(raw, val)
				rm := jsonRaw(raw)
				switch bit {
				case bitTier:
					w.TierKbps = &rm
				case bitMS:
					w.MSPlayed = &rm
				}
			} else {
				if !isString {
					return w, false // a number where a string belongs: encoding/json's type error
				}
				s := string(val[1 : len(val)-1])
				switch bit {
				case bitPlay:
					w.PlayID = &s
				case bitUser:
					w.UserID = &s
				case bitTrack:
					w.TrackID = &s
				case bitCountry:
					w.Country = &s
				case bitTS:
					w.TS = &s
				case bitTicket:
					w.Ticket = &s
				}
			}
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return w, false
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case '}':
			return w, skipWS(b, i+1) == len(b)
		default:
			return w, false
		}
	}
}

const (
	bitPlay uint8 = 1 << iota
	bitUser
	bitTrack
	bitCountry
	bitTier
	bitMS
	bitTS
	bitTicket

	numericFields = bitTier | bitMS
)

func fieldBit(key []byte) (uint8, bool) {
	switch string(key) {
	case "play_id":
		return bitPlay, true
	case "user_id":
		return bitUser, true
	case "track_id":
		return bitTrack, true
	case "country":
		return bitCountry, true
	case "tier_kbps":
		return bitTier, true
	case "ms_played":
		return bitMS, true
	case "ts":
		return bitTS, true
	case "ticket":
		return bitTicket, true
	}
	return 0, false
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString scans the string starting at b[i] == '"' and returns its
// contents and the index after the closing quote. Only printable ASCII
// without backslashes is accepted.
func scanString(b []byte, i int) ([]byte, int, bool) {
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c < 0x20 || c > 0x7e || c == '\\':
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// scanNumber scans a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(b []byte, i int) (int, bool) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = skipDigits(b, i)
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		if i = skipDigits(b, i+1); i < 0 {
			return 0, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i = skipDigits(b, i); i < 0 {
			return 0, false
		}
	}
	return i, true
}

// skipDigits returns the index after the run of decimal digits at b[i:],
// or -1 when there is none.
func skipDigits(b []byte, i int) int {
	start := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == start {
		return -1
	}
	return i
}
