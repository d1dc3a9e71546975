package tier

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/musiccdn/cdn/tierauth"
)

// TestShieldFillNeedsTierCredential: a shield's /media/ without a valid
// tier credential is a 403 and the origin (a real HTTP server) sees
// nothing; with one it is served.
// Mutations caught: skipping tierAuthorized in Handle for shields (every
// 403 row), verifying the path without the query ("other query" row),
// verifying without the method ("HEAD-signed" row), not counting the
// rejection (metric check).
func TestShieldFillNeedsTierCredential(t *testing.T) {
	p := newTestPOP(t, nil)
	kr, err := tierauth.New([]tierauth.KeyConfig{testTierKey})
	if err != nil {
		t.Fatal(err)
	}
	stranger, _ := tierauth.New([]tierauth.KeyConfig{{ID: "tier1", Secret: strings.Repeat("77", 32)}})
	const path = "/media/t1/96.ogg"
	now := p.clock()
	for _, tc := range []struct {
		name, target, cred string
	}{
		{"none", path, ""},
		{"garbage", path, "tier1.123.abc"},
		{"other key", path, stranger.Sign("GET", path, now)},
		{"other path", path, kr.Sign("GET", "/media/t2/96.ogg", now)},
		{"other query", path + "?x=1", kr.Sign("GET", path, now)},
		{"HEAD-signed", path, kr.Sign("HEAD", path, now)},
		{"stale", path, kr.Sign("GET", path, now.Add(-2*tierauth.MaxSkew))},
		{"player token instead", path + "?t=" + p.keys.Sign("t1/96.ogg", "SE", now.Add(time.Hour)), ""},
	} {
		resp, _ := p.get(t, p.shield.URL()+tc.target, tierauth.Header, tc.cred, "Range", "bytes=0-99")
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", tc.name, resp.StatusCode)
		}
	}
	if n := p.origin.MediaRequests(); n != 0 {
		t.Fatalf("origin saw %d requests for refused fills, want 0", n)
	}
	if n := p.shield.fetch.attempts.Load(); n != 0 {
		t.Fatalf("shield made %d upstream requests, want 0", n)
	}
	if got := p.shield.m.tokens[tokenTier]; got == nil {
		t.Fatal("no tier rejection counter")
	}
	_, body := p.get(t, p.shield.InternalURL()+"/metrics")
	if !bytes.Contains(body, []byte(`shield_token_rejections_total{reason="tier"} 8`)) {
		t.Errorf("shield metrics do not count 8 tier rejections")
	}
	resp, got := p.get(t, p.shield.URL()+path, tierauth.Header, kr.Sign("GET", path, now), "Range", "bytes=0-99")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, p.expect(1, 96, 0, 99)) {
		t.Fatalf("signed fill: status %d", resp.StatusCode)
	}
}

