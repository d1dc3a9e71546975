// Package httprangetest is the conformance table of range and conditional
// requests (RFC 9110 sections 9.3.2, 13, 14 and 15) that every server of
// byte ranges in this project runs: the edge, the shield and the origin
// alike, so that the three can never answer one request differently.
//
// A server's test builds a Target for one file it serves and calls Run:
//
//	httprangetest.Run(t, httprangetest.Target{
//		Size: size, ETag: etag, LastModified: lm,
//		Do:    func(t testing.TB, method string, hdr http.Header) (*http.Response, []byte) { ... },
//		Bytes: func(start, end int64) []byte { ... },
//	})
package httprangetest

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/musiccdn/cdn/httprange"
)

// Target is one file of the server under test.
type Target struct {
	// Size, ETag (strong, quoted) and LastModified are the file's.
	Size         int64
	ETag         string
	LastModified time.Time
	// MaxRanges is the server's limit; 0 means httprange.DefaultMaxRanges.
	MaxRanges int
	// Do sends method with the headers hdr for the file and returns the
	// response with its body read.
	Do func(t testing.TB, method string, hdr http.Header) (*http.Response, []byte)
	// Bytes returns the file's bytes start..end (inclusive).
	Bytes func(start, end int64) []byte
	// Check, if set, is called on every response that is not a 405
	// (e.g. the edge's and shield's Cache-Status).
	Check func(t testing.TB, resp *http.Response)
}

// Case is one request of the table and the answer RFC 9110 requires.
type Case struct {
	Name      string
	Method    string
	Header    []string // name, value, ...
	Status    int
	Ranges    []httprange.Range // the bytes of a 200 or 206; nil: no body checked
	Multipart bool
}

