package catalog

import (
	"strings"
	"testing"
)

// TestParseMediaPath is the table of object names (ParseName) as the
// origin's fill paths carry them (moved here from package origin when the
// vocabulary became one).
func TestParseMediaPath(t *testing.T) {
	tests := []struct {
		path string
		id   string
		kbps int
		kind Kind
		ok   bool
	}{
		{"/media/t1/24.ogg", "t1", 24, Audio, true},
		{"/media/t1/320.seek", "t1", 320, SeekTable, true},
		{"/media/A_b-9/96.ogg", "A_b-9", 96, Audio, true},
		{"/media/t1/128.ogg", "", 0, 0, false}, // not a tier
		{"/media/" + strings.Repeat("x", 64) + "/24.ogg", strings.Repeat("x", 64), 24, Audio, true},
		{"/media/" + strings.Repeat("x", 65) + "/24.ogg", "", 0, 0, false},
		{"/media/t1/024.ogg", "", 0, 0, false},
		{"/media/t1/0.ogg", "", 0, 0, false},
		{"/media/t1/+24.ogg", "", 0, 0, false},
		{"/media/t1/-24.ogg", "", 0, 0, false},
		{"/media/t1/12345.ogg", "", 0, 0, false},
		{"/media/t1/24.mp3", "", 0, 0, false},
		{"/media/t1/24.ogg.ogg", "", 0, 0, false},
		{"/media/t1/24.ogg/x", "", 0, 0, false},
		{"/media/t1/24.", "", 0, 0, false},
		{"/media/t1/00024.ogg", "", 0, 0, false},
		{"/media/t1/24.OGG", "", 0, 0, false},
		{"/media/t1/24", "", 0, 0, false},
		{"/media/t1/.ogg", "", 0, 0, false},
		{"/media/t1/", "", 0, 0, false},
		{"/media/t1", "", 0, 0, false},
		{"/media/", "", 0, 0, false},
		{"/media//24.ogg", "", 0, 0, false},
		{"/media/../24.ogg", "", 0, 0, false},
		{"/media/t1/../24.ogg", "", 0, 0, false},
		{"/media/t.1/24.ogg", "", 0, 0, false},
		{"/media/t1/a/24.ogg", "", 0, 0, false},
		{"/media/t 1/24.ogg", "", 0, 0, false},
		{"/media/t%31/24.ogg", "", 0, 0, false},
		{"/a/t1/24.ogg", "", 0, 0, false},
		{"media/t1/24.ogg", "", 0, 0, false},
		{"", "", 0, 0, false},
	}
	for _, tt := range tests {
		id, kbps, kind, ok := ParseMediaPath(tt.path)
		if id != tt.id || kbps != tt.kbps || kind != tt.kind || ok != tt.ok {
			t.Errorf("ParseMediaPath(%q) = %q, %d, %v, %v; want %q, %d, %v, %v",
				tt.path, id, kbps, kind, ok, tt.id, tt.kbps, tt.kind, tt.ok)
		}
	}
}

func FuzzParseMediaPath(f *testing.F) {
	for _, s := range []string{"/media/t1/24.ogg", "/media/t1/320.seek", "/media/../24.ogg", "/media/t1/024.ogg", "/media/a/b/c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		id, kbps, kind, ok := ParseMediaPath(p)
		if !ok {
			return
		}
		if !ValidID(id) || !ValidTier(kbps) {
			t.Fatalf("ParseMediaPath(%q) accepted id %q kbps %d", p, id, kbps)
		}
		// Accepted paths are canonical: they print back to themselves.
		if back := MediaPath(id, kbps, kind); back != p {
			t.Fatalf("ParseMediaPath(%q) = %q, %d, %v; prints back as %q", p, id, kbps, kind, back)
		}
	})
}
