package tier

import (
	"net/http"
	"strings"
	"testing"

	"github.com/musiccdn/cdn/httprange/httprangetest"
	"github.com/musiccdn/cdn/origin/media"
	"github.com/musiccdn/cdn/tierauth"
)

// TestRFC9110 runs the conformance table of httprangetest through a real
// edge (over a real shield and origin), and against the shield's fill
// listener directly, so edge, shield and origin (origin's TestMediaRanges)
// answer every range and conditional request alike.
func TestRFC9110(t *testing.T) {
	p := newTestPOP(t, nil)
	const track, kbps = 2, 24
	target := func(name string, url func(method string) (string, []string)) httprangetest.Target {
		return httprangetest.Target{
			Size:         p.origin.cat.Size(track, kbps),
			ETag:         p.origin.cat.ETag(track, kbps, 0),
			LastModified: media.SyntheticEpoch,
			MaxRanges:    DefaultEdgeConfig().MaxRanges,
			Do: func(t testing.TB, method string, hdr http.Header) (*http.Response, []byte) {
				u, extra := url(method)
				req, _ := http.NewRequest(method, u, nil)
				req.Header = hdr
				for i := 0; i+1 < len(extra); i += 2 {
					req.Header.Set(extra[i], extra[i+1])
				}
				return p.do(t, req)
			},
			Bytes: func(start, end int64) []byte { return p.expect(track, kbps, start, end) },
			Check: func(t testing.TB, resp *http.Response) {
				if got := resp.Header.Get("Cache-Status"); !strings.HasPrefix(got, name+"; ") {
					t.Errorf("Cache-Status = %q, want %s's", got, name)
				}
			},
		}
	}
	t.Run("edge", func(t *testing.T) {
		url := p.url("t2", kbps, "SE")
		httprangetest.Run(t, target("edge-1", func(string) (string, []string) { return url, nil }))
	})
	t.Run("shield", func(t *testing.T) {
		kr, err := tierauth.New([]tierauth.KeyConfig{testTierKey})
		if err != nil {
			t.Fatal(err)
		}
		const path = "/media/t2/24.ogg"
		httprangetest.Run(t, target("shield-1", func(method string) (string, []string) {
			return p.shield.URL() + path, []string{tierauth.Header, kr.Sign(method, path, p.clock())}
		}))
	})
}
