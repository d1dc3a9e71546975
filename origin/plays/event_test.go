package plays

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/playticket"
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
		{withField("play_id", `"`+strings.Repeat("x", catalog.MaxIDLen+1)+`"`), ReasonBadPlayID},
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
		{withField("ts", `"2026-11-26T12:03:00Z"`), ReasonFutureTS}, // past ClockSkew
		{withField("ts", `"2026-11-26T12:01:00Z"`), ""},
		{withField("ts", `"2026-10-01T12:00:00Z"`), ReasonTooOld},
		{`{"play_id":"p","user_id":"u","track_id":"t","country":"SE","tier_kbps":24,"ms_played":1,"ts":"2026-11-26T00:00:00Z","pad":"` + strings.Repeat("x", MaxEventBytes) + `"}`, ReasonTooLarge},
	} {
		_, err := ParseEvent([]byte(tt.raw), testNow, maxAge, nil)
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
	e, err := ParseEvent([]byte(withField("ts", `"2026-11-26T01:30:00+02:00"`)), testNow, 0, nil)
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
	acc, rej, err := DecodeBatch(strings.NewReader(body), 10, testNow, 0, nil, "")
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
		if _, _, err := DecodeBatch(strings.NewReader(tt.body), 2, testNow, 0, nil, ""); err != tt.want {
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
		acc, rej, err := DecodeBatch(bytes.NewReader(body), 100, testNow, 31*24*time.Hour, nil, "")
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
			again, err := ParseEvent(a.Raw, testNow, 31*24*time.Hour, nil)
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
	return strings.Join([]string{s(w.PlayID), s(w.UserID), s(w.TrackID), s(w.Country), r(w.TierKbps), r(w.MSPlayed), s(w.TS), s(w.Ticket)}, " ")
}

func BenchmarkParseEvent(b *testing.B) {
	raw := []byte(goodEvent)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseEvent(raw, testNow, 0, nil); err != nil {
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

// TestParseEventTicket is every ticket rejection of one event. Mutations
// caught: each case of checkTicket removed in turn (its row passes), the
// elapsed bound without ElapsedSlackMS (the "elapsed+4s" row fails), the
// bound on the duration without DurationSlackMS (the "duration+1s" row
// fails), the ts check without ClockSkew (the "ts 1 min before" row
// fails), ParseEvent skipping the ticket when tickets is set (every row).
func TestParseEventTicket(t *testing.T) {
	kr := testKeyring(t)
	issued := testNow.Add(-10 * time.Minute)
	c := playticket.Claims{PlayID: "P1", UserID: "u1", TrackID: "t1", Country: "SE", IssuedMS: issued.UnixMilli(), DurationMS: 200_000}
	tk := func(mod func(*playticket.Claims)) string {
		c2 := c
		if mod != nil {
			mod(&c2)
		}
		s, err := kr.Mint(c2)
		if err != nil {
			t.Fatal(err)
		}
		return `"` + s + `"`
	}
	other, _ := playticket.NewKeyring(playticket.Key{ID: "k1", Secret: bytes.Repeat([]byte("o"), 32)})
	forged, _ := other.Mint(c)
	ev := func(ms int64, ts time.Time, ticket string) string {
		e := fmt.Sprintf(`{"play_id":"P1","user_id":"u1","track_id":"t1","country":"SE","tier_kbps":160,"ms_played":%d,"ts":%q`, ms, ts.Format(time.RFC3339Nano))
		if ticket != "" {
			e += `,"ticket":` + ticket
		}
		return e + "}"
	}
	ts := testNow.Add(-time.Minute)
	for _, tt := range []struct {
		name, raw, want string
	}{
		{"good", ev(180_000, ts, tk(nil)), ""},
		{"missing", ev(180_000, ts, ""), ReasonTicketMissing},
		{"empty", ev(180_000, ts, `""`), ReasonTicketMissing},
		{"not a string", ev(180_000, ts, `17`), ReasonBadJSON},
		{"malformed", ev(180_000, ts, `"p1.k1.garbage"`), ReasonTicketMalformed},
		{"forged (other secret)", ev(180_000, ts, `"`+forged+`"`), ReasonTicketForged},
		{"other play", ev(180_000, ts, tk(func(c *playticket.Claims) { c.PlayID = "P2" })), ReasonTicketPlay},
		{"other user", ev(180_000, ts, tk(func(c *playticket.Claims) { c.UserID = "u2" })), ReasonTicketUser},
		{"other track", ev(180_000, ts, tk(func(c *playticket.Claims) { c.TrackID = "t2" })), ReasonTicketTrack},
		{"other country", ev(180_000, ts, tk(func(c *playticket.Claims) { c.Country = "US" })), ReasonTicketCountry},
		{"longer than elapsed", ev(10*60_000+6000, ts, tk(func(c *playticket.Claims) { c.DurationMS = 3_600_000 })), ReasonPlayedTooLong},
		{"elapsed+4s", ev(10*60_000+4000, ts, tk(func(c *playticket.Claims) { c.DurationMS = 3_600_000 })), ""},
		{"longer than the track", ev(203_000, ts, tk(nil)), ReasonPastDuration},
		{"duration+1s", ev(201_000, ts, tk(nil)), ""},
		{"ts in the future", ev(180_000, testNow.Add(3*time.Minute), tk(nil)), ReasonFutureTS},
		{"ts before the ticket", ev(0, issued.Add(-3*time.Minute), tk(nil)), ReasonBeforeTicket},
		{"ts 1 min before the ticket (skew)", ev(0, issued.Add(-time.Minute), tk(nil)), ""},
	} {
		_, err := ParseEvent([]byte(tt.raw), testNow, 31*24*time.Hour, kr)
		got := ""
		if err != nil {
			got = ReasonOf(err)
		}
		if got != tt.want {
			t.Errorf("%s: ParseEvent(%s) reason = %q, want %q", tt.name, tt.raw, got, tt.want)
		}
	}
	// The session's user: DecodeBatch refuses an event of another user
	// even with a valid ticket for that user.
	_, rej, err := DecodeBatch(strings.NewReader("["+ev(180_000, ts, tk(nil))+"]"), 10, testNow, 0, kr, "u2")
	if err != nil || fmt.Sprint(rej) != fmt.Sprint([]Rejection{{0, ReasonSessionUser}}) {
		t.Errorf("event of u1 in u2's session: %v, %v", rej, err)
	}
}

// TestDecodeBatchStreams checks that an over-long batch is refused once
// element maxEvents+1 starts, without reading the rest of the body.
func TestDecodeBatchStreams(t *testing.T) {
	r := &countingReader{r: strings.NewReader("[" + strings.Repeat(goodEvent+",", 10_000) + goodEvent + "]")}
	_, _, err := DecodeBatch(r, 5, testNow, 0, nil, "")
	if err != ErrBatchTooLarge {
		t.Fatalf("err = %v, want ErrBatchTooLarge", err)
	}
	if r.n > 64<<10 {
		t.Fatalf("read %d bytes of an over-long batch before refusing it", r.n)
	}
}

type countingReader struct {
	r interface{ Read([]byte) (int, error) }
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// BenchmarkParseEventTicket is ParseEvent as the stage runs it: JSON rules
// plus the ticket check.
func BenchmarkParseEventTicket(b *testing.B) {
	kr := testKeyring(b)
	tk, _ := kr.Mint(playticket.Claims{PlayID: "p1", UserID: "u1", TrackID: "t1", Country: "SE", IssuedMS: testNow.Add(-time.Hour).UnixMilli(), DurationMS: 200_000})
	raw := []byte(withField("ticket", `"`+tk+`"`))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseEvent(raw, testNow, 0, kr); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzParseEventTicket fuzzes events carrying tickets: ParseEvent never
// panics, and an event it accepts has a ticket that verifies and names the
// event's own play, user, track and country.
func FuzzParseEventTicket(f *testing.F) {
	kr := testKeyring(f)
	tk, _ := kr.Mint(playticket.Claims{PlayID: "p1", UserID: "u1", TrackID: "t1", Country: "SE", IssuedMS: testNow.Add(-time.Hour).UnixMilli(), DurationMS: 200_000})
	f.Add([]byte(withField("ticket", `"`+tk+`"`)))
	f.Add([]byte(withField("ticket", `"`+tk[:len(tk)-1]+`A"`)))
	f.Add([]byte(withField("ticket", `"p1.k1.p1.u1.t1.SE.1.2.AAAAAAAAAAAAAAAAAAAAAA"`)))
	f.Add([]byte(goodEvent))
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := ParseEvent(raw, testNow, 31*24*time.Hour, kr)
		if err != nil {
			return
		}
		c, err := kr.Verify(e.Ticket)
		if err != nil || c.PlayID != e.PlayID || c.UserID != e.UserID || c.TrackID != e.TrackID || c.Country != e.Country || e.MSPlayed > c.DurationMS+DurationSlackMS {
			t.Fatalf("accepted %s with ticket claims %+v, %v", raw, c, err)
		}
	})
}
