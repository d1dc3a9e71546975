// Package rights decides whether a track may be played in a country at a
// given time. Rights are denormalized rows keyed by (track id, country code),
// each holding one licence window, so a check is exactly one map look-up:
// no joins, no scans.
//
// Three policies share one method, Allowed(trackID, country, at), which is
// all the origin needs; consumers declare
//
//	interface{ Allowed(trackID, country string, at time.Time) bool }
//
// where they use it:
//
//   - Table: rows loaded from a TSV file (Load, LoadFile) or added with Put.
//   - Synthetic: deterministic rights for the synthetic catalog, about 10 %
//     of (track, country) pairs denied, computed from a hash, nothing stored.
//   - Worldwide: every valid country allowed, the policy of a directory
//     catalog without a rights file.
//
// Country codes are upper-case ISO 3166-1 alpha-2 codes (ValidCountry).
package rights

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/musiccdn/cdn/catalog"
)

// Errors returned by Table.Check. Both mean "may not play".
var (
	// ErrNoRow: there is no licence for the (track, country) pair.
	ErrNoRow = errors.New("rights: no licence row")
	// ErrDenied: a licence row exists but its window does not hold the time.
	ErrDenied = errors.New("rights: outside licence window")
)

// Row is the licence of one track in one country, valid over [From, Until).
// A zero From means "since always", a zero Until "for ever".
type Row struct {
	TrackID string
	Country string
	From    time.Time
	Until   time.Time
}

// Covers reports whether at lies within the row's window [From, Until).
func (r Row) Covers(at time.Time) bool {
	return (r.From.IsZero() || !at.Before(r.From)) && (r.Until.IsZero() || at.Before(r.Until))
}

// Validate checks the row's track id, country and window.
func (r Row) Validate() error {
	if !catalog.ValidID(r.TrackID) {
		return fmt.Errorf("rights: invalid track id %q", r.TrackID)
	}
	if !ValidCountry(r.Country) {
		return fmt.Errorf("rights: invalid country %q", r.Country)
	}
	if !r.From.IsZero() && !r.Until.IsZero() && !r.From.Before(r.Until) {
		return fmt.Errorf("rights: empty window: from %s is not before until %s",
			r.From.Format(time.RFC3339), r.Until.Format(time.RFC3339))
	}
	return nil
}

// key is the one look-up key of a check. The country is stored as two bytes
// so building a key from a string does not allocate.
type key struct {
	track   string
	country [2]byte
}

func makeKey(trackID, country string) key {
	return key{track: trackID, country: [2]byte{country[0], country[1]}}
}

// Table holds licence rows. It is safe for concurrent use.
type Table struct {
	mu   sync.RWMutex
	rows map[key]Row
}

// NewTable returns an empty table: it allows nothing.
func NewTable() *Table {
	return &Table{rows: make(map[key]Row)}
}

// Put adds or replaces the row of (r.TrackID, r.Country).
func (t *Table) Put(r Row) error {
	if err := r.Validate(); err != nil {
		return err
	}
	k := makeKey(r.TrackID, r.Country)
	t.mu.Lock()
	t.rows[k] = r
	t.mu.Unlock()
	return nil
}

// Len is the number of rows.
func (t *Table) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.rows)
}

// Allowed reports whether trackID may be played in country at time at.
func (t *Table) Allowed(trackID, country string, at time.Time) bool {
	_, err := t.Check(trackID, country, at)
	return err == nil
}

// Check returns the row that licenses trackID in country at time at. It
// returns ErrNoRow when there is no row (including for an invalid country),
// and the row with ErrDenied when its window does not hold at.
func (t *Table) Check(trackID, country string, at time.Time) (Row, error) {
	if len(country) != 2 {
		return Row{}, ErrNoRow
	}
	t.mu.RLock()
	r, ok := t.rows[makeKey(trackID, country)]
	t.mu.RUnlock()
	if !ok {
		return Row{}, ErrNoRow
	}
	if !r.Covers(at) {
		return r, ErrDenied
	}
	return r, nil
}

// Worldwide is the policy of a catalog without a rights file: every track
// may be played in every valid country (ValidCountry), at any time.
type Worldwide struct{}

// Allowed reports whether trackID is a valid id and country a valid code.
func (Worldwide) Allowed(trackID, country string, _ time.Time) bool {
	return catalog.ValidID(trackID) && ValidCountry(country)
}
