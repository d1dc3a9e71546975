package ident

import (
	"strconv"
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	for id, want := range map[string]bool{
		"t1": true, "A-z_09": true, strings.Repeat("a", 64): true,
		"": false, strings.Repeat("a", 65): false, "a/b": false, "a.b": false, "é": false, "a b": false,
	} {
		if Valid(id, 64) != want || Valid([]byte(id), 64) != want {
			t.Errorf("Valid(%q, 64) = %v, want %v", id, !want, want)
		}
	}
}

func TestParseUnix(t *testing.T) {
	for _, in := range []string{"0", "1795716000", "999999999999"} {
		if v, ok := ParseUnix([]byte(in)); !ok || strconv.FormatInt(v, 10) != in {
			t.Errorf("ParseUnix(%q) = %d, %v", in, v, ok)
		}
	}
	for _, in := range []string{"1000000000000", "", "-1", "+1", "1a"} {
		if v, ok := ParseUnix([]byte(in)); ok {
			t.Errorf("ParseUnix(%q) = %d, accepted", in, v)
		}
	}
}

// FuzzParseUnix: what is accepted is the number its digits say.
func FuzzParseUnix(f *testing.F) {
	f.Add("1795716000")
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := ParseUnix([]byte(s))
		if ok && (v < 0 || strings.TrimLeft(s, "0") != strings.TrimLeft(strconv.FormatInt(v, 10), "0")) {
			t.Fatalf("ParseUnix(%q) = %d", s, v)
		}
	})
}
