package plays

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/country"
)

// royalty is what the stage emits for a qualifying, licensed play and what
// the ledger counts.
//
// On the royalties topic it is version 2, one line of tab-separated
// fields, which the sink splits without a JSON decoder:
//
//	r2 \t play_id \t user_id \t track_id \t country \t ts_ms
//
// None of the fields can hold a tab (ids are printable ASCII without
// spaces, see safeKey and catalog.ValidID). Version 1, a JSON object with
// "v":1, is still read, so records written before an upgrade count.
type royalty struct {
	V       int    `json:"v"`
	PlayID  string `json:"play_id"`
	UserID  string `json:"user_id"`
	TrackID string `json:"track_id"`
	Country string `json:"country"`
	TSMS    int64  `json:"ts_ms"`
}

func (r *royalty) day() string { return time.UnixMilli(r.TSMS).UTC().Format(time.DateOnly) }

func royaltyOf(e *Event) royalty {
	return royalty{V: 2, PlayID: e.PlayID, UserID: e.UserID, TrackID: e.TrackID, Country: e.Country, TSMS: e.TS.UnixMilli()}
}

// appendTo appends the version-2 encoding of r to b.
func (r *royalty) appendTo(b []byte) []byte {
	return appendTabbed(b, r.TSMS, "r2", r.PlayID, r.UserID, r.TrackID, r.Country)
}

// appendTabbed appends fields and then n in decimal, tab-separated: the
// shape of the pipeline's own records (royalties, ledger deltas), none of
// whose fields can hold a tab.
func appendTabbed(b []byte, n int64, fields ...string) []byte {
	for _, f := range fields {
		b = append(b, f...)
		b = append(b, '\t')
	}
	return strconv.AppendInt(b, n, 10)
}

// parseRoyalty decodes and checks a royalty record; the topic could be
// written by something else, so it is validated like an event.
func parseRoyalty(raw []byte) (royalty, error) {
	var r royalty
	if len(raw) > 0 && raw[0] == '{' {
		if err := json.Unmarshal(raw, &r); err != nil {
			return r, reject(ReasonBadJSON)
		}
		if r.V != 1 {
			return r, reject("bad_version")
		}
	} else {
		rest, ok := bytes.CutPrefix(raw, []byte("r2\t"))
		if !ok {
			return r, reject("bad_version")
		}
		var f [5][]byte
		for i := range 4 {
			j := bytes.IndexByte(rest, '\t')
			if j < 0 {
				return r, reject("bad_record")
			}
			f[i], rest = rest[:j], rest[j+1:]
		}
		f[4] = rest
		ts, err := strconv.ParseInt(string(f[4]), 10, 64)
		if err != nil {
			return r, reject(ReasonBadTS)
		}
		r = royalty{V: 2, PlayID: string(f[0]), UserID: string(f[1]), TrackID: string(f[2]), Country: string(f[3]), TSMS: ts}
	}
	switch {
	case !safeKey(r.PlayID):
		return r, reject(ReasonBadPlayID)
	case !safeKey(r.UserID):
		return r, reject(ReasonBadUserID)
	case !catalog.ValidID(r.TrackID):
		return r, reject(ReasonBadTrackID)
	case !country.Valid(r.Country):
		return r, reject(ReasonBadCountry)
	case r.TSMS <= 0:
		return r, reject(ReasonBadTS)
	}
	return r, nil
}
