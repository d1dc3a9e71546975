package tier

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/musiccdn/cdn/internal/wait"
	"github.com/musiccdn/cdn/tierauth"

	"github.com/musiccdn/cdn/config"
)

// scriptOrigin is a real HTTP origin whose answer for each path is set
// by the test: the upstream of an http route. It stamps Date from the
// test clock and answers If-None-Match / If-Modified-Since itself, as an
// origin would, so that revalidation is exercised end to end. It stays a
// stand-in, not origintest: http routes front arbitrary HTTP upstreams
// whose Cache-Control, Vary, status codes and validators the tests script
// per path, none of which the origin's /media/ serves.
type scriptOrigin struct {
	srv *httptest.Server
	now func() time.Time

	mu   sync.Mutex
	resp map[string]scripted
	hits map[string]int
	last map[string]http.Header
	gate chan struct{} // when set, requests wait for it to close
}

type scripted struct {
	status int
	hdr    []string // name, value pairs
	body   string
}

func newScriptOrigin(t testing.TB, now func() time.Time) *scriptOrigin {
	o := &scriptOrigin{now: now, resp: map[string]scripted{}, hits: map[string]int{}, last: map[string]http.Header{}}
	o.srv = httptest.NewServer(http.HandlerFunc(o.serve))
	t.Cleanup(o.srv.Close)
	return o
}

func (o *scriptOrigin) set(path string, s scripted) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.resp[path] = s
}

func (o *scriptOrigin) count(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.hits[path]
}

func (o *scriptOrigin) lastReq(path string) http.Header {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.last[path]
}

func (o *scriptOrigin) serve(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	o.hits[r.URL.Path]++
	o.last[r.URL.Path] = r.Header.Clone()
	s, ok := o.resp[r.URL.Path]
	gate := o.gate
	o.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Date", o.now().UTC().Format(http.TimeFormat))
	for i := 0; i+1 < len(s.hdr); i += 2 {
		h.Add(s.hdr[i], s.hdr[i+1])
	}
	status := s.status
	if status == 0 {
		status = 200
	}
	if status == 200 {
		if inm := r.Header.Get("If-None-Match"); inm != "" && inm == h.Get("ETag") {
			w.WriteHeader(304)
			return
		}
		if ims := r.Header.Get("If-Modified-Since"); ims != "" && r.Header.Get("If-None-Match") == "" && ims == h.Get("Last-Modified") {
			w.WriteHeader(304)
			return
		}
	}
	h.Set("Content-Length", strconv.Itoa(len(s.body)))
	w.WriteHeader(status)
	if r.Method != "HEAD" {
		io.WriteString(w, s.body)
	}
}

// httpPOP is a scripted origin, one shield and one edge, each with the
// audio route and an http route for /t/.
type httpPOP struct {
	origin *scriptOrigin
	shield *Server
	edge   *Server
	client *http.Client
	testClock
}

func newHTTPPOP(t testing.TB, tweak func(edge, shield *Config)) *httpPOP {
	p := &httpPOP{}
	p.start()
	clock := p.clock
	p.origin = newScriptOrigin(t, clock)
	routes := []Route{{Mode: ModeAudio}, {Prefix: "/t/", Mode: ModeHTTP, MaxObjectSize: 64 << 10}}
	ec, sc := popConfigs(p.origin.srv.URL, 64<<20)
	sc.Routes, ec.Routes = routes, routes
	sc.UpstreamTimeout = config.Duration(5 * time.Second)
	ec.UpstreamTimeout = config.Duration(5 * time.Second)
	if tweak != nil {
		tweak(&ec, &sc)
	}
	p.shield = startServer(t, sc, clock)
	ec.Upstreams = []string{p.shield.URL()}
	p.edge = startServer(t, ec, clock)
	p.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}, Timeout: 30 * time.Second}
	t.Cleanup(p.client.CloseIdleConnections)
	return p
}

func (p *httpPOP) do(t testing.TB, method, path string, hdr []string, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, p.edge.URL()+path, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, b := roundTrip(t, p.client, req)
	return resp, string(b)
}

// step is one request of a case: the origin's answer should it be
// asked, and what the client must see.
type step struct {
	advance  time.Duration
	method   string // default GET
	hdr      []string
	origin   *scripted // nil: keep the previous answer
	status   int
	body     string // "-": not checked
	upstream int    // origin requests this step causes; -1: not checked
	want     []string
}

