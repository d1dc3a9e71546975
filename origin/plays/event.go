package plays

import (
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/musiccdn/cdn/country"
	"github.com/musiccdn/cdn/origin/media"
)

// QualifyingMS is the least audio, in milliseconds, a play must have
// actually played to earn a royalty.
const QualifyingMS = 30_000

// Limits on what an event may carry. They bound memory per event and keep
// ids safe as database keys and log fields.
const (
	MaxIDLen      = 128              // play_id and user_id, bytes
	MaxEventBytes = 2048             // one event's JSON
	MaxPlayMS     = 24 * 3600 * 1000 // longer than any track; a larger value is a client bug
	maxFutureSkew = 24 * time.Hour   // client clocks drift; beyond this the ts is wrong
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
}

// Qualifies reports whether the play is long enough to pay a royalty.
func (e *Event) Qualifies() bool { return e.MSPlayed >= QualifyingMS }

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
}

type jsonRaw = json.RawMessage

// ParseEvent decodes and validates one event's JSON. now is the time the
// event is judged at and maxAge how old its ts may be (0: no limit); the
// ledger cannot deduplicate plays older than its play-id retention, so they
// are refused rather than risk counting one twice.
func ParseEvent(raw []byte, now time.Time, maxAge time.Duration) (Event, error) {
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
	case !validKey(*w.PlayID):
		return e, reject(ReasonBadPlayID)
	case w.UserID == nil || *w.UserID == "":
		return e, reject(ReasonMissingUserID)
	case !validKey(*w.UserID):
		return e, reject(ReasonBadUserID)
	case w.TrackID == nil || *w.TrackID == "":
		return e, reject(ReasonMissingTrackID)
	case !media.ValidID(*w.TrackID):
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
	if err != nil || !media.ValidTier(tier) {
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
	if ts.After(now.Add(maxFutureSkew)) {
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
	return e, nil
}

// validKey reports whether s is a usable play or user id: 1 to MaxIDLen
// bytes of printable ASCII other than space, quote and backslash, so the id
// needs no escaping in JSON, logs or SQL literals.
func validKey(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLen {
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

// DecodeBatch splits a JSON array of events and validates each one. A bad
// event becomes a Rejection with its index and the others are still
// returned; only a body that is not a well-formed array, or one with more
// than maxEvents elements, fails as a whole.
func DecodeBatch(body []byte, maxEvents int, now time.Time, maxAge time.Duration) ([]Accepted, []Rejection, error) {
	var elems []json.RawMessage
	if err := json.Unmarshal(body, &elems); err != nil {
		return nil, nil, ErrNotArray
	}
	if elems == nil {
		return nil, nil, ErrNotArray // the body was null
	}
	if len(elems) > maxEvents {
		return nil, nil, ErrBatchTooLarge
	}
	acc := make([]Accepted, 0, len(elems))
	var rej []Rejection
	for i, raw := range elems {
		e, err := ParseEvent(raw, now, maxAge)
		if err != nil {
			rej = append(rej, Rejection{Index: i, Reason: ReasonOf(err)})
			continue
		}
		acc = append(acc, Accepted{Event: e, Raw: raw})
	}
	return acc, rej, nil
}
