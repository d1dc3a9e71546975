package ident

import (
	"bytes"
	"testing"
)

// TestSplit: exactly n fields or false, empty fields kept. Mutations
// caught: accepting more fields than asked (the "a.b.c.d" row), fewer
// (the "a.b" row), dropping the last field.
func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want []string // nil: false
	}{
		{"a.b.c", 3, []string{"a", "b", "c"}},
		{"..", 3, []string{"", "", ""}},
		{"a.b", 3, nil},
		{"a.b.c.d", 3, nil},
		{"", 1, []string{""}},
		{"abc", 1, []string{"abc"}},
		{"a.", 2, []string{"a", ""}},
	} {
		fields := make([][]byte, tc.n)
		ok := Split([]byte(tc.in), '.', fields)
		if ok != (tc.want != nil) {
			t.Errorf("Split(%q, %d) = %v, want %v", tc.in, tc.n, ok, tc.want != nil)
			continue
		}
		for i, w := range tc.want {
			if !bytes.Equal(fields[i], []byte(w)) {
				t.Errorf("Split(%q, %d): field %d = %q, want %q", tc.in, tc.n, i, fields[i], w)
			}
		}
	}
	var fields [4][]byte
	tok := []byte("k1.1700000000.SE.sig")
	if n := testing.AllocsPerRun(100, func() { Split(tok, '.', fields[:]) }); n != 0 {
		t.Errorf("Split allocates %v times", n)
	}
}
