package httpcache

import (
	"strings"
	"testing"
	"time"
)

// Mutations tried (each made one of these tables fail; noted per test):
// see the comment on each test.

// TestParseCacheControl: RFC 9111 §5.2 directive syntax.
// Mutations caught: first-occurrence rule turned into last (the "§4.2.1
// first of two" case); quoted values rejected ("§5.2 quoted
// delta-seconds"); unknown directives failing the parse ("§5.2.3").
func TestParseCacheControl(t *testing.T) {
	cases := []struct {
		name  string
		lines []string
		check func(Directives) bool
	}{
		{"§5.2.2.1 max-age", []string{"max-age=60"}, func(d Directives) bool { return d.MaxAge == 60 && !d.Invalid }},
		{"§5.2 names are case-insensitive", []string{"MAX-AGE=60, Public"}, func(d Directives) bool { return d.MaxAge == 60 && d.Public }},
		{"§5.2 quoted delta-seconds is accepted", []string{`max-age="60"`}, func(d Directives) bool { return d.MaxAge == 60 }},
		{"§4.2.1 first of two max-age wins", []string{"max-age=1, max-age=1800"}, func(d Directives) bool { return d.MaxAge == 1 }},
		{"§4.2.1 first of two lines wins", []string{"max-age=1", "max-age=1800"}, func(d Directives) bool { return d.MaxAge == 1 }},
		{"§1.2.2 huge delta clamps to 2^31", []string{"max-age=99999999999999999999"}, func(d Directives) bool { return d.MaxAge == maxDelta }},
		{"§1.2.2 a non-numeric delta is invalid (stale)", []string{"max-age=3600a"}, func(d Directives) bool { return d.Invalid }},
		{"§5.2 space around = spoils the directive", []string{"max-age =3600"}, func(d Directives) bool { return d.MaxAge == Absent }},
		{"§5.2 a directive inside a quoted string is not one", []string{`extension="max-age=3600", max-age=1`}, func(d Directives) bool { return d.MaxAge == 1 }},
		{"§5.2.3 unknown directives are ignored", []string{"foo, bar=baz, no-store"}, func(d Directives) bool { return d.NoStore }},
		{"§5.2.2.4 qualified no-cache names fields", []string{`no-cache="Set-Cookie, X-A"`}, func(d Directives) bool {
			return !d.NoCache && len(d.NoCacheFields) == 2 && d.NoCacheFields[0] == "set-cookie"
		}},
		{"§5.2.2.7 qualified private names fields", []string{`private="x-user"`}, func(d Directives) bool { return !d.Private && d.PrivateFields[0] == "x-user" }},
		{"§5.2.2.7 unqualified private", []string{"private"}, func(d Directives) bool { return d.Private }},
		{"§5.2.1.2 max-stale without a value is any staleness", []string{"max-stale"}, func(d Directives) bool { return d.MaxStale == maxDelta }},
		{"RFC 5861 stale-while-revalidate and stale-if-error", []string{"stale-while-revalidate=30, stale-if-error=600"}, func(d Directives) bool {
			return d.StaleWhileRevalidate == 30 && d.StaleIfError == 600
		}},
		{"RFC 8246 immutable", []string{"max-age=1, immutable"}, func(d Directives) bool { return d.Immutable }},
		{"absent directives are Absent", nil, func(d Directives) bool { return d.MaxAge == Absent && d.SMaxAge == Absent && !d.NoStore }},
	}
	for _, c := range cases {
		if d := ParseCacheControl(c.lines...); !c.check(d) {
			t.Errorf("%s: %q -> %+v", c.name, c.lines, d)
		}
	}
}

