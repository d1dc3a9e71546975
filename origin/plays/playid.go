package plays

import (
	"encoding/binary"
	"time"

	"github.com/musiccdn/cdn/playticket"
)

// crockford is the ULID alphabet (Crockford's base32, upper case).
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// crockfordVal maps a Crockford character to its value, -1 for others.
var crockfordVal = func() (v [256]int8) {
	for i := range v {
		v[i] = -1
	}
	for i := range len(crockford) {
		v[crockford[i]] = int8(i)
	}
	return
}()

// playIDTime returns the issue time carried by a server-issued,
// time-ordered play id: a ULID made by playticket.NewID when the origin
// mints a manifest's (or a licence's) play ticket, 26 characters of
// Crockford base32 whose first 10 encode the 48-bit Unix time in
// milliseconds at issue, the rest randomness. Ids that are not ULIDs, or
// whose time is before 2020 or more than a day ahead of the wall clock,
// report false; the ledger then keeps them in its undated table. The
// ledger files a ULID under its issue day, so pruning a day drops one
// table.
func playIDTime(id string) (time.Time, bool) {
	t, ok := playticket.IDTime(id)
	if !ok || t.Before(ulidEpoch) || t.After(time.Now().Add(24*time.Hour)) {
		return time.Time{}, false
	}
	return t, true
}

// playIDKey is the 16-byte binary form of a ULID play id (big-endian, so
// keys sort as the ids do), which the day tables store: 16 bytes instead
// of 26 per id. id must be a ULID (playIDTime reported true).
func playIDKey(id string) []byte {
	var hi, lo uint64
	for i := range len(id) {
		v := uint64(crockfordVal[id[i]])
		hi = hi<<5 | lo>>59
		lo = lo<<5 | v
	}
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(make([]byte, 0, 16), hi), lo)
}

var ulidEpoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
