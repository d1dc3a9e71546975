package httprange

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	const size = 10000
	r := func(a, b int64) Range { return Range{a, b} }
	cases := []struct {
		header string
		want   []Range
		err    error
	}{
		{"bytes=0-0", []Range{r(0, 0)}, nil},
		{"bytes=0-499", []Range{r(0, 499)}, nil},
		{"bytes=500-999", []Range{r(500, 999)}, nil},
		{"bytes=9500-", []Range{r(9500, 9999)}, nil},
		{"bytes=-500", []Range{r(9500, 9999)}, nil},
		{"bytes=-20000", []Range{r(0, 9999)}, nil},
		{"bytes=0-20000", []Range{r(0, 9999)}, nil},
		{"Bytes=1-2", []Range{r(1, 2)}, nil},
		{"bytes = 1-2", []Range{r(1, 2)}, nil},
		{"bytes=0-1, 3-4", []Range{r(0, 1), r(3, 4)}, nil},
		{"bytes=3-4,0-1", []Range{r(0, 1), r(3, 4)}, nil},
		{"bytes=0-5,3-9", []Range{r(0, 9)}, nil},
		{"bytes=0-4,5-9", []Range{r(0, 9)}, nil},
		{"bytes=0-1,,3-4", []Range{r(0, 1), r(3, 4)}, nil},
		{"bytes=10000-", nil, ErrUnsatisfiable},
		{"bytes=10000-10001", nil, ErrUnsatisfiable},
		{"bytes=-0", nil, ErrUnsatisfiable},
		{"bytes=10000-,5-6", []Range{r(5, 6)}, nil},
		{"bytes=5-4", nil, ErrInvalid},
		{"bytes=", nil, ErrInvalid},
		{"bytes=,", nil, ErrInvalid},
		{"bytes=-", nil, ErrInvalid},
		{"bytes=a-1", nil, ErrInvalid},
		{"bytes=1-a", nil, ErrInvalid},
		{"bytes=1", nil, ErrInvalid},
		{"bytes=+1-2", nil, ErrInvalid},
		{"bytes=1 -2", nil, ErrInvalid},
		{"items=1-2", nil, ErrInvalid},
		{"bytes 1-2", nil, ErrInvalid},
		{"", nil, ErrInvalid},
		// Positions past int64 are valid syntax (RFC 9110 puts no bound
		// on them) and lie past the end of any representation.
		{"bytes=99999999999999999999-", nil, ErrUnsatisfiable},
		{"bytes=0-99999999999999999999", []Range{r(0, 9999)}, nil},
		{"bytes=-99999999999999999999", []Range{r(0, 9999)}, nil},
		{"bytes=9223372036854775807-", nil, ErrUnsatisfiable},
		{"bytes=99999999999999999998-99999999999999999999", nil, ErrUnsatisfiable},
		{"bytes=99999999999999999999-99999999999999999998", nil, ErrInvalid},
		{"bytes=00000000000000000000000005-0000000000000000000000006", []Range{r(5, 6)}, nil},
		{"bytes=0-1,3-4,6-7,9-10,12-13", nil, ErrTooMany},
	}
	for _, tc := range cases {
		got, err := Parse(nil, []byte(tc.header), size, 4)
		if !errors.Is(err, tc.err) || fmt.Sprint(got) != fmt.Sprint(tc.want) && tc.err == nil {
			t.Errorf("Parse(%q) = %v, %v, want %v, %v", tc.header, got, err, tc.want, tc.err)
		}
	}
}

func TestParseEmptyRepresentation(t *testing.T) {
	for _, h := range []string{"bytes=0-", "bytes=-1", "bytes=0-0"} {
		if _, err := Parse(nil, []byte(h), 0, 4); !errors.Is(err, ErrUnsatisfiable) {
			t.Errorf("Parse(%q) of 0 bytes: %v, want ErrUnsatisfiable", h, err)
		}
	}
}

func TestParseAllocs(t *testing.T) {
	var buf [4]Range
	h := []byte("bytes=100-200,300-")
	n := testing.AllocsPerRun(100, func() {
		Parse(buf[:0], h, 1000, 4)
	})
	if n != 0 {
		t.Errorf("Parse allocates %v times", n)
	}
}

