// Package origintest starts the real origin for the tests of its callers
// (shields, the edges' prefetcher, the player's stand-in edge), as
// net/http/httptest starts a real server: origin.New over a real catalog,
// its internal and public handlers served over HTTP on 127.0.0.1:0, and
// closed by t.Cleanup. Ranges, conditional requests, ETags, the tier
// credential and 404s are therefore the origin's own, not a stand-in's.
//
// In front of the internal handler sit the faults a test injects and the
// counters it reads:
//
//	o := origintest.Start(t, origintest.Config{Clock: clock})
//	shield.Upstreams = []string{o.URL}      // and TierKeys: {origintest.TierKey}
//	release := o.Hold()                     // /media/ requests wait ...
//	wait.For(t, 10*time.Second, "the fill", func() bool { return o.Held() > 0 })
//	release()                               // ... until released
//	o.FailNext(2, 503, false)               // the next two /media/ requests fail
//	o.Truncate(1000)                        // bodies cut after 1000 bytes, connection aborted
//	o.Republish("t3")                       // a new version, a new ETag (synthetic catalog)
//	o.Replace("t3", 96, catalog.Audio, data)  // the same for a directory catalog
//	o.Count("/media/t3/96.ogg"), o.Ranges("/media/t3/96.ogg")
//
// Faults apply to /media/ requests only; the rest of the internal listener
// (/v1/rights/, /v1/snapshot, /img/, ...) is always the origin's plain
// answer, counted apart (RightsRequests). All methods are safe for
// concurrent use.
package origintest

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/musiccdn/cdn/atomicfile"
	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/identity"
	"github.com/musiccdn/cdn/origin"
	"github.com/musiccdn/cdn/origin/media"
	"github.com/musiccdn/cdn/origin/rights"
	"github.com/musiccdn/cdn/tierauth"
)

// TierKey is the tier credential key the origin accepts unless
// Config.TierKeys says otherwise: give it to the shields (and edges) that
// fill from it.
var TierKey = tierauth.KeyConfig{ID: "origintest", Secret: strings.Repeat("a5", 32)}

// SigningKey signs the manifests' edge URLs: give it to the edges that
// must accept them.
var SigningKey = origin.KeyConfig{ID: "ot1", Secret: strings.Repeat("3c", 16)}

// HeaderUpstreamError is the header a failure injected with upstreamError
// set carries, as a tier node marks a 502 or 504 it passes on from its own
// upstream (tier.HeaderUpstreamError, which this layer may not import).
const HeaderUpstreamError = "X-Upstream-Error"

// Config says what to start. The zero value is a synthetic catalog of 100
// tracks (seed 42), every track licensed in every country, TierKey and the
// real time.
type Config struct {
	// Source is the catalog: a *media.Synthetic, or a *media.Dir built by
	// ingest (media.OpenDir). Default media.NewSynthetic(100, 42).
	Source media.Source
	// TierKeys are the tier credential keys the origin accepts. Default
	// {TierKey}.
	TierKeys []tierauth.KeyConfig
	// Rights decides manifests and /v1/rights/. Default rights.Worldwide{}
	// (every valid country allowed), so a test's tracks are never denied
	// by the synthetic rights' draw.
	Rights origin.Rights
	// Clock is the origin's time: the tier credential's skew window and
	// rights windows are judged by it. It must agree with the callers'
	// clock to within tierauth.MaxSkew. Default time.Now.
	Clock func() time.Time
	// Tweak, when set, changes the origin's configuration before New.
	Tweak func(*origin.Config)
}

// Origin is a running origin with faults in front of /media/.
type Origin struct {
	// URL is the internal listener (http://127.0.0.1:port): /media/ behind
	// the tier credential, /v1/rights/, /v1/snapshot, /metrics.
	URL string
	// PublicURL is the public listener: manifests (a bearer token of
	// Issuer), recommendations, images.
	PublicURL string
	// Server is the origin itself.
	Server *origin.Server
	// Issuer signs the bearer tokens the public listener accepts.
	Issuer *identity.Issuer

	t     testing.TB
	tier  *tierauth.Keyring
	clock func() time.Time
	close sync.Once
	srvs  [2]*httptest.Server

	media  atomic.Int64 // /media/ requests received
	rights atomic.Int64 // /v1/rights/ requests received
	held   atomic.Int64 // /media/ requests waiting on a Hold now

	mu       sync.Mutex
	hold     chan struct{} // non-nil while held: closed by the release
	failLeft int           // requests still to fail; < 0: until Heal
	failCode int
	failMark bool  // set HeaderUpstreamError on failures
	truncate int64 // > 0: bytes of body sent before the connection is aborted; 0 none
	perPath  map[string]int
	perRange map[string]int // "METHOD path range" -> requests
}

