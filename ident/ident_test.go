package ident

import (
	"strconv"
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	cases := []struct {
		id   string
		max  int
		want bool
	}{
		{"t1", 64, true},
		{"A-z_09", 64, true},
		{"", 64, false},
		{strings.Repeat("a", 64), 64, true},
		{strings.Repeat("a", 65), 64, false},
		{"a/b", 64, false},
		{"a.b", 64, false},
		{"é", 64, false},
		{"a b", 64, false},
	}
	for _, c := range cases {
		if got := Valid(c.id, c.max); got != c.want {
			t.Errorf("Valid(%q, %d) = %v, want %v", c.id, c.max, got, c.want)
		}
		if got := Valid([]byte(c.id), c.max); got != c.want {
			t.Errorf("Valid([]byte(%q), %d) = %v, want %v", c.id, c.max, got, c.want)
		}
	}
}

func TestParseUnix(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"1795716000", 1795716000, true},
		{"999999999999", 999999999999, true},
		{"1000000000000", 0, false},
		{"", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{"1a", 0, false},
	}
	for _, c := range cases {
		if got, ok := ParseUnix([]byte(c.in)); got != c.want || ok != c.ok {
			t.Errorf("ParseUnix(%q) = %d, %v, want %d, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// FuzzParseUnix: what is accepted prints back to itself, without leading
// zeros beyond a single "0" being the only ambiguity.
func FuzzParseUnix(f *testing.F) {
	f.Add("1795716000")
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := ParseUnix([]byte(s))
		if ok && (v < 0 || strings.TrimLeft(s, "0") != strings.TrimLeft(strconv.FormatInt(v, 10), "0")) {
			t.Fatalf("ParseUnix(%q) = %d", s, v)
		}
	})
}