// Cases is the table for a file of size bytes (at least 300 000: the table
// crosses a 256 KiB chunk boundary) with the given validators and limit.
func Cases(size int64, etag string, lastModified time.Time, maxRanges int) []Case {
	if maxRanges == 0 {
		maxRanges = httprange.DefaultMaxRanges
	}
	lm := lastModified.UTC().Format(http.TimeFormat)
	before := lastModified.Add(-time.Hour).UTC().Format(http.TimeFormat)
	after := lastModified.Add(time.Hour).UTC().Format(http.TimeFormat)
	S := func(n int64) string { return strconv.FormatInt(n, 10) }
	full := []httprange.Range{{Start: 0, End: size - 1}}
	r := func(a, b int64) httprange.Range { return httprange.Range{Start: a, End: b} }
	rs := func(rr ...httprange.Range) []httprange.Range { return rr }
	spread := func(n int) (string, []httprange.Range) {
		var specs []string
		var want []httprange.Range
		for i := 0; i < n; i++ {
			specs = append(specs, fmt.Sprintf("%d-%d", i*1000, i*1000+9))
			want = append(want, r(int64(i*1000), int64(i*1000+9)))
		}
		return "bytes=" + strings.Join(specs, ","), want
	}
	atMax, atMaxWant := spread(maxRanges)
	overMax, _ := spread(maxRanges + 1)
	return []Case{
		{"§14.2 no Range: 200 with the whole representation", "GET", nil, 200, full, false},
		{"§14.1.2 int-range bytes=0-99", "GET", []string{"Range", "bytes=0-99"}, 206, rs(r(0, 99)), false},
		{"§14.1.2 int-range across a chunk boundary", "GET", []string{"Range", "bytes=262000-263000"}, 206, rs(r(262000, 263000)), false},
		{"§14.1.2 open-ended bytes=100-", "GET", []string{"Range", "bytes=100-"}, 206, rs(r(100, size-1)), false},
		{"§14.1.2 suffix-range bytes=-500", "GET", []string{"Range", "bytes=-500"}, 206, rs(r(size-500, size-1)), false},
		{"§14.1.2 the last byte alone", "GET", []string{"Range", "bytes=" + S(size-1) + "-" + S(size-1)}, 206, rs(r(size-1, size-1)), false},
		{"§14.1.3 suffix longer than the representation selects all of it", "GET", []string{"Range", "bytes=-" + S(size+10)}, 206, full, false},
		{"§14.1.3 last-pos past the end is clamped", "GET", []string{"Range", "bytes=10-" + S(size+1000)}, 206, rs(r(10, size-1)), false},
		{"§14.1.3 last-pos past int64 is clamped", "GET", []string{"Range", "bytes=0-99999999999999999999"}, 206, full, false},
		{"§14.1.3 suffix-length past int64 selects all", "GET", []string{"Range", "bytes=-99999999999999999999"}, 206, full, false},
		{"§14.1.3 first-pos past int64 is unsatisfiable: 416", "GET", []string{"Range", "bytes=99999999999999999999-"}, 416, nil, false},
		{"§14.1.1 range unit is case-insensitive", "GET", []string{"Range", "BYTES=0-9"}, 206, rs(r(0, 9)), false},
		{"§5.6.1 list with OWS and empty elements", "GET", []string{"Range", "bytes=0-9 , ,20-29"}, 206, rs(r(0, 9), r(20, 29)), true},
		{"§14.2 unknown range unit is ignored: 200", "GET", []string{"Range", "items=0-9"}, 200, full, false},
		{"§14.1.1 last-pos before first-pos is invalid: 200", "GET", []string{"Range", "bytes=9-0"}, 200, full, false},
		{"§14.1.1 non-numeric positions are invalid: 200", "GET", []string{"Range", "bytes=a-b"}, 200, full, false},
		{"§14.1.1 missing '=' is invalid: 200", "GET", []string{"Range", "bytes 0-9"}, 200, full, false},
		{"§14.1.1 empty range-set is invalid: 200", "GET", []string{"Range", "bytes="}, 200, full, false},
		{"§14.1.1 bare '-' is invalid: 200", "GET", []string{"Range", "bytes=-"}, 200, full, false},
		{"§14.1.1 negative first-pos is invalid syntax (suffix of 5-9): 200", "GET", []string{"Range", "bytes=--5"}, 200, full, false},
		{"§15.5.17 first-pos at the size is unsatisfiable: 416", "GET", []string{"Range", "bytes=" + S(size) + "-"}, 416, nil, false},
		{"§14.1.3 zero-length suffix is unsatisfiable: 416", "GET", []string{"Range", "bytes=-0"}, 416, nil, false},
		{"§14.1.3 one satisfiable range among unsatisfiable ones", "GET", []string{"Range", "bytes=" + S(size+5) + "-,0-9"}, 206, rs(r(0, 9)), false},
		{"§14.6 two ranges: multipart/byteranges", "GET", []string{"Range", "bytes=0-9,1000-1099"}, 206, rs(r(0, 9), r(1000, 1099)), true},
		{"§14.6 three ranges with a suffix", "GET", []string{"Range", "bytes=0-9,2000-2099,-3"}, 206, rs(r(0, 9), r(2000, 2099), r(size-3, size-1)), true},
		{"§14.6 ranges out of order are sorted", "GET", []string{"Range", "bytes=5000-5009,0-9"}, 206, rs(r(0, 9), r(5000, 5009)), true},
		{"§14.2 overlapping ranges are coalesced", "GET", []string{"Range", "bytes=0-99,50-149"}, 206, rs(r(0, 149)), false},
		{"§14.2 max_ranges ranges are served", "GET", []string{"Range", atMax}, 206, atMaxWant, true},
		{"§14.2 more than max_ranges ranges are ignored: 200", "GET", []string{"Range", overMax}, 200, full, false},
		{"§13.1.5 If-Range with the current ETag honours Range", "GET", []string{"Range", "bytes=0-9", "If-Range", etag}, 206, rs(r(0, 9)), false},
		{"§13.1.5 If-Range with another ETag sends all: 200", "GET", []string{"Range", "bytes=0-9", "If-Range", `"other"`}, 200, full, false},
		{"§13.1.5 If-Range with a weak ETag never matches: 200", "GET", []string{"Range", "bytes=0-9", "If-Range", "W/" + etag}, 200, full, false},
		{"§13.1.5 If-Range with the Last-Modified date honours Range", "GET", []string{"Range", "bytes=0-9", "If-Range", lm}, 206, rs(r(0, 9)), false},
		{"§13.1.5 If-Range with an older date sends all: 200", "GET", []string{"Range", "bytes=0-9", "If-Range", before}, 200, full, false},
		{"§13.1.2 If-None-Match with the current ETag: 304", "GET", []string{"If-None-Match", etag}, 304, nil, false},
		{"§13.1.2 If-None-Match uses the weak comparison: 304", "GET", []string{"If-None-Match", `"x", W/` + etag}, 304, nil, false},
		{"§13.1.2 If-None-Match * on an existing representation: 304", "GET", []string{"If-None-Match", "*"}, 304, nil, false},
		{"§13.1.2 If-None-Match with other tags: 200", "GET", []string{"If-None-Match", `"x", "y"`}, 200, full, false},
		{"§13.2.2 If-None-Match 304 wins over Range", "GET", []string{"If-None-Match", etag, "Range", "bytes=0-9"}, 304, nil, false},
		{"§13.1.1 If-Match with another ETag: 412", "GET", []string{"If-Match", `"other"`}, 412, nil, false},
		{"§13.1.1 If-Match with the current ETag: 200", "GET", []string{"If-Match", etag}, 200, full, false},
		{"§13.1.1 If-Match with the current ETag and a Range: 206", "GET", []string{"If-Match", etag, "Range", "bytes=0-1"}, 206, rs(r(0, 1)), false},
		{"§13.1.1 If-Match uses the strong comparison: weak tag 412", "GET", []string{"If-Match", "W/" + etag}, 412, nil, false},
		{"§13.1.1 If-Match *: 200", "GET", []string{"If-Match", "*"}, 200, full, false},
		{"§13.1.3 If-Modified-Since at Last-Modified: 304", "GET", []string{"If-Modified-Since", lm}, 304, nil, false},
		{"§13.1.3 If-Modified-Since before Last-Modified: 200", "GET", []string{"If-Modified-Since", before}, 200, full, false},
		{"§13.1.3 If-Modified-Since with an invalid date is ignored: 200", "GET", []string{"If-Modified-Since", "yesterday"}, 200, full, false},
		{"§13.1.4 If-Unmodified-Since before Last-Modified: 412", "GET", []string{"If-Unmodified-Since", before}, 412, nil, false},
		{"§13.1.4 If-Unmodified-Since after Last-Modified: 206", "GET", []string{"If-Unmodified-Since", after, "Range", "bytes=0-9"}, 206, rs(r(0, 9)), false},
		{"§13.2.2 If-None-Match is evaluated instead of If-Modified-Since", "GET", []string{"If-None-Match", `"x"`, "If-Modified-Since", after}, 200, full, false},
		{"§9.3.2 HEAD: headers of a GET, no body", "HEAD", nil, 200, nil, false},
		{"§9.3.2 HEAD with Range: 206 headers", "HEAD", []string{"Range", "bytes=0-99"}, 206, nil, false},
		{"§15.5.6 POST is not allowed: 405", "POST", nil, 405, nil, false},
	}
}

