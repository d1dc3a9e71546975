package plays

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/country"
	"github.com/musiccdn/cdn/playticket"
)

// Limits on what an event may carry. They bound memory per event and keep
// ids safe as database keys and log fields.
const (
	MaxEventBytes = 2048             // one event's JSON
	MaxPlayMS     = 24 * 3600 * 1000 // longer than any track; a larger value is a client bug
	// ClockSkew is how far a client's clock may be off the origin's: an
	// event's ts may be this far in the future, or this far before its
	// ticket was issued.
	ClockSkew = 2 * time.Minute
	// ElapsedSlackMS is added to the time since a ticket was issued when
	// bounding ms_played: a play cannot have lasted longer than that, but
	// the player's first audio and the manifest's answer race a little.
	ElapsedSlackMS = 5000
	// DurationSlackMS is added to the track's duration when bounding
	// ms_played: players count whole decoded packets and may overshoot the
	// last sample by a packet or two.
	DurationSlackMS = 2000
)

// Event is one play report as players send it and as it travels on the
// plays topic.
type Event struct {
	PlayID   string    `json:"play_id"`
	UserID   string    `json:"user_id"`
	TrackID  string    `json:"track_id"`
	Country  string    `json:"country"`
	TierKbps int       `json:"tier_kbps"`
	MSPlayed int64     `json:"ms_played"`
	TS       time.Time `json:"ts"`
	// Ticket is the manifest's (or the licence's, offline) play_ticket:
	// it binds PlayID, UserID, TrackID and Country to a play the origin
	// authorized (see package playticket).
	Ticket string `json:"ticket"`
}

// Qualifies reports whether the play is long enough to pay a royalty
// (the 30-second rule, catalog.QualifyingMS).
func (e *Event) Qualifies() bool { return e.MSPlayed >= catalog.QualifyingMS }

// Day is the UTC calendar day of the play, the ledger's counting unit.
func (e *Event) Day() string { return e.TS.UTC().Format(time.DateOnly) }

// Reasons an event is rejected. They are stable strings: clients and the
// rejected_total{reason} metric see them.
const (
	ReasonBadJSON         = "bad_json"
	ReasonTooLarge        = "event_too_large"
	ReasonMissingPlayID   = "missing_play_id"
	ReasonBadPlayID       = "bad_play_id"
	ReasonMissingUserID   = "missing_user_id"
	ReasonBadUserID       = "bad_user_id"
	ReasonMissingTrackID  = "missing_track_id"
	ReasonBadTrackID      = "bad_track_id"
	ReasonMissingCountry  = "missing_country"
	ReasonBadCountry      = "unknown_country"
	ReasonMissingTier     = "missing_tier_kbps"
	ReasonBadTier         = "bad_tier_kbps"
	ReasonMissingDuration = "missing_ms_played"
	ReasonNegDuration     = "negative_duration"
	ReasonBadDuration     = "bad_duration"
	ReasonMissingTS       = "missing_ts"
	ReasonBadTS           = "bad_ts"
	ReasonFutureTS        = "ts_in_future"
	ReasonTooOld          = "ts_too_old"

	// Ticket reasons: the event is not one the origin authorized.
	ReasonTicketMissing   = "ticket_missing"
	ReasonTicketMalformed = "ticket_malformed"
	ReasonTicketForged    = "ticket_forged" // bad tag or unknown key
	ReasonTicketPlay      = "ticket_other_play"
	ReasonTicketUser      = "ticket_other_user"
	ReasonTicketTrack     = "ticket_other_track"
	ReasonTicketCountry   = "ticket_other_country"
	ReasonSessionUser     = "session_other_user" // user_id is not the bearer token's sub
	ReasonPlayedTooLong   = "ms_played_exceeds_elapsed"
	ReasonPastDuration    = "ms_played_exceeds_duration"
	ReasonBeforeTicket    = "ts_before_ticket"
)

// RejectError says why one event is invalid.
type RejectError struct{ Reason string }

func (e *RejectError) Error() string { return "plays: invalid event: " + e.Reason }

func reject(reason string) error { return &RejectError{Reason: reason} }

// ReasonOf returns the rejection reason of err, or "internal" when err is
// not a RejectError.
func ReasonOf(err error) string {
	var re *RejectError
	if errors.As(err, &re) {
		return re.Reason
	}
	return "internal"
}

