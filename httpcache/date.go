package httpcache

import (
	"strings"
	"time"
)

// ParseDateLenient reads an HTTP-date (RFC 9110 §5.6.7) the way browsers
// read Expires: the three standard forms, and the common malformed ones
// (case, missing comma, dashes, two-digit years, one-digit hours, "."
// in the time, a zone other than GMT). The zone is taken as GMT. A value
// without a day, a month, a year and a time is not a date.
func ParseDateLenient(s string) (time.Time, bool) {
	if t, ok := parseHTTPDate(s); ok {
		return t, true
	}
	if len(s) > 64 {
		return time.Time{}, false
	}
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '-' || r == '\t' })
	day, month, year := -1, time.Month(0), -1
	hour, minute, sec := -1, -1, -1
	for _, f := range fields {
		switch {
		case strings.ContainsAny(f, ":."):
			if hour >= 0 {
				return time.Time{}, false
			}
			parts := strings.FieldsFunc(f, func(r rune) bool { return r == ':' || r == '.' })
			if len(parts) != 3 {
				return time.Time{}, false
			}
			var ok [3]bool
			var v [3]int
			for i, p := range parts {
				v[i], ok[i] = atoiSmall(p, 2)
			}
			if !ok[0] || !ok[1] || !ok[2] || v[0] > 23 || v[1] > 59 || v[2] > 60 {
				return time.Time{}, false
			}
			hour, minute, sec = v[0], v[1], v[2]
		case f[0] >= '0' && f[0] <= '9':
			n, ok := atoiSmall(f, 4)
			if !ok {
				return time.Time{}, false
			}
			switch {
			case day < 0 && len(f) <= 2 && n >= 1 && n <= 31:
				day = n
			case year < 0 && (len(f) == 2 || len(f) == 4):
				if len(f) == 2 {
					// RFC 850's two-digit years, read as RFC 6265 §5.1.1 does.
					if n < 70 {
						n += 2000
					} else {
						n += 1900
					}
				}
				year = n
			default:
				return time.Time{}, false
			}
		default:
			if m, ok := monthOf(f); ok {
				if month != 0 {
					return time.Time{}, false
				}
				month = m
			}
			// Weekdays and zones are ignored.
		}
	}
	if day < 0 || month == 0 || year < 1601 || hour < 0 {
		return time.Time{}, false
	}
	return time.Date(year, month, day, hour, minute, sec, 0, time.UTC), true
}

func atoiSmall(s string, maxLen int) (int, bool) {
	if s == "" || len(s) > maxLen {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

var months = [...]string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}

func monthOf(f string) (time.Month, bool) {
	if len(f) < 3 {
		return 0, false
	}
	p := strings.ToLower(f[:3])
	for i, m := range months {
		if p == m && (len(f) == 3 || strings.EqualFold(f, time.Month(i+1).String())) {
			return time.Month(i + 1), true
		}
	}
	return 0, false
}