// TestSurrogateDirectives: W3C Edge Architecture targeting.
// Mutation caught: ignoring the ";target" suffix (other-target case).
func TestSurrogateDirectives(t *testing.T) {
	d, ok := SurrogateDirectives([]string{"max-age=60;edge-1, no-store;other"}, "edge-1")
	if !ok || d.MaxAge != 60 || d.NoStore {
		t.Errorf("targeted: %+v %v", d, ok)
	}
	d, ok = SurrogateDirectives([]string{"max-age=60;other"}, "edge-1")
	if ok || d.MaxAge != Absent {
		t.Errorf("other target applied: %+v", d)
	}
	h := Header{{"Cache-Control", "no-store"}, {"Surrogate-Control", "max-age=100"}}
	if !Storable("GET", nil, 200, h, "edge-1") {
		t.Error("Surrogate-Control max-age should decide over Cache-Control no-store for the surrogate")
	}
	if Storable("GET", nil, 200, h, "") {
		t.Error("without a surrogate name, Cache-Control no-store holds")
	}
}

// hdr builds a Header from name, value pairs.
func hdr(kv ...string) Header {
	var h Header
	for i := 0; i+1 < len(kv); i += 2 {
		h = append(h, Field{kv[i], kv[i+1]})
	}
	return h
}

// TestStorable: RFC 9111 §3.
// Mutations caught: dropping the Authorization rule (§3.5 rows),
// storing private responses (§5.2.2.7 row), storing 206 without a valid
// Content-Range (§3.3 row).
func TestStorable(t *testing.T) {
	cases := []struct {
		name   string
		method string
		req    Header
		status int
		resp   Header
		want   bool
	}{
		{"§3 GET 200 with max-age", "GET", nil, 200, hdr("Cache-Control", "max-age=60"), true},
		{"§3 POST is not stored", "POST", nil, 200, hdr("Cache-Control", "max-age=60"), false},
		{"§3 heuristically cacheable 404", "GET", nil, 404, nil, true},
		{"§3 302 without explicit freshness is not", "GET", nil, 302, nil, false},
		{"§3 302 with max-age is", "GET", nil, 302, hdr("Cache-Control", "max-age=60"), true},
		{"§3 Expires alone makes a 302 storable", "GET", nil, 302, hdr("Expires", "Thu, 01 Jan 2099 00:00:00 GMT"), true},
		{"§5.2.2.5 response no-store", "GET", nil, 200, hdr("Cache-Control", "max-age=60, no-store"), false},
		{"§5.2.1.5 request no-store", "GET", hdr("Cache-Control", "no-store"), 200, hdr("Cache-Control", "max-age=60"), false},
		{"§5.2.2.7 private is not stored by a shared cache", "GET", nil, 200, hdr("Cache-Control", "private, max-age=60"), false},
		{"§5.2.2.7 qualified private may be stored", "GET", nil, 200, hdr("Cache-Control", `private="X-A", max-age=60`), true},
		{"§5.2.2.3 must-understand overrides no-store for a known status", "GET", nil, 200, hdr("Cache-Control", "must-understand, no-store, max-age=60"), true},
		{"§5.2.2.3 must-understand with an unknown status", "GET", nil, 299, hdr("Cache-Control", "must-understand, no-store, max-age=60"), false},
		{"§3.5 Authorization without public is not stored", "GET", hdr("Authorization", "Basic x"), 200, hdr("Cache-Control", "max-age=60"), false},
		{"§3.5 Authorization with public", "GET", hdr("Authorization", "Basic x"), 200, hdr("Cache-Control", "public, max-age=60"), true},
		{"§3.5 Authorization with s-maxage", "GET", hdr("Authorization", "Basic x"), 200, hdr("Cache-Control", "s-maxage=60"), true},
		{"§3.5 Authorization with must-revalidate", "GET", hdr("Authorization", "Basic x"), 200, hdr("Cache-Control", "must-revalidate, max-age=60"), true},
		{"§4.1 Vary: * is not worth storing", "GET", nil, 200, hdr("Cache-Control", "max-age=60", "Vary", "Accept, *"), false},
		{"§3.3 206 with a valid Content-Range", "GET", nil, 206, hdr("Cache-Control", "max-age=60", "Content-Range", "bytes 0-4/10"), true},
		{"§3.3 206 with an unknown length is not stored", "GET", nil, 206, hdr("Cache-Control", "max-age=60", "Content-Range", "bytes 0-4/*"), false},
		{"§7.3 Set-Cookie does not prevent storing", "GET", nil, 200, hdr("Cache-Control", "max-age=60", "Set-Cookie", "a=b"), true},
		{"§3 304 is never stored as a response", "GET", nil, 304, hdr("Cache-Control", "max-age=60"), false},
	}
	for _, c := range cases {
		if got := Storable(c.method, c.req, c.status, c.resp, ""); got != c.want {
			t.Errorf("%s: Storable = %v", c.name, got)
		}
	}
}

