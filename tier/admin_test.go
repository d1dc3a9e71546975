package tier

import (
	"strings"
	"testing"

	"github.com/musiccdn/cdn/catalog"
)

// FuzzParseTracks: the tracks of an admin call are 1 to maxAdminTracks
// valid, distinct ids, or an error.
func FuzzParseTracks(f *testing.F) {
	f.Add("t1,t2")
	f.Add("t1,,t2")
	f.Add("a/b")
	f.Fuzz(func(t *testing.T, s string) {
		tracks, err := parseTracks([]byte(s))
		if err != nil {
			return
		}
		if len(tracks) == 0 || len(tracks) > maxAdminTracks {
			t.Fatalf("%d tracks", len(tracks))
		}
		seen := map[string]bool{}
		for _, id := range tracks {
			if !catalog.ValidID(id) || seen[id] || strings.Contains(id, ",") {
				t.Fatalf("bad id %q", id)
			}
			seen[id] = true
		}
	})
}
