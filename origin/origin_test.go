package origin

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/country"
	"github.com/musiccdn/cdn/httprange/httprangetest"
	"github.com/musiccdn/cdn/identity"
	"github.com/musiccdn/cdn/origin/media"
	"github.com/musiccdn/cdn/origin/rights"
	"github.com/musiccdn/cdn/playticket"
	"github.com/musiccdn/cdn/tierauth"
	"github.com/musiccdn/cdn/urlsign"
)

var testNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// testIssuer stands in for the identity provider: a fixed key, so tokens
// are reproducible.
var testIssuer = identity.NewIssuerFromKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)), func() time.Time { return testNow })

// token is a bearer token of user in country cc.
func token(t testing.TB, user, cc string) string {
	t.Helper()
	tok, err := testIssuer.Issue(identity.User{ID: user, Country: cc}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + tok
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Identity.PublicKeys = []string{testIssuer.PublicKey()}
	cfg.Catalog = "synthetic:20"
	cfg.Seed = 7
	cfg.Keys = []KeyConfig{
		{ID: "k2", Secret: strings.Repeat("ab", 32)},
		{ID: "k1", Secret: strings.Repeat("cd", 16)},
	}
	cfg.TierKeys = []tierauth.KeyConfig{testTierKey}
	return cfg
}

var testTierKey = tierauth.KeyConfig{ID: "tier1", Secret: strings.Repeat("5a", 32)}

// testServer serves the origin's two handlers on two loopback servers.
// do sends /media/ and /metrics to the internal one (and signs /media/
// requests as a shield would); everything else to the public one.
type testServer struct {
	srv  *Server
	ts   *httptest.Server // public
	its  *httptest.Server // internal
	reg  *prometheus.Registry
	tier *tierauth.Keyring
}

// sign adds the tier credential to req as a shield would.
func (s *testServer) sign(req *http.Request) {
	req.Header.Set(tierauth.Header, s.tier.Sign(req.Method, req.URL.RequestURI(), testNow))
}

func newTestServer(t *testing.T, cfg Config, opts ...Option) *testServer {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts = append([]Option{WithClock(func() time.Time { return testNow })}, opts...)
	srv, err := New(cfg, nil, reg, opts...)
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	ts := httptest.NewServer(srv.PublicHandler()) // 127.0.0.1, ephemeral port
	t.Cleanup(ts.Close)
	its := httptest.NewServer(srv.InternalHandler())
	t.Cleanup(its.Close)
	kr, err := tierauth.New(cfg.TierKeys)
	if err != nil {
		t.Fatal(err)
	}
	return &testServer{srv: srv, ts: ts, its: its, reg: reg, tier: kr}
}

// pathCode is a request path and the status it must get.
type pathCode struct {
	path string
	code int
}

// expectCodes GETs each path (through do) and checks its status.
func (s *testServer) expectCodes(t *testing.T, cases []pathCode) {
	t.Helper()
	for _, tt := range cases {
		if resp, body := s.do(t, "GET", tt.path); resp.StatusCode != tt.code {
			t.Errorf("GET %s = %d %q, want %d", tt.path, resp.StatusCode, body, tt.code)
		}
	}
}

func (s *testServer) do(t *testing.T, method, path string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	base := s.ts.URL
	if strings.HasPrefix(path, "/media/") || path == "/metrics" || strings.HasPrefix(path, "/v1/rights/") {
		base = s.its.URL
	}
	req, err := http.NewRequest(method, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(path, "/media/") || strings.HasPrefix(path, "/v1/rights/") {
		s.sign(req)
	}
	// Manifests need a session: a user of the ?country= asked for (of
	// SE when that is not a country, so the mismatch is what answers).
	if strings.HasPrefix(path, "/v1/manifest/") {
		cc := req.URL.Query().Get("country")
		if !country.Valid(cc) {
			cc = "SE"
		}
		req.Header.Set("Authorization", token(t, "u1", cc))
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := s.ts.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp, body
}

// counter returns the value of the counter name with the given label
// values (name=value pairs), 0 if absent.
func counter(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want string // substring of the error, "" for valid
	}{
		{"valid", func(*Config) {}, ""},
		{"dir catalog", func(c *Config) { c.Catalog = "/srv/media" }, ""},
		{"any port", func(c *Config) { c.Listen = ":0" }, ""},
		{"no listen", func(c *Config) { c.Listen = "" }, "listen:"},
		{"listen without port", func(c *Config) { c.Listen = "localhost" }, "listen:"},
		{"bad port", func(c *Config) { c.Listen = "127.0.0.1:99999" }, "listen: bad port"},
		{"no name", func(c *Config) { c.Name = "" }, "name:"},
		{"no catalog", func(c *Config) { c.Catalog = "" }, "catalog:"},
		{"synthetic 0", func(c *Config) { c.Catalog = "synthetic:0" }, "catalog:"},
		{"synthetic x", func(c *Config) { c.Catalog = "synthetic:x" }, "catalog:"},
		{"synthetic too many", func(c *Config) { c.Catalog = "synthetic:2000000000" }, "catalog:"},
		{"no keys", func(c *Config) { c.Keys = nil }, "keys: at least one"},
		{"bad key id", func(c *Config) { c.Keys[1].ID = "k.1" }, "keys[1].id:"},
		{"long key id", func(c *Config) { c.Keys[0].ID = strings.Repeat("k", 17) }, "keys[0].id:"},
		{"duplicate key id", func(c *Config) { c.Keys[1].ID = "k2" }, "keys[1].id: key id \"k2\" used twice"},
		{"secret not hex", func(c *Config) { c.Keys[0].Secret = "zz" }, "keys[0].secret: not hex"},
		{"short secret", func(c *Config) { c.Keys[1].Secret = strings.Repeat("ab", 15) }, "keys[1].secret: 15 bytes"},
		{"zero ttl", func(c *Config) { c.TokenTTL = 0 }, "token_ttl:"},
		{"ttl beyond the edges' cap", func(c *Config) { c.TokenTTL = config.Duration(MaxTokenTTL + time.Second) }, "token_ttl:"},
		{"ttl at the cap", func(c *Config) { c.TokenTTL = config.Duration(MaxTokenTTL) }, ""},
	}
	for _, tt := range tests {
		cfg := testConfig()
		tt.mod(&cfg)
		err := cfg.Validate()
		if (err == nil) != (tt.want == "") || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate() = %v, want %q", tt.name, err, tt.want)
		}
	}
	// Several problems are all reported.
	cfg := testConfig()
	cfg.Name, cfg.TokenTTL = "", 0
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "name:") || !strings.Contains(err.Error(), "token_ttl:") {
		t.Errorf("Validate() = %v, want both name and token_ttl reported", err)
	}
	d := DefaultConfig()
	if d.TokenTTL != config.Duration(6*time.Hour) || d.Catalog != "synthetic:100000" {
		t.Errorf("DefaultConfig() = %+v", d)
	}
	if _, err := New(d, nil, nil); err == nil {
		t.Errorf("New(DefaultConfig()) without keys = nil error")
	}
}

