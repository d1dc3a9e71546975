package tier

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/origin/media"
	"github.com/musiccdn/cdn/origin/origintest"
	"github.com/musiccdn/cdn/tierauth"
	"github.com/musiccdn/cdn/urlsign"
)

// testOrigin is the real origin (package origintest) over a synthetic
// catalog of n tracks (seed 42), accepting testTierKey, with its catalog
// at hand to compute the bytes a test expects.
type testOrigin struct {
	*origintest.Origin
	cat *media.Synthetic
}

// newTestOrigin starts it on the POP's clock (the tier credential is
// judged by the origin's clock).
func newTestOrigin(t testing.TB, n int, clock func() time.Time) *testOrigin {
	cat := media.NewSynthetic(n, 42)
	o := origintest.Start(t, origintest.Config{Source: cat, TierKeys: []tierauth.KeyConfig{testTierKey}, Clock: clock})
	return &testOrigin{Origin: o, cat: cat}
}

// testPOP is an origin, one shield and one edge on loopback.
type testPOP struct {
	origin *testOrigin
	shield *Server
	edge   *Server
	keys   *urlsign.Keyring
	client *http.Client
	testClock
}

// testClock is a test POP's clock, moved by hand (advance). It starts at
// testEpoch once started.
type testClock struct{ now atomic.Pointer[time.Time] }

func (c *testClock) start() {
	t := testEpoch
	c.now.Store(&t)
}

func (c *testClock) clock() time.Time { return *c.now.Load() }

func (c *testClock) advance(d time.Duration) {
	t := c.clock().Add(d)
	c.now.Store(&t)
}

// testEpoch is the time every test POP's clock starts at.
var testEpoch = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// testOriginURL, as a tweak's prefetch.origin_url, stands for the test
// origin's URL (not known when the tweak is written).
const testOriginURL = "http://test-origin"

var (
	testKey     = Key{ID: "k1", Secret: "000102030405060708090a0b0c0d0e0f"}
	testTierKey = tierauth.KeyConfig{ID: "tier1", Secret: "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"}
)

func newTestPOP(t testing.TB, tweak func(edge, shield *Config)) *testPOP {
	p := &testPOP{}
	p.start()
	clock := p.clock
	p.origin = newTestOrigin(t, 100, clock)
	ec, sc := popConfigs(p.origin.URL, 256<<20)
	sc.UpstreamTimeout = config.Duration(2 * time.Second)
	ec.UpstreamTimeout = config.Duration(4 * time.Second)
	if tweak != nil {
		tweak(&ec, &sc)
	}
	p.shield = startServer(t, sc, clock)
	ec.Upstreams = []string{p.shield.URL()}
	if tweak != nil {
		tweak(&ec, &sc)
	}
	if ec.Prefetch.OriginURL == testOriginURL {
		ec.Prefetch.OriginURL = p.origin.URL
	}
	p.edge = startServer(t, ec, clock)
	var err error
	if p.keys, err = ec.Keyring(); err != nil {
		t.Fatal(err)
	}
	p.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}, Timeout: 30 * time.Second}
	t.Cleanup(p.client.CloseIdleConnections)
	return p
}

// popConfigs are the configurations of a test POP's edge-1 and shield-1
// (the shield filling from origin), each with a memory tier of memory
// bytes. No country header, as cmd/pop on loopback: the tests that check
// it (fail closed) configure it themselves. The edge's upstream is the
// shield's URL, known once it is started.
func popConfigs(origin string, memory config.Size) (edge, shield Config) {
	shield = DefaultShieldConfig()
	shield.Name = "shield-1"
	shield.Upstreams = []string{origin}
	shield.TierKeys = []tierauth.KeyConfig{testTierKey}
	shield.Cache.MemoryBytes = memory
	edge = DefaultEdgeConfig()
	edge.Name = "edge-1"
	edge.Keys = []Key{testKey}
	edge.TierKeys = []tierauth.KeyConfig{testTierKey}
	edge.Cache.MemoryBytes = memory
	return edge, shield
}

func startServer(t testing.TB, cfg Config, clock func() time.Time) *Server {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := New(cfg, logger, prometheus.NewRegistry(), clock)
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.Name, err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown %s: %v", cfg.Name, err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve %s: %v", cfg.Name, err)
		}
	})
	return s
}

// url returns an edge URL for track/kbps with a token for country.
func (p *testPOP) url(track string, kbps int, country string) string {
	return p.signed(fmt.Sprintf("%s/%d.ogg", track, kbps), country)
}

// signed returns the edge URL of object ("<track>/<kbps>.<ext>") with a
// token for country, valid for an hour.
func (p *testPOP) signed(object, country string) string {
	return p.edge.URL() + "/a/" + object + "?t=" + p.keys.Sign(object, country, p.clock().Add(time.Hour))
}

func (p *testPOP) get(t testing.TB, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return p.do(t, req)
}

// do sends req and reads the whole answer.
func (p *testPOP) do(t testing.TB, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	return roundTrip(t, p.client, req)
}

// roundTrip sends req with client and reads the whole answer, or fails
// the test.
func roundTrip(t testing.TB, client *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return resp, body
}

// expect returns the origin's bytes [start, end] of track t<i> at kbps.
func (p *testPOP) expect(i, kbps int, start, end int64) []byte {
	b := make([]byte, end-start+1)
	p.origin.cat.Fill(b, i, kbps, p.origin.cat.Generation(i), start)
	return b
}

func freePort(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