// wireEvent mirrors Event with pointers, so a missing field is told apart
// from a zero one, and with the time as a string, so a bad one gets its own
// reason instead of failing the whole decode.
type wireEvent struct {
	PlayID   *string          `json:"play_id"`
	UserID   *string          `json:"user_id"`
	TrackID  *string          `json:"track_id"`
	Country  *string          `json:"country"`
	TierKbps *json.RawMessage `json:"tier_kbps"` // a bare JSON number; "160" in quotes is refused
	MSPlayed *json.RawMessage `json:"ms_played"`
	TS       *string          `json:"ts"`
	Ticket   *string          `json:"ticket"`
}

type jsonRaw = json.RawMessage

// ParseEvent decodes and validates one event's JSON. now is the time the
// event is judged at and maxAge how old its ts may be (0: no limit); the
// ledger cannot deduplicate plays older than its play-id retention, so they
// are refused rather than risk counting one twice. tickets checks the
// event's ticket (see checkTicket); nil skips that check, which only tests
// of the JSON rules do.
func ParseEvent(raw []byte, now time.Time, maxAge time.Duration, tickets *playticket.Keyring) (Event, error) {
	if len(raw) > MaxEventBytes {
		return Event{}, reject(ReasonTooLarge)
	}
	w, ok := parseWireFast(raw)
	if !ok {
		w = wireEvent{}
		if err := json.Unmarshal(raw, &w); err != nil {
			return Event{}, reject(ReasonBadJSON)
		}
	}
	var e Event
	switch {
	case w.PlayID == nil || *w.PlayID == "":
		return e, reject(ReasonMissingPlayID)
	case !catalog.ValidPlayID(*w.PlayID):
		return e, reject(ReasonBadPlayID)
	case w.UserID == nil || *w.UserID == "":
		return e, reject(ReasonMissingUserID)
	case !catalog.ValidUserID(*w.UserID):
		return e, reject(ReasonBadUserID)
	case w.TrackID == nil || *w.TrackID == "":
		return e, reject(ReasonMissingTrackID)
	case !catalog.ValidID(*w.TrackID):
		return e, reject(ReasonBadTrackID)
	case w.Country == nil || *w.Country == "":
		return e, reject(ReasonMissingCountry)
	case !country.Valid(*w.Country):
		return e, reject(ReasonBadCountry)
	case w.TierKbps == nil:
		return e, reject(ReasonMissingTier)
	case w.MSPlayed == nil:
		return e, reject(ReasonMissingDuration)
	case w.TS == nil || *w.TS == "":
		return e, reject(ReasonMissingTS)
	}
	tier, err := strconv.Atoi(string(*w.TierKbps))
	if err != nil || !catalog.ValidTier(tier) {
		return e, reject(ReasonBadTier)
	}
	ms, err := strconv.ParseInt(string(*w.MSPlayed), 10, 64)
	switch {
	case err != nil:
		if len(*w.MSPlayed) > 0 && (*w.MSPlayed)[0] == '-' {
			return e, reject(ReasonNegDuration)
		}
		return e, reject(ReasonBadDuration)
	case ms < 0:
		return e, reject(ReasonNegDuration)
	case ms > MaxPlayMS:
		return e, reject(ReasonBadDuration)
	}
	ts, err := time.Parse(time.RFC3339Nano, *w.TS)
	if err != nil {
		return e, reject(ReasonBadTS)
	}
	if ts.After(now.Add(ClockSkew)) {
		return e, reject(ReasonFutureTS)
	}
	if maxAge > 0 && ts.Before(now.Add(-maxAge)) {
		return e, reject(ReasonTooOld)
	}
	e = Event{
		PlayID:   *w.PlayID,
		UserID:   *w.UserID,
		TrackID:  *w.TrackID,
		Country:  *w.Country,
		TierKbps: tier,
		MSPlayed: ms,
		TS:       ts.UTC(),
	}
	if tickets != nil {
		if w.Ticket == nil || *w.Ticket == "" {
			return Event{}, reject(ReasonTicketMissing)
		}
		e.Ticket = *w.Ticket
		if err := checkTicket(tickets, &e, now); err != nil {
			return Event{}, err
		}
	} else if w.Ticket != nil {
		e.Ticket = *w.Ticket
	}
	return e, nil
}