func TestNewErrors(t *testing.T) {
	cfg := testConfig()
	cfg.Catalog = filepath.Join(t.TempDir(), "missing")
	if _, err := New(cfg, nil, nil); err == nil {
		t.Errorf("New with a missing catalog dir = nil error")
	}
	cfg = testConfig()
	cfg.RightsFile = filepath.Join(t.TempDir(), "missing.tsv")
	if _, err := New(cfg, nil, nil); err == nil {
		t.Errorf("New with a missing rights file = nil error")
	}
	// Registering twice in one registry fails cleanly, not by panic.
	reg := prometheus.NewRegistry()
	if _, err := New(testConfig(), nil, reg); err != nil {
		t.Fatal(err)
	}
	if _, err := New(testConfig(), nil, reg); err == nil {
		t.Errorf("second New on one registry = nil error")
	}
}

// TestMediaRanges runs the conformance table of httprangetest against the
// origin's internal /media/, as tier's TestRFC9110 runs it against an edge
// and a shield: the three answer every range and conditional request
// alike (the origin once had its own range code, which answered
// bytes=99999999999999999999- and max_ranges differently).
func TestMediaRanges(t *testing.T) {
	s := newTestServer(t, testConfig())
	syn := s.srv.Source().(*media.Synthetic)
	const id, kbps = "t3", 24
	i, _ := syn.Index(id)
	n := 0
	httprangetest.Run(t, httprangetest.Target{
		Size:         syn.Size(i, kbps),
		ETag:         syn.ETag(i, kbps, 0),
		LastModified: media.SyntheticEpoch,
		Do: func(tb testing.TB, method string, hdr http.Header) (*http.Response, []byte) {
			n++
			var args []string
			for k, v := range hdr {
				args = append(args, k, v[0])
			}
			return s.do(tb.(*testing.T), method, catalog.MediaPath(id, kbps, catalog.Audio), args...)
		},
		Bytes: func(start, end int64) []byte {
			b := make([]byte, end-start+1)
			syn.Fill(b, i, kbps, syn.Generation(i), start)
			return b
		},
		Check: func(tb testing.TB, resp *http.Response) {
			if ct := resp.Header.Get("Content-Type"); resp.StatusCode/100 == 2 && ct != "audio/ogg" && !strings.HasPrefix(ct, "multipart/byteranges;") {
				tb.Errorf("Content-Type = %q", ct)
			}
		},
	})
	var total float64
	for _, code := range []string{"200", "206", "304", "405", "412", "416"} {
		total += counter(t, s.reg, "origin_media_requests_total", "code", code)
	}
	if int(total) != n {
		t.Errorf("origin_media_requests_total sums to %v over the codes, want %d", total, n)
	}
}

