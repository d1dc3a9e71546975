// Package api holds the JSON shapes of the origin's public API, shared by
// the origin that writes them and the clients that read them (the player,
// the load tool), so that a client does not import the origin's server
// code (and its Kafka and database dependencies) to speak to it.
package api

// Manifest is a track's playback manifest (GET /v1/manifest/<id> with
// the user's bearer token; the country is the token's).
type Manifest struct {
	TrackID    string `json:"track_id"`
	DurationMS int64  `json:"duration_ms"`
	// Samples is the track's exact length in sample frames at
	// SampleRate (the source's rate, from track.json): a player stops
	// there, whatever tier it plays (a tier at another rate, e.g. 24 kbps
	// at 22050 Hz, may decode to a frame more). Absent when unknown.
	Samples    int64  `json:"samples,omitempty"`
	SampleRate int    `json:"sample_rate,omitempty"`
	Country    string `json:"country"`
	// Expires is when the tokens in the URLs expire, unix seconds.
	Expires int64  `json:"expires"`
	Tiers   []Tier `json:"tiers"`
	// PlayID names this play: server-chosen, 26 characters, sorting by
	// the time it was issued. The play's report carries it.
	PlayID string `json:"play_id,omitempty"`
	// PlayTicket authorizes the report of this play; it goes back
	// unchanged as the event's "ticket".
	PlayTicket string `json:"play_ticket,omitempty"`
}

// Tier is one tier of a Manifest. URL and SeekURL are paths relative to
// any edge's base URL, signed for the track and the country; SeekURL is
// empty when the tier has no seek table.
type Tier struct {
	Kbps    int    `json:"kbps"`
	Bytes   int64  `json:"bytes"`
	ETag    string `json:"etag"`
	URL     string `json:"url"`
	SeekURL string `json:"seek_url,omitempty"`
}

// NextTracks answers GET /v1/recs/next/<id> and GET /v1/recs/user/<id>.
type NextTracks struct {
	Tracks []string `json:"tracks"`
}

// PlayEvent is one play as POST /v1/plays takes it (a JSON array of
// them, with the user's bearer token). PlayID and Ticket are the
// manifest's play_id and play_ticket (or, offline, a pair from the
// licence), kept on every retry; UserID and Country are the session's;
// TS is RFC 3339.
type PlayEvent struct {
	PlayID   string `json:"play_id"`
	UserID   string `json:"user_id"`
	TrackID  string `json:"track_id"`
	Country  string `json:"country"`
	TierKbps int    `json:"tier_kbps"`
	MSPlayed int64  `json:"ms_played"`
	TS       string `json:"ts"`
	Ticket   string `json:"ticket"`
}
