package tier

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/musiccdn/cdn/cache"
	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/country"
	"github.com/musiccdn/cdn/httprange"
	"github.com/musiccdn/cdn/tierauth"
	"github.com/musiccdn/cdn/urlsign"
)

// Server is one edge or shield node.
type Server struct {
	cfg   Config
	log   *slog.Logger
	store *cache.Store
	// fetch fills store: from the shields (or, at a shield, the
	// origin); on an edge of a cluster asking the handoff peer first. It
	// shares its pool of upstreams with hotFetch.
	fetch *fetcher
	now   func() time.Time
	// live is what a reload replaces (see Reload): read once per
	// request with an atomic load.
	live atomic.Pointer[live]
	// tierAuth is the tier keyring, shared with the fetchers (the audio
	// fills' and the http routes'), which sign with it, and the fill and
	// admin endpoints (a shield's /media/, an edge's /peer/media/,
	// /admin/), which check with it; a reload swaps it. It holds nil on a
	// node with only http routes and no tier_keys: such a node signs
	// nothing and serves no tier-credential path.
	tierAuth *atomic.Pointer[tierauth.Keyring]
	// revoked maps a taken-down track to the expiry up to which its
	// tokens are refused (edge): copied on write, swapped atomically, so
	// the hit path reads it without a lock or an allocation.
	revoked  atomic.Pointer[map[string]int64]
	revokeMu sync.Mutex // serializes writers of revoked
	purges   atomic.Int64
	// reload, when set, re-reads the node's configuration (see
	// OnReload).
	reload    func() error
	reloads   atomic.Int64
	reloadErr atomic.Int64
	prefix    []byte // catalog.EdgePrefix or catalog.MediaPrefix
	audio     bool   // an audio route is configured

	httpRoutes []httpRoute // longest prefix first
	m          *metrics
	srv        *fasthttp.Server // public listener
	metrics    fasthttp.RequestHandler
	debug      fasthttp.RequestHandler
	internal   *fasthttp.Server // internal listener

	// With a cluster (edge): who owns what and which shields are live,
	// the hot store for chunks of tracks other edges own with its fetcher
	// (from the owners, hedged to the shields), and prefetch.
	route    Routing
	hot      *cache.Store
	hotFetch *fetcher
	prefetch *prefetcher
	// manifests mints playback manifests from a snapshot (edge, when
	// manifest.enabled).
	manifests *manifests
	peerHits  atomic.Int64 // peer requests served as owner
	misroute  atomic.Int64 // peer requests for tracks this node does not own

	cacheStatusHit   []byte
	cacheStatusMiss  []byte
	cacheStatusStale []byte

	comp compressor

	warn *warnLimiter // "upstream failure" warnings: one per upstream per WarnEvery
	// ready, when set, must also hold for /readyz to answer 200 (a
	// node in a cluster: joined, and an edge sees a shield).
	ready func() bool

	draining atomic.Bool
	ln       net.Listener // public
	iln      net.Listener // internal
	closed   atomic.Bool

	// fillTLS verifies https upstreams (fill_ca); nil: the system's
	// roots. Used at start-up (fetchers, CheckFills, manifests), so kept
	// apart from the fields the hit path reads.
	fillTLS *tls.Config
}

// Option configures a Server beyond its Config.
type Option func(*Server)

// WithRouting makes an edge one of a POP's cluster: it fills tracks it
// owns from the shields r names, and other tracks from their owners over
// the peer endpoint of their internal listeners, with the tier credential.
func WithRouting(r Routing) Option {
	return func(s *Server) { s.route = r }
}

