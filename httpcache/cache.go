package httpcache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/valyala/fasthttp"

	"github.com/musiccdn/cdn/httprange"
)

// Config configures one http route's cache.
type Config struct {
	// Node names this cache in Cache-Status (RFC 9211).
	Node string
	// Route labels metrics and logs (the route's prefix).
	Route string
	// MaxObjectSize is the largest body stored; larger responses are
	// streamed to the client uncached. Default 8 MiB.
	MaxObjectSize int64
	// MaxEntries bounds the stored responses indexed (their bodies live
	// in the Store, which evicts by its own policy). Default 100000.
	MaxEntries int
	// Heuristic bounds heuristic freshness. Default 10 % capped at 24 h.
	Heuristic Heuristic
	// Timeout bounds a background revalidation. Default 10 s.
	Timeout time.Duration
	// StaleOnError is how long past its freshness a stored response may
	// still answer when the upstream cannot be reached or answers 500,
	// 502, 503 or 504 (RFC 9111 §4.2.4 allows it when disconnected;
	// stale-if-error, RFC 5861 §4, can give more), unless it has
	// must-revalidate, proxy-revalidate, s-maxage or no-cache. 0: only
	// as stale-if-error says.
	StaleOnError time.Duration
}

func (c Config) withDefaults() Config {
	if c.MaxObjectSize <= 0 {
		c.MaxObjectSize = 8 << 20
	}
	if c.MaxEntries <= 0 {
		c.MaxEntries = 100000
	}
	if c.Heuristic.Percent == 0 && c.Heuristic.Max == 0 {
		c.Heuristic = Heuristic{Percent: 10, Max: 24 * time.Hour}
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	return c
}

// Upstream is the next hop of a route: it sends req (whose URI is the
// request target, path and query) to the upstream that key (a hash of the
// target) picks, failing over to the next on a transport error, and
// fills resp. Set resp.StreamBody to read the body from resp.BodyStream.
type Upstream interface {
	Do(ctx context.Context, key uint64, req *fasthttp.Request, resp *fasthttp.Response) error
}

// Store holds bodies: the node's chunk store (package cache), so memory,
// disk and eviction are shared with the audio path.
type Store interface {
	Blob(key uint64) ([]byte, bool)
	SetBlob(key uint64, data []byte)
	DelBlob(key uint64)
}

// Cache is one http route's shared cache: a fasthttp handler in front of
// an Upstream. Safe for concurrent use.
type Cache struct {
	cfg   Config
	up    Upstream
	store Store
	now   func() time.Time
	log   *slog.Logger
	m     *routeMetrics

	mu     sync.Mutex
	index  map[uint64][]*entry // by primary key: hash of the target URI
	n      int
	flight map[uint64]chan struct{}

	bg     sync.WaitGroup
	closed chan struct{}
	once   sync.Once

	// Stats are read with atomic loads (tests, debugging).
	Stats Stats
}

// Stats count a route's upstream traffic.
type Stats struct {
	Upstream  atomic.Int64 // requests sent upstream
	Collapsed atomic.Int64 // requests that waited for another's fetch
}

// New returns a route's cache. m may be shared by routes; now is the
// clock (time.Now if nil).
func New(cfg Config, up Upstream, store Store, m *Metrics, logger *slog.Logger, now func() time.Time) *Cache {
	cfg = cfg.withDefaults()
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Cache{cfg: cfg, up: up, store: store, now: now, m: m.route(cfg.Route),
		log:   logger.With("route", cfg.Route),
		index: map[uint64][]*entry{}, flight: map[uint64]chan struct{}{}, closed: make(chan struct{})}
}

// Close waits for background revalidations. Safe to call twice.
func (c *Cache) Close() {
	c.once.Do(func() { close(c.closed) })
	c.bg.Wait()
}

// Handle serves one request.
func (c *Cache) Handle(ctx *fasthttp.RequestCtx) {
	start := c.now()
	var result string
	switch m := string(ctx.Method()); m {
	case "GET", "HEAD":
		result = c.serveSafe(ctx, m == "HEAD")
	case "CONNECT", "TRACE":
		// No tunnels, and no reflection of the request's fields.
		ctx.Error("method not allowed\n", fasthttp.StatusMethodNotAllowed)
		result = "rejected"
	default:
		// Other methods are forwarded; unknown ones are unsafe
		// (RFC 9110 §9.2.1) and invalidate (RFC 9111 §4.4).
		result = c.forwardUnsafe(ctx, m)
	}
	c.m.observe(result, c.now().Sub(start))
}

// Key is the primary cache key of a request target (RFC 9111 §2): the
// route has one upstream origin, so the target (path and query) names
// the resource.
func Key(target []byte) uint64 { return xxhash.Sum64(target) }

func (c *Cache) serveSafe(ctx *fasthttp.RequestCtx, head bool) string {
	target := string(ctx.RequestURI())
	key := Key(ctx.RequestURI())
	req := requestHeader(&ctx.Request.Header)
	rq := RequestDirectives(req)
	for attempt := 0; ; attempt++ {
		// A request's no-store keeps it and its response out of the
		// cache altogether (§5.2.1.5).
		var e *entry
		if !rq.NoStore {
			e = c.lookup(key, req)
		}
		if e != nil {
			age := e.age.Current(c.now())
			switch u := Decide(rq, e.cc, e.lifetime, age); u {
			case Fresh, StaleOK, StaleRevalidate:
				st := "hit"
				if u != Fresh {
					st = "hit; detail=stale"
				}
				if c.serveStored(ctx, e, age, head, st) {
					if u == StaleRevalidate {
						c.background(key, target, req, e)
						return "stale"
					}
					if u == StaleOK {
						return "stale"
					}
					return "hit"
				}
				// Stored, but not the part asked for (or evicted):
				// fetch it.
			case Revalidate:
				if rq.OnlyIfCached {
					return c.onlyIfCached(ctx)
				}
				return c.revalidate(ctx, key, target, req, rq, e, head)
			}
		}
		if rq.OnlyIfCached {
			return c.onlyIfCached(ctx)
		}
		// Collapse concurrent plain misses of one URL: one goes upstream,
		// the others wait for it and look again (and go upstream
		// themselves if what came back was not storable).
		if attempt == 0 && !rq.NoCache && len(ctx.Request.Header.Peek("Range")) == 0 {
			ch, leader := c.join(key)
			if !leader {
				c.m.collapsed.Inc()
				c.Stats.Collapsed.Add(1)
				t := time.NewTimer(c.cfg.Timeout)
				select {
				case <-ch:
				case <-t.C:
				}
				t.Stop()
				continue
			}
			defer c.finish(key, ch)
		}
		fwd := "uri-miss"
		if e != nil {
			fwd = "miss"
		} else if c.hasKey(key) {
			fwd = "vary-miss"
		}
		if rq.NoCache {
			fwd = "request"
		}
		return c.fetch(ctx, key, target, req, e, head, fwd)
	}
}

func (c *Cache) onlyIfCached(ctx *fasthttp.RequestCtx) string {
	// RFC 9111 §5.2.1.7.
	ctx.Error("only-if-cached: not in cache\n", fasthttp.StatusGatewayTimeout)
	ctx.Response.Header.Set("Cache-Status", c.cfg.Node+"; fwd=miss; detail=only-if-cached")
	return "miss"
}

// conditionalField reports whether l (a lower-case header name) is one of
// the request's preconditions, evaluated here against what is stored
// rather than forwarded (so that the full response comes back and can be
// stored).
func conditionalField(l string) bool {
	switch l {
	case "if-none-match", "if-modified-since", "if-match", "if-unmodified-since":
		return true
	}
	return false
}

// fetch forwards a request the cache cannot answer, stores the response
// when it may, and answers the client.
func (c *Cache) fetch(ctx *fasthttp.RequestCtx, key uint64, target string, req Header, partial *entry, head bool, fwd string) string {
	method := "GET"
	if head {
		method = "HEAD"
	}
	// With nothing stored, the client's preconditions go upstream as
	// they are (a 304 or 412 then comes back and is relayed); with a
	// stored response they are evaluated here against the full response.
	drop := conditionalField
	if partial == nil {
		drop = func(string) bool { return false }
	}
	var completion string
	if partial != nil && !partial.complete && !head && len(ctx.Request.Header.Peek("Range")) == 0 {
		// A whole representation asked for while part of it is stored:
		// ask for the rest only (RFC 9111 §3.4).
		if gap := partial.firstGap(); gap > 0 && gap < partial.size {
			completion = "bytes=" + strconv.FormatInt(gap, 10) + "-"
		}
	}
	r := c.newRequest(method, target, req, drop)
	if completion != "" {
		r.Header.Set("Range", completion)
		if et := partial.header.Get("ETag"); et != "" && !strings.HasPrefix(et, "W/") {
			r.Header.Set("If-Range", et)
		}
	}
	resp, t0, t1, err := c.roundTrip(key, r)
	if err != nil {
		return c.upstreamError(ctx, err)
	}
	defer func() { releaseResponse(resp) }() // resp may be handed on, or replaced
	status := resp.StatusCode()
	rh := responseHeader(&resp.Header)
	if head {
		// A 200 to HEAD that matches what is stored updates it (RFC 9111
		// §4.3.5).
		if partial != nil && partial.complete && status == 200 &&
			(resp.Header.ContentLength() < 0 || int64(resp.Header.ContentLength()) == partial.size) {
			if ne := c.update(key, partial, rh, t0, t1); ne != nil && c.serveStored(ctx, ne, ne.age.Current(c.now()), true, "fwd="+fwd+"; detail=head-update") {
				return "revalidated"
			}
		}
		c.relayHeader(ctx, status, rh, fwd)
		ctx.Response.SkipBody = true
		if cl := resp.Header.ContentLength(); cl >= 0 {
			ctx.Response.Header.SetContentLength(cl)
		}
		return "miss"
	}
	body, tooBig, err := readLimited(resp, c.cfg.MaxObjectSize)
	if err != nil {
		return c.upstreamError(ctx, err)
	}
	if tooBig {
		c.relayHeader(ctx, status, rh, fwd+"; detail=too-large")
		ctx.Response.SetBodyStream(&passReader{r: io.MultiReader(bytes.NewReader(body), resp.BodyStream()), resp: resp}, resp.Header.ContentLength())
		resp = nil // released by passReader.Close
		return "pass"
	}
	if completion != "" && status == 206 {
		if e, ok := c.combine(key, partial, rh, body, t0, t1); ok && e.complete {
			c.serveStored(ctx, e, e.age.Current(c.now()), false, "fwd=miss; stored")
			return "miss"
		}
		// Not combinable: ask for the whole representation.
		r := c.newRequest(method, target, req, drop)
		releaseResponse(resp)
		resp, t0, t1, err = c.roundTrip(key, r)
		if err != nil {
			return c.upstreamError(ctx, err)
		}
		status, rh = resp.StatusCode(), responseHeader(&resp.Header)
		if body, tooBig, err = readLimited(resp, c.cfg.MaxObjectSize); err != nil || tooBig {
			return c.upstreamError(ctx, errors.New("whole representation too large or failed"))
		}
	}
	if e := c.store1(key, req, status, rh, body, t0, t1); e != nil {
		// The client that asked gets every field; what is stored may
		// lack those a qualified private or no-cache names.
		if len(e.cc.PrivateFields)+len(e.cc.NoCacheFields) > 0 {
			c.relay(ctx, status, rh, body, req, "fwd="+fwd+"; stored")
			return "miss"
		}
		if c.serveStored(ctx, e, e.age.Current(c.now()), false, "fwd="+fwd+"; stored") {
			return "miss"
		}
	}
	c.relay(ctx, status, rh, body, req, "fwd="+fwd)
	return "pass"
}

// relay answers with a response that was not stored, evaluating the
// client's preconditions (which were not forwarded) on a 200.
func (c *Cache) relay(ctx *fasthttp.RequestCtx, status int, rh Header, body []byte, req Header, cs string) {
	if status == 200 {
		switch evaluate(ctx, validators(rh, time.Time{})) {
		case httprange.NotModified:
			c.relayHeader(ctx, 304, without304(rh), cs)
			return
		case httprange.PreconditionFailed:
			ctx.Response.Reset()
			ctx.Error("precondition failed\n", fasthttp.StatusPreconditionFailed)
			return
		}
	}
	c.relayHeader(ctx, status, rh, cs)
	ctx.Response.SetBody(body)
}

func (c *Cache) relayHeader(ctx *fasthttp.RequestCtx, status int, rh Header, cs string) {
	ctx.SetStatusCode(status)
	h := &ctx.Response.Header
	for _, f := range rh {
		if strings.EqualFold(f.Name, "Cache-Status") {
			continue
		}
		h.Add(f.Name, f.Value)
	}
	h.Set("Cache-Status", cacheStatus(rh, c.cfg.Node, cs))
}

// cacheStatus appends this cache's member to the upstream's Cache-Status
// list (RFC 9211 §2: the cache nearest the origin first).
func cacheStatus(h Header, node, params string) string {
	v := node
	if params != "" {
		v += "; " + params
	}
	if up := h.Values("Cache-Status"); len(up) > 0 {
		return strings.Join(up, ", ") + ", " + v
	}
	return v
}

func (c *Cache) upstreamError(ctx *fasthttp.RequestCtx, err error) string {
	ctx.Response.Reset()
	if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
		ctx.Error("gateway timeout\n", fasthttp.StatusGatewayTimeout)
	} else {
		ctx.Error("bad gateway\n", fasthttp.StatusBadGateway)
	}
	ctx.Response.Header.Set("Cache-Status", c.cfg.Node+"; fwd=miss; detail=upstream-error")
	c.log.Warn("upstream failure", "path", string(ctx.Path()), "err", err)
	return "error"
}

