package seektable

import (
	"errors"
	"reflect"
	"testing"
)

func sample() *Table {
	return &Table{
		SampleRate: 44100, Channels: 2, Samples: 441000, Origin: 0, AudioStart: 4000, FileSize: 100000,
		Entries: []Entry{{0, 0, 4000}, {11000, 11000, 9000}, {22050, 22050, 15000}, {44100, 44100, 30000}},
	}
}

func TestRoundTrip(t *testing.T) {
	tb := sample()
	b, err := tb.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, tb) {
		t.Fatalf("Decode(Marshal(t)) = %+v, want %+v", got, tb)
	}
	for i := range b {
		bad := append([]byte(nil), b...)
		bad[i] ^= 0x40
		if _, err := Decode(bad); !errors.Is(err, ErrFormat) {
			t.Fatalf("Decode(flipped byte %d) err = %v, want ErrFormat", i, err)
		}
	}
	if _, err := Decode(b[:len(b)-1]); err == nil {
		t.Fatal("Decode(truncated) succeeded")
	}
}

func TestLookup(t *testing.T) {
	tb := sample()
	for _, c := range []struct {
		at   int64
		want int64
	}{{-5, 4000}, {0, 4000}, {10999, 4000}, {11000, 9000}, {30000, 15000}, {44100, 30000}, {1 << 40, 30000}} {
		e, ok := tb.Lookup(c.at)
		if !ok || e.Offset != c.want {
			t.Errorf("Lookup(%d) = %+v, %v, want offset %d", c.at, e, ok, c.want)
		}
	}
	if _, ok := (&Table{}).Lookup(0); ok {
		t.Error("Lookup on an empty table = ok, want false")
	}
}

func TestValidateRejects(t *testing.T) {
	for name, mod := range map[string]func(*Table){
		"unordered offset": func(t *Table) { t.Entries[2].Offset = 8000 },
		"unordered time":   func(t *Table) { t.Entries[2].Time = 10 },
		"offset past file": func(t *Table) { t.Entries[3].Offset = 100000 },
		"before audio":     func(t *Table) { t.Entries[0].Offset = 10 },
		"no rate":          func(t *Table) { t.SampleRate = 0 },
	} {
		tb := sample()
		mod(tb)
		if _, err := tb.MarshalBinary(); !errors.Is(err, ErrFormat) {
			t.Errorf("Marshal(%s) err = %v, want ErrFormat", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	b, _ := sample().MarshalBinary()
	f.Add(b)
	f.Add([]byte("MSK1"))
	f.Fuzz(func(t *testing.T, in []byte) {
		tb, err := Decode(in)
		if err != nil {
			return
		}
		out, err := tb.MarshalBinary()
		if err != nil {
			t.Fatalf("Marshal of a decoded table: %v", err)
		}
		again, err := Decode(out)
		if err != nil || !reflect.DeepEqual(again, tb) {
			t.Fatalf("round trip changed the table: %v", err)
		}
		for _, at := range []int64{-1, 0, tb.Samples / 2, tb.Samples} {
			if e, ok := tb.Lookup(at); ok && e.Time > at && e != tb.Entries[0] {
				t.Fatalf("Lookup(%d) = %+v, after the target", at, e)
			}
		}
	})
}