func TestMediaErrors(t *testing.T) {
	s := newTestServer(t, testConfig())
	tests := []struct {
		method, path string
		code         int
	}{
		{"GET", "/media/t1/24.seek", 404}, // synthetic tracks have no seek table
		{"GET", "/media/t20/24.ogg", 404}, // catalog is t0..t19
		{"GET", "/media/x1/24.ogg", 404},
		{"GET", "/media/t1/128.ogg", 400}, // not a tier: a bad path, as at the edges
		{"GET", "/media/t1/024.ogg", 400},
		{"GET", "/media/t.1/24.ogg", 400},
		{"GET", "/media/t1/24.mp3", 400},
		{"GET", "/media/t1/x/24.ogg", 400},
		{"GET", "/media/../t1/24.ogg", 400},
		{"GET", "/media/t1/../24.ogg", 400},
		{"GET", "/media//24.ogg", 400},
		{"GET", "/media/", 400},
		{"POST", "/media/t1/24.ogg", 405},
		{"DELETE", "/media/t1/24.ogg", 405},
	}
	for _, tt := range tests {
		before := counter(t, s.reg, "origin_media_requests_total", "code", strconv.Itoa(tt.code))
		// Send the path as is: the client would clean dot segments.
		req, _ := http.NewRequest(tt.method, s.its.URL, nil)
		req.URL.Opaque = tt.path
		s.sign(req)
		resp, err := s.its.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.code {
			t.Errorf("%s %s = %d, want %d", tt.method, tt.path, resp.StatusCode, tt.code)
		}
		if len(body) > 100 || strings.Contains(string(body), "media:") {
			t.Errorf("%s %s: body %q is not a short reason", tt.method, tt.path, body)
		}
		if after := counter(t, s.reg, "origin_media_requests_total", "code", strconv.Itoa(tt.code)); after != before+1 {
			t.Errorf("%s %s: origin_media_requests_total{code=%d} went %v -> %v, want +1", tt.method, tt.path, tt.code, before, after)
		}
	}
	if resp, _ := s.do(t, "POST", "/media/t1/24.ogg"); resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("405 Allow = %q, want \"GET, HEAD\"", resp.Header.Get("Allow"))
	}
}

// failingSource serves one object whose reads fail past a given offset,
// as a disk error would.
type failingSource struct {
	media.Source
	failAt int64
}

type failingFile struct {
	failAt int64
}

func (f failingFile) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) <= f.failAt {
		return len(p), nil
	}
	n := max(0, int(f.failAt-off))
	return n, errors.New("disk on fire")
}

func (failingFile) Close() error { return nil }

func (s failingSource) Open(ctx context.Context, id string, kbps int, kind catalog.Kind) (media.Object, media.File, error) {
	return media.Object{Track: id, Kbps: kbps, Kind: kind, Size: 1 << 20, ETag: `"f"`, ModTime: testNow}, failingFile{s.failAt}, nil
}