// revalidate validates a stored response that may not be served as it is
// (RFC 9111 §4.3), serving it stale when that fails and stale-if-error
// allows (RFC 5861 §4).
func (c *Cache) revalidate(ctx *fasthttp.RequestCtx, key uint64, target string, req Header, rq Directives, e *entry, head bool) string {
	if !HasValidator(e.header) || !e.complete {
		return c.fetchOrStale(ctx, key, target, req, rq, e, head)
	}
	r := c.revalidation(target, req, e)
	resp, t0, t1, err := c.roundTrip(key, r)
	defer func() { releaseResponse(resp) }() // resp may be handed on
	age := e.age.Current(c.now())
	if err != nil || resp.StatusCode() >= 500 {
		if StaleIfError(rq, e.cc, e.lifetime, age, c.cfg.StaleOnError) && c.serveStored(ctx, e, age, head, "hit; fwd=stale; detail=stale-if-error") {
			return "stale"
		}
		if err != nil {
			return c.upstreamError(ctx, err)
		}
	}
	status := resp.StatusCode()
	rh := responseHeader(&resp.Header)
	if status == 304 {
		if ne := c.update(key, e, rh, t0, t1); ne != nil {
			if c.serveStored(ctx, ne, ne.age.Current(c.now()), head, "fwd=stale; fwd-status=304") {
				return "revalidated"
			}
		}
		// The 304 does not select what is stored: fetch in full.
		return c.fetch(ctx, key, target, req, nil, head, "stale")
	}
	body, tooBig, err := readLimited(resp, c.cfg.MaxObjectSize)
	if err != nil {
		return c.upstreamError(ctx, err)
	}
	if tooBig {
		c.relayHeader(ctx, status, rh, "fwd=stale; detail=too-large")
		ctx.Response.SetBodyStream(&passReader{r: io.MultiReader(bytes.NewReader(body), resp.BodyStream()), resp: resp}, resp.Header.ContentLength())
		c.remove(key, e)
		resp = nil // released by passReader.Close
		return "pass"
	}
	if ne := c.store1(key, req, status, rh, body, t0, t1); ne != nil {
		if c.serveStored(ctx, ne, ne.age.Current(c.now()), head, "fwd=stale; fwd-status="+strconv.Itoa(status)+"; stored") {
			return "miss"
		}
	} else {
		c.remove(key, e)
	}
	c.relay(ctx, status, rh, body, req, "fwd=stale; fwd-status="+strconv.Itoa(status))
	if head {
		ctx.Response.SkipBody = true
	}
	return "pass"
}