// New builds a node from a validated configuration. reg receives the
// node's metrics (and is served on /metrics); now is the clock (time.Now
// if nil).
func New(cfg Config, logger *slog.Logger, reg *prometheus.Registry, now func() time.Time, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	if now == nil {
		now = time.Now
	}
	tk, err := newTierKeyring(cfg.TierKeys) // nil: a node with only http routes to outside upstreams
	if err != nil {
		return nil, fmt.Errorf("tier: tier_keys: %w", err)
	}
	fillTLS, err := cfg.FillTLS()
	if err != nil {
		return nil, err
	}
	auth := new(atomic.Pointer[tierauth.Keyring])
	auth.Store(tk)
	s := &Server{
		cfg:              cfg,
		log:              logger.With("node", cfg.Name, "role", string(cfg.Role)),
		tierAuth:         auth,
		fillTLS:          fillTLS,
		now:              now,
		prefix:           []byte(catalog.MediaPrefix),
		cacheStatusHit:   []byte(httprange.CacheStatus(cfg.Name, httprange.CacheHit)),
		cacheStatusMiss:  []byte(httprange.CacheStatus(cfg.Name, httprange.CacheMiss)),
		cacheStatusStale: []byte(httprange.CacheStatus(cfg.Name, httprange.CacheStale)),
		warn:             newWarnLimiter(time.Duration(cfg.WarnEvery)),
	}
	for _, o := range opts {
		o(s)
	}
	if err := s.newFetchers(cfg); err != nil {
		return nil, err
	}
	if s.store, err = cache.New(cfg.Cache, s.fetch, now); err != nil {
		return nil, err
	}
	s.audio = cfg.hasAudio()
	lv, err := newLive(cfg)
	if err != nil {
		return nil, err
	}
	s.live.Store(lv)
	s.revoked.Store(&map[string]int64{})
	if cfg.Role == Edge {
		s.prefix = []byte(catalog.EdgePrefix)
		if s.hotFetch != nil {
			adm := cache.NewRateAdmission(cfg.HotMinReads, time.Duration(cfg.HotWindow), now)
			if s.hot, err = cache.New(cfg.HotCache, s.hotFetch, now, cache.WithAdmission(adm)); err != nil {
				return nil, err
			}
		}
		if cfg.Prefetch.Enabled && cfg.Prefetch.Tracks > 0 {
			s.prefetch = newPrefetcher(s.prefetchNode(), cfg.Prefetch, s.log)
		}
		if cfg.Manifest.Enabled {
			if s.manifests, err = newManifests(s, cfg.Manifest); err != nil {
				return nil, err
			}
			go s.manifests.run()
		}
	}
	s.m = newMetrics(string(cfg.Role), reg, s.store, s.fetch)
	if err := s.newHTTPRoutes(cfg, reg); err != nil {
		return nil, err
	}
	s.m.registerCluster(string(cfg.Role), reg, s)
	s.metrics = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	s.debug = fasthttpadaptor.NewFastHTTPHandler(debugMux())
	s.srv = s.newHTTPServer(s.Handle)
	if len(s.httpRoutes) > 0 {
		s.srv.MaxRequestBodySize = maxRouteBody
	}
	s.internal = s.newHTTPServer(s.HandleInternal)
	return s, nil
}

// newFetchers makes the node's audio fetchers, sharing one pool of
// upstreams: the main store's (on an edge of a cluster, from the live
// shields, asking the handoff peer first unless no_handoff) and, on an
// edge of a cluster, the hot store's (from the owning edges).
func (s *Server) newFetchers(cfg Config) error {
	var route Routing
	if cfg.Role == Edge {
		route = s.route
	}
	pc := poolConfig{Timeout: time.Duration(cfg.UpstreamTimeout), TLS: s.fillTLS, Now: s.now}
	if route != nil {
		pc.Version = route.Version
	}
	pool := newUpstreamPool(pc)
	var err error
	switch {
	case route == nil:
		s.fetch, err = newFetcher(pool, cfg.Upstreams, nil, s.tierAuth)
	case cfg.NoHandoff:
		s.fetch, err = newFetcher(pool, cfg.Upstreams, route, s.tierAuth)
	default:
		s.fetch, err = newHandoffFetcher(pool, cfg.Upstreams, route, s.tierAuth)
	}
	if err != nil || route == nil {
		return err
	}
	s.hotFetch, err = newPeerFetcher(pool, cfg.Upstreams, route, time.Duration(cfg.PeerHedgeAfter), s.tierAuth)
	return err
}

// Limits of both listeners. Every audio, peer and ops endpoint is a GET
// or HEAD without a body, so a request is its header: maxHeader bounds it
// (fasthttp's read buffer is the header limit; a larger header is a 431),
// and a body is refused before it is buffered (413). Only the public
// listener of a node with http routes takes bodies, for the unsafe
// methods those routes forward upstream, up to maxRouteBody.
const (
	maxHeader      = 8 << 10
	maxRequestBody = 1
	maxRouteBody   = 1 << 20
)

