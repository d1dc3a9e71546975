package tier

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
	"github.com/musiccdn/cdn/origin/media"
)

// TestRFC9110 drives range and conditional requests through a real edge
// (over a real shield and origin) and checks each answer against the
// section of RFC 9110 named in the case.
func TestRFC9110(t *testing.T) {
	p := newTestPOP(t, nil)
	const track, kbps = 2, 24
	size := p.origin.cat.Size(track, kbps)
	etag := p.origin.cat.ETag(track, kbps, 0)
	lm := media.SyntheticEpoch.Format(http.TimeFormat)
	before := media.SyntheticEpoch.Add(-time.Hour).Format(http.TimeFormat)
	after := media.SyntheticEpoch.Add(time.Hour).Format(http.TimeFormat)
	S := func(n int64) string { return strconv.FormatInt(n, 10) }
	full := []httprange.Range{{Start: 0, End: size - 1}}
	r := func(a, b int64) httprange.Range { return httprange.Range{Start: a, End: b} }
	var many []string
	for i := 0; i < 17; i++ {
		many = append(many, fmt.Sprintf("%d-%d", i*1000, i*1000+9))
	}

	cases := []struct {
		name      string
		method    string
		hdr       []string
		status    int
		ranges    []httprange.Range // nil: no body expected
		multipart bool
	}{
		{"§14.2 no Range: 200 with the whole representation", "GET", nil, 200, full, false},
		{"§14.1.2 int-range bytes=0-99", "GET", []string{"Range", "bytes=0-99"}, 206, []httprange.Range{r(0, 99)}, false},
		{"§14.1.2 int-range across a chunk boundary", "GET", []string{"Range", "bytes=262000-263000"}, 206, []httprange.Range{r(262000, 263000)}, false},
		{"§14.1.2 open-ended bytes=100-", "GET", []string{"Range", "bytes=100-"}, 206, []httprange.Range{r(100, size-1)}, false},
		{"§14.1.2 suffix-range bytes=-500", "GET", []string{"Range", "bytes=-500"}, 206, []httprange.Range{r(size-500, size-1)}, false},
		{"§14.1.2 the last byte alone", "GET", []string{"Range", "bytes=" + S(size-1) + "-" + S(size-1)}, 206, []httprange.Range{r(size-1, size-1)}, false},
		{"§14.1.3 suffix longer than the representation selects all of it", "GET", []string{"Range", "bytes=-" + S(size+10)}, 206, full, false},
		{"§14.1.3 last-pos past the end is clamped", "GET", []string{"Range", "bytes=10-" + S(size+1000)}, 206, []httprange.Range{r(10, size-1)}, false},
		{"§14.1.1 range unit is case-insensitive", "GET", []string{"Range", "BYTES=0-9"}, 206, []httprange.Range{r(0, 9)}, false},
		{"§5.6.1 list with OWS and empty elements", "GET", []string{"Range", "bytes=0-9 , ,20-29"}, 206, []httprange.Range{r(0, 9), r(20, 29)}, true},
		{"§14.2 unknown range unit is ignored: 200", "GET", []string{"Range", "items=0-9"}, 200, full, false},
		{"§14.1.1 last-pos before first-pos is invalid: 200", "GET", []string{"Range", "bytes=9-0"}, 200, full, false},
		{"§14.1.1 non-numeric positions are invalid: 200", "GET", []string{"Range", "bytes=a-b"}, 200, full, false},
		{"§14.1.1 missing '=' is invalid: 200", "GET", []string{"Range", "bytes 0-9"}, 200, full, false},
		{"§14.1.1 empty range-set is invalid: 200", "GET", []string{"Range", "bytes="}, 200, full, false},
		{"§14.1.1 bare '-' is invalid: 200", "GET", []string{"Range", "bytes=-"}, 200, full, false},
		{"§14.1.1 negative first-pos is invalid syntax (suffix of 5-9): 200", "GET", []string{"Range", "bytes=--5"}, 200, full, false},
		{"§15.5.17 first-pos at the size is unsatisfiable: 416", "GET", []string{"Range", "bytes=" + S(size) + "-"}, 416, nil, false},
		{"§14.1.3 zero-length suffix is unsatisfiable: 416", "GET", []string{"Range", "bytes=-0"}, 416, nil, false},
		{"§14.1.3 one satisfiable range among unsatisfiable ones", "GET", []string{"Range", "bytes=" + S(size+5) + "-,0-9"}, 206, []httprange.Range{r(0, 9)}, false},
		{"§14.6 two ranges: multipart/byteranges", "GET", []string{"Range", "bytes=0-9,1000-1099"}, 206, []httprange.Range{r(0, 9), r(1000, 1099)}, true},
		{"§14.6 ranges out of order are sorted", "GET", []string{"Range", "bytes=5000-5009,0-9"}, 206, []httprange.Range{r(0, 9), r(5000, 5009)}, true},
		{"§14.2 overlapping ranges are coalesced", "GET", []string{"Range", "bytes=0-99,50-149"}, 206, []httprange.Range{r(0, 149)}, false},
		{"§14.2 too many ranges are ignored: 200", "GET", []string{"Range", "bytes=" + strings.Join(many, ",")}, 200, full, false},
		{"§13.1.5 If-Range with the current ETag honours Range", "GET", []string{"Range", "bytes=0-9", "If-Range", etag}, 206, []httprange.Range{r(0, 9)}, false},
		{"§13.1.5 If-Range with another ETag sends all: 200", "GET", []string{"Range", "bytes=0-9", "If-Range", `"other"`}, 200, full, false},
		{"§13.1.5 If-Range with a weak ETag never matches: 200", "GET", []string{"Range", "bytes=0-9", "If-Range", "W/" + etag}, 200, full, false},
		{"§13.1.5 If-Range with the Last-Modified date honours Range", "GET", []string{"Range", "bytes=0-9", "If-Range", lm}, 206, []httprange.Range{r(0, 9)}, false},
		{"§13.1.5 If-Range with an older date sends all: 200", "GET", []string{"Range", "bytes=0-9", "If-Range", before}, 200, full, false},
		{"§13.1.2 If-None-Match with the current ETag: 304", "GET", []string{"If-None-Match", etag}, 304, nil, false},
		{"§13.1.2 If-None-Match uses the weak comparison: 304", "GET", []string{"If-None-Match", `"x", W/` + etag}, 304, nil, false},
		{"§13.1.2 If-None-Match * on an existing representation: 304", "GET", []string{"If-None-Match", "*"}, 304, nil, false},
		{"§13.1.2 If-None-Match with other tags: 200", "GET", []string{"If-None-Match", `"x", "y"`}, 200, full, false},
		{"§13.2.2 If-None-Match 304 wins over Range", "GET", []string{"If-None-Match", etag, "Range", "bytes=0-9"}, 304, nil, false},
		{"§13.1.1 If-Match with another ETag: 412", "GET", []string{"If-Match", `"other"`}, 412, nil, false},
		{"§13.1.1 If-Match with the current ETag: 200", "GET", []string{"If-Match", etag}, 200, full, false},
		{"§13.1.1 If-Match uses the strong comparison: weak tag 412", "GET", []string{"If-Match", "W/" + etag}, 412, nil, false},
		{"§13.1.1 If-Match *: 200", "GET", []string{"If-Match", "*"}, 200, full, false},
		{"§13.1.3 If-Modified-Since at Last-Modified: 304", "GET", []string{"If-Modified-Since", lm}, 304, nil, false},
		{"§13.1.3 If-Modified-Since before Last-Modified: 200", "GET", []string{"If-Modified-Since", before}, 200, full, false},
		{"§13.1.3 If-Modified-Since with an invalid date is ignored: 200", "GET", []string{"If-Modified-Since", "yesterday"}, 200, full, false},
		{"§13.1.4 If-Unmodified-Since before Last-Modified: 412", "GET", []string{"If-Unmodified-Since", before}, 412, nil, false},
		{"§13.1.4 If-Unmodified-Since after Last-Modified: 206", "GET", []string{"If-Unmodified-Since", after, "Range", "bytes=0-9"}, 206, []httprange.Range{r(0, 9)}, false},
		{"§13.2.2 If-None-Match is evaluated instead of If-Modified-Since", "GET", []string{"If-None-Match", `"x"`, "If-Modified-Since", after}, 200, full, false},
		{"§9.3.2 HEAD: headers of a GET, no body", "HEAD", nil, 200, nil, false},
		{"§9.3.2 HEAD with Range: 206 headers", "HEAD", []string{"Range", "bytes=0-99"}, 206, nil, false},
		{"§15.5.6 POST is not allowed: 405", "POST", nil, 405, nil, false},
	}
	if len(cases) < 30 {
		t.Fatalf("only %d cases", len(cases))
	}
	url := p.url("t2", kbps, "SE")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, url, nil)
			for i := 0; i+1 < len(tc.hdr); i += 2 {
				req.Header.Set(tc.hdr[i], tc.hdr[i+1])
			}
			resp, err := p.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("%s %v: status %d, want %d (body %.80q)", tc.method, tc.hdr, resp.StatusCode, tc.status, body)
			}
			if resp.StatusCode == 405 {
				if resp.Header.Get("Allow") == "" {
					t.Error("405 without Allow")
				}
				return
			}
			if got := resp.Header.Get("ETag"); got != etag {
				t.Errorf("ETag = %q, want %q", got, etag)
			}
			if got := resp.Header.Get("Cache-Status"); !strings.HasPrefix(got, "edge-1; ") {
				t.Errorf("Cache-Status = %q", got)
			}
			switch tc.status {
			case 416:
				if got, want := resp.Header.Get("Content-Range"), "bytes */"+S(size); got != want {
					t.Errorf("Content-Range = %q, want %q", got, want)
				}
				return
			case 304, 412:
				if len(body) != 0 {
					t.Errorf("%d with a body of %d bytes", tc.status, len(body))
				}
				return
			}
			if resp.Header.Get("Accept-Ranges") != "bytes" {
				t.Errorf("Accept-Ranges = %q", resp.Header.Get("Accept-Ranges"))
			}
			if tc.method == "HEAD" {
				want := size
				if tc.status == 206 {
					want = 100
				}
				if resp.ContentLength != want || len(body) != 0 {
					t.Errorf("HEAD: Content-Length %d body %d, want %d and 0", resp.ContentLength, len(body), want)
				}
				return
			}
			if tc.multipart {
				checkMultipart(t, p, resp, body, track, kbps, size, tc.ranges)
				return
			}
			want := tc.ranges[0]
			if tc.status == 206 {
				if got, w := resp.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-%d/%d", want.Start, want.End, size); got != w {
					t.Errorf("Content-Range = %q, want %q", got, w)
				}
			} else if resp.Header.Get("Content-Range") != "" {
				t.Errorf("200 with Content-Range %q", resp.Header.Get("Content-Range"))
			}
			if resp.ContentLength != want.Len() {
				t.Errorf("Content-Length = %d, want %d", resp.ContentLength, want.Len())
			}
			if !bytes.Equal(body, p.expect(track, kbps, want.Start, want.End)) {
				t.Errorf("body of %d bytes differs from the origin's bytes %d-%d", len(body), want.Start, want.End)
			}
		})
	}
}

func checkMultipart(t *testing.T, p *testPOP, resp *http.Response, body []byte, track, kbps int, size int64, want []httprange.Range) {
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
		if got, cr := part.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-%d/%d", w.Start, w.End, size); got != cr {
			t.Errorf("part %d Content-Range = %q, want %q", i, got, cr)
		}
		b, _ := io.ReadAll(part)
		if !bytes.Equal(b, p.expect(track, kbps, w.Start, w.End)) {
			t.Errorf("part %d bytes differ", i)
		}
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Errorf("more parts than %d: %v", len(want), err)
	}
}