// fetchOrStale refetches a response that cannot be validated, serving
// the stale one on an upstream failure when allowed.
func (c *Cache) fetchOrStale(ctx *fasthttp.RequestCtx, key uint64, target string, req Header, rq Directives, e *entry, head bool) string {
	res := c.fetch(ctx, key, target, req, e, head, "stale")
	if code := ctx.Response.StatusCode(); res == "error" || code >= 500 {
		age := e.age.Current(c.now())
		if StaleIfError(rq, e.cc, e.lifetime, age, c.cfg.StaleOnError) {
			ctx.Response.Reset()
			if c.serveStored(ctx, e, age, head, "hit; fwd=stale; detail=stale-if-error") {
				return "stale"
			}
		}
	}
	return res
}

// background revalidates e after it was served stale (RFC 5861 §3), once
// per URL at a time.
func (c *Cache) background(key uint64, target string, req Header, e *entry) {
	ch, leader := c.join(key)
	if !leader {
		return
	}
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		defer c.finish(key, ch)
		r := c.revalidation(target, req, e)
		resp, t0, t1, err := c.roundTrip(key, r)
		if err != nil {
			return
		}
		defer releaseResponse(resp)
		rh := responseHeader(&resp.Header)
		switch st := resp.StatusCode(); {
		case st == 304:
			c.update(key, e, rh, t0, t1)
		case st < 500:
			if body, tooBig, err := readLimited(resp, c.cfg.MaxObjectSize); err == nil && !tooBig {
				if c.store1(key, req, st, rh, body, t0, t1) == nil {
					c.remove(key, e)
				}
			}
		}
	}()
}