func TestMediaReadErrorAborts(t *testing.T) {
	src := failingSource{Source: media.NewSynthetic(1, 1), failAt: 300 << 10}
	s := newTestServer(t, testConfig(), WithSource(src))
	for _, hdr := range [][]string{nil, {"Range", "bytes=0-9,400000-400009"}} {
		req, _ := http.NewRequest("GET", s.its.URL+"/media/t0/24.ogg", nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		s.sign(req)
		resp, err := s.its.Client().Do(req)
		if err != nil {
			continue // aborted before the headers: fine too
		}
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Errorf("Range %v: a failed read gave a body that looks complete", hdr)
		}
	}
	if got := counter(t, s.reg, "origin_media_requests_total"); got == 0 {
		t.Errorf("aborted requests not counted")
	}
}

func TestMediaDir(t *testing.T) {
	root := t.TempDir()
	write := func(rel string, b []byte) {
		p := filepath.Join(root, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p+".tmp", b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(p+".tmp", p); err != nil {
			t.Fatal(err)
		}
	}
	v1 := bytes.Repeat([]byte("v1-abcdefg"), 5000)
	v2 := bytes.Repeat([]byte("v2-ABCDEFG"), 5000)
	write("song/96.ogg", v1)
	write("song/96.seek", []byte("seektable"))
	cfg := testConfig()
	cfg.Catalog = root
	s := newTestServer(t, cfg)

	resp, body := s.do(t, "GET", "/media/song/96.ogg", "Range", "bytes=10-29")
	if resp.StatusCode != 206 || !bytes.Equal(body, v1[10:30]) {
		t.Fatalf("range of v1 = %d %q, want 206 %q", resp.StatusCode, body, v1[10:30])
	}
	etag1 := resp.Header.Get("ETag")
	resp, body = s.do(t, "GET", "/media/song/96.seek")
	if resp.StatusCode != 200 || string(body) != "seektable" || resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("seek table = %d %q %q", resp.StatusCode, body, resp.Header.Get("Content-Type"))
	}

	write("song/96.ogg", v2)
	later := time.Now().Add(time.Minute)
	os.Chtimes(filepath.Join(root, "song/96.ogg"), later, later)
	// A revalidation with the old ETag gets the new version.
	resp, body = s.do(t, "GET", "/media/song/96.ogg", "If-None-Match", etag1)
	if resp.StatusCode != 200 || !bytes.Equal(body, v2) || resp.Header.Get("ETag") == etag1 {
		t.Errorf("after replace: %d, ETag %s (old %s), body matches v2: %v", resp.StatusCode, resp.Header.Get("ETag"), etag1, bytes.Equal(body, v2))
	}
	// A range conditional on the old version gets the whole new one, never
	// a mix of versions.
	resp, body = s.do(t, "GET", "/media/song/96.ogg", "Range", "bytes=30-49", "If-Range", etag1)
	if resp.StatusCode != 200 || !bytes.Equal(body, v2) {
		t.Errorf("If-Range old ETag after replace = %d, want 200 with v2", resp.StatusCode)
	}
}

func getJSON(t *testing.T, s *testServer, path string, dst any) *http.Response {
	t.Helper()
	resp, body := s.do(t, "GET", path)
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(body, dst); err != nil {
			t.Fatalf("GET %s: %v in %q", path, err, body)
		}
	}
	return resp
}

