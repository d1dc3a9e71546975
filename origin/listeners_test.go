package origin

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/origin/media"
	"github.com/musiccdn/cdn/tierauth"
)

// countingSource counts the files opened.
type countingSource struct {
	media.Source
	opens atomic.Int64
}

func (c *countingSource) Open(ctx context.Context, id string, kbps int, kind catalog.Kind) (media.Object, media.File, error) {
	c.opens.Add(1)
	return c.Source.Open(ctx, id, kbps, kind)
}

// TestListeners: internal paths are not on the public handler, and the
// internal /media/ opens nothing without a valid tier credential.
// Mutations caught: routing /media/ or /metrics on the public handler
// (404 rows), mounting royalties with Mount instead of MountInternal (the
// royalties row), skipping or reordering the Verify in serveMedia (403
// rows and the opens count), not counting rejections (metric check).
func TestListeners(t *testing.T) {
	src := &countingSource{Source: media.NewSynthetic(20, 7)}
	s := newTestServer(t, testConfig(), WithSource(src))
	s.srv.MountInternal("GET /v1/royalties/", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "{}") }))
	get := func(base, path string, hdr ...string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	const path = "/media/t5/320.ogg"
	cred := s.tier.Sign("GET", path, testNow)
	for _, tc := range []struct {
		name, base, path string
		hdr              []string
		want             int
	}{
		{"media on public", s.ts.URL, path, []string{tierauth.Header, cred}, 404},
		{"metrics on public", s.ts.URL, "/metrics", nil, 404},
		{"royalties on public", s.ts.URL, "/v1/royalties/tracks/t5", nil, 404},
		{"manifest on internal", s.its.URL, "/v1/manifest/t1?country=SE", nil, 404},
		{"royalties on internal", s.its.URL, "/v1/royalties/tracks/t5", nil, 200},
		{"metrics on internal", s.its.URL, "/metrics", nil, 200},
		{"healthz on both", s.ts.URL, "/healthz", nil, 200},
		{"healthz on both", s.its.URL, "/healthz", nil, 200},
		{"media, no credential", s.its.URL, path, nil, 403},
		{"media, garbage", s.its.URL, path, []string{tierauth.Header, "tier1.1.x"}, 403},
		{"media, other path", s.its.URL, "/media/t5/24.ogg", []string{tierauth.Header, cred}, 403},
		{"media, expired", s.its.URL, path, []string{tierauth.Header, s.tier.Sign("GET", path, testNow.Add(-time.Hour))}, 403},
		{"media, bad path without credential", s.its.URL, "/media/../x", nil, 403},
	} {
		if got := get(tc.base, tc.path, tc.hdr...); got != tc.want {
			t.Errorf("%s: GET %s = %d, want %d", tc.name, tc.path, got, tc.want)
		}
	}
	if n := src.opens.Load(); n != 0 {
		t.Fatalf("%d files opened for refused requests, want 0", n)
	}
	if got := counter(t, s.reg, "origin_token_rejections_total", "reason", "tier"); got != 5 {
		t.Errorf("origin_token_rejections_total{reason=tier} = %v, want 5", got)
	}
	if got := get(s.its.URL, path, tierauth.Header, cred, "Range", "bytes=0-99"); got != 206 {
		t.Fatalf("media with credential: %d, want 206", got)
	}
}

// TestTierKeysRequired: an origin without tier_keys refuses to start,
// naming the field.
func TestTierKeysRequired(t *testing.T) {
	cfg := testConfig()
	cfg.TierKeys = nil
	if _, err := New(cfg, nil, nil); err == nil || !strings.Contains(err.Error(), "tier_keys: required") {
		t.Errorf("New without tier_keys = %v", err)
	}
	cfg.TierKeys = []tierauth.KeyConfig{{ID: "x", Secret: "00"}}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "tier_keys[0].secret") {
		t.Errorf("short tier key: %v", err)
	}
	cfg = testConfig()
	cfg.HTTP.ReadTimeout, cfg.HTTP.MaxHeaderBytes = 0, 10
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "http.read_timeout") || !strings.Contains(err.Error(), "http.max_header_bytes") {
		t.Errorf("bad http limits: %v", err)
	}
}

// TestHTTPLimits: the servers HTTPConfig builds close a connection that
// stalls in its header, and refuse an oversized header.
// Mutations caught: dropping ReadHeaderTimeout or MaxHeaderBytes from
// HTTPConfig.Server.
func TestHTTPLimits(t *testing.T) {
	s := newTestServer(t, testConfig())
	hc := DefaultHTTPConfig()
	hc.ReadHeaderTimeout = config.Duration(100 * time.Millisecond)
	hs := hc.Server(s.srv.PublicHandler(), nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n") // never finished
	c.SetReadDeadline(time.Now().Add(20 * time.Second))       // a generous bound, not the figure under test
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("a stalled header was not closed by the server: %v", err)
	}

	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("x", 2*int(hc.MaxHeaderBytes)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("oversized header: %d, want 431", resp.StatusCode)
	}
	if hs.ReadTimeout != 30*time.Second || hs.WriteTimeout != 30*time.Second || hs.IdleTimeout != 120*time.Second {
		t.Errorf("server limits %v %v %v", hs.ReadTimeout, hs.WriteTimeout, hs.IdleTimeout)
	}
}
