package httprange

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	const size = 10000
	lm := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	v := Validators{ETag: []byte(`"abc"`), LastModified: lm}
	r := func(a, b int64) Range { return Range{a, b} }
	cases := []struct {
		name string
		req  Request
		want Decision
	}{
		{"no Range", Request{}, Decision{Status: 200}},
		{"one range", Request{Range: []byte("bytes=0-9")}, Decision{206, []Range{r(0, 9)}}},
		{"two ranges", Request{Range: []byte("bytes=20-29,0-9")}, Decision{206, []Range{r(0, 9), r(20, 29)}}},
		{"invalid", Request{Range: []byte("bytes=9-0")}, Decision{Status: 200}},
		{"unsatisfiable", Request{Range: []byte("bytes=10000-")}, Decision{Status: 416}},
		{"first-pos past int64", Request{Range: []byte("bytes=99999999999999999999-")}, Decision{Status: 416}},
		{"last-pos past int64", Request{Range: []byte("bytes=0-99999999999999999999")}, Decision{206, []Range{r(0, size-1)}}},
		{"too many", Request{Range: []byte("bytes=0-0,2-2,4-4")}, Decision{Status: 200}},
		{"max exactly", Request{Range: []byte("bytes=0-0,2-2")}, Decision{206, []Range{r(0, 0), r(2, 2)}}},
		{"If-Range match", Request{Range: []byte("bytes=0-9"), IfRange: []byte(`"abc"`)}, Decision{206, []Range{r(0, 9)}}},
		{"If-Range mismatch", Request{Range: []byte("bytes=0-9"), IfRange: []byte(`"x"`)}, Decision{Status: 200}},
		{"If-None-Match beats Range", Request{Preconditions: Preconditions{IfNoneMatch: []byte(`"abc"`)}, Range: []byte("bytes=0-9")}, Decision{Status: 304}},
		{"If-Match fails before Range", Request{Preconditions: Preconditions{IfMatch: []byte(`"x"`)}, Range: []byte("bytes=10000-")}, Decision{Status: 412}},
	}
	for _, tc := range cases {
		var buf [4]Range
		got := Decide(buf[:0], tc.req, size, v, 2)
		if got.Status != tc.want.Status || fmt.Sprint(got.Ranges) != fmt.Sprint(append([]Range{}, tc.want.Ranges...)) {
			t.Errorf("%s: Decide = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestDecideAllocs(t *testing.T) {
	v := Validators{ETag: []byte(`"abc"`)}
	req := Request{Range: []byte("bytes=5000-5009,0-9"), IfRange: []byte(`"abc"`)}
	var buf [4]Range
	if n := testing.AllocsPerRun(100, func() { Decide(buf[:0], req, 10000, v, 16) }); n != 0 {
		t.Errorf("Decide allocates %v times per call", n)
	}
}

// FuzzDecide checks Decide against its own parts on any input: the status
// agrees with Parse (206 exactly when Parse gives ranges, 416 exactly when
// it says unsatisfiable), and the ranges of a 206 lie inside the
// representation, sorted and coalesced.
func FuzzDecide(f *testing.F) {
	f.Add("bytes=0-1", "", "", int64(1000), 4)
	f.Add("bytes=99999999999999999999-", "", "", int64(1000), 4)
	f.Add("bytes=0-1", `"a"`, `"a"`, int64(10), 1)
	f.Fuzz(func(t *testing.T, rng, ifRange, ifNoneMatch string, size int64, max int) {
		if size < 0 || max < 0 {
			return
		}
		v := Validators{ETag: []byte(`"a"`)}
		req := Request{Range: []byte(rng)}
		if ifRange != "" {
			req.IfRange = []byte(ifRange)
		}
		if ifNoneMatch != "" {
			req.IfNoneMatch = []byte(ifNoneMatch)
		}
		d := Decide(nil, req, size, v, max)
		switch d.Status {
		case 304, 412, 200, 416:
			if len(d.Ranges) != 0 {
				t.Fatalf("%d with ranges %v", d.Status, d.Ranges)
			}
		case 206:
			if len(d.Ranges) == 0 || max > 0 && len(d.Ranges) > max {
				t.Fatalf("206 with %d ranges", len(d.Ranges))
			}
			for i, r := range d.Ranges {
				if r.Start < 0 || r.End < r.Start || r.End >= size || i > 0 && r.Start <= d.Ranges[i-1].End+1 {
					t.Fatalf("206 ranges %v of %d", d.Ranges, size)
				}
			}
		default:
			t.Fatalf("status %d", d.Status)
		}
		if d.Status == 206 || d.Status == 416 {
			_, err := Parse(nil, req.Range, size, max)
			if (err == nil) != (d.Status == 206) {
				t.Fatalf("Decide %d but Parse %v", d.Status, err)
			}
		}
	})
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in         string
		a, b, size int64
		ok         bool
	}{
		{"bytes 0-99/100", 0, 99, 100, true},
		{"bytes 5-5/6", 5, 5, 6, true},
		{"bytes 5-4/6", 0, 0, 0, false},
		{"bytes 0-99/99", 0, 0, 0, false},
		{"bytes 0-99/*", 0, 0, 0, false},
		{"bytes */100", 0, 0, 0, false},
		{"items 0-1/2", 0, 0, 0, false},
		{"", 0, 0, 0, false},
		{"bytes -1-2/3", 0, 0, 0, false},
		{"bytes +1-2/3", 0, 0, 0, false},
		{"bytes 0-1/99999999999999999999", 0, 0, 0, false},
		// The unit is case-insensitive (RFC 9110 §14.1) and the field
		// value's surrounding whitespace is not part of it.
		{"Bytes 0-4/10", 0, 4, 10, true},
		{" BYTES 4-9/10\t", 4, 9, 10, true},
		// A size past 2^31 is a size (the HTTP cache's parser once
		// clamped it there).
		{"bytes 0-0/4294967296", 0, 0, 4294967296, true},
		{"bytes 0-10/10", 0, 0, 0, false},
		{"bytes0-1/2", 0, 0, 0, false},
	}
	for _, tt := range tests {
		r, size, ok := ParseContentRange([]byte(tt.in))
		if r.Start != tt.a || r.End != tt.b || size != tt.size || ok != tt.ok {
			t.Errorf("ParseContentRange(%q) = %v, %d, %v, want %d-%d, %d, %v", tt.in, r, size, ok, tt.a, tt.b, tt.size, tt.ok)
		}
	}
	if size, ok := ParseUnsatisfied([]byte("bytes */100")); !ok || size != 100 {
		t.Errorf("ParseUnsatisfied(bytes */100) = %d, %v", size, ok)
	}
	if _, ok := ParseUnsatisfied([]byte("bytes 0-1/100")); ok {
		t.Error("ParseUnsatisfied accepted a satisfied range")
	}
}

// FuzzParseContentRange: whatever is accepted is a range inside its size,
// and writing it back gives the same value, so the writer and the reader
// agree.
func FuzzParseContentRange(f *testing.F) {
	f.Add("bytes 0-99/100")
	f.Add("bytes 1-2/*")
	f.Add("bytes */5")
	f.Fuzz(func(t *testing.T, s string) {
		if r, size, ok := ParseContentRange([]byte(s)); ok {
			if r.Start < 0 || r.End < r.Start || size <= r.End {
				t.Fatalf("ParseContentRange(%q) = %v/%d accepted", s, r, size)
			}
			back := AppendContentRange(nil, r, size)
			if r2, size2, ok2 := ParseContentRange(back); !ok2 || r2 != r || size2 != size {
				t.Fatalf("ParseContentRange(%q) = %v/%d; written back %q, read %v/%d %v", s, r, size, back, r2, size2, ok2)
			}
		}
		if size, ok := ParseUnsatisfied([]byte(s)); ok {
			if got, ok2 := ParseUnsatisfied(AppendUnsatisfied(nil, size)); !ok2 || got != size {
				t.Fatalf("ParseUnsatisfied(%q) = %d does not round-trip", s, size)
			}
		}
	})
}

func TestCacheStatus(t *testing.T) {
	tests := []struct {
		in   string
		want CacheOutcome
	}{
		{"", CacheNone},
		{"edge-1; hit", CacheHit},
		{"edge-1; fwd=miss; stored", CacheMiss},
		{"shield-0; hit, edge-1; fwd=miss; stored", CacheMiss},
		{"shield-0; fwd=miss, edge-1; hit", CacheHit},
		{"edge-1; fwd=stale", CacheStale},
		{"edge-1; hit; detail=stale", CacheStale},
		{`edge-1; hit; detail="stale"`, CacheStale},
		{"edge-1", CacheNone},
		{"edge-1; fwd=uri-miss", CacheMiss},
	}
	for _, tt := range tests {
		if got := ParseCacheStatus(tt.in); got != tt.want {
			t.Errorf("ParseCacheStatus(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	for _, o := range []CacheOutcome{CacheHit, CacheMiss, CacheStale} {
		if got := ParseCacheStatus(CacheStatus("edge-1", o)); got != o {
			t.Errorf("ParseCacheStatus(CacheStatus(edge-1, %v)) = %v", o, got)
		}
	}
}

// FuzzParseCacheStatus: any header gives a known outcome, and what a node
// writes is read back as written, whatever the node's name (without the
// list and parameter delimiters, which a name cannot hold).
func FuzzParseCacheStatus(f *testing.F) {
	f.Add("edge-1; hit", "edge-1")
	f.Add("a; fwd=miss; stored, b; hit", "b")
	f.Fuzz(func(t *testing.T, s, node string) {
		if o := ParseCacheStatus(s); o < CacheNone || o > CacheStale {
			t.Fatalf("ParseCacheStatus(%q) = %d", s, o)
		}
		if node == "" || strings.ContainsAny(node, ",;") {
			return
		}
		for _, o := range []CacheOutcome{CacheHit, CacheMiss, CacheStale} {
			if got := ParseCacheStatus(s + ", " + CacheStatus(node, o)); got != o {
				t.Fatalf("ParseCacheStatus(%q + CacheStatus(%q, %v)) = %v", s, node, o, got)
			}
		}
	})
}
