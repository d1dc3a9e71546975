// Package country validates ISO 3166-1 alpha-2 country codes, the codes
// rights rows, signed URLs and play events carry.
package country

// assigned holds every officially assigned ISO 3166-1 alpha-2 code (249 of
// them), concatenated in sorted order, so Valid is a binary search over a
// constant and the package has no mutable state. Exceptionally or
// transitionally reserved codes (UK, EU, XK, AN, YU, ...) are not assigned
// and are not valid.
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

// Count is the number of assigned codes Valid accepts.
const Count = len(assigned) / 2

// Valid reports whether cc is an assigned ISO 3166-1 alpha-2 code, in upper
// case ("SE", not "se").
func Valid(cc string) bool {
	if len(cc) != 2 || cc[0] < 'A' || cc[0] > 'Z' || cc[1] < 'A' || cc[1] > 'Z' {
		return false
	}
	lo, hi := 0, Count
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

// At returns the i-th assigned code in sorted order, 0 <= i < Count; it lets
// tests and load generators enumerate the codes without a mutable table.
func At(i int) string { return assigned[2*i : 2*i+2] }
