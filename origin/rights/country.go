package rights

import "github.com/musiccdn/cdn/country"

// NumCountries is the number of assigned ISO 3166-1 alpha-2 codes.
const NumCountries = country.Count

// ValidCountry reports whether cc is an officially assigned ISO 3166-1
// alpha-2 code, in upper case ("SE", not "se" or "SWE"). It does not
// allocate.
func ValidCountry(cc string) bool { return country.Valid(cc) }

// Countries returns every assigned code, sorted. The slice is new on each
// call.
func Countries() []string {
	cs := make([]string, 0, NumCountries)
	for i := range NumCountries {
		cs = append(cs, country.At(i))
	}
	return cs
}