// TestFreshnessLifetime: RFC 9111 §4.2.1 and §4.2.2.
// Mutations caught: max-age before s-maxage (§5.2.2.10 row), Expires
// measured from the response time instead of Date (Expires row),
// heuristic without its cap (cap row).
func TestFreshnessLifetime(t *testing.T) {
	date := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	heur := Heuristic{Percent: 10, Max: 24 * time.Hour}
	cases := []struct {
		name   string
		status int
		h      Header
		want   time.Duration
	}{
		{"§5.2.2.10 s-maxage over max-age", 200, hdr("Cache-Control", "max-age=10, s-maxage=100"), 100 * time.Second},
		{"§5.2.2.1 max-age over Expires", 200, hdr("Cache-Control", "max-age=10", "Expires", "Fri, 02 Jan 2026 01:00:00 GMT"), 10 * time.Second},
		{"§5.3 Expires minus Date", 200, hdr("Expires", "Fri, 02 Jan 2026 01:00:00 GMT"), time.Hour},
		{"§5.3 an invalid Expires is already expired", 200, hdr("Expires", "0"), 0},
		{"§5.3 Expires before Date is stale", 200, hdr("Expires", "Thu, 01 Jan 2026 00:00:00 GMT"), 0},
		{"§4.2.2 heuristic: 10% of Date - Last-Modified", 200, hdr("Last-Modified", "Fri, 26 Dec 2025 00:00:00 GMT"), 24 * time.Hour * 7 / 10},
		{"§4.2.2 heuristic cap", 200, hdr("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT"), 24 * time.Hour},
		{"§4.2.2 no heuristic for a status that is not heuristically cacheable", 302, hdr("Last-Modified", "Fri, 26 Dec 2025 00:00:00 GMT"), 0},
		{"§4.2.1 an invalid max-age is stale", 200, hdr("Cache-Control", "max-age=abc", "Expires", "Fri, 02 Jan 2026 01:00:00 GMT"), 0},
		{"no freshness information", 200, nil, 0},
	}
	for _, c := range cases {
		cc := ParseCacheControl(c.h.Values("Cache-Control")...)
		if got := FreshnessLifetime(c.status, c.h, cc, date, heur); got != c.want {
			t.Errorf("%s: lifetime %v, want %v", c.name, got, c.want)
		}
	}
}