func (s *Server) newHTTPServer(h fasthttp.RequestHandler) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:                       h,
		Name:                          "musiccdn-" + string(s.cfg.Role),
		ReadTimeout:                   30 * time.Second,
		WriteTimeout:                  60 * time.Second,
		IdleTimeout:                   90 * time.Second,
		ReadBufferSize:                maxHeader,
		MaxRequestBodySize:            maxRequestBody,
		DisableHeaderNamesNormalizing: false,
		NoDefaultContentType:          true,
		NoDefaultDate:                 false,
		CloseOnShutdown:               true,
		ReduceMemoryUsage:             false,
		Logger:                        slogPrinter{s.log},
		ErrorHandler:                  requestError,
	}
}

// requestError answers a request fasthttp could not read.
func requestError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		ctx.Error("request body not allowed\n", fasthttp.StatusRequestEntityTooLarge)
	case errors.As(err, &small):
		ctx.Error("request header too large\n", fasthttp.StatusRequestHeaderFieldsTooLarge)
	case errors.As(err, &ne) && ne.Timeout():
		ctx.Error("request timeout\n", fasthttp.StatusRequestTimeout)
	default:
		ctx.Error("bad request\n", fasthttp.StatusBadRequest)
	}
}

// debugMux serves Go's profiles on the internal listener.
func debugMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// Listen opens both listeners (so their addresses are known before
// Serve), those not already given by UseListener and UseInternalListener.
func (s *Server) Listen() error {
	if s.ln == nil {
		ln, err := net.Listen("tcp", s.cfg.Listen)
		if err != nil {
			return fmt.Errorf("%s: listen: %w", s.cfg.Name, err)
		}
		s.ln = ln
	}
	if s.iln == nil {
		ln, err := net.Listen("tcp", s.cfg.InternalAddr)
		if err != nil {
			s.ln.Close()
			return fmt.Errorf("%s: internal_addr: %w", s.cfg.Name, err)
		}
		s.iln = ln
	}
	return nil
}

// UseListener makes the node serve its public endpoints on ln (opened by
// the caller, so that its address can be advertised before the node is
// built).
func (s *Server) UseListener(ln net.Listener) { s.ln = ln }

// UseInternalListener makes the node serve its internal endpoints on ln.
func (s *Server) UseInternalListener(ln net.Listener) { s.iln = ln }

// Addr is the public listener's address, once Listen has run.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the public listener's base URL, once Listen has run.
func (s *Server) URL() string {
	if s.cfg.TLSCert != "" {
		return "https://" + s.Addr()
	}
	return "http://" + s.Addr()
}

// InternalURL is the internal listener's base URL (always plain HTTP),
// once Listen has run: /metrics, /debug/pprof/ and an edge's /peer/media/.
func (s *Server) InternalURL() string { return "http://" + s.iln.Addr().String() }

// Serve serves on both listeners until Shutdown. It returns the first
// error of either (nil after Shutdown).
func (s *Server) Serve() error {
	if s.ln == nil || s.iln == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	s.log.Info("serving", "addr", s.URL(), "internal", s.InternalURL(), "upstreams", s.cfg.Upstreams)
	errc := make(chan error, 2)
	go func() {
		ln := net.Listener(bufferedListener{s.ln})
		if s.cfg.TLSCert != "" {
			errc <- s.srv.ServeTLS(ln, s.cfg.TLSCert, s.cfg.TLSKey)
		} else {
			errc <- s.srv.Serve(ln)
		}
	}()
	go func() { errc <- s.internal.Serve(bufferedListener{s.iln}) }()
	for range 2 {
		if err := <-errc; err != nil && !s.closed.Load() {
			return err
		}
	}
	return nil
}