// TestRFC9111 drives an http route through a real edge -> shield ->
// origin chain and checks each answer against the section of RFC 9111
// (or RFC 5861, 8246, 9211) named in the case. "upstream" counts the
// origin's requests, so "0" means both caches answered.
//
// Mutations tried (each made this test fail at the case named; most
// also fail a unit table in package httpcache):
//   - Storable ignoring no-store: "§5.2.2.5 no-store".
//   - Storable ignoring Authorization: "§3.5 Authorization without public".
//   - Storable storing private: "§5.2.2.7 private".
//   - FreshnessLifetime preferring max-age to s-maxage: "§5.2.2.10".
//   - Age.Current without resident time: "§4.2.3 Age grows".
//   - ParseAge taking the first member of a list: "§5.1 an invalid Age".
//   - SecondaryKey.Matches always true: "§4.1 Vary".
//   - Update304 appending instead of replacing: "§4.3.4 the 304 updates".
//   - invalidate() a no-op: "§4.4 POST invalidates".
//   - Decide ignoring stale-while-revalidate: "RFC 5861 §3".
//   - StaleIfError always false: "RFC 5861 §4".
//   - StaleIfError ignoring must-revalidate: "§5.2.2.2 must-revalidate".
//   - Decide ignoring immutable: "RFC 8246 immutable".
//   - combine() refusing every piece, or ranges of stored responses
//     ignored: "§3.4 combining".
//   - the only-if-cached check removed: "§5.2.1.7".
//   - qualified no-cache fields stored: "§5.2.2.4 qualified no-cache".
//   - Surrogate-Control not consulted: "Surrogate-Control max-age".
func TestRFC9111(t *testing.T) {
	p := newHTTPPOP(t, nil)
	ok := func(hdr ...string) *scripted { return &scripted{status: 200, hdr: hdr, body: "hello"} }
	cases := []struct {
		name  string
		steps []step
	}{
		{"§3 a response with max-age is stored and reused", []step{
			{origin: ok("Cache-Control", "max-age=60"), status: 200, body: "hello", upstream: 1},
			{status: 200, body: "hello", upstream: 0, want: []string{"Age", "0"}},
		}},
		{"§5.2.2.5 no-store is never stored", []step{
			{origin: ok("Cache-Control", "no-store, max-age=60"), status: 200, body: "hello", upstream: 1},
			{status: 200, body: "hello", upstream: 1},
		}},
		{"§5.2.2.7 private is not stored by a shared cache", []step{
			{origin: ok("Cache-Control", "private, max-age=60"), status: 200, upstream: 1},
			{status: 200, upstream: 1},
		}},
		{"§3.5 Authorization without public is not stored", []step{
			{hdr: []string{"Authorization", "Bearer a"}, origin: ok("Cache-Control", "max-age=60"), status: 200, upstream: 1},
			{hdr: []string{"Authorization", "Bearer a"}, status: 200, upstream: 1},
		}},
		{"§3.5 Authorization with public is stored", []step{
			{hdr: []string{"Authorization", "Bearer a"}, origin: ok("Cache-Control", "public, max-age=60"), status: 200, upstream: 1},
			{hdr: []string{"Authorization", "Bearer b"}, status: 200, upstream: 0},
		}},
		{"§5.2.2.10 s-maxage over max-age in a shared cache", []step{
			{origin: ok("Cache-Control", "max-age=1, s-maxage=100"), status: 200, upstream: 1},
			{advance: 50 * time.Second, status: 200, upstream: 0},
		}},
		{"§4.2.1 Expires minus Date", []step{
			{origin: ok("Expires", time.Date(2026, 11, 26, 14, 0, 0, 0, time.UTC).Format(http.TimeFormat)), status: 200, upstream: 1},
			{advance: 10 * time.Second, status: 200, upstream: 0},
		}},
		{"§4.2.2 heuristic freshness from Last-Modified", []step{
			{origin: ok("Last-Modified", "Wed, 26 Nov 2025 12:00:00 GMT"), status: 200, upstream: 1},
			{advance: time.Hour, status: 200, upstream: 0},
		}},
		{"§4.2.2 no heuristic without Last-Modified", []step{
			{origin: ok(), status: 200, upstream: 1},
			{status: 200, upstream: 1},
		}},
		{"§4.2.3 Age grows with resident time and is sent", []step{
			{origin: ok("Cache-Control", "max-age=60"), status: 200, upstream: 1},
			{advance: 30 * time.Second, status: 200, upstream: 0, want: []string{"Age", "30"}},
			{advance: 31 * time.Second, status: 200, upstream: 1, want: []string{"Age", "0"}},
		}},
		{"§4.2.3 an upstream Age counts toward staleness", []step{
			{origin: ok("Cache-Control", "max-age=60", "Age", "59"), status: 200, upstream: 1, want: []string{"Age", "59"}},
			{advance: 2 * time.Second, status: 200, upstream: 1},
		}},
		{"§5.1 an invalid Age makes the response stale", []step{
			{origin: ok("Cache-Control", "max-age=60", "Age", "1, 2"), status: 200, upstream: 1},
			{status: 200, upstream: 1},
		}},
		{"§4.1 Vary: a variant serves only matching requests", []step{
			{hdr: []string{"Accept-Language", "sv"}, origin: &scripted{hdr: []string{"Cache-Control", "max-age=60", "Vary", "Accept-Language"}, body: "hej"}, status: 200, body: "hej", upstream: 1},
			{hdr: []string{"Accept-Language", "sv"}, status: 200, body: "hej", upstream: 0},
			{hdr: []string{"Accept-Language", "en"}, origin: &scripted{hdr: []string{"Cache-Control", "max-age=60", "Vary", "Accept-Language"}, body: "hello"}, status: 200, body: "hello", upstream: 1},
			{hdr: []string{"Accept-Language", "en"}, status: 200, body: "hello", upstream: 0},
			{hdr: []string{"Accept-Language", "sv"}, status: 200, body: "hej", upstream: 0},
		}},
		{"§4.1 Vary: * is never served from the cache", []step{
			{origin: ok("Cache-Control", "max-age=60", "Vary", "*"), status: 200, upstream: 1},
			{status: 200, upstream: 1},
		}},
		{"§4.3.1 a stale response is revalidated with If-None-Match; §4.3.4 the 304 updates it", []step{
			{origin: ok("Cache-Control", "max-age=10", "ETag", `"v1"`, "X-A", "1"), status: 200, upstream: 1},
			{advance: 11 * time.Second, origin: ok("Cache-Control", "max-age=100", "ETag", `"v1"`, "X-A", "2"), status: 200, body: "hello", upstream: 1,
				want: []string{"X-A", "2"}},
			{advance: 50 * time.Second, status: 200, upstream: 0, want: []string{"X-A", "2"}},
		}},
		{"§4.3.1 Last-Modified revalidation", []step{
			{origin: ok("Cache-Control", "max-age=10", "Last-Modified", "Wed, 26 Nov 2025 12:00:00 GMT"), status: 200, upstream: 1},
			{advance: 11 * time.Second, status: 200, body: "hello", upstream: 1},
		}},
		{"§4.3.2 a client's If-None-Match is answered 304 from a fresh response", []step{
			{origin: ok("Cache-Control", "max-age=60", "ETag", `"v1"`), status: 200, upstream: 1},
			{hdr: []string{"If-None-Match", `"v1"`}, status: 304, body: "", upstream: 0},
			{hdr: []string{"If-None-Match", `"v0"`}, status: 200, body: "hello", upstream: 0},
		}},
		{"§5.2.1.4 a request's no-cache revalidates", []step{
			{origin: ok("Cache-Control", "max-age=60", "ETag", `"v1"`), status: 200, upstream: 1},
			{hdr: []string{"Cache-Control", "no-cache"}, status: 200, upstream: 1},
		}},
		{"§5.2.1.7 only-if-cached on a miss is 504", []step{
			{hdr: []string{"Cache-Control", "only-if-cached"}, origin: ok("Cache-Control", "max-age=60"), status: 504, body: "-", upstream: 0},
		}},
		{"§4.4 POST invalidates the target", []step{
			{origin: ok("Cache-Control", "max-age=60"), status: 200, upstream: 1},
			{method: "POST", origin: &scripted{status: 204}, status: 204, body: "", upstream: 1},
			{origin: ok("Cache-Control", "max-age=60"), status: 200, upstream: 1},
		}},
		{"§4.4 an error response to POST invalidates nothing", []step{
			{origin: ok("Cache-Control", "max-age=60"), status: 200, upstream: 1},
			{method: "POST", origin: &scripted{status: 500}, status: 500, body: "", upstream: 1},
			{origin: ok("Cache-Control", "max-age=60"), status: 200, upstream: 0},
		}},
		{"RFC 5861 §3 stale-while-revalidate serves stale, then refreshes", []step{
			{origin: ok("Cache-Control", "max-age=10, stale-while-revalidate=60"), status: 200, upstream: 1},
			{advance: 20 * time.Second, origin: &scripted{hdr: []string{"Cache-Control", "max-age=100"}, body: "fresh"}, status: 200, body: "hello", upstream: -1},
		}},
		{"RFC 5861 §4 stale-if-error serves stale on a 500", []step{
			{origin: ok("Cache-Control", "max-age=10, stale-if-error=600", "ETag", `"v1"`), status: 200, upstream: 1},
			{advance: 20 * time.Second, origin: &scripted{status: 500, body: "boom"}, status: 200, body: "hello", upstream: 1},
		}},
		{"§5.2.2.2 must-revalidate: a stale response is never served on error", []step{
			{origin: ok("Cache-Control", "max-age=10, must-revalidate", "ETag", `"v1"`), status: 200, upstream: 1},
			{advance: 20 * time.Second, origin: &scripted{status: 503, body: "down"}, status: 503, body: "down", upstream: 1},
		}},
		{"RFC 8246 immutable: a reload is served from the cache", []step{
			{origin: ok("Cache-Control", "max-age=600, immutable"), status: 200, upstream: 1},
			{hdr: []string{"Cache-Control", "no-cache"}, status: 200, upstream: 0},
		}},
		{"§3.4 partial responses are stored, combined and serve the whole", []step{
			{hdr: []string{"Range", "bytes=0-4"}, origin: &scripted{status: 206, hdr: []string{"Cache-Control", "max-age=60", "ETag", `"p"`, "Content-Range", "bytes 0-4/10"}, body: "01234"},
				status: 206, body: "01234", upstream: 1},
			{hdr: []string{"Range", "bytes=1-3"}, status: 206, body: "123", upstream: 0},
			{hdr: []string{"Range", "bytes=5-9"}, origin: &scripted{status: 206, hdr: []string{"Cache-Control", "max-age=60", "ETag", `"p"`, "Content-Range", "bytes 5-9/10"}, body: "56789"},
				status: 206, body: "56789", upstream: 1},
			{status: 200, body: "0123456789", upstream: 0},
			{hdr: []string{"Range", "bytes=-3"}, status: 206, body: "789", upstream: 0, want: []string{"Content-Range", "bytes 7-9/10"}},
		}},
		{"RFC 9110 §14.2 a range of a stored complete response", []step{
			{origin: &scripted{hdr: []string{"Cache-Control", "max-age=60"}, body: "0123456789"}, status: 200, upstream: 1, body: "0123456789"},
			{hdr: []string{"Range", "bytes=2-4"}, status: 206, body: "234", upstream: 0},
			{hdr: []string{"Range", "bytes=20-"}, status: 416, body: "-", upstream: 0, want: []string{"Content-Range", "bytes */10"}},
		}},
		{"§5.2.2.4 qualified no-cache: the field is not stored", []step{
			{origin: ok("Cache-Control", `max-age=60, no-cache="X-Secret"`, "X-Secret", "s"), status: 200, upstream: 1, want: []string{"X-Secret", "s"}},
			{status: 200, upstream: 0, want: []string{"X-Secret", ""}},
		}},
		{"Surrogate-Control max-age for this cache overrides Cache-Control", []step{
			{origin: ok("Cache-Control", "no-store", "Surrogate-Control", "max-age=60"), status: 200, upstream: 1},
			{status: 200, upstream: 0},
		}},
		{"route max_header_bytes: an oversized upstream header block is a 502", []step{
			{origin: ok("Cache-Control", "max-age=60", "X-Big", strings.Repeat("a", 20<<10)), status: 502, body: "-", upstream: 1},
		}},
		{"bad input: an invalid Range is ignored (RFC 9110 §14.2)", []step{
			{origin: &scripted{hdr: []string{"Cache-Control", "max-age=60"}, body: "0123456789"}, status: 200, body: "0123456789", upstream: 1},
			{hdr: []string{"Range", "bytes=9-1"}, status: 200, body: "0123456789", upstream: 0},
		}},
		{"route max_object_size: a larger body streams through uncached", []step{
			{origin: &scripted{hdr: []string{"Cache-Control", "max-age=60"}, body: strings.Repeat("x", 100<<10)}, status: 200, body: strings.Repeat("x", 100<<10), upstream: 1},
			{status: 200, body: strings.Repeat("x", 100<<10), upstream: 1},
		}},
	}
	for i, c := range cases {
		path := fmt.Sprintf("/t/%d", i)
		for j, s := range c.steps {
			if s.origin != nil {
				p.origin.set(path, *s.origin)
			}
			p.advance(s.advance)
			before := p.origin.count(path)
			method := s.method
			if method == "" {
				method = "GET"
			}
			resp, body := p.do(t, method, path, s.hdr, "")
			where := fmt.Sprintf("%s, step %d", c.name, j+1)
			if resp.StatusCode != s.status {
				t.Errorf("%s: status %d, want %d (Cache-Status %q)", where, resp.StatusCode, s.status, resp.Header.Get("Cache-Status"))
			}
			want := s.body
			if want == "" && s.status == 200 && method == "GET" {
				want = "hello"
			}
			if want != "-" && body != want {
				t.Errorf("%s: body %.40q, want %.40q", where, body, want)
			}
			if got := p.origin.count(path) - before; s.upstream >= 0 && got != s.upstream {
				t.Errorf("%s: %d origin requests, want %d (Cache-Status %q)", where, got, s.upstream, resp.Header.Get("Cache-Status"))
			}
			for k := 0; k+1 < len(s.want); k += 2 {
				if got := resp.Header.Get(s.want[k]); got != s.want[k+1] {
					t.Errorf("%s: %s %q, want %q", where, s.want[k], got, s.want[k+1])
				}
			}
		}
	}

	// RFC 5861 §3: the background revalidation lands; the next request
	// sees the refreshed response without waiting for the origin.
	swr := "/t/" + strconv.Itoa(indexOf(cases, "RFC 5861 §3"))
	wait.For(t, 20*time.Second, "the background revalidation", func() bool { _, b := p.do(t, "GET", swr, nil, ""); return b == "fresh" })
}