func TestManifest(t *testing.T) {
	cfg := testConfig()
	s := newTestServer(t, cfg)
	syn := s.srv.Source().(*media.Synthetic)
	rs := rights.Synthetic{Seed: cfg.Seed}
	const id = "t5"
	allowed, denied := rs.FindAllowed(id), rs.FindDenied(id)

	var m Manifest
	resp := getJSON(t, s, "/v1/manifest/"+id+"?country="+allowed, &m)
	if resp.StatusCode != 200 {
		t.Fatalf("manifest(%s, %s) = %d", id, allowed, resp.StatusCode)
	}
	if resp.Header.Get("Cache-Control") != "private, no-store" || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", resp.Header)
	}
	i, _ := syn.Index(id)
	wantExp := testNow.Add(6 * time.Hour).Unix()
	if m.TrackID != id || m.DurationMS != syn.DurationMS(i) || m.Samples != syn.Samples(i) || m.SampleRate != 44100 || m.Country != allowed || m.Expires != wantExp || len(m.Tiers) != len(catalog.Tiers) {
		t.Fatalf("manifest = %+v", m)
	}
	kr := s.srv.Keyring()
	other, _ := urlsign.NewKeyring(urlsign.Key{ID: "k2", Secret: bytes.Repeat([]byte{1}, 32)})
	for k, tier := range m.Tiers {
		kbps := catalog.Tiers[k]
		if tier.Kbps != kbps || tier.Bytes != syn.Size(i, kbps) || tier.ETag != syn.ETag(i, kbps, 0) || tier.SeekURL != "" {
			t.Errorf("tier %d = %+v", k, tier)
		}
		path, tok, ok := strings.Cut(tier.URL, "?t=")
		if !ok || path != catalog.EdgePath(id, kbps, catalog.Audio) {
			t.Fatalf("tier %d url = %q", k, tier.URL)
		}
		obj := []byte(strings.TrimPrefix(path, "/a/"))
		c, err := kr.Verify([]byte(tok), obj, testNow)
		if err != nil || string(c.Country[:]) != allowed || c.Expiry != wantExp {
			t.Errorf("Verify(token, %s) = %+v, %v; want country %s expiry %d", obj, c, err, allowed, wantExp)
		}
		// Bound to the object (issue 10 row 9): not another track, tier
		// or kind.
		for _, o := range []string{"t6/" + strconv.Itoa(kbps) + ".ogg", id + "/" + strconv.Itoa(catalog.Tiers[(k+1)%len(catalog.Tiers)]) + ".ogg", id + "/" + strconv.Itoa(kbps) + ".seek", id} {
			if _, err := kr.Verify([]byte(tok), []byte(o), testNow); !errors.Is(err, urlsign.ErrSignature) {
				t.Errorf("Verify(token of %s, %s) = %v, want ErrSignature", obj, o, err)
			}
		}
		if _, err := kr.Verify([]byte(tok), obj, time.Unix(wantExp, 0)); !errors.Is(err, urlsign.ErrExpired) {
			t.Errorf("Verify(token) at expiry = %v, want ErrExpired", err)
		}
		if _, err := other.Verify([]byte(tok), obj, testNow); !errors.Is(err, urlsign.ErrSignature) {
			t.Errorf("Verify(token) under another key = %v, want ErrSignature", err)
		}
		// The token names its country; another country's token is
		// another signature.
		forged := strings.Replace(tok, "."+allowed+".", "."+denied+".", 1)
		if _, err := kr.Verify([]byte(forged), obj, testNow); !errors.Is(err, urlsign.ErrSignature) {
			t.Errorf("Verify(token with country changed) = %v, want ErrSignature", err)
		}
	}

	s.expectCodes(t, []pathCode{
		{"/v1/manifest/" + id + "?country=" + denied, 403},
		{"/v1/manifest/t20?country=SE", 404},
		{"/v1/manifest/nosuch?country=SE", 404},
		{"/v1/manifest/" + id + "?country=se", 400},
		{"/v1/manifest/" + id + "?country=XK", 400},
		{"/v1/manifest/" + id + "?country=SWE", 400},
		{"/v1/manifest/t.5?country=SE", 400},
		{"/v1/manifest/a/b?country=SE", 400},
		{"/v1/manifest/?country=SE", 400},
	})
	if resp, _ := s.do(t, "POST", "/v1/manifest/"+id+"?country="+allowed); resp.StatusCode != 405 {
		t.Errorf("POST manifest = %d, want 405", resp.StatusCode)
	}
	if got := counter(t, s.reg, "origin_api_requests_total", "handler", "manifest", "code", "403"); got != 1 {
		t.Errorf("origin_api_requests_total{manifest,403} = %v, want 1", got)
	}
}

// TestRights: the edges' rights check answers as a manifest would, without
// a session. Mutations caught: skipping the rights check (the denied row
// is 204), skipping the track lookup (the unknown row is 204).
func TestRights(t *testing.T) {
	cfg := testConfig()
	s := newTestServer(t, cfg)
	rs := rights.Synthetic{Seed: cfg.Seed}
	allowed, denied := rs.FindAllowed("t5"), rs.FindDenied("t5")
	s.expectCodes(t, []pathCode{
		{"/v1/rights/t5?country=" + allowed, 204},
		{"/v1/rights/t5?country=" + denied, 403},
		{"/v1/rights/t20?country=SE", 404},
		{"/v1/rights/t5?country=se", 400},
		{"/v1/rights/t5", 400},
	})
}