// Shutdown drains the node: /readyz fails at once, then after DrainDelay
// the listener closes and in-flight requests finish (bounded by ctx).
// Safe to call twice.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.closed.Swap(true) {
		return nil
	}
	s.draining.Store(true)
	if s.cfg.DrainDelay > 0 {
		t := time.NewTimer(time.Duration(s.cfg.DrainDelay))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	err := errors.Join(s.srv.ShutdownWithContext(ctx), s.internal.ShutdownWithContext(ctx))
	// fasthttp closes only the listeners Serve has registered: close ours
	// too, so a Serve that had not started yet returns at once.
	if s.ln != nil {
		s.ln.Close()
	}
	if s.iln != nil {
		s.iln.Close()
	}
	if s.prefetch != nil {
		s.prefetch.close()
	}
	if s.manifests != nil {
		s.manifests.close()
	}
	for _, r := range s.httpRoutes {
		r.cache.Close()
	}
	s.store.Close()
	if s.hot != nil {
		s.hot.Close()
	}
	return err
}

// Store is the node's chunk store.
func (s *Server) Store() *cache.Store { return s.store }

// Handle is the public listener's request handler: an edge's /a/ paths
// (player token), a shield's /media/ paths (tier credential), health.
func (s *Server) Handle(ctx *fasthttp.RequestCtx) {
	start := s.now()
	path := ctx.Path()
	switch {
	case s.audio && bytes.HasPrefix(path, s.prefix):
		if s.cfg.Role == Shield && !s.tierAuthorized(ctx) {
			// Edges only: nothing is read or fetched for anyone else.
			s.m.observe(ctx.Response.StatusCode(), s.now().Sub(start))
			return
		}
		s.serveObject(ctx, path[len(s.prefix):], false)
		s.m.observe(ctx.Response.StatusCode(), s.now().Sub(start))
	case s.manifests != nil && bytes.HasPrefix(path, manifestPath):
		s.manifests.serve(ctx, path[len(manifestPath):])
	case s.serveHealth(ctx, path):
	case s.serveHTTPRoute(ctx, path):
	default:
		// The edge is not an open proxy: only the audio and seek-table
		// paths and the configured http routes are served.
		ctx.Error("not found\n", fasthttp.StatusNotFound)
	}
}

// HandleInternal is the internal listener's request handler: an edge's
// peer endpoint and /admin/ (tier credential), /metrics, /debug/pprof/,
// health.
func (s *Server) HandleInternal(ctx *fasthttp.RequestCtx) {
	path := ctx.Path()
	switch {
	case s.route != nil && bytes.HasPrefix(path, peerPath):
		// Another edge of the POP filling a chunk of a track this node
		// owns. Only the tier credential opens this door.
		if !s.tierAuthorized(ctx) {
			return
		}
		s.serveObject(ctx, path[len(peerPath):], true)
	case bytes.HasPrefix(path, adminPath):
		// Operators and the origin's purge fan-out; the tier credential
		// covers the query (the request target is signed).
		if !s.tierAuthorized(ctx) {
			return
		}
		s.serveAdmin(ctx, path[len(adminPath):])
	case string(path) == "/metrics":
		s.metrics(ctx)
	case bytes.HasPrefix(path, debugPath):
		s.debug(ctx)
	case s.serveHealth(ctx, path):
	default:
		ctx.Error("not found\n", fasthttp.StatusNotFound)
	}
}

// serveHealth answers /healthz and /readyz, and 404 to anything else: a
// node is not an open proxy.
func (s *Server) serveHealth(ctx *fasthttp.RequestCtx, path []byte) bool {
	switch string(path) {
	case "/healthz":
		ctx.SetBodyString("ok\n")
	case "/readyz":
		switch {
		case s.draining.Load():
			ctx.Error("draining\n", fasthttp.StatusServiceUnavailable)
		case s.ready != nil && !s.ready():
			ctx.Error("not joined\n", fasthttp.StatusServiceUnavailable)
		case s.manifests != nil && !s.manifests.loaded():
			ctx.Error("no manifest snapshot\n", fasthttp.StatusServiceUnavailable)
		default:
			ctx.SetBodyString("ready\n")
		}
	default:
		return false
	}
	return true
}

// tierAuthorized checks the request's tier credential over its method and
// request target; on failure it writes a 403.
func (s *Server) tierAuthorized(ctx *fasthttp.RequestCtx) bool {
	kr := s.tierAuth.Load()
	var err error = tierauth.ErrMissing // no tier keys: nobody is a node of this POP
	if kr != nil {
		err = kr.Verify(ctx.Request.Header.Peek(tierauth.Header), ctx.Method(), ctx.Request.Header.RequestURI(), s.now())
	}
	if err != nil {
		s.m.tokenRejected(tokenTier)
		ctx.Error("forbidden\n", fasthttp.StatusForbidden)
		return false
	}
	return true
}