// checkTicket verifies e's ticket and that it is for e: the same play id,
// user, track and country; ms_played no longer than the time since the
// ticket was issued (plus ElapsedSlackMS) nor the track's duration (plus
// DurationSlackMS); ts no earlier than the issue time (less ClockSkew).
// Offline plays carry tickets issued with their licence, so the same rules
// hold: the elapsed bound is then loose and the duration bound decides.
func checkTicket(kr *playticket.Keyring, e *Event, now time.Time) error {
	c, err := kr.Verify(e.Ticket)
	switch {
	case errors.Is(err, playticket.ErrMalformed):
		return reject(ReasonTicketMalformed)
	case err != nil:
		return reject(ReasonTicketForged)
	case c.PlayID != e.PlayID:
		return reject(ReasonTicketPlay)
	case c.UserID != e.UserID:
		return reject(ReasonTicketUser)
	case c.TrackID != e.TrackID:
		return reject(ReasonTicketTrack)
	case c.Country != e.Country:
		return reject(ReasonTicketCountry)
	case e.MSPlayed > now.UnixMilli()-c.IssuedMS+ElapsedSlackMS:
		return reject(ReasonPlayedTooLong)
	case e.MSPlayed > c.DurationMS+DurationSlackMS:
		return reject(ReasonPastDuration)
	case e.TS.UnixMilli() < c.IssuedMS-ClockSkew.Milliseconds():
		return reject(ReasonBeforeTicket)
	}
	return nil
}

// storedKeyLen bounds the ids of records already on the royalties topic
// (see safeKey).
const storedKeyLen = 128

// safeKey reports whether s can be stored and split safely: 1 to
// storedKeyLen bytes of printable ASCII other than space, quote and
// backslash, so it needs no escaping in JSON, logs, SQL literals or the
// tab-separated royalty record. New events are held to the stricter id
// rules of package catalog; the sink checks records with this looser one,
// because records written before those rules (ids of up to 128 such bytes)
// still count.
func safeKey(s string) bool {
	if len(s) == 0 || len(s) > storedKeyLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c > '~' || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// Rejection is one refused event of a batch, by its index in the batch.
type Rejection struct {
	Index  int    `json:"index"`
	Reason string `json:"reason"`
}

// Accepted is one valid event of a batch with its JSON as the client sent
// it, which is what goes on the plays topic.
type Accepted struct {
	Event Event
	Raw   []byte
}

// ErrNotArray is returned by DecodeBatch when the body is not a JSON array
// at all; then no event can be told apart from another.
var ErrNotArray = errors.New("plays: body is not a json array")

// ErrBatchTooLarge is returned by DecodeBatch when the batch has more than
// the allowed number of events.
var ErrBatchTooLarge = errors.New("plays: batch too large")

// DecodeBatch reads a JSON array of events from body, element by element,
// and validates each one with ParseEvent; when user is not empty each
// event's user_id must also equal it (the session's user). A bad event
// becomes a Rejection with its index and the others are still returned;
// only a body that is not a well-formed array fails as a whole
// (ErrNotArray), or one with more than maxEvents elements, which is
// refused as soon as element maxEvents+1 starts (ErrBatchTooLarge), or a
// failed read (the error is returned wrapped, e.g. *http.MaxBytesError).
func DecodeBatch(body io.Reader, maxEvents int, now time.Time, maxAge time.Duration, tickets *playticket.Keyring, user string) ([]Accepted, []Rejection, error) {
	dec := json.NewDecoder(body)
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, batchErr(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, nil, ErrNotArray
	}
	var acc []Accepted
	var rej []Rejection
	for i := 0; dec.More(); i++ {
		if i == maxEvents {
			return nil, nil, ErrBatchTooLarge
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, batchErr(err)
		}
		e, err := ParseEvent(raw, now, maxAge, tickets)
		if err == nil && user != "" && e.UserID != user {
			err = reject(ReasonSessionUser)
		}
		if err != nil {
			rej = append(rej, Rejection{Index: i, Reason: ReasonOf(err)})
			continue
		}
		acc = append(acc, Accepted{Event: e, Raw: raw})
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return nil, nil, batchErr(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if err != nil && batchErr(err) != ErrNotArray {
			return nil, nil, batchErr(err)
		}
		return nil, nil, ErrNotArray // something after the array
	}
	if acc == nil {
		acc = []Accepted{}
	}
	return acc, rej, nil
}

// batchErr tells a body that is not JSON from a body that could not be
// read.
func batchErr(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	if errors.As(err, &se) || errors.As(err, &te) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return ErrNotArray
	}
	return fmt.Errorf("plays: read body: %w", err)
}