func indexOf[T any](cases []struct {
	name  string
	steps []T
}, prefix string) int {
	for i, c := range cases {
		if strings.HasPrefix(c.name, prefix) {
			return i
		}
	}
	return -1
}

// TestHTTPRouteCollapsing: concurrent misses of one URL at the edge make
// one upstream request; every client gets the body.
// Mutation caught: join() never finding the fill in flight (the edge then
// sends all 20 upstream; the shield still collapses them, so the edge's
// own count is what fails: the wait for 19 collapsed requests times out).
func TestHTTPRouteCollapsing(t *testing.T) {
	p := newHTTPPOP(t, nil)
	const path, n = "/t/collapse", 20
	p.origin.set(path, scripted{hdr: []string{"Cache-Control", "max-age=60"}, body: "cover"})
	gate := make(chan struct{})
	p.origin.mu.Lock()
	p.origin.gate = gate
	p.origin.mu.Unlock()
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release) // before the origin closes, should the test fail first
	st := &p.edge.httpRoutes[0].cache.Stats
	var wg sync.WaitGroup
	bodies := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, bodies[i] = p.do(t, "GET", path, nil, "")
		}()
	}
	wait.For(t, 20*time.Second, "19 collapsed requests", func() bool { return st.Collapsed.Load() == n-1 })
	release()
	wg.Wait()
	for i, b := range bodies {
		if b != "cover" {
			t.Errorf("client %d: body %q", i, b)
		}
	}
	if got := p.origin.count(path); got != 1 {
		t.Errorf("origin saw %d requests, want 1", got)
	}
	if got := st.Upstream.Load(); got != 1 {
		t.Errorf("edge sent %d requests upstream, want 1", got)
	}
}