var (
	manifestPath = []byte("/v1/manifest/")
	peerPath     = []byte(peerPrefix)
	debugPath    = []byte("/debug/pprof/")
)

// serveObject answers GET or HEAD of "<track>/<kbps>.<ext>", for a player
// or, when peer is set, for another edge of the POP.
func (s *Server) serveObject(ctx *fasthttp.RequestCtx, name []byte, peer bool) {
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Error("method not allowed\n", fasthttp.StatusMethodNotAllowed)
		ctx.Response.Header.Set("Allow", "GET, HEAD")
		return
	}
	if len(ctx.Request.Body()) != 0 {
		ctx.Error("request body not allowed\n", fasthttp.StatusRequestEntityTooLarge)
		return
	}
	track, kbps, kind, ok := catalog.ParseName(name)
	if !ok {
		ctx.Error("bad path\n", fasthttp.StatusBadRequest)
		return
	}
	var claims urlsign.Claims
	if !peer && s.cfg.Role == Edge {
		var ok bool
		if claims, ok = s.authorize(ctx, name, track); !ok {
			return
		}
	}
	store := s.store
	if s.route != nil {
		owned := s.route.Self(catalog.KeyBytes(track))
		switch {
		case peer:
			// Never forwarded again: a node asked to fill a track it
			// does not believe it owns fills it from upstream itself.
			s.peerHits.Add(1)
			// A handoff asks the previous holder, which by then does
			// not own the track: not a misroute.
			if !owned && len(ctx.Request.Header.Peek(onlyIfCachedHeader)) == 0 {
				s.misroute.Add(1)
			}
		case !owned:
			store = s.hot
		}
	}
	ref := cache.Ref{Key: cache.ObjectKey(name), Name: name}
	if peer && len(ctx.Request.Header.Peek(onlyIfCachedHeader)) > 0 && !s.holds(ctx, store, ref) {
		// A handoff: the asking owner goes to the shields itself.
		ctx.Error("not cached\n", fasthttp.StatusGatewayTimeout) // resets the headers: set ours after
		ctx.Response.Header.Set(onlyIfCachedHeader, "miss")
		return
	}
	// An object that changes upstream (or is purged) while its chunks are
	// read is served again from the new version; nothing has been sent
	// yet.
	for attempt := 0; ; attempt++ {
		first, err := s.respond(ctx, ref, kind, store)
		if err == nil {
			if first == 0 && s.prefetch != nil && !peer && kind == catalog.Audio {
				s.prefetch.requested(name)
				s.prefetch.started(track, kbps, claims.Country, ctx.Request.Header.Peek(catalog.HeaderNextTracks))
			}
			return
		}
		// Twice: a purge racing this request's fills makes them
		// deliver ErrChanged as well (cache.Store.Purge).
		if errors.Is(err, cache.ErrChanged) && attempt < 2 {
			ctx.Response.Reset()
			continue
		}
		s.fail(ctx, err)
		return
	}
}

// holds reports whether store has the metadata of ref and every chunk
// of the one range the request asks for (a handoff fill asks for one
// chunk-aligned range), without fetching anything.
func (s *Server) holds(ctx *fasthttp.RequestCtx, store *cache.Store, ref cache.Ref) bool {
	m, ok := store.CachedMeta(ref)
	if !ok {
		return false
	}
	var rbuf [1]httprange.Range
	first, last := int64(0), m.Chunks(store.ChunkSize())-1
	if rh := ctx.Request.Header.Peek("Range"); len(rh) > 0 {
		ranges, err := httprange.Parse(rbuf[:0], rh, m.Size, 1)
		if err != nil || len(ranges) != 1 {
			return false
		}
		first, last = ranges[0].Start/store.ChunkSize(), ranges[0].End/store.ChunkSize()
	}
	for idx := first; idx <= last; idx++ {
		if !store.Cached(ref, m, idx) {
			return false
		}
	}
	return true
}

