package rights

import (
	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/country"

	"encoding/binary"
	"time"

	"github.com/cespare/xxhash/v2"
)

// Synthetic is the rights policy of the synthetic catalog: nothing is
// stored, and about one (track, country) pair in ten is denied, at all
// times. Exactly: with a valid track id and a valid country, the pair is
// denied if and only if
//
//	xxhash64(seed as 8 bytes little-endian || trackID || 0x00 || country) % 10 == 0
//
// so anyone holding the seed can tell which pairs are denied. Invalid ids
// and countries are always denied. Use FindDenied and FindAllowed in tests.
type Synthetic struct {
	Seed uint64
}

// DenyOneIn is the inverse of the denial rate of Synthetic.
const DenyOneIn = 10

// Allowed reports whether trackID may be played in country; at is ignored.
// It does not allocate.
func (s Synthetic) Allowed(trackID, country string, _ time.Time) bool {
	if !catalog.ValidID(trackID) || !ValidCountry(country) {
		return false
	}
	return !s.denied(trackID, country)
}

// FindDenied returns the first country, in sorted order, where trackID is
// denied, or "" if there is none (about 1 track in 2.5e11).
func (s Synthetic) FindDenied(trackID string) string {
	return s.find(trackID, true)
}

// FindAllowed returns the first country, in sorted order, where trackID is
// allowed, or "" if there is none (or trackID is invalid).
func (s Synthetic) FindAllowed(trackID string) string {
	return s.find(trackID, false)
}

func (s Synthetic) find(trackID string, denied bool) string {
	if !catalog.ValidID(trackID) {
		return ""
	}
	for i := range NumCountries {
		if cc := country.At(i); s.denied(trackID, cc) == denied {
			return cc
		}
	}
	return ""
}

// denied hashes the pair incrementally so a check does not allocate.
func (s Synthetic) denied(trackID, country string) bool {
	var d xxhash.Digest
	d.Reset()
	var b [9]byte
	binary.LittleEndian.PutUint64(b[:8], s.Seed)
	d.Write(b[:8])
	d.WriteString(trackID)
	d.Write(b[8:]) // the 0x00 separator
	d.WriteString(country)
	return d.Sum64()%DenyOneIn == 0
}