// TestAge: RFC 9111 §4.2.3 and §5.1.
// Mutations caught: ignoring response_delay (delay row), taking the
// apparent age when the corrected age is larger (Age-header row),
// accepting a list as an Age (§5.1 rows).
func TestAge(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name      string
		h         Header
		req, resp time.Time
		now       time.Time
		want      time.Duration
		invalid   bool
	}{
		{"§4.2.3 resident time only", Header{{"Date", "Thu, 01 Jan 2026 00:00:00 GMT"}}, t0, t0, t0.Add(30 * time.Second), 30 * time.Second, false},
		{"§4.2.3 apparent age from Date", Header{{"Date", "Wed, 31 Dec 2025 23:59:50 GMT"}}, t0, t0, t0, 10 * time.Second, false},
		{"§4.2.3 corrected age: Age plus response delay", Header{{"Age", "100"}}, t0, t0.Add(2 * time.Second), t0.Add(2 * time.Second), 102 * time.Second, false},
		{"§4.2.3 a Date in the future gives no negative age", Header{{"Date", "Thu, 01 Jan 2026 01:00:00 GMT"}}, t0, t0, t0, 0, false},
		{"§5.1 a list is invalid", Header{{"Age", "0, 0"}}, t0, t0, t0, 0, true},
		{"§5.1 two lines are invalid", Header{{"Age", "0"}, {"Age", "0"}}, t0, t0, t0, 0, true},
		{"§5.1 a negative value is invalid", Header{{"Age", "-1"}}, t0, t0, t0, 0, true},
	}
	for _, c := range cases {
		a := NewAge(c.h, c.req, c.resp)
		if got := a.Current(c.now); got != c.want || a.Invalid != c.invalid {
			t.Errorf("%s: age %v invalid %v, want %v %v", c.name, got, a.Invalid, c.want, c.invalid)
		}
	}
	if AgeHeader(1500*time.Millisecond) != "1" || AgeHeader(-time.Second) != "0" {
		t.Error("AgeHeader rounds down and never goes negative")
	}
}

// TestSecondaryKey: RFC 9111 §4.1.
// Mutation caught: treating an absent field as matching an empty one
// (absent row).
func TestSecondaryKey(t *testing.T) {
	req := Header{{"Accept-Encoding", "gzip, br"}, {"Accept-Language", "en"}}
	fields, star := VaryFields(Header{{"Vary", "Accept-Encoding, accept-language"}})
	if star || len(fields) != 2 {
		t.Fatalf("VaryFields: %v %v", fields, star)
	}
	k := NewSecondaryKey(fields, req)
	cases := []struct {
		name string
		req  Header
		want bool
	}{
		{"§4.1 same values match", Header{{"Accept-Language", "en"}, {"Accept-Encoding", "gzip, br"}}, true},
		{"§4.1 whitespace around list commas is normalized", Header{{"Accept-Encoding", "gzip,br"}, {"Accept-Language", "en"}}, true},
		{"§4.1 a list split over lines is combined", Header{{"Accept-Encoding", "gzip"}, {"Accept-Encoding", "br"}, {"Accept-Language", "en"}}, true},
		{"§4.1 language tags are case-insensitive", Header{{"Accept-Encoding", "gzip, br"}, {"Accept-Language", "EN"}}, true},
		{"§4.1 a different value does not match", Header{{"Accept-Encoding", "gzip"}, {"Accept-Language", "en"}}, false},
		{"§4.1 absent does not match present", Header{{"Accept-Encoding", "gzip, br"}}, false},
	}
	for _, c := range cases {
		if got := k.Matches(c.req); got != c.want {
			t.Errorf("%s: Matches = %v", c.name, got)
		}
	}
	absent := NewSecondaryKey([]string{"x-a"}, nil)
	if !absent.Matches(nil) || absent.Matches(Header{{"X-A", ""}}) {
		t.Error("§4.1 absent matches only absent")
	}
}

// TestUpdate304: RFC 9111 §3.2 and §4.3.4.
// Mutations caught: updating Content-Length or ETag from the 304 (kept
// rows), appending instead of replacing (Cache-Control row).
func TestUpdate304(t *testing.T) {
	stored := Header{{"Cache-Control", "max-age=1"}, {"ETag", `"a"`}, {"Content-Length", "10"}, {"X-A", "1"}, {"Content-Encoding", "gzip"}}
	fresh := Header{{"Cache-Control", "max-age=100"}, {"ETag", `W/"a"`}, {"Content-Length", "0"}, {"X-B", "2"}, {"Content-Encoding", "br"}, {"Connection", "close"}}
	got := Update304(stored, fresh)
	want := map[string][]string{
		"Cache-Control":    {"max-age=100"}, // replaced, not appended
		"ETag":             {`"a"`},         // kept: it selected the response
		"Content-Length":   {"10"},          // kept
		"Content-Encoding": {"gzip"},        // kept: describes the stored body
		"X-A":              {"1"},           // kept: not in the 304
		"X-B":              {"2"},           // added
		"Connection":       nil,             // hop-by-hop, never taken
	}
	for name, vs := range want {
		if g := got.Values(name); strings.Join(g, "|") != strings.Join(vs, "|") {
			t.Errorf("§3.2 %s: %q, want %q", name, g, vs)
		}
	}
	// §4.3.4 selection.
	if !Selects304(stored, Header{{"ETag", `"a"`}}, false) || Selects304(stored, Header{{"ETag", `"b"`}}, true) {
		t.Error("§4.3.4 selection by entity tag")
	}
	if !Selects304(stored, nil, true) || Selects304(stored, nil, false) {
		t.Error("§4.3.4 without validators only a single stored response is selected")
	}
}