// authorize checks the player's token for the object name ("<track>/<kbps>.<ext>")
// and, with CountryHeader set, the client's country; on failure it writes
// a 403 and nothing is fetched. Every check fails closed.
func (s *Server) authorize(ctx *fasthttp.RequestCtx, name, track []byte) (urlsign.Claims, bool) {
	tok := ctx.QueryArgs().Peek("t")
	if len(tok) == 0 {
		return s.refuse(ctx, tokenMissing)
	}
	now := s.now()
	lv := s.live.Load()
	claims, err := lv.keys.Verify(tok, name, now)
	if err != nil {
		return s.refuse(ctx, reasonOf(err))
	}
	// A token signed to outlive the edge's cap is refused even though
	// its MAC is good: whoever holds a leaked key or token cannot mint
	// or keep a far-future pass (issue 10, row 9).
	if claims.Expiry > now.Unix()+lv.maxTTL {
		return s.refuse(ctx, tokenTTL)
	}
	// A taken-down track: tokens issued before the takedown are refused
	// (the map lookup with string(track) does not allocate).
	if rv := *s.revoked.Load(); len(rv) > 0 {
		if cut, ok := rv[string(track)]; ok && claims.Expiry <= cut {
			return s.refuse(ctx, tokenRevoked)
		}
	}
	if lv.countryHeader != "" {
		// The load balancer sets exactly one copy. None means the request
		// did not come through it (or it was misconfigured), two mean the
		// client smuggled its own: either way the country is unknown.
		all := ctx.Request.Header.PeekAll(lv.countryHeader)
		switch {
		case len(all) == 0:
			return s.refuse(ctx, countryMissing)
		case len(all) > 1:
			return s.refuse(ctx, countryDuplicate)
		case len(all[0]) != 2 || !country.Valid(string(all[0])):
			return s.refuse(ctx, countryInvalid)
		case all[0][0] != claims.Country[0] || all[0][1] != claims.Country[1]:
			return s.refuse(ctx, tokenCountry)
		}
	}
	return claims, true
}

func (s *Server) refuse(ctx *fasthttp.RequestCtx, r tokenReason) (urlsign.Claims, bool) {
	s.m.tokenRejected(r)
	ctx.Error("forbidden\n", fasthttp.StatusForbidden)
	return urlsign.Claims{}, false
}