// TestManifestSession: a manifest needs a valid bearer token, its country
// is the token's, and it carries a play id and a ticket binding the user,
// the track, the country and the duration. Mutations caught: taking the
// country from the query (the "query of another country" row is 200 and
// the no-query row has no country), no auth check (401 rows), a ticket
// minted for another user or without the duration (the claims check).
func TestManifestSession(t *testing.T) {
	cfg := testConfig()
	s := newTestServer(t, cfg)
	rs := rights.Synthetic{Seed: cfg.Seed}
	const id = "t5"
	allowed, denied := rs.FindAllowed(id), rs.FindDenied(id)
	get := func(path, auth string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", s.ts.URL+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := s.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	other := identity.NewIssuerFromKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, 32)), func() time.Time { return testNow })
	otherTok, _ := other.Issue(identity.User{ID: "u1", Country: allowed}, time.Hour)
	expired := identity.NewIssuerFromKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)), func() time.Time { return testNow.Add(-2 * time.Hour) })
	expTok, _ := expired.Issue(identity.User{ID: "u1", Country: allowed}, time.Hour)
	for _, tt := range []struct {
		name, path, auth string
		code             int
	}{
		{"no token", "/v1/manifest/" + id, "", 401},
		{"token of another provider", "/v1/manifest/" + id, "Bearer " + otherTok, 401},
		{"expired token", "/v1/manifest/" + id, "Bearer " + expTok, 401},
		{"basic", "/v1/manifest/" + id, "Basic dTE6eA==", 401},
		{"no query: the token's country", "/v1/manifest/" + id, token(t, "u1", allowed), 200},
		{"denied in the token's country", "/v1/manifest/" + id, token(t, "u1", denied), 403},
		{"query of another country", "/v1/manifest/" + id + "?country=" + allowed, token(t, "u1", denied), 400},
		{"query of the same country", "/v1/manifest/" + id + "?country=" + allowed, token(t, "u1", allowed), 200},
	} {
		resp, body := get(tt.path, tt.auth)
		if resp.StatusCode != tt.code {
			t.Errorf("%s: %d %s, want %d", tt.name, resp.StatusCode, body, tt.code)
		}
		if tt.code == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate = %q", tt.name, resp.Header.Get("WWW-Authenticate"))
		}
	}
	var m1, m2 Manifest
	_, b := get("/v1/manifest/"+id, token(t, "alice", allowed))
	json.Unmarshal(b, &m1)
	_, b = get("/v1/manifest/"+id, token(t, "alice", allowed))
	json.Unmarshal(b, &m2)
	if m1.Country != allowed || m1.PlayID == "" || m1.PlayID == m2.PlayID {
		t.Fatalf("manifests %+v and %+v: want the token's country and two play ids", m1, m2)
	}
	c, err := s.srv.Tickets().Verify(m1.PlayTicket)
	want := playticket.Claims{PlayID: m1.PlayID, UserID: "alice", TrackID: id, Country: allowed, IssuedMS: testNow.UnixMilli(), DurationMS: m1.DurationMS}
	if err != nil || c != want {
		t.Errorf("ticket claims %+v, %v; want %+v", c, err, want)
	}
	if at, ok := playticket.IDTime(m1.PlayID); !ok || !at.Equal(testNow) {
		t.Errorf("play id %q time %v, %v", m1.PlayID, at, ok)
	}
}