// TestListenersSplit: internal paths are 404 on public listeners, public
// paths 404 on internal ones, and no endpoint takes a body.
// Mutations caught: routing /metrics, /debug or /peer in Handle; serving
// /a/ or /media/ in HandleInternal; dropping the body check (413 row);
// a read buffer (the header limit) of 1 MiB (431 row).
func TestListenersSplit(t *testing.T) {
	c := newTestCluster(t, 2, 1, nil)
	edge, shield := c.edges[0], c.shields[0]
	tok := c.keys.Sign("t1/96.ogg", "SE", c.clock().Add(time.Hour))
	for _, tc := range []struct {
		base, path string
		want       int
	}{
		{edge.URL(), "/metrics", 404},
		{edge.URL(), "/debug/pprof/", 404},
		{edge.URL(), "/peer/media/t1/96.ogg", 404},
		{shield.URL(), "/metrics", 404},
		{shield.URL(), "/debug/pprof/", 404},
		{edge.InternalURL(), "/a/t1/96.ogg?t=" + tok, 404},
		{shield.InternalURL(), "/media/t1/96.ogg", 404},
		{edge.InternalURL(), "/metrics", 200},
		{shield.InternalURL(), "/metrics", 200},
		{edge.InternalURL(), "/debug/pprof/", 200},
		{edge.URL(), "/readyz", 200},
		{edge.InternalURL(), "/readyz", 200},
		{shield.URL(), "/healthz", 200},
		{edge.URL(), "/a/t1/96.ogg?t=" + tok, 200},
	} {
		resp, _ := c.get(t, tc.base+tc.path)
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s%s: status %d, want %d", tc.base, tc.path, resp.StatusCode, tc.want)
		}
	}
	// A GET with a body is refused before anything is fetched.
	before := c.origin.MediaRequests()
	for _, size := range []int{1, 100 << 10} {
		req, _ := http.NewRequest("GET", edge.URL()+"/a/t2/96.ogg?t="+c.keys.Sign("t2/96.ogg", "SE", c.clock().Add(time.Hour)), strings.NewReader(strings.Repeat("x", size)))
		resp, err := c.client.Do(req)
		if err != nil {
			// The server answers 413 and closes while a large body is
			// still being written: the client may see the reset first.
			if size > 1 && strings.Contains(err.Error(), "connection reset") {
				continue
			}
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("GET with a %d-byte body: status %d, want 413", size, resp.StatusCode)
		}
	}
	if n := c.origin.MediaRequests(); n != before {
		t.Errorf("a refused body reached the origin (%d requests)", n-before)
	}
	// A header past maxHeader is refused (431), not buffered.
	resp, err := http.DefaultTransport.RoundTrip(mustReq(t, edge.URL()+"/healthz", "X-Big", strings.Repeat("x", 2*maxHeader)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("%d-byte header: status %d, want 431", 2*maxHeader, resp.StatusCode)
	}
}

func mustReq(t *testing.T, url string, hdr ...string) *http.Request {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return req
}

// TestPeerNeedsTierCredential: the peer endpoint of an edge's internal
// listener without a valid credential is 403, and nothing is fetched
// from the shields or the origin (counted at the real origin server).
// Mutations caught: skipping tierAuthorized in HandleInternal.
func TestPeerNeedsTierCredential(t *testing.T) {
	c := newTestCluster(t, 2, 1, nil)
	stranger, _ := tierauth.New([]tierauth.KeyConfig{{ID: "tier1", Secret: strings.Repeat("77", 32)}})
	for i := range 4 {
		path := fmt.Sprintf("%st%d/96.ogg", peerPrefix, i)
		for _, cred := range []string{"", "x", stranger.Sign("GET", path, c.clock())} {
			resp, _ := c.get(t, c.edges[0].InternalURL()+path, tierauth.Header, cred, "Range", "bytes=0-99")
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s with credential %q: status %d, want 403", path, cred, resp.StatusCode)
			}
		}
	}
	if n := c.origin.MediaRequests(); n != 0 {
		t.Errorf("origin saw %d requests, want 0", n)
	}
	for _, s := range append(c.shields, c.edges...) {
		if n := s.fetch.attempts.Load(); n != 0 {
			t.Errorf("%s made %d upstream requests, want 0", s.cfg.Name, n)
		}
	}
}

// TestTierKeysRequired: an edge or a shield without tier_keys does not
// start, and the error names the field.
func TestTierKeysRequired(t *testing.T) {
	for _, cfg := range []Config{DefaultEdgeConfig(), DefaultShieldConfig()} {
		cfg.Upstreams = []string{"http://127.0.0.1:1"}
		cfg.Keys = []Key{testKey}
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), "tier_keys: required") {
			t.Errorf("%s without tier_keys: %v", cfg.Role, err)
		}
		cfg.TierKeys = []tierauth.KeyConfig{{ID: "a", Secret: "abcd"}}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "tier_keys[0].secret") {
			t.Errorf("%s with a short tier key: %v", cfg.Role, err)
		}
		cfg.TierKeys = []tierauth.KeyConfig{testTierKey}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: %v", cfg.Role, err)
		}
	}
}