// Start starts the origin cfg describes and closes it when the test ends
// (releasing any request still held first).
func Start(t testing.TB, cfg Config) *Origin {
	t.Helper()
	if cfg.Source == nil {
		cfg.Source = media.NewSynthetic(100, 42)
	}
	if cfg.TierKeys == nil {
		cfg.TierKeys = []tierauth.KeyConfig{TierKey}
	}
	if cfg.Rights == nil {
		cfg.Rights = rights.Worldwide{}
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	issuer, err := identity.NewIssuer()
	if err != nil {
		t.Fatalf("origintest: %v", err)
	}
	oc := origin.DefaultConfig()
	oc.Name = "origintest"
	oc.Listen, oc.InternalAddr = "127.0.0.1:0", "127.0.0.1:0"
	oc.TierKeys = cfg.TierKeys
	oc.Keys = []origin.KeyConfig{SigningKey}
	oc.Identity.PublicKeys = []string{issuer.PublicKey()}
	oc.DataDir = t.TempDir()
	if cfg.Tweak != nil {
		cfg.Tweak(&oc)
	}
	srv, err := origin.New(oc, nil, nil, origin.WithSource(cfg.Source), origin.WithRights(cfg.Rights), origin.WithClock(cfg.Clock))
	if err != nil {
		t.Fatalf("origintest: %v", err)
	}
	kr, err := tierauth.New(cfg.TierKeys)
	if err != nil {
		t.Fatalf("origintest: %v", err)
	}
	o := &Origin{Server: srv, Issuer: issuer, t: t, tier: kr, clock: cfg.Clock, perPath: map[string]int{}, perRange: map[string]int{}}
	internal := httptest.NewServer(o.faults(srv.InternalHandler()))
	public := httptest.NewServer(srv.PublicHandler())
	o.URL, o.PublicURL = internal.URL, public.URL
	o.srvs = [2]*httptest.Server{internal, public}
	t.Cleanup(o.Close)
	return o
}

// Close stops both listeners before the test ends (an origin gone: its
// callers then get connection errors), releasing any held request first.
// Safe to call twice; the test's cleanup calls it anyway.
func (o *Origin) Close() {
	o.close.Do(func() {
		o.Heal() // a held request must not keep Close waiting
		for _, s := range o.srvs {
			s.Close()
		}
	})
}

// Synthetic is the catalog when it is a *media.Synthetic (to compute the
// expected bytes with Fill, Size and ETag), else nil.
func (o *Origin) Synthetic() *media.Synthetic {
	s, _ := o.Server.Source().(*media.Synthetic)
	return s
}

// Sign adds the tier credential to req, as a shield does, so a test can
// ask the origin directly.
func (o *Origin) Sign(req *http.Request) {
	req.Header.Set(tierauth.Header, o.tier.Sign(req.Method, req.URL.RequestURI(), o.clock()))
}

// Hold makes every /media/ request that arrives from now wait, before the
// origin sees it, until release is called (or its client goes away).
// release is safe to call more than once; Heal also releases.
func (o *Origin) Hold() (release func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.hold == nil {
		o.hold = make(chan struct{})
	}
	ch := o.hold
	return func() {
		o.mu.Lock()
		defer o.mu.Unlock()
		if o.hold == ch {
			close(ch)
			o.hold = nil
		}
	}
}

// Held is the number of /media/ requests waiting on a Hold now.
func (o *Origin) Held() int { return int(o.held.Load()) }

// FailNext makes the next n /media/ requests answer status (with
// HeaderUpstreamError set when upstreamError), without reaching the
// origin. n < 0 fails every request until Heal.
func (o *Origin) FailNext(n, status int, upstreamError bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.failLeft, o.failCode, o.failMark = n, status, upstreamError
}

// Truncate makes every /media/ response from now on stop after n body
// bytes (n > 0) and abort its connection, as an origin whose read fails
// mid-stream does: the status line and full Content-Length go out first,
// so the short body is detectable only by its length. Heal ends it.
func (o *Origin) Truncate(n int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.truncate = n
}

// Heal ends every fault: held requests go on, failures and truncation
// stop.
func (o *Origin) Heal() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.hold != nil {
		close(o.hold)
		o.hold = nil
	}
	o.failLeft, o.truncate = 0, 0
}