// TestRouteConfig: routes validation names the field at fault, and token
// keys are required only when an edge has an audio route.
func TestRouteConfig(t *testing.T) {
	base := func() Config {
		c := DefaultEdgeConfig()
		c.Name = "e"
		return c
	}
	cases := []struct {
		name  string
		edit  func(*Config)
		field string // "" means valid
	}{
		{"no routes key: audio, which needs keys", func(c *Config) { c.Upstreams = []string{"http://127.0.0.1:1"} }, "keys"},
		{"http only needs no keys", func(c *Config) {
			c.Routes = []Route{{Prefix: "/", Mode: ModeHTTP, Upstreams: []string{"http://127.0.0.1:1"}}}
		}, ""},
		{"a bad mode", func(c *Config) {
			c.Routes = []Route{{Prefix: "/", Mode: ModeHTTP, Upstreams: []string{"http://127.0.0.1:1"}}, {Prefix: "/x/", Mode: "ftp"}}
		}, "routes[1].mode"},
		{"an http route without upstreams", func(c *Config) { c.Routes = []Route{{Prefix: "/img/", Mode: ModeHTTP}} }, "routes[0].upstreams"},
		{"a bad upstream URL", func(c *Config) {
			c.Routes = []Route{{Prefix: "/img/", Mode: ModeHTTP, Upstreams: []string{"ftp://x"}}}
		}, "routes[0].upstreams[0]"},
		{"an audio route elsewhere than /a/", func(c *Config) {
			c.Keys, c.Upstreams = []Key{testKey}, []string{"http://127.0.0.1:1"}
			c.Routes = []Route{{Prefix: "/audio/", Mode: ModeAudio}}
		}, "routes[0].prefix"},
		{"a prefix twice", func(c *Config) {
			c.Routes = []Route{{Prefix: "/i/", Mode: ModeHTTP, Upstreams: []string{"http://127.0.0.1:1"}}, {Prefix: "/i/", Mode: ModeHTTP, Upstreams: []string{"http://127.0.0.1:1"}}}
		}, "routes[1].prefix"},
		{"a header limit out of range", func(c *Config) {
			c.Routes = []Route{{Prefix: "/", Mode: ModeHTTP, Upstreams: []string{"http://127.0.0.1:1"}, MaxHeaderBytes: 10}}
		}, "routes[0].max_header_bytes"},
		{"a prefix without /", func(c *Config) {
			c.Routes = []Route{{Prefix: "img", Mode: ModeHTTP, Upstreams: []string{"http://127.0.0.1:1"}}}
		}, "routes[0].prefix"},
		{"an empty routes list", func(c *Config) { c.Routes = []Route{} }, "routes"},
	}
	for _, c := range cases {
		cfg := base()
		c.edit(&cfg)
		err := cfg.Validate()
		switch {
		case c.field == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.field != "" && (err == nil || !strings.Contains(err.Error(), c.field+":")):
			t.Errorf("%s: error %v, want one naming %s", c.name, err, c.field)
		}
	}
}