func TestEvaluate(t *testing.T) {
	lm := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v := Validators{ETag: []byte(`"abc"`), LastModified: lm}
	d := func(t time.Time) []byte { return []byte(t.Format(http.TimeFormat)) }
	b := func(s string) []byte { return []byte(s) }
	cases := []struct {
		name string
		p    Preconditions
		want Outcome
	}{
		{"none", Preconditions{}, Proceed},
		{"If-Match same", Preconditions{IfMatch: b(`"abc"`)}, Proceed},
		{"If-Match in list", Preconditions{IfMatch: b(`"x", "abc"`)}, Proceed},
		{"If-Match other", Preconditions{IfMatch: b(`"x"`)}, PreconditionFailed},
		{"If-Match weak", Preconditions{IfMatch: b(`W/"abc"`)}, PreconditionFailed},
		{"If-Match star", Preconditions{IfMatch: b(`*`)}, Proceed},
		{"If-Unmodified-Since earlier", Preconditions{IfUnmodifiedSince: d(lm.Add(-time.Second))}, PreconditionFailed},
		{"If-Unmodified-Since same", Preconditions{IfUnmodifiedSince: d(lm)}, Proceed},
		{"If-Unmodified-Since ignored under If-Match", Preconditions{IfMatch: b(`"abc"`), IfUnmodifiedSince: d(lm.Add(-time.Hour))}, Proceed},
		{"If-None-Match same", Preconditions{IfNoneMatch: b(`"abc"`)}, NotModified},
		{"If-None-Match weak same", Preconditions{IfNoneMatch: b(`W/"abc"`)}, NotModified},
		{"If-None-Match star", Preconditions{IfNoneMatch: b(`*`)}, NotModified},
		{"If-None-Match other", Preconditions{IfNoneMatch: b(`"x"`)}, Proceed},
		{"If-None-Match beats If-Modified-Since", Preconditions{IfNoneMatch: b(`"x"`), IfModifiedSince: d(lm)}, Proceed},
		{"If-Modified-Since same", Preconditions{IfModifiedSince: d(lm)}, NotModified},
		{"If-Modified-Since earlier", Preconditions{IfModifiedSince: d(lm.Add(-time.Second))}, Proceed},
		{"If-Modified-Since garbage", Preconditions{IfModifiedSince: b("garbage")}, Proceed},
		{"If-Match fails before If-None-Match", Preconditions{IfMatch: b(`"x"`), IfNoneMatch: b(`"abc"`)}, PreconditionFailed},
	}
	for _, tc := range cases {
		if got := Evaluate(tc.p, v); got != tc.want {
			t.Errorf("Evaluate(%s) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestRangeApplies(t *testing.T) {
	lm := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v := Validators{ETag: []byte(`"abc"`), LastModified: lm}
	cases := []struct {
		ifRange string
		absent  bool
		want    bool
	}{
		{"", true, true},
		{`"abc"`, false, true},
		{`"x"`, false, false},
		{`W/"abc"`, false, false},
		{lm.Format(http.TimeFormat), false, true},
		{lm.Add(-time.Second).Format(http.TimeFormat), false, false},
		{"garbage", false, false},
	}
	for _, tc := range cases {
		var h []byte
		if !tc.absent {
			h = []byte(tc.ifRange)
		}
		if got := RangeApplies(h, v); got != tc.want {
			t.Errorf("RangeApplies(%q) = %v, want %v", tc.ifRange, got, tc.want)
		}
	}
}

// FuzzParse checks Parse's invariants on any header and size: no panic;
// on success, sorted, disjoint, non-adjacent ranges inside the
// representation, at most max of them.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"bytes=0-1", "bytes=-5", "bytes=5-", "bytes=0-1,3-4", "bytes=,,", "BYTES = 1-2 , 4-", "bytes=99999999999999999999-"} {
		f.Add(s, int64(1000))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			size = -size
		}
		rs, err := Parse(nil, []byte(h), size, 8)
		if err != nil {
			if len(rs) != 0 {
				t.Fatalf("Parse(%q, %d) = %v with error %v", h, size, rs, err)
			}
			return
		}
		if len(rs) == 0 || len(rs) > 8 {
			t.Fatalf("Parse(%q, %d) = %d ranges", h, size, len(rs))
		}
		for i, r := range rs {
			if r.Start < 0 || r.End < r.Start || r.End >= size {
				t.Fatalf("Parse(%q, %d): range %v out of bounds", h, size, r)
			}
			if i > 0 && r.Start <= rs[i-1].End+1 {
				t.Fatalf("Parse(%q, %d): ranges %v not coalesced", h, size, rs)
			}
		}
	})
}

func TestFirstPos(t *testing.T) {
	cases := []struct {
		h    string
		want int64
	}{
		{"", 0},
		{"bytes=100-199", 100},
		{"bytes = , 5000-,0-9", 5000},
		{"BYTES=7-", 7},
		{"bytes=-500", 0},
		{"bytes=a-b", 0},
		{"items=5-6", 0},
		{"bytes=,,", 0},
		{"bytes=99999999999999999999-", math.MaxInt64},
	}
	for _, c := range cases {
		if got := FirstPos([]byte(c.h)); got != c.want {
			t.Errorf("FirstPos(%q) = %d, want %d", c.h, got, c.want)
		}
	}
}

// FuzzFirstPos: any header, no panic, never a negative offset.
func FuzzFirstPos(f *testing.F) {
	f.Add("bytes=100-199,0-1")
	f.Fuzz(func(t *testing.T, h string) {
		if p := FirstPos([]byte(h)); p < 0 {
			t.Fatalf("FirstPos(%q) = %d", h, p)
		}
	})
}