// TestInvalidationTargets: RFC 9111 §4.4.
// Mutation caught: invalidating another host's Location (other-host row)
// and invalidating on an error status (500 row).
func TestInvalidationTargets(t *testing.T) {
	cases := []struct {
		name   string
		status int
		resp   Header
		want   []string
	}{
		{"§4.4 the target", 200, nil, []string{"/a?x=1"}},
		{"§4.4 Location on the same host", 201, Header{{"Location", "/b"}}, []string{"/a?x=1", "/b"}},
		{"§4.4 Content-Location relative", 200, Header{{"Content-Location", "c"}}, []string{"/a?x=1", "/c"}},
		{"§4.4 another host's Location is not invalidated", 201, Header{{"Location", "http://other.example/b"}}, []string{"/a?x=1"}},
		{"§4.4 an error response invalidates nothing", 500, nil, nil},
	}
	for _, c := range cases {
		got := InvalidationTargets(c.status, "/a?x=1", "cdn.example", c.resp)
		if strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	if UnsafeMethod("GET") || UnsafeMethod("HEAD") || !UnsafeMethod("POST") || !UnsafeMethod("M-SEARCH") {
		t.Error("§9.2.1 safe methods")
	}
}

// TestDecide: RFC 9111 §4.2, §4.2.4, §5.2 and RFC 5861.
// Mutations caught: serving stale past must-revalidate (must-revalidate
// row), ignoring request max-age (request max-age row), ignoring
// min-fresh (min-fresh row), stale-while-revalidate window off by its
// length (swr window row), immutable ignored (immutable row).
func TestDecide(t *testing.T) {
	P := ParseCacheControl
	s := time.Second
	cases := []struct {
		name          string
		rq, cc        string
		lifetime, age time.Duration
		want          Usable
	}{
		{"§4.2 fresh", "", "max-age=100", 100 * s, 10 * s, Fresh},
		{"§4.2 stale", "", "max-age=100", 100 * s, 100 * s, Revalidate},
		{"§5.2.2.4 response no-cache always revalidates", "", "no-cache, max-age=100", 100 * s, 0, Revalidate},
		{"§5.2.1.4 request no-cache revalidates", "no-cache", "max-age=100", 100 * s, 0, Revalidate},
		{"§5.2.1.1 request max-age below the age", "max-age=5", "max-age=100", 100 * s, 10 * s, Revalidate},
		{"§5.2.1.3 min-fresh beyond what is left", "min-fresh=95", "max-age=100", 100 * s, 10 * s, Revalidate},
		{"§5.2.1.2 max-stale allows stale", "max-stale=60", "max-age=100", 100 * s, 150 * s, StaleOK},
		{"§5.2.2.2 must-revalidate overrides max-stale", "max-stale=60", "max-age=100, must-revalidate", 100 * s, 150 * s, Revalidate},
		{"§5.2.2.10 s-maxage overrides max-stale in a shared cache", "max-stale=60", "s-maxage=100", 100 * s, 150 * s, Revalidate},
		{"RFC 5861 §3 within stale-while-revalidate", "", "max-age=100, stale-while-revalidate=60", 100 * s, 160 * s, StaleRevalidate},
		{"RFC 5861 §3 swr window past its length", "", "max-age=100, stale-while-revalidate=60", 100 * s, 161 * s, Revalidate},
		{"RFC 8246 immutable ignores a reload while fresh", "no-cache", "max-age=100, immutable", 100 * s, 10 * s, Fresh},
		{"RFC 8246 a stale immutable response revalidates", "", "max-age=100, immutable", 100 * s, 100 * s, Revalidate},
	}
	for _, c := range cases {
		if got := Decide(P(c.rq), P(c.cc), c.lifetime, c.age); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	// RFC 5861 §4 and RFC 9111 §4.2.4.
	hour := time.Hour
	if !StaleIfError(P(""), P("max-age=1, stale-if-error=60"), s, 30*s, 0) {
		t.Error("stale-if-error within its window")
	}
	if StaleIfError(P(""), P("max-age=1, stale-if-error=60"), s, 70*s, 0) {
		t.Error("stale-if-error past its window")
	}
	if !StaleIfError(P(""), P("max-age=1"), s, 30*s, hour) || StaleIfError(P(""), P("max-age=1, must-revalidate"), s, 30*s, hour) ||
		StaleIfError(P(""), P("max-age=1, no-cache"), s, 30*s, hour) {
		t.Error("§4.2.4 the default stale-on-error window and what forbids it")
	}
}

// TestParseDateLenient: RFC 9110 §5.6.7 and the malformations browsers
// accept in Expires.
func TestParseDateLenient(t *testing.T) {
	want := time.Date(2050, 8, 18, 2, 1, 18, 0, time.UTC)
	for _, s := range []string{
		"Thu, 18 Aug 2050 02:01:18 GMT",
		"Thursday, 18-Aug-50 02:01:18 GMT",
		"Thu Aug 18 02:01:18 2050",
		"THU, 18 AUG 2050 02:01:18 gMT",
		"Thu, 18 Aug 2050 02:01:18 UTC",
		"Thu 18 Aug 2050 02:01:18 GMT",
		"Thu, 18-Aug-2050 02:01:18 GMT",
		"Thu, 18 Aug 2050 02.01.18 GMT",
		"Thu, 18 Aug 50 02:01:18 GMT",
	} {
		if got, ok := ParseDateLenient(s); !ok || !got.Equal(want) {
			t.Errorf("%q: %v %v", s, got, ok)
		}
	}
	for _, s := range []string{"0", "-1", "", "tomorrow", "Thu, 18 Aug 2050", "Thu, 32 Aug 2050 02:01:18 GMT", "Thu, 18 Aug 2050 25:01:18 GMT"} {
		if got, ok := ParseDateLenient(s); ok {
			t.Errorf("%q parsed as %v", s, got)
		}
	}
}

// TestMergePieces: RFC 9111 §3.4 combining.
func TestMergePieces(t *testing.T) {
	store := map[uint64][]byte{1: []byte("01234"), 2: []byte("89")}
	pieces := []piece{{0, 5, 1}, {8, 2, 2}}
	read := func(p piece) ([]byte, bool) { b, ok := store[p.blob]; return b, ok }
	got, buf, drop, ok := mergePieces(pieces, read, 5, []byte("567"), 3)
	if !ok || len(got) != 1 || got[0].start != 0 || got[0].n != 10 || string(buf) != "0123456789" || len(drop) != 2 {
		t.Fatalf("merge: %+v %q %v %v", got, buf, drop, ok)
	}
	// Disjoint pieces stay apart.
	got, _, _, _ = mergePieces(pieces[:1], read, 7, []byte("7"), 3)
	if len(got) != 2 {
		t.Fatalf("disjoint: %+v", got)
	}
	e := &entry{pieces: got, size: 10}
	if _, ok := e.covers(0, 4); !ok || e.firstGap() != 5 {
		t.Errorf("covers/firstGap: %+v", e)
	}
}