// TestStandaloneHTTPEdge: the configuration contract of the conformance
// runs (bench/cache-tests.sh): an edge with one http route and nothing
// else runs as a cache in front of its upstream.
func TestStandaloneHTTPEdge(t *testing.T) {
	now := time.Now
	o := newScriptOrigin(t, now)
	o.set("/cover.jpg", scripted{hdr: []string{"Cache-Control", "max-age=60", "Content-Type", "image/jpeg"}, body: "jpeg"})
	doc := "name: edge-1\nrole: edge\nlisten: 127.0.0.1:0\nroutes:\n  - {prefix: /, mode: http, upstreams: [\"" + o.srv.URL + "\"]}\n"
	cfg := DefaultEdgeConfig()
	if err := config.Parse([]byte(doc), "edge.yaml", &cfg); err != nil {
		t.Fatal(err)
	}
	e := startServer(t, cfg, nil)
	for i, want := range []string{"edge-1; fwd=uri-miss; stored; ttl=60", "edge-1; hit; ttl=60"} {
		resp, err := http.Get(e.URL() + "/cover.jpg")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "jpeg" || !strings.HasPrefix(resp.Header.Get("Cache-Status"), want[:len(want)-3]) {
			t.Errorf("request %d: %q, Cache-Status %q", i+1, b, resp.Header.Get("Cache-Status"))
		}
	}
	if o.count("/cover.jpg") != 1 {
		t.Errorf("origin saw %d requests, want 1", o.count("/cover.jpg"))
	}
	// The node's own endpoints still win over the "/" route.
	resp, err := http.Get(e.URL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || o.count("/healthz") != 0 {
		t.Errorf("/healthz: %d, origin %d", resp.StatusCode, o.count("/healthz"))
	}
	// Without tier_keys the node serves no tier-credential path: its
	// admin endpoints are a 403 whatever credential comes (there is no
	// keyring to check one with). Mutations caught: tierAuthorized
	// verifying with the nil keyring (the request with a credential
	// panics the node), serving /admin/ without a check (200).
	other, err := tierauth.New([]tierauth.KeyConfig{{ID: "k", Secret: strings.Repeat("ab", 32)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"/admin/purge?tracks=t1", "/admin/reload"} {
		for _, cred := range []string{"", other.Sign("POST", target, time.Now())} {
			req, _ := http.NewRequest("POST", e.InternalURL()+target, nil)
			if cred != "" {
				req.Header.Set(tierauth.Header, cred)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s (credential %t) on a node without tier_keys: %d, want 403", target, cred != "", resp.StatusCode)
			}
		}
	}
}