// forwardUnsafe forwards a request with an unsafe (or uncacheable) method
// and invalidates what its success may have changed (RFC 9111 §4.4).
func (c *Cache) forwardUnsafe(ctx *fasthttp.RequestCtx, method string) string {
	target := string(ctx.RequestURI())
	key := Key(ctx.RequestURI())
	req := requestHeader(&ctx.Request.Header)
	r := c.newRequest(method, target, req, func(string) bool { return false })
	r.SetBodyRaw(ctx.PostBody())
	resp, _, _, err := c.roundTrip(key, r)
	if err != nil {
		return c.upstreamError(ctx, err)
	}
	defer func() { releaseResponse(resp) }() // resp may be handed on
	rh := responseHeader(&resp.Header)
	if UnsafeMethod(method) {
		for _, t := range InvalidationTargets(resp.StatusCode(), target, string(ctx.Host()), rh) {
			c.invalidate(Key([]byte(t)))
		}
	}
	c.relayHeader(ctx, resp.StatusCode(), rh, "fwd=method")
	body, tooBig, err := readLimited(resp, c.cfg.MaxObjectSize)
	if err != nil {
		return c.upstreamError(ctx, err)
	}
	if tooBig {
		ctx.Response.SetBodyStream(&passReader{r: io.MultiReader(bytes.NewReader(body), resp.BodyStream()), resp: resp}, resp.Header.ContentLength())
		resp = nil
		return "pass"
	}
	ctx.Response.SetBody(body)
	return "pass"
}