func TestManifestDirAndRightsFile(t *testing.T) {
	root := t.TempDir()
	for _, rel := range []string{"a/24.ogg", "a/24.seek", "a/96.ogg", "b/24.ogg"} {
		p := filepath.Join(root, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(rel), 0o644)
	}
	os.WriteFile(filepath.Join(root, "a", "track.json"), []byte(`{"duration_ms":180000}`), 0o644)
	cfg := testConfig()
	cfg.Catalog = root

	// No rights file: worldwide.
	s := newTestServer(t, cfg)
	var m Manifest
	if resp := getJSON(t, s, "/v1/manifest/a?country=ZW", &m); resp.StatusCode != 200 {
		t.Fatalf("worldwide manifest = %d", resp.StatusCode)
	}
	if m.DurationMS != 180000 || len(m.Tiers) != 2 || m.Tiers[0].SeekURL == "" || m.Tiers[1].SeekURL != "" || m.Tiers[0].Bytes != int64(len("a/24.ogg")) {
		t.Errorf("manifest = %+v", m)
	}
	if p, _, _ := strings.Cut(m.Tiers[0].SeekURL, "?t="); p != "/a/a/24.seek" {
		t.Errorf("seek_url = %q", m.Tiers[0].SeekURL)
	}
	// The seek table has a token of its own: the audio file's does not
	// open it, nor the other way round (issue 10 row 9).
	_, audioTok, _ := strings.Cut(m.Tiers[0].URL, "?t=")
	_, seekTok, _ := strings.Cut(m.Tiers[0].SeekURL, "?t=")
	kr := s.srv.Keyring()
	if _, err := kr.Verify([]byte(seekTok), []byte("a/24.seek"), testNow); err != nil {
		t.Errorf("seek token: %v", err)
	}
	if _, err := kr.Verify([]byte(audioTok), []byte("a/24.seek"), testNow); err == nil {
		t.Error("the audio token opens the seek table")
	}
	if _, err := kr.Verify([]byte(seekTok), []byte("a/24.ogg"), testNow); err == nil {
		t.Error("the seek token opens the audio file")
	}

	// With a rights file: only its rows, within their windows.
	rf := filepath.Join(t.TempDir(), "rights.tsv")
	os.WriteFile(rf, []byte("a\tSE\t-\t2026-06-01T12:00:01Z\nb\tSE\t2026-06-01T12:00:01Z\t-\n"), 0o644)
	cfg.RightsFile = rf
	s = newTestServer(t, cfg)
	s.expectCodes(t, []pathCode{
		{"/v1/manifest/a?country=SE", 200},
		{"/v1/manifest/a?country=NO", 403}, // no row
		{"/v1/manifest/b?country=SE", 403}, // window opens a second after testNow
		{"/v1/manifest/c?country=SE", 404},
	})
}

func TestNext(t *testing.T) {
	cfg := testConfig()
	s := newTestServer(t, cfg)
	rs := rights.Synthetic{Seed: cfg.Seed}
	// reference: the next n in index order, wrapping, skipping denied.
	ref := func(start, n int, cc string) []string {
		out := []string{}
		for k := 1; k < 20 && len(out) < n; k++ {
			id := "t" + strconv.Itoa((start+k)%20)
			if cc == "" || rs.Allowed(id, cc, testNow) {
				out = append(out, id)
			}
		}
		return out
	}
	// A country that denies some track of the catalog, to see skipping.
	cc := ""
	for k := 0; k < 20 && cc == ""; k++ {
		cc = rs.FindDenied("t" + strconv.Itoa(k))
	}
	for _, tt := range []struct {
		start, n int
		cc       string
	}{
		{0, 3, ""}, {18, 3, ""}, {19, 5, ""}, {5, 19, ""}, {5, 30, ""},
		{0, 3, cc}, {10, 10, cc}, {3, 50, cc},
	} {
		path := fmt.Sprintf("/v1/recs/next/t%d?n=%d", tt.start, tt.n)
		if tt.cc != "" {
			path += "&country=" + tt.cc
		}
		var got NextTracks
		if resp := getJSON(t, s, path, &got); resp.StatusCode != 200 {
			t.Fatalf("GET %s = %d", path, resp.StatusCode)
		}
		want := ref(tt.start, tt.n, tt.cc)
		if strings.Join(got.Tracks, ",") != strings.Join(want, ",") {
			t.Errorf("GET %s = %q, want %q", path, got.Tracks, want)
		}
	}
	var got NextTracks
	getJSON(t, s, "/v1/recs/next/t4", &got)
	if len(got.Tracks) != DefaultNext || got.Tracks[0] != "t5" {
		t.Errorf("default n: %q", got.Tracks)
	}
	s.expectCodes(t, []pathCode{
		{"/v1/recs/next/t20", 404},
		{"/v1/recs/next/t.1", 400},
		{"/v1/recs/next/t1?n=0", 400},
		{"/v1/recs/next/t1?n=51", 400},
		{"/v1/recs/next/t1?n=x", 400},
		{"/v1/recs/next/t1?country=se", 400},
	})
}

