package httpcache

import (
	"testing"
	"time"
)

// FuzzParseCacheControl: any header value parses without panicking, and
// delta-seconds are never negative nor above 2^31.
func FuzzParseCacheControl(f *testing.F) {
	for _, s := range []string{"max-age=60", `no-cache="a, b"`, `x="\"", max-age=1`, "max-age =1", "s-maxage=99999999999999999999", `"`, ",,,", "max-stale", "a;b, max-age=5;edge"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := ParseCacheControl(s)
		for _, v := range []int64{d.MaxAge, d.SMaxAge, d.MaxStale, d.MinFresh, d.StaleIfError, d.StaleWhileRevalidate} {
			if v != Absent && (v < 0 || v > maxDelta) {
				t.Fatalf("%q: delta %d", s, v)
			}
		}
		SurrogateDirectives([]string{s}, "edge")
	})
}

// FuzzParseDateLenient: no panic, and a parsed date round-trips through
// the IMF-fixdate form to itself.
func FuzzParseDateLenient(f *testing.F) {
	for _, s := range []string{"Thu, 18 Aug 2050 02:01:18 GMT", "Thursday, 18-Aug-50 02:01:18 GMT", "Thu Aug  8 02:01:18 2050", "0", "99 Aug 9999 99:99:99"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := ParseDateLenient(s)
		if !ok {
			return
		}
		back, ok := ParseDateLenient(d.Format(time.RFC1123))
		if d.Year() >= 1601 && d.Year() <= 9999 && (!ok || !back.Equal(d)) {
			t.Fatalf("%q -> %v -> %v %v", s, d, back, ok)
		}
	})
}

// FuzzHeaders: Age and Vary parsing of arbitrary values (Content-Range is
// httprange's, fuzzed there).
func FuzzHeaders(f *testing.F) {
	for _, s := range []string{"bytes 0-4/10", "bytes 4-9/*", "0", "0, 0", "7200;foo=1", "Accept, *"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h := Header{{"Age", s}, {"Vary", s}, {"Expires", s}}
		if a, ok := ParseAge(h); ok && a < 0 {
			t.Fatalf("%q: age %d", s, a)
		}
		fields, _ := VaryFields(h)
		k := NewSecondaryKey(fields, h)
		if !k.Matches(h) {
			t.Fatalf("%q: a request does not match its own secondary key", s)
		}
		FreshnessLifetime(200, h, ParseCacheControl(s), time.Unix(0, 0), Heuristic{Percent: 10, Max: time.Hour})
	})
}