// newRequest builds the upstream request: the client's end-to-end fields
// less those drop names (lower case) and Host (the Upstream sets it).
func (c *Cache) newRequest(method, target string, req Header, drop func(string) bool) *fasthttp.Request {
	r := fasthttp.AcquireRequest()
	r.Header.SetMethod(method)
	r.SetRequestURI(target)
	for _, f := range StripHopByHop(req) {
		l := strings.ToLower(f.Name)
		if drop(l) || l == "host" || l == "content-length" {
			continue
		}
		r.Header.Add(f.Name, f.Value)
	}
	r.Header.Add("Via", "1.1 "+c.cfg.Node)
	// This cache obeys Surrogate-Control addressed to it (W3C Edge
	// Architecture 1.0).
	r.Header.Add("Surrogate-Capability", c.cfg.Node+`="Surrogate/1.0"`)
	return r
}

// revalidation builds the conditional GET that revalidates e (RFC 9111
// §4.3.1): the client's fields without its own preconditions and range,
// and e's validators.
func (c *Cache) revalidation(target string, req Header, e *entry) *fasthttp.Request {
	r := c.newRequest("GET", target, req, func(l string) bool { return conditionalField(l) || l == "range" || l == "if-range" })
	inm, ims := Conditional(e.header)
	if inm != "" {
		r.Header.Set("If-None-Match", inm)
	}
	if ims != "" {
		r.Header.Set("If-Modified-Since", ims)
	}
	return r
}

// roundTrip sends r upstream and releases it, recording the request and
// response times for the age calculation (RFC 9111 §4.2.3). The caller
// releases the response with releaseResponse, or hands it on.
func (c *Cache) roundTrip(key uint64, r *fasthttp.Request) (*fasthttp.Response, time.Time, time.Time, error) {
	defer fasthttp.ReleaseRequest(r)
	resp := fasthttp.AcquireResponse()
	resp.StreamBody = true
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	defer cancel()
	t0 := c.now()
	c.Stats.Upstream.Add(1)
	if err := c.up.Do(ctx, key, r, resp); err != nil {
		fasthttp.ReleaseResponse(resp)
		c.m.upErr.Inc()
		return nil, t0, t0, err
	}
	c.m.upOK.Inc()
	return resp, t0, c.now(), nil
}

// readLimited reads at most limit bytes of resp's body; tooBig reports
// that more remain in resp.BodyStream().
func readLimited(resp *fasthttp.Response, limit int64) (body []byte, tooBig bool, err error) {
	s := resp.BodyStream()
	if s == nil {
		b := resp.Body()
		return bytes.Clone(b), false, nil
	}
	if cl := resp.Header.ContentLength(); int64(cl) > limit {
		return nil, true, nil
	}
	body, err = io.ReadAll(io.LimitReader(s, limit+1))
	if err != nil {
		return nil, false, err
	}
	if int64(len(body)) > limit {
		return body, true, nil
	}
	return body, false, nil
}

// passReader streams a response too large to store; closing it releases
// the upstream response.
type passReader struct {
	r    io.Reader
	resp *fasthttp.Response
}

func (p *passReader) Read(b []byte) (int, error) { return p.r.Read(b) }

func (p *passReader) Close() error {
	releaseResponse(p.resp)
	p.resp = nil
	return nil
}

// releaseResponse closes resp's body stream and releases it; nil is
// nothing to release (a response handed on).
func releaseResponse(resp *fasthttp.Response) {
	if resp != nil {
		resp.CloseBodyStream()
		fasthttp.ReleaseResponse(resp)
	}
}

func requestHeader(h *fasthttp.RequestHeader) Header {
	var out Header
	for k, v := range h.All() {
		out = append(out, Field{Name: string(k), Value: string(v)})
	}
	return out
}