// Run sends every case of the table to tg and checks each answer.
func Run(t *testing.T, tg Target) {
	t.Helper()
	for _, tc := range Cases(tg.Size, tg.ETag, tg.LastModified, tg.MaxRanges) {
		t.Run(tc.Name, func(t *testing.T) {
			hdr := http.Header{}
			for i := 0; i+1 < len(tc.Header); i += 2 {
				hdr.Set(tc.Header[i], tc.Header[i+1])
			}
			resp, body := tg.Do(t, tc.Method, hdr)
			check(t, tg, tc, resp, body)
		})
	}
}

func check(t *testing.T, tg Target, tc Case, resp *http.Response, body []byte) {
	t.Helper()
	size := tg.Size
	if resp.StatusCode != tc.Status {
		t.Fatalf("%s %v: status %d, want %d (body %.80q)", tc.Method, tc.Header, resp.StatusCode, tc.Status, body)
	}
	if resp.StatusCode == 405 {
		if resp.Header.Get("Allow") == "" {
			t.Error("405 without Allow")
		}
		return
	}
	if tg.Check != nil {
		tg.Check(t, resp)
	}
	if tc.Status != 412 && tc.Status != 416 {
		if got := resp.Header.Get("ETag"); got != tg.ETag {
			t.Errorf("ETag = %q, want %q", got, tg.ETag)
		}
	}
	switch tc.Status {
	case 416:
		if got, want := resp.Header.Get("Content-Range"), "bytes */"+strconv.FormatInt(size, 10); got != want {
			t.Errorf("Content-Range = %q, want %q", got, want)
		}
		return
	case 304, 412:
		if len(body) != 0 {
			t.Errorf("%d with a body of %d bytes", tc.Status, len(body))
		}
		return
	}
	if resp.Header.Get("Accept-Ranges") != "bytes" {
		t.Errorf("Accept-Ranges = %q", resp.Header.Get("Accept-Ranges"))
	}
	if lm := tg.LastModified.UTC().Format(http.TimeFormat); resp.Header.Get("Last-Modified") != lm {
		t.Errorf("Last-Modified = %q, want %q", resp.Header.Get("Last-Modified"), lm)
	}
	if tc.Method == "HEAD" {
		want := size
		if tc.Status == 206 {
			want = 100
		}
		if resp.ContentLength != want || len(body) != 0 {
			t.Errorf("HEAD: Content-Length %d body %d, want %d and 0", resp.ContentLength, len(body), want)
		}
		return
	}
	if tc.Multipart {
		CheckMultipart(t, resp, body, size, tc.Ranges, tg.Bytes)
		return
	}
	want := tc.Ranges[0]
	if tc.Status == 206 {
		if got, w := resp.Header.Get("Content-Range"), string(httprange.AppendContentRange(nil, want, size)); got != w {
			t.Errorf("Content-Range = %q, want %q", got, w)
		}
	} else if resp.Header.Get("Content-Range") != "" {
		t.Errorf("200 with Content-Range %q", resp.Header.Get("Content-Range"))
	}
	if resp.ContentLength != want.Len() {
		t.Errorf("Content-Length = %d, want %d", resp.ContentLength, want.Len())
	}
	if !bytes.Equal(body, tg.Bytes(want.Start, want.End)) {
		t.Errorf("body of %d bytes differs from the file's bytes %d-%d", len(body), want.Start, want.End)
	}
}

// CheckMultipart checks a multipart/byteranges response (RFC 9110 §14.6):
// its Content-Length, then one part per range of want, in order, each with
// its Content-Range and the file's bytes (from bytesOf, inclusive bounds),
// and nothing after.
func CheckMultipart(t testing.TB, resp *http.Response, body []byte, size int64, want []httprange.Range, bytesOf func(start, end int64) []byte) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/byteranges" {
		t.Fatalf("Content-Type = %q", resp.Header.Get("Content-Type"))
	}
	if resp.ContentLength != int64(len(body)) {
		t.Errorf("Content-Length %d, body %d", resp.ContentLength, len(body))
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for i, w := range want {
		part, err := mr.NextPart()
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if got, cr := part.Header.Get("Content-Range"), string(httprange.AppendContentRange(nil, w, size)); got != cr {
			t.Errorf("part %d Content-Range = %q, want %q", i, got, cr)
		}
		b, _ := io.ReadAll(part)
		if !bytes.Equal(b, bytesOf(w.Start, w.End)) {
			t.Errorf("part %d bytes differ", i)
		}
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Errorf("more parts than %d: %v", len(want), err)
	}
}