// Republish replaces every file of track id with a new version (new bytes
// and a new ETag, as a re-ingest does). Only a synthetic catalog can.
func (o *Origin) Republish(id string) {
	o.t.Helper()
	s := o.Synthetic()
	if s == nil {
		o.t.Fatalf("origintest: Republish(%q): the catalog is not synthetic", id)
		return
	}
	i, ok := s.Index(id)
	if !ok {
		o.t.Fatalf("origintest: Republish(%q): no such track", id)
		return
	}
	s.Republish(i)
}

// Replace puts data in place of the file (id, kbps, kind) of a directory
// catalog, all at once (a rename, as ingest does): a new version with a new
// ETag for the requests that follow; one already open keeps reading the
// old one. Only a directory catalog can.
func (o *Origin) Replace(id string, kbps int, kind catalog.Kind, data []byte) {
	o.t.Helper()
	d, ok := o.Server.Source().(*media.Dir)
	if !ok {
		o.t.Fatalf("origintest: Replace(%q): the catalog is not a directory", id)
		return
	}
	path := filepath.Join(d.Root(), id, strconv.Itoa(kbps)+"."+kind.Ext())
	if err := atomicfile.WriteBytes(path, data); err != nil {
		o.t.Fatalf("origintest: Replace: %v", err)
	}
}

// MediaRequests is the number of /media/ requests received (failed and
// held ones included).
func (o *Origin) MediaRequests() int64 { return o.media.Load() }

// RightsRequests is the number of /v1/rights/ requests received.
func (o *Origin) RightsRequests() int64 { return o.rights.Load() }

// Count is the number of /media/ requests received for path, any method.
func (o *Origin) Count(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.perPath[path]
}

// Ranges counts the /media/ requests received for path by "METHOD range"
// ("GET bytes=0-99"; "GET " without a Range header).
func (o *Origin) Ranges(path string) map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]int{}
	for k, n := range o.perRange {
		method, rest, _ := strings.Cut(k, " ")
		p, rng, _ := strings.Cut(rest, " ")
		if p == path {
			out[method+" "+rng] += n
		}
	}
	return out
}

// Requests counts every /media/ request received by "METHOD path range".
func (o *Origin) Requests() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make(map[string]int, len(o.perRange))
	for k, n := range o.perRange {
		out[k] = n
	}
	return out
}

// faults wraps the origin's internal handler with the counters and the
// injected faults.
func (o *Origin) faults(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/rights/") {
			o.rights.Add(1)
		}
		if !strings.HasPrefix(r.URL.Path, "/media/") {
			next.ServeHTTP(w, r)
			return
		}
		o.media.Add(1)
		o.mu.Lock()
		o.perPath[r.URL.Path]++
		o.perRange[r.Method+" "+r.URL.Path+" "+r.Header.Get("Range")]++
		hold := o.hold
		fail := o.failLeft != 0
		code, mark := o.failCode, o.failMark
		if o.failLeft > 0 {
			o.failLeft--
		}
		truncate := o.truncate
		o.mu.Unlock()

		if hold != nil {
			o.held.Add(1)
			select {
			case <-hold:
				o.held.Add(-1)
			case <-r.Context().Done():
				o.held.Add(-1)
				return
			}
		}
		if fail {
			if mark {
				w.Header().Set(HeaderUpstreamError, "1")
			}
			http.Error(w, "injected failure", code)
			return
		}
		if truncate > 0 {
			w = &truncating{ResponseWriter: w, left: truncate}
		}
		next.ServeHTTP(w, r)
	})
}

// errTruncated is what a truncating writer returns once its bytes are out.
var errTruncated = errors.New("origintest: body truncated")

// truncating passes on the first left body bytes, flushes them, then
// fails every write: the origin's media handler then aborts the
// connection (http.ErrAbortHandler), its own answer to a failed copy.
type truncating struct {
	http.ResponseWriter
	left int64
}

func (w *truncating) Write(p []byte) (int, error) {
	if w.left <= 0 {
		return 0, errTruncated
	}
	if int64(len(p)) > w.left {
		n, _ := w.ResponseWriter.Write(p[:w.left])
		w.left = 0
		http.NewResponseController(w.ResponseWriter).Flush()
		return n, errTruncated
	}
	n, err := w.ResponseWriter.Write(p)
	w.left -= int64(n)
	return n, err
}

func (w *truncating) Unwrap() http.ResponseWriter { return w.ResponseWriter }