// respond writes the whole response for ref (of kind) from store, or
// returns an error before anything is committed (the response is built in
// memory, except large bodies and multipart ones, which stream: see
// stream). first is the lowest offset sent, or -1 when no body is.
func (s *Server) respond(ctx *fasthttp.RequestCtx, ref cache.Ref, kind catalog.Kind, store *cache.Store) (first int64, err error) {
	// On a miss the metadata comes with the chunk the request wants
	// first: a cold seek is one round trip upstream, at every tier.
	m, st, err := store.MetaAt(ctx, ref, httprange.FirstPos(ctx.Request.Header.Peek("Range")))
	if err != nil {
		return -1, err
	}
	h := &ctx.Response.Header
	req := &ctx.Request.Header
	h.Set("Accept-Ranges", "bytes")
	etag := m.ETag
	enc := ""
	if kind == catalog.SeekTable {
		// Seek tables are small and compress well; a whole-table GET is
		// sent compressed when the client accepts it (a range of one is
		// not: ranges address the identity bytes).
		h.Set("Vary", "Accept-Encoding")
		if enc = chooseEncoding(req.Peek("Accept-Encoding")); enc != "" && len(req.Peek("Range")) == 0 && ctx.IsGet() && m.Size <= int64(s.cfg.MaxBufferedBody) {
			// A content-coded representation has its own ETag.
			if len(etag) >= 2 && etag[len(etag)-1] == '"' {
				etag = etag[:len(etag)-1] + "-" + enc + `"`
			}
		} else {
			enc = ""
		}
	}
	h.Set("ETag", etag)
	if !m.LastModified.IsZero() {
		h.Set("Last-Modified", m.LastModifiedHTTP)
	}
	var rbuf [4]httprange.Range
	d := httprange.Decide(rbuf[:0], httprange.Request{
		Preconditions: httprange.Preconditions{
			IfMatch:           nilIfAbsent(req.Peek("If-Match")),
			IfNoneMatch:       nilIfAbsent(req.Peek("If-None-Match")),
			IfModifiedSince:   nilIfAbsent(req.Peek("If-Modified-Since")),
			IfUnmodifiedSince: nilIfAbsent(req.Peek("If-Unmodified-Since")),
		},
		Range:   nilIfAbsent(req.Peek("Range")),
		IfRange: nilIfAbsent(req.Peek("If-Range")),
	}, m.Size, httprange.Validators{ETag: s2b(etag), LastModified: m.LastModified}, s.cfg.MaxRanges)
	switch d.Status {
	case fasthttp.StatusNotModified, fasthttp.StatusPreconditionFailed:
		ctx.SetStatusCode(d.Status)
		s.setCacheStatus(ctx, st, true)
		return -1, nil
	case fasthttp.StatusRequestedRangeNotSatisfiable:
		// RFC 9110 §15.5.17.
		var cr [32]byte
		h.SetBytesV("Content-Range", httprange.AppendUnsatisfied(cr[:0], m.Size))
		ctx.SetStatusCode(d.Status)
		s.setCacheStatus(ctx, st, true)
		return -1, nil
	}
	if m.ContentType != "" {
		h.SetContentType(m.ContentType)
	}
	ranges := d.Ranges
	head := ctx.IsHead()
	allHit := true
	first = 0
	switch {
	case enc != "":
		ctx.SetStatusCode(fasthttp.StatusOK)
		allHit, err = s.encoded(ctx, store, ref, m, enc)
	case len(ranges) == 0:
		ctx.SetStatusCode(fasthttp.StatusOK)
		allHit, err = s.body(ctx, store, ref, m, httprange.Range{Start: 0, End: m.Size - 1}, head)
	case len(ranges) == 1:
		ctx.SetStatusCode(fasthttp.StatusPartialContent)
		var cr [64]byte
		h.SetBytesV("Content-Range", httprange.AppendContentRange(cr[:0], ranges[0], m.Size))
		allHit, err = s.body(ctx, store, ref, m, ranges[0], head)
		first = ranges[0].Start
	default:
		ctx.SetStatusCode(fasthttp.StatusPartialContent)
		allHit, err = s.multipart(ctx, store, ref, m, ranges, head)
		first = ranges[0].Start
	}
	if err != nil {
		return -1, err
	}
	if head {
		first = -1
	}
	s.setCacheStatus(ctx, st, allHit)
	return first, nil
}

// body sends the bytes of r: assembled in memory up to MaxBufferedBody,
// streamed beyond.
func (s *Server) body(ctx *fasthttp.RequestCtx, store *cache.Store, ref cache.Ref, m *cache.Meta, r httprange.Range, head bool) (allHit bool, err error) {
	n := r.Len()
	if m.Size == 0 {
		n = 0
	}
	if head {
		ctx.Response.Header.SetContentLength(int(n))
		ctx.Response.SkipBody = true
		return true, nil
	}
	if n == 0 {
		return true, nil
	}
	if n > int64(s.cfg.MaxBufferedBody) {
		return s.stream(ctx, store, ref, m, []streamPart{{start: r.Start, end: r.End + 1}}, nil)
	}
	allHit, err = s.appendRange(&ctx.Response, ctx, store, ref, m, r)
	if err == nil {
		s.m.bytes.Add(float64(n))
	}
	return allHit, err
}

// appendRange puts bytes r of version m in resp's body: the cached chunk
// itself when r lies in one chunk, else one copy per byte. On the first missing chunk it starts fills for all the later
// missing ones, so a cold multi-chunk range costs one round trip, not one
// per chunk.
func (s *Server) appendRange(resp *fasthttp.Response, ctx context.Context, store *cache.Store, ref cache.Ref, m *cache.Meta, r httprange.Range) (allHit bool, err error) {
	cs := store.ChunkSize()
	first, last := r.Start/cs, r.End/cs
	allHit = true
	for idx := first; idx <= last; idx++ {
		data, _, err := chunk(ctx, store, ref, m, idx, last, &allHit)
		if err != nil {
			return false, err
		}
		base := idx * cs
		lo := max(r.Start-base, 0)
		hi := min(r.End+1-base, int64(len(data)))
		if first == last {
			// One chunk: send the cached bytes themselves, no copy at
			// all. Chunks are immutable once stored, so the response
			// may hold them until it is written.
			resp.SetBodyRaw(data[lo:hi])
			continue
		}
		resp.AppendBody(data[lo:hi])
	}
	return allHit, nil
}