func responseHeader(h *fasthttp.ResponseHeader) Header {
	var out Header
	for k, v := range h.All() {
		switch strings.ToLower(string(k)) {
		case "content-length", "transfer-encoding":
			continue
		}
		out = append(out, Field{Name: string(k), Value: string(v)})
	}
	return StripHopByHop(out)
}

// evaluate applies the client's preconditions (RFC 9110 §13.2.2) to a
// response with header h.
func evaluate(ctx *fasthttp.RequestCtx, v httprange.Validators) httprange.Outcome {
	rq := &ctx.Request.Header
	p := httprange.Preconditions{
		IfMatch:           nilIfEmpty(rq.Peek("If-Match")),
		IfNoneMatch:       nilIfEmpty(rq.Peek("If-None-Match")),
		IfModifiedSince:   nilIfEmpty(rq.Peek("If-Modified-Since")),
		IfUnmodifiedSince: nilIfEmpty(rq.Peek("If-Unmodified-Since")),
	}
	if p.IfMatch == nil && p.IfNoneMatch == nil && p.IfModifiedSince == nil && p.IfUnmodifiedSince == nil {
		return httprange.Proceed
	}
	return httprange.Evaluate(p, v)
}

// validators are a response's validators for evaluating a client's
// preconditions: lacking Last-Modified, its Date stands in, or lacking
// that the time it was received (RFC 9111 §4.3.2).
func validators(h Header, received time.Time) httprange.Validators {
	v := strongValidators(h)
	if et := h.Get("ETag"); et != "" {
		v.ETag = []byte(strings.TrimPrefix(et, "W/"))
	}
	if v.LastModified.IsZero() {
		if d, ok := parseHTTPDate(h.Get("Date")); ok {
			v.LastModified = d
		} else {
			v.LastModified = received
		}
	}
	return v
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// without304 keeps the fields a 304 carries (RFC 9110 §15.4.5).
func without304(h Header) Header {
	return h.Without(func(l string) bool {
		return strings.HasPrefix(l, "content-") && l != "content-location"
	})
}

// serveStored answers from e, or reports false when e cannot answer this
// request (the range asked for is not stored, or a body was evicted).
func (c *Cache) serveStored(ctx *fasthttp.RequestCtx, e *entry, age time.Duration, head bool, cs string) bool {
	var rng httprange.Range
	ranged := false
	rh := ctx.Request.Header.Peek("Range")
	if e.status == 200 || e.status == 206 {
		if len(rh) > 0 && httprange.RangeApplies(nilIfEmpty(ctx.Request.Header.Peek("If-Range")), strongValidators(e.header)) {
			var buf [1]httprange.Range
			rs, err := httprange.Parse(buf[:0], rh, e.size, 1)
			switch {
			case errors.Is(err, httprange.ErrUnsatisfiable) && e.complete:
				c.writeStoredHeader(ctx, e, age, 416, cs)
				ctx.Response.Header.Set("Content-Range", "bytes */"+strconv.FormatInt(e.size, 10))
				return true
			case err == nil && len(rs) == 1:
				rng, ranged = rs[0], true
			}
		}
	}
	if !e.complete && !ranged {
		return false
	}
	var body []byte
	if e.size > 0 {
		first, last := int64(0), e.size-1
		if ranged {
			first, last = rng.Start, rng.End
		}
		p, ok := e.covers(first, last)
		if !ok {
			return false
		}
		b, ok := c.store.Blob(p.blob)
		if !ok || int64(len(b)) != p.n {
			c.remove(Key(ctx.RequestURI()), e) // evicted
			return false
		}
		body = b[first-p.start : last-p.start+1]
	}
	if e.status == 200 || e.status == 206 {
		switch evaluate(ctx, validators(e.header, e.age.Date)) {
		case httprange.NotModified:
			c.writeStoredHeader(ctx, e, age, 304, cs)
			ctx.Response.Header.Del("Content-Type")
			ctx.Response.SkipBody = true
			return true
		case httprange.PreconditionFailed:
			ctx.Error("precondition failed\n", fasthttp.StatusPreconditionFailed)
			return true
		}
	}
	status := e.status
	if ranged {
		status = 206
	}
	c.writeStoredHeader(ctx, e, age, status, cs)
	if ranged || !e.complete {
		ctx.Response.Header.SetContentRange(int(rng.Start), int(rng.End), int(e.size))
	}
	if head {
		ctx.Response.SkipBody = true
		ctx.Response.Header.SetContentLength(len(body))
		return true
	}
	ctx.Response.SetBodyRaw(body)
	return true
}

// strongValidators are those If-Range may use (RFC 9110 §13.1.5).
func strongValidators(h Header) httprange.Validators {
	var v httprange.Validators
	if et := h.Get("ETag"); et != "" && !strings.HasPrefix(et, "W/") {
		v.ETag = []byte(et)
	}
	if lm, ok := parseHTTPDate(h.Get("Last-Modified")); ok {
		v.LastModified = lm
	}
	return v
}

func (c *Cache) writeStoredHeader(ctx *fasthttp.RequestCtx, e *entry, age time.Duration, status int, cs string) {
	ctx.SetStatusCode(status)
	h := &ctx.Response.Header
	for _, f := range e.header {
		l := strings.ToLower(f.Name)
		if l == "cache-status" || (l == "content-range" && (status == 206 || status == 416 || !e.complete)) || (status == 304 && strings.HasPrefix(l, "content-") && l != "content-location") {
			continue
		}
		h.Add(f.Name, f.Value)
	}
	h.Set("Age", AgeHeader(age))
	ttl := int64((e.lifetime - age) / time.Second)
	h.Set("Cache-Status", cacheStatus(e.header, c.cfg.Node, cs+"; ttl="+strconv.FormatInt(ttl, 10)))
}

// lookup returns the stored response req selects (RFC 9111 §4.1): the
// most recent whose Vary fields match.
func (c *Cache) lookup(key uint64, req Header) *entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	var best *entry
	for _, e := range c.index[key] {
		if e.vary.Matches(req) && (best == nil || e.age.Date.After(best.age.Date) || e.age.Date.Equal(best.age.Date) && e.stored.After(best.stored)) {
			best = e
		}
	}
	return best
}

