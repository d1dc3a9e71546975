package ogg

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// stream builds pages holding the given packets, at most perPage lacing
// values a page, splitting packets across pages where needed.
func stream(packets [][]byte, perPage int) []byte {
	var out []byte
	var lacing []byte
	var body []byte
	seq := uint32(0)
	cont := false
	var nextCont bool
	flush := func(granule int64, eos bool) {
		p := Page{Serial: 7, Seq: seq, Granule: granule, Lacing: lacing, Body: body}
		if cont {
			p.Flags |= FlagContinued
		}
		if seq == 0 {
			p.Flags |= FlagBOS
		}
		if eos {
			p.Flags |= FlagEOS
		}
		out = Append(out, &p)
		seq++
		lacing, body = nil, nil
		cont = nextCont
	}
	for i, pk := range packets {
		lv := Lacing(len(pk))
		off := 0
		for j, l := range lv {
			lacing = append(lacing, l)
			body = append(body, pk[off:off+int(l)]...)
			off += int(l)
			if len(lacing) == perPage && !(i == len(packets)-1 && j == len(lv)-1) {
				nextCont = j < len(lv)-1
				g := int64(NoGranule)
				if j == len(lv)-1 {
					g = int64(i)
				}
				flush(g, false)
			}
		}
	}
	nextCont = false
	flush(int64(len(packets)-1), true)
	return out
}

func packets() [][]byte {
	var ps [][]byte
	for i, n := range []int{10, 0, 255, 510, 3000, 1, 254, 256, 70000} {
		p := bytes.Repeat([]byte{byte(i + 1)}, n)
		ps = append(ps, p)
	}
	return ps
}

func TestPacketsRoundTrip(t *testing.T) {
	want := packets()
	for _, per := range []int{1, 2, 7, 255} {
		b := stream(want, per)
		pr := NewPacketReader(NewReader(bytes.NewReader(b), 0))
		var got [][]byte
		for {
			p, err := pr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("per page %d: %v", per, err)
			}
			got = append(got, p.Data)
		}
		if len(got) != len(want) {
			t.Fatalf("per page %d: %d packets, want %d", per, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("per page %d: packet %d differs (%d bytes, want %d)", per, i, len(got[i]), len(want[i]))
			}
		}
	}
}

func TestStartMidStream(t *testing.T) {
	// starting on a page that continues a packet drops the fragment
	b := stream(packets(), 2)
	r := NewReader(bytes.NewReader(b), 0)
	var offs []int64
	for {
		p, err := r.Next()
		if err != nil {
			break
		}
		if p.Flags&FlagContinued != 0 {
			offs = append(offs, p.Offset)
		}
	}
	if len(offs) == 0 {
		t.Fatal("no continued page in the test stream")
	}
	for _, off := range offs {
		pr := NewPacketReader(NewReader(bytes.NewReader(b[off:]), off))
		p, err := pr.Next()
		if err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if err == nil && len(p.Data) > 0 && p.Page < off {
			t.Fatalf("packet from before the start page")
		}
	}
}

func TestCRC(t *testing.T) {
	b := stream(packets(), 255)
	b[40] ^= 1
	r := NewReader(bytes.NewReader(b), 0)
	if _, err := r.Next(); !errors.Is(err, ErrCRC) {
		t.Fatalf("Next on a corrupted page err = %v, want ErrCRC", err)
	}
	if _, err := NewReader(bytes.NewReader(b[:20]), 0).Next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("Next on a truncated header err = %v, want ErrUnexpectedEOF", err)
	}
}

func FuzzPackets(f *testing.F) {
	f.Add(stream(packets()[:4], 3))
	f.Add([]byte("OggS"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(bytes.NewReader(b), 0)
		for {
			p, err := r.Next()
			if err != nil {
				break
			}
			// a page that parsed re-encodes to the same bytes
			enc := Append(nil, &p)
			if !bytes.Equal(enc, b[p.Offset:p.Offset+int64(p.Size())]) {
				t.Fatalf("page at %d does not re-encode to its bytes", p.Offset)
			}
		}
		pr := NewPacketReader(NewReader(bytes.NewReader(b), 0))
		for range 10000 {
			if _, err := pr.Next(); err != nil {
				return
			}
		}
	})
}
