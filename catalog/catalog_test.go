package catalog

import (
	"strings"
	"testing"
)

func TestPaths(t *testing.T) {
	if got := MediaPath("t1", 24, SeekTable); got != "/media/t1/24.seek" {
		t.Errorf("MediaPath = %q", got)
	}
	if got := EdgePath("t1", 320, Audio); got != "/a/t1/320.ogg" {
		t.Errorf("EdgePath = %q", got)
	}
	if id, kbps, kind, ok := ParseMediaPath("/media/t1/24.seek"); !ok || id != "t1" || kbps != 24 || kind != SeekTable {
		t.Errorf("ParseMediaPath = %q %d %v %v", id, kbps, kind, ok)
	}
	if _, _, _, ok := ParseMediaPath("/a/t1/24.seek"); ok {
		t.Error("ParseMediaPath accepted an edge path")
	}
	if id, _, _, ok := ParseEdgePath("/a/t1/96.ogg"); !ok || id != "t1" {
		t.Errorf("ParseEdgePath = %q %v", id, ok)
	}
	if KeyOfName("t1/24.ogg") != Key("t1") || KeyBytes([]byte("t1")) != Key("t1") {
		t.Error("a track's files have different routing keys")
	}
}

func TestNextTracks(t *testing.T) {
	collect := func(hint, current string, max int) []string {
		var out []string
		NextTracks(hint, current, max, func(id string) bool { out = append(out, id); return true })
		return out
	}
	if got := collect("b, c,b,a,bad id,d", "a", 10); strings.Join(got, ",") != "b,c,d" {
		t.Errorf("got %v, want b c d", got)
	}
	// Invalid, repeated and current entries count as examined: at most
	// max entries are looked at whatever the header holds.
	if got := collect("!,!,!,x", "a", 3); len(got) != 0 {
		t.Errorf("got %v past the examined bound", got)
	}
	if got := collect(strings.Repeat(",", MaxHintBytes)+"x", "", 1<<20); len(got) != 0 {
		t.Errorf("got %v from past MaxHintBytes", got)
	}
	if got := collect(FormatNextTracks([]string{"x", "y"}), "", 10); strings.Join(got, ",") != "x,y" {
		t.Errorf("round trip: %v", got)
	}
}

func TestQualifyingMS(t *testing.T) {
	if QualifyingMS != 30_000 {
		t.Errorf("QualifyingMS = %d", QualifyingMS)
	}
}

// FuzzParseName checks that an accepted name is exactly the name Name
// builds from its parts, and that parsing never allocates on the []byte
// form used by the edge.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{"t1/24.ogg", "t1/320.seek", "x/024.ogg", "a/99999.ogg", "", "/", "a/.", "a/1."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		track, kbps, kind, ok := ParseNameString(s)
		if !ok {
			return
		}
		if Name(track, kbps, kind) != s {
			t.Fatalf("ParseName(%q) = %q %d %v, which names %q", s, track, kbps, kind, Name(track, kbps, kind))
		}
	})
}

func TestParseNameAllocs(t *testing.T) {
	b := []byte("track-1/160.ogg")
	if n := testing.AllocsPerRun(100, func() { ParseName(b) }); n != 0 {
		t.Errorf("ParseName allocates %v times", n)
	}
}

func BenchmarkParseName(b *testing.B) {
	name := []byte("3a7Xk9_q-track/160.ogg")
	for b.Loop() {
		ParseName(name)
	}
}