func (c *Cache) hasKey(key uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.index[key]) > 0
}

// newEntry builds an entry for a response (without its body).
func (c *Cache) newEntry(req Header, status int, rh Header, t0, t1 time.Time) *entry {
	fields, _ := VaryFields(rh)
	cc := ParseCacheControl(rh.Values("Cache-Control")...).WithSurrogate(rh, c.cfg.Node)
	age := NewAge(rh, t0, t1)
	// Fields a qualified private or no-cache names are not stored
	// (§5.2.2.7, §5.2.2.4), nor is Age (it is recomputed).
	omit := map[string]bool{"age": true}
	for _, f := range cc.PrivateFields {
		omit[f] = true
	}
	for _, f := range cc.NoCacheFields {
		omit[f] = true
	}
	e := &entry{
		id:     rand.Uint64(),
		status: status,
		header: rh.Without(func(l string) bool { return omit[l] }),
		vary:   NewSecondaryKey(fields, req),
		cc:     cc,
		age:    age,
		stored: t1,
	}
	e.lifetime = FreshnessLifetime(status, rh, cc, age.Date, c.cfg.Heuristic)
	if age.Invalid {
		e.lifetime = 0 // its age is unknown: stale (§5.1)
	}
	return e
}

// store1 stores a response if RFC 9111 §3 allows, and returns the entry
// now stored for it (nil if none).
func (c *Cache) store1(key uint64, req Header, status int, rh Header, body []byte, t0, t1 time.Time) *entry {
	if !Storable("GET", req, status, rh, c.cfg.Node) {
		return nil
	}
	e := c.newEntry(req, status, rh, t0, t1)
	if e.age.Invalid {
		// Its age is unknown (§5.1): it would only ever be stale, and
		// relayed as is it stays unknown to the caches downstream.
		return nil
	}
	if status == 206 {
		cr, size, ok := httprange.ParseContentRange([]byte(rh.Get("Content-Range")))
		if !ok || int64(len(body)) != cr.Len() {
			return nil
		}
		e.size = size
		// Combine with a stored partial response of the same
		// representation (§3.4).
		if old := c.lookup(key, req); old != nil && !old.complete && old.size == size && sameRepresentation(old.header, rh) {
			ne, ok := c.combine(key, old, rh, body, t0, t1)
			if ok {
				return ne
			}
		}
		k := blobKey(e.id, cr.Start)
		e.pieces = []piece{{start: cr.Start, n: int64(len(body)), blob: k}}
		e.complete = cr.Start == 0 && cr.End == size-1
		if e.complete {
			e.status = 200
			e.header = e.header.Without(func(l string) bool { return l == "content-range" })
		}
		c.store.SetBlob(k, body)
	} else {
		e.size = int64(len(body))
		e.complete = true
		if len(body) > 0 {
			k := blobKey(e.id, 0)
			e.pieces = []piece{{start: 0, n: e.size, blob: k}}
			c.store.SetBlob(k, body)
		}
	}
	c.publish(key, e, nil)
	c.m.stored.Inc()
	return e
}

// sameRepresentation reports whether two responses have the same strong
// validator (RFC 9111 §3.4), so their parts may be combined.
func sameRepresentation(a, b Header) bool {
	ea, eb := a.Get("ETag"), b.Get("ETag")
	if ea != "" || eb != "" {
		return ea == eb && !strings.HasPrefix(ea, "W/")
	}
	la, lb := a.Get("Last-Modified"), b.Get("Last-Modified")
	return la != "" && la == lb
}

