package plays

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/musiccdn/cdn/playticket"
)

func TestParseRoyalty(t *testing.T) {
	e, _ := ParseEvent([]byte(goodEvent), testNow, 0, nil)
	r := royaltyOf(&e)
	b := r.appendTo(nil)
	got, err := parseRoyalty(b)
	if err != nil || got != r {
		t.Errorf("parseRoyalty(%s) = %+v, %v, want %+v", b, got, err, r)
	}
	if got.day() != "2026-11-26" {
		t.Errorf("day() = %q, want 2026-11-26", got.day())
	}
	// Version 1 (JSON) records still on the topic after an upgrade.
	v1 := r
	v1.V = 1
	j, _ := json.Marshal(&v1)
	if got, err := parseRoyalty(j); err != nil || got != v1 {
		t.Errorf("parseRoyalty(%s) = %+v, %v, want %+v", j, got, err, v1)
	}
	for _, bad := range []string{`{}`, `{"v":2}`, `[`, `{"v":1,"play_id":"p","user_id":"u","track_id":"t","country":"SE","ts_ms":0}`,
		"", "r2", "r2\tp\tu\tt\tSE", "r2\tp\tu\tt\tSE\t0", "r2\tp\tu\tt\tSE\tx", "r2\tp\tu\tt\tXX\t1", "r2\tp q\tu\tt\tSE\t1",
		"r2\tp\tu\tt/../x\tSE\t1", "r2\tp\tu\tt\tSE\t1\t", "r3\tp\tu\tt\tSE\t1"} {
		if _, err := parseRoyalty([]byte(bad)); err == nil {
			t.Errorf("parseRoyalty(%q) = nil error, want one", bad)
		}
	}
}

// FuzzParseRoyalty checks that the royalty decoder never panics and that
// what it accepts encodes back to a record that parses the same.
func FuzzParseRoyalty(f *testing.F) {
	f.Add([]byte("r2\tp1\tu1\tt1\tSE\t1764150000000"))
	f.Add([]byte(`{"v":1,"play_id":"p","user_id":"u","track_id":"t","country":"SE","ts_ms":5}`))
	f.Add([]byte("r2\t\t\t\t\t"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := parseRoyalty(raw)
		if err != nil {
			return
		}
		r2 := r
		r2.V = 2
		back, err := parseRoyalty(r2.appendTo(nil))
		if err != nil || back != r2 {
			t.Fatalf("re-parse of %+v = %+v, %v", r2, back, err)
		}
	})
}

func TestPlayIDTime(t *testing.T) {
	at := time.Date(2026, 11, 27, 13, 45, 6, 789e6, time.UTC)
	id := string(appendPlayID(nil, at, 0xBEEF, 0x0123456789ABCDEF))
	got, ok := playIDTime(id)
	if len(id) != 26 || !ok || !got.Equal(at) {
		t.Fatalf("playIDTime(%s) = %v, %v; want %v", id, got, ok, at)
	}
	// The ids the origin really issues (with every play ticket) are
	// playticket.NewID's: dated the same way, keyed by their time first.
	issued := playticket.NewID(at)
	if got, ok := playIDTime(issued); !ok || !got.Equal(at) {
		t.Fatalf("playIDTime(playticket.NewID) = %v, %v; want %v", got, ok, at)
	}
	if k := playIDKey(issued); fmt.Sprintf("%x", k[:6]) != fmt.Sprintf("%012x", at.UnixMilli()) {
		t.Errorf("playIDKey(%s) = %x, want the time %012x first", issued, k, at.UnixMilli())
	}
	if a, b := string(appendPlayID(nil, at, 0, 0)), string(appendPlayID(nil, at.Add(time.Millisecond), 0, 0)); a >= b {
		t.Errorf("ids do not sort by time: %s >= %s", a, b)
	}
	// The binary key: 16 bytes, the id's 128 bits, in the same order.
	k := playIDKey(id)
	if want := fmt.Sprintf("%012x%04x%016x", at.UnixMilli(), 0xBEEF, uint64(0x0123456789ABCDEF)); fmt.Sprintf("%x", k) != want {
		t.Errorf("playIDKey(%s) = %x", id, k)
	}
	if a, b := playIDKey(string(appendPlayID(nil, at, 0, 1<<63))), playIDKey(string(appendPlayID(nil, at, 1, 0))); string(a) >= string(b) {
		t.Errorf("keys do not sort as ids: %x >= %x", a, b)
	}
	for _, bad := range []string{"p0000001", id[:25], "8" + id[1:], "0000000000" + id[10:], strings.ToLower(id)[:10] + id[10:],
		string(appendPlayID(nil, time.Now().Add(48*time.Hour), 1, 1))} {
		if _, ok := playIDTime(bad); ok {
			t.Errorf("playIDTime(%q) = ok, want not a dated id", bad)
		}
	}
}