// chunk reads chunk idx, warming idx+1..last the first time it misses.
func chunk(ctx context.Context, store *cache.Store, ref cache.Ref, m *cache.Meta, idx, last int64, allHit *bool) ([]byte, bool, error) {
	if *allHit && idx < last && !store.Cached(ref, m, idx) {
		for j := idx + 1; j <= last && j < idx+maxWarm; j++ {
			store.Warm(ref, m, j)
		}
	}
	data, hit, err := store.Chunk(ctx, ref, m, idx)
	if !hit {
		*allHit = false
	}
	if err == nil && int64(len(data)) < min(store.ChunkSize(), m.Size-idx*store.ChunkSize()) {
		err = fmt.Errorf("chunk %d: %d bytes", idx, len(data))
	}
	return data, hit, err
}

// maxWarm bounds the fills one request starts ahead of the chunk it waits
// for.
const maxWarm = 16

// encoded sends the whole object compressed with enc ("zstd" or "gzip").
func (s *Server) encoded(ctx *fasthttp.RequestCtx, store *cache.Store, ref cache.Ref, m *cache.Meta, enc string) (bool, error) {
	var plain fasthttp.Response
	allHit, err := s.appendRange(&plain, ctx, store, ref, m, httprange.Range{Start: 0, End: m.Size - 1})
	if err != nil || m.Size == 0 {
		return allHit, err
	}
	out, err := s.comp.compress(enc, plain.Body())
	if err != nil {
		return false, err
	}
	ctx.Response.Header.Set("Content-Encoding", enc)
	ctx.Response.SetBody(out)
	s.m.bytes.Add(float64(len(out)))
	return allHit, nil
}

func (s *Server) setCacheStatus(ctx *fasthttp.RequestCtx, st cache.Status, allHit bool) {
	v := s.cacheStatusMiss
	switch {
	case st == cache.Stale:
		v = s.cacheStatusStale
	case st == cache.Hit && allHit:
		v = s.cacheStatusHit
	}
	ctx.Response.Header.SetBytesV("Cache-Status", v)
}

// fail answers an error from the store. Clients get a status and a short
// reason; the cause goes to the log.
func (s *Server) fail(ctx *fasthttp.RequestCtx, err error) {
	ctx.Response.Reset()
	switch {
	case errors.Is(err, cache.ErrNotFound):
		ctx.Error("not found\n", fasthttp.StatusNotFound)
		return
	case errors.Is(err, errTimeout), errors.Is(err, context.DeadlineExceeded):
		ctx.Error("gateway timeout\n", fasthttp.StatusGatewayTimeout)
	default:
		ctx.Error("bad gateway\n", fasthttp.StatusBadGateway)
	}
	// The failure is this node's upstream's, not this node's: the edge
	// that asked (a peer) must not mark this node down for it.
	ctx.Response.Header.Set(HeaderUpstreamError, "1")
	s.warn.log(s.log, s.now(), upstreamOf(err), "upstream failure", "path", string(ctx.Path()), "err", err)
}

// HeaderUpstreamError marks a 502 or 504 that a node passed on from its
// upstream (its own fill failed), so that the node that asked does not
// blame the one that answered (see fetcher).
const HeaderUpstreamError = "X-Upstream-Error"

// s2b views a string's bytes without copying; the result must not be
// modified.
func s2b(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

func nilIfAbsent(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// bufferedListener gives each accepted connection a send buffer that holds
// a whole typical response (a 64 KiB range and its headers), so writing it
// is one syscall that does not block on the peer's window: a player's
// request is answered in one pass of the event loop instead of parking the
// goroutine mid-body.
type bufferedListener struct{ net.Listener }

const sendBuffer = 256 << 10

func (l bufferedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(sendBuffer)
	}
	return c, err
}

// slogPrinter adapts slog to fasthttp's Logger.
type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Printf(format string, args ...any) { p.l.Debug(fmt.Sprintf(format, args...)) }