// combine adds a 206's bytes to a stored partial response of the same
// representation (RFC 9111 §3.4); the header fields of the newer response
// are used.
func (c *Cache) combine(key uint64, old *entry, rh Header, body []byte, t0, t1 time.Time) (*entry, bool) {
	cr, size, ok := httprange.ParseContentRange([]byte(rh.Get("Content-Range")))
	if !ok || size != old.size || int64(len(body)) != cr.Len() || !sameRepresentation(old.header, rh) {
		return nil, false
	}
	ne := c.newEntry(nil, 206, rh, t0, t1)
	ne.id, ne.vary, ne.size = old.id, old.vary, size
	read := func(p piece) ([]byte, bool) {
		b, ok := c.store.Blob(p.blob)
		return b, ok && int64(len(b)) == p.n
	}
	k := blobKey(old.id^rand.Uint64(), cr.Start)
	pieces, merged, drop, ok := mergePieces(old.pieces, read, cr.Start, body, k)
	if !ok {
		return nil, false
	}
	c.store.SetBlob(k, merged)
	for _, d := range drop {
		c.store.DelBlob(d)
	}
	ne.pieces = pieces
	if len(pieces) == 1 && pieces[0].start == 0 && pieces[0].n == size {
		ne.complete, ne.status = true, 200
		ne.header = ne.header.Without(func(l string) bool { return l == "content-range" })
	}
	c.publish(key, ne, old)
	c.m.stored.Inc()
	return ne, true
}

// update freshens e with a 304 (RFC 9111 §4.3.4) and returns the updated
// entry, or nil when the 304 does not select it.
func (c *Cache) update(key uint64, e *entry, rh Header, t0, t1 time.Time) *entry {
	c.mu.Lock()
	n := len(c.index[key])
	c.mu.Unlock()
	if !Selects304(e.header, rh, n == 1) {
		return nil
	}
	h := Update304(e.header, rh.Without(func(l string) bool { return l == "cache-status" }))
	ne := *e
	ne.header = h
	ne.cc = ParseCacheControl(h.Values("Cache-Control")...).WithSurrogate(h, c.cfg.Node)
	ne.age = NewAge(rh, t0, t1)
	if !rh.Has("Date") {
		ne.age.Date = t1
	}
	ne.stored = t1
	ne.lifetime = FreshnessLifetime(ne.status, h, ne.cc, ne.age.Date, c.cfg.Heuristic)
	if ne.age.Invalid {
		ne.lifetime = 0
	}
	c.publish(key, &ne, e)
	return &ne
}

// publish indexes e under key, replacing old (if given) and any entry
// with the same secondary key.
func (c *Cache) publish(key uint64, e, old *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	list := c.index[key]
	out := list[:0:0]
	for _, x := range list {
		if x == old || sameVary(x.vary, e.vary) {
			if x.id != e.id {
				c.dropBlobs(x)
			}
			c.n--
			continue
		}
		out = append(out, x)
	}
	c.index[key] = append(out, e)
	c.n++
	for c.n > c.cfg.MaxEntries {
		for k, l := range c.index {
			if k == key {
				continue
			}
			for _, x := range l {
				c.dropBlobs(x)
			}
			c.n -= len(l)
			delete(c.index, k)
			break
		}
	}
	c.m.entries.Set(float64(c.n))
}

func sameVary(a, b SecondaryKey) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (c *Cache) dropBlobs(e *entry) {
	for _, p := range e.pieces {
		c.store.DelBlob(p.blob)
	}
}

// remove forgets e.
func (c *Cache) remove(key uint64, e *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	list := c.index[key]
	for i, x := range list {
		if x == e {
			c.dropBlobs(x)
			c.index[key] = append(list[:i:i], list[i+1:]...)
			c.n--
			break
		}
	}
	if len(c.index[key]) == 0 {
		delete(c.index, key)
	}
	c.m.entries.Set(float64(c.n))
}

// invalidate forgets every stored response for a target (RFC 9111 §4.4).
func (c *Cache) invalidate(key uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, x := range c.index[key] {
		c.dropBlobs(x)
		c.n--
	}
	delete(c.index, key)
	c.m.entries.Set(float64(c.n))
}

func (c *Cache) join(key uint64) (chan struct{}, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch := c.flight[key]; ch != nil {
		return ch, false
	}
	ch := make(chan struct{})
	c.flight[key] = ch
	return ch, true
}

func (c *Cache) finish(key uint64, ch chan struct{}) {
	c.mu.Lock()
	delete(c.flight, key)
	c.mu.Unlock()
	close(ch)
}
