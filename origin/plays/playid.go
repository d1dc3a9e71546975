package plays

import (
	"encoding/binary"
	"time"
)

// crockford is the ULID alphabet (Crockford's base32, upper case).
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

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
// time-ordered play id: a ULID, 26 characters of Crockford base32 whose
// first 10 encode the 48-bit Unix time in milliseconds at issue, the rest
// randomness. Ids that are not ULIDs, or whose time is before 2020 or more
// than a day ahead of the wall clock, report false; the ledger then keeps
// them in its undated table. The ledger files a ULID under its issue day,
// so pruning a day drops one table.
func playIDTime(id string) (time.Time, bool) {
	if len(id) != 26 || id[0] > '7' {
		return time.Time{}, false
	}
	var ms int64
	for i := range 10 {
		v := crockfordVal[id[i]]
		if v < 0 {
			return time.Time{}, false
		}
		ms = ms<<5 | int64(v)
	}
	for i := 10; i < 26; i++ {
		if crockfordVal[id[i]] < 0 {
			return time.Time{}, false
		}
	}
	t := time.UnixMilli(ms)
	if t.Before(ulidEpoch) || t.After(time.Now().Add(24*time.Hour)) {
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

// AppendPlayID appends a ULID play id issued at t with the given 80 random
// bits (hi: 16 bits, lo: 64) to b. The server that issues play ids, and
// tests and benchmarks, use it.
func AppendPlayID(b []byte, t time.Time, hi uint16, lo uint64) []byte {
	var r [26]byte
	ms := uint64(t.UnixMilli())
	for i := 9; i >= 0; i-- { // 48 bits of time, 10 characters
		r[i] = crockford[ms&31]
		ms >>= 5
	}
	x, y := lo, uint64(hi)
	for i := 25; i >= 10; i-- { // 80 random bits, 16 characters
		r[i] = crockford[x&31]
		x = x>>5 | (y&31)<<59
		y >>= 5
	}
	return append(b, r[:]...)
}
