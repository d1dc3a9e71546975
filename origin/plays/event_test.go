package plays

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

const goodEvent = `{"play_id":"p1","user_id":"u1","track_id":"t1","country":"SE","tier_kbps":160,"ms_played":31000,"ts":"2026-11-26T11:00:00Z"}`

// withField returns goodEvent with one field replaced (or removed when
// value is "").
func withField(field, value string) string {
	var m map[string]json.RawMessage
	json.Unmarshal([]byte(goodEvent), &m)
	if value == "" {
		delete(m, field)
	} else {
		m[field] = json.RawMessage(value)
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func TestParseEvent(t *testing.T) {
	maxAge := 31 * 24 * time.Hour
	for _, tt := range []struct {
		raw  string
		want string // reason, or "" for valid
	}{
		{goodEvent, ""},
		{withField("ts", `"2026-11-26T11:00:00.123+02:00"`), ""},
		{withField("ms_played", `0`), ""},
		{withField("extra", `"ignored"`), ""},
		{`not json`, ReasonBadJSON},
		{`[1,2]`, ReasonBadJSON},
		{`"a string"`, ReasonBadJSON},
		{`{"play_id":1}`, ReasonBadJSON},
		{goodEvent + `{}`, ReasonBadJSON},
		{withField("play_id", ""), ReasonMissingPlayID},
		{withField("play_id", `""`), ReasonMissingPlayID},
		{withField("play_id", `"has space"`), ReasonBadPlayID},
		{withField("play_id", `"`+strings.Repeat("x", MaxIDLen+1)+`"`), ReasonBadPlayID},
		{withField("user_id", ""), ReasonMissingUserID},
		{withField("user_id", `"tab\there"`), ReasonBadUserID},
		{withField("track_id", ""), ReasonMissingTrackID},
		{withField("track_id", `"t/1"`), ReasonBadTrackID},
		{withField("country", ""), ReasonMissingCountry},
		{withField("country", `"XX"`), ReasonBadCountry},
		{withField("country", `"se"`), ReasonBadCountry},
		{withField("country", `"UK"`), ReasonBadCountry},
		{withField("tier_kbps", ""), ReasonMissingTier},
		{withField("tier_kbps", `128`), ReasonBadTier},
		{withField("tier_kbps", `160.5`), ReasonBadTier},
		{withField("ms_played", ""), ReasonMissingDuration},
		{withField("ms_played", `-1`), ReasonNegDuration},
		{withField("ms_played", `-1e3`), ReasonNegDuration},
		{withField("ms_played", `1.5`), ReasonBadDuration},
		{withField("ms_played", `99999999999999999999`), ReasonBadDuration},
		{withField("ms_played", `"30000"`), ReasonBadDuration},
		{withField("tier_kbps", `"160"`), ReasonBadTier},
		{withField("ms_played", `null`), ReasonMissingDuration},
		{withField("ms_played", fmt.Sprint(MaxPlayMS+1)), ReasonBadDuration},
		{withField("ts", ""), ReasonMissingTS},
		{withField("ts", `"yesterday"`), ReasonBadTS},
		{withField("ts", `"2026-11-26"`), ReasonBadTS},
		{withField("ts", `"2026-11-28T12:00:00Z"`), ReasonFutureTS},
		{withField("ts", `"2026-10-01T12:00:00Z"`), ReasonTooOld},
		{`{"play_id":"p","user_id":"u","track_id":"t","country":"SE","tier_kbps":24,"ms_played":1,"ts":"2026-11-26T00:00:00Z","pad":"` + strings.Repeat("x", MaxEventBytes) + `"}`, ReasonTooLarge},
	} {
		_, err := ParseEvent([]byte(tt.raw), testNow, maxAge)
		got := ""
		if err != nil {
			got = ReasonOf(err)
		}
		if got != tt.want {
			t.Errorf("ParseEvent(%q) reason = %q, want %q", tt.raw, got, tt.want)
		}
	}
}

func TestParseEventFields(t *testing.T) {
	e, err := ParseEvent([]byte(withField("ts", `"2026-11-26T01:30:00+02:00"`)), testNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := Event{PlayID: "p1", UserID: "u1", TrackID: "t1", Country: "SE", TierKbps: 160, MSPlayed: 31000,
		TS: time.Date(2026, 11, 25, 23, 30, 0, 0, time.UTC)}
	if e != want {
		t.Errorf("ParseEvent = %+v, want %+v", e, want)
	}
	if e.Day() != "2026-11-25" {
		t.Errorf("Day() = %q, want the UTC day 2026-11-25", e.Day())
	}
}

func TestQualifies(t *testing.T) {
	for _, tt := range []struct {
		ms   int64
		want bool
	}{{0, false}, {29_999, false}, {30_000, true}, {200_000, true}} {
		e := Event{MSPlayed: tt.ms}
		if got := e.Qualifies(); got != tt.want {
			t.Errorf("Qualifies(%d ms) = %v, want %v", tt.ms, got, tt.want)
		}
	}
}

func TestDecodeBatch(t *testing.T) {
	body := "[" + goodEvent + "," + withField("ms_played", "-5") + "," + `17` + "," +
		withField("play_id", `"p2"`) + "," + withField("country", `"ZZ"`) + "]"
	acc, rej, err := DecodeBatch([]byte(body), 10, testNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(acc) != 2 || acc[0].Event.PlayID != "p1" || acc[1].Event.PlayID != "p2" {
		t.Errorf("accepted = %+v, want p1 and p2", acc)
	}
	if string(acc[0].Raw) != goodEvent {
		t.Errorf("raw = %s, want the event as sent", acc[0].Raw)
	}
	wantRej := []Rejection{{1, ReasonNegDuration}, {2, ReasonBadJSON}, {4, ReasonBadCountry}}
	if fmt.Sprint(rej) != fmt.Sprint(wantRej) {
		t.Errorf("rejected = %v, want %v", rej, wantRej)
	}
	for _, tt := range []struct {
		body string
		want error
	}{
		{`{"play_id":"p"}`, ErrNotArray},
		{`[` + goodEvent, ErrNotArray},
		{`null`, ErrNotArray},
		{`[1,2,3]`, ErrBatchTooLarge},
	} {
		if _, _, err := DecodeBatch([]byte(tt.body), 2, testNow, 0); err != tt.want {
			t.Errorf("DecodeBatch(%q) = %v, want %v", tt.body, err, tt.want)
		}
	}
}

// FuzzDecodeBatch checks that the decoder never panics, that every
// element is either accepted or rejected exactly once, and that what it
// accepts is valid and re-parses to the same event.
func FuzzDecodeBatch(f *testing.F) {
	f.Add([]byte("[" + goodEvent + "]"))
	f.Add([]byte(`[{"play_id":"p","ms_played":-1}, 3, "x", null]`))
	f.Add([]byte(`[` + withField("ts", `"2026-11-26T11:00:00.5-07:00"`) + `]`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		acc, rej, err := DecodeBatch(body, 100, testNow, 31*24*time.Hour)
		if err != nil {
			if len(acc) != 0 || len(rej) != 0 {
				t.Fatalf("error %v with results", err)
			}
			return
		}
		var elems []json.RawMessage
		if json.Unmarshal(body, &elems) != nil || len(elems) != len(acc)+len(rej) {
			t.Fatalf("%d elements, %d accepted + %d rejected", len(elems), len(acc), len(rej))
		}
		for _, a := range acc {
			if a.Event.PlayID == "" || !a.Event.TS.Equal(a.Event.TS.UTC()) || a.Event.MSPlayed < 0 {
				t.Fatalf("accepted invalid event %+v", a.Event)
			}
			again, err := ParseEvent(a.Raw, testNow, 31*24*time.Hour)
			if err != nil || again != a.Event {
				t.Fatalf("re-parse of %s = %+v, %v; want %+v", a.Raw, again, err, a.Event)
			}
		}
		for _, r := range rej {
			if r.Reason == "" || r.Reason == "internal" {
				t.Fatalf("rejection without a reason: %+v", r)
			}
		}
	})
}

// FuzzParseWireFast checks the reflection-free decoder against
// encoding/json: whatever it accepts, encoding/json decodes to the same
// fields.
func FuzzParseWireFast(f *testing.F) {
	f.Add([]byte(goodEvent))
	f.Add([]byte(` { "ts" : null , "ms_played" : -0.5e+3, "play_id":"a"} `))
	f.Add([]byte(`{"play_id":"x","play_id":"y"}`))
	f.Add([]byte(`{"PLAY_ID":"x"}`))
	f.Add([]byte(`{"tier_kbps":"160","ms_played":01}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := parseWireFast(b)
		if !ok {
			return
		}
		var slow wireEvent
		if err := json.Unmarshal(b, &slow); err != nil {
			t.Fatalf("fast accepted %q, encoding/json: %v", b, err)
		}
		if a, b2 := wireString(fast), wireString(slow); a != b2 {
			t.Fatalf("decode %q: fast %s, encoding/json %s", b, a, b2)
		}
	})
}

func wireString(w wireEvent) string {
	s := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return fmt.Sprintf("%q", *p)
	}
	r := func(p *json.RawMessage) string {
		if p == nil {
			return "<nil>"
		}
		return fmt.Sprintf("%q", string(*p))
	}
	return strings.Join([]string{s(w.PlayID), s(w.UserID), s(w.TrackID), s(w.Country), r(w.TierKbps), r(w.MSPlayed), s(w.TS)}, " ")
}

func BenchmarkParseEvent(b *testing.B) {
	raw := []byte(goodEvent)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseEvent(raw, testNow, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeWire compares the fast decoder with encoding/json on a
// typical event.
func BenchmarkDecodeWire(b *testing.B) {
	raw := []byte(goodEvent)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := parseWireFast(raw); !ok {
				b.Fatal("not fast")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var w wireEvent
			if err := json.Unmarshal(raw, &w); err != nil {
				b.Fatal(err)
			}
		}
	})
}
