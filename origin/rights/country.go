package rights

// assigned lists the 249 officially assigned ISO 3166-1 alpha-2 codes,
// sorted, two letters each. User-assigned codes (AA, QM-QZ, XA-XZ, ZZ,
// including XK as used for Kosovo) and reserved ones (EU, UK, ...) are
// not countries here: a licence is never granted for them.
const assigned = "" +
	"ADAEAFAGAIALAMAOAQARASATAUAWAXAZ" +
	"BABBBDBEBFBGBHBIBJBLBMBNBOBQBRBSBTBVBWBYBZ" +
	"CACCCDCFCGCHCICKCLCMCNCOCRCUCVCWCXCYCZ" +
	"DEDJDKDMDODZ" +
	"ECEEEGEHERESET" +
	"FIFJFKFMFOFR" +
	"GAGBGDGEGFGGGHGIGLGMGNGPGQGRGSGTGUGWGY" +
	"HKHMHNHRHTHU" +
	"IDIEILIMINIOIQIRISIT" +
	"JEJMJOJP" +
	"KEKGKHKIKMKNKPKRKWKYKZ" +
	"LALBLCLILKLRLSLTLULVLY" +
	"MAMCMDMEMFMGMHMKMLMMMNMOMPMQMRMSMTMUMVMWMXMYMZ" +
	"NANCNENFNGNINLNONPNRNUNZ" +
	"OM" +
	"PAPEPFPGPHPKPLPMPNPRPSPTPWPY" +
	"QA" +
	"RERORSRURW" +
	"SASBSCSDSESGSHSISJSKSLSMSNSOSRSSSTSVSXSYSZ" +
	"TCTDTFTGTHTJTKTLTMTNTOTRTTTVTWTZ" +
	"UAUGUMUSUYUZ" +
	"VAVCVEVGVIVNVU" +
	"WFWS" +
	"YEYT" +
	"ZAZMZW"

// NumCountries is the number of assigned codes ValidCountry accepts.
const NumCountries = len(assigned) / 2

// ValidCountry reports whether cc is an officially assigned ISO 3166-1
// alpha-2 code, in upper case ("SE", not "se" or "SWE"). It does not
// allocate.
func ValidCountry(cc string) bool {
	if len(cc) != 2 || cc[0] < 'A' || cc[0] > 'Z' || cc[1] < 'A' || cc[1] > 'Z' {
		return false
	}
	lo, hi := 0, NumCountries
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		c := assigned[2*m : 2*m+2]
		switch {
		case c == cc:
			return true
		case c < cc:
			lo = m + 1
		default:
			hi = m
		}
	}
	return false
}

// Countries returns every assigned code, sorted. The slice is new on each
// call.
func Countries() []string {
	cs := make([]string, 0, NumCountries)
	for i := 0; i < len(assigned); i += 2 {
		cs = append(cs, assigned[i:i+2])
	}
	return cs
}

// country returns the i-th assigned code (0 <= i < NumCountries) without
// allocating.
func country(i int) string { return assigned[2*i : 2*i+2] }