func TestNextDirCatalog(t *testing.T) {
	root := t.TempDir()
	for _, id := range []string{"c", "a", "b"} {
		os.MkdirAll(filepath.Join(root, id), 0o755)
		os.WriteFile(filepath.Join(root, id, "24.ogg"), []byte("x"), 0o644)
	}
	cfg := testConfig()
	cfg.Catalog = root
	s := newTestServer(t, cfg)
	var got NextTracks
	getJSON(t, s, "/v1/recs/next/b?n=5&country=SE", &got)
	if strings.Join(got.Tracks, ",") != "c,a" {
		t.Errorf("next of b = %q, want [c a]", got.Tracks)
	}
}

func TestOps(t *testing.T) {
	s := newTestServer(t, testConfig())
	if resp, body := s.do(t, "GET", "/healthz"); resp.StatusCode != 200 || string(body) != "ok\n" {
		t.Errorf("/healthz = %d %q", resp.StatusCode, body)
	}
	if resp, _ := s.do(t, "GET", "/readyz"); resp.StatusCode != 200 {
		t.Errorf("/readyz = %d, want 200", resp.StatusCode)
	}
	s.srv.SetReady(false)
	if resp, _ := s.do(t, "GET", "/readyz"); resp.StatusCode != 503 {
		t.Errorf("/readyz draining = %d, want 503", resp.StatusCode)
	}
	s.do(t, "GET", "/media/t1/24.ogg", "Range", "bytes=0-0")
	resp, body := s.do(t, "GET", "/metrics")
	for _, name := range []string{"origin_media_requests_total{code=\"206\"} 1", "origin_media_request_duration_seconds_bucket", "origin_media_bytes_sent_total 1"} {
		if resp.StatusCode != 200 || !strings.Contains(string(body), name) {
			t.Errorf("/metrics lacks %q", name)
		}
	}
	s.srv.Mount("GET /v1/hello", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hi") }))
	if resp, body := s.do(t, "GET", "/v1/hello"); resp.StatusCode != 200 || string(body) != "hi" {
		t.Errorf("mounted handler = %d %q", resp.StatusCode, body)
	}
	if resp, _ := s.do(t, "GET", "/nothing"); resp.StatusCode != 404 {
		t.Errorf("/nothing = %d, want 404", resp.StatusCode)
	}
}

func TestConfigFile(t *testing.T) {
	doc := `listen: 127.0.0.1:9000
name: origin-1
catalog: synthetic:50
seed: 3
token_ttl: 30m
keys:
  - id: k1
    secret: 00112233445566778899aabbccddeeff
  - id: k0
    secret: nothex
tier_keys:
  - id: t1
    secret: 000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f
identity:
  public_keys: ["` + testIssuer.PublicKey() + `"]
`
	cfg := DefaultConfig()
	err := config.Parse([]byte(doc), "origin.yaml", &cfg)
	if err == nil || !strings.Contains(err.Error(), "origin.yaml:10: keys[1].secret: not hex") {
		t.Errorf("Parse = %v, want an error at origin.yaml:10 naming keys[1].secret", err)
	}
	cfg = DefaultConfig()
	if err := config.Parse([]byte(strings.Replace(doc, "nothex", strings.Repeat("0f", 16), 1)), "origin.yaml", &cfg); err != nil {
		t.Fatalf("Parse = %v", err)
	}
	if cfg.Listen != "127.0.0.1:9000" || cfg.Name != "origin-1" || cfg.Catalog != "synthetic:50" || cfg.Seed != 3 ||
		cfg.TokenTTL != config.Duration(30*time.Minute) || len(cfg.Keys) != 2 || cfg.Keys[1].ID != "k0" || cfg.RightsFile != "" {
		t.Errorf("Parse = %+v", cfg)
	}
	if err := config.Parse([]byte("listen: x\nbogus: 1\n"), "o.yaml", &cfg); err == nil || !strings.Contains(err.Error(), "o.yaml:2") {
		t.Errorf("Parse(unknown field) = %v, want an error at line 2", err)
	}
}
