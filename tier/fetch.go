package tier

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/musiccdn/cdn/cache"
	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/httprange"
	"github.com/musiccdn/cdn/tierauth"
)

// errTimeout marks an upstream failure that was a timeout (504, not 502).
var errTimeout = errors.New("upstream timeout")

// fetcher fills chunks over HTTP. It implements cache.Fetcher.
//
// Upstreams: with a Routing, the live shields from membership in the
// track's rendezvous order; without, the configured list, starting at the
// track's hash. Either way each object is filled through one upstream
// first (so the upstreams' caches do not duplicate each other), and on an
// error or a timeout the next is tried within the caller's deadline.
// Passive health: an upstream that fails failLimit times in a row is
// skipped for downFor, unless every upstream is down.
//
// Blame: an upstream is marked failing only for its own failures (no
// answer, a broken answer, a 5xx of its own). A 502 or 504 carrying
// HeaderUpstreamError was passed on from the tier above it: the request
// goes on to the next upstream, but the one that passed it on keeps its
// health, so an origin outage does not make edges route around owners
// that are fine.
//
// A peer fetcher (an edge's hot store) first asks the track's owning edge
// over the peer endpoint of its internal listener, and falls back to the
// shields when the owner fails or is this node. When the owner has not
// answered within hedgeAfter, the same fill is sent to the shields too
// and the first good answer wins (a hedged request): a hung owner costs
// other edges' listeners at most hedgeAfter per fill, not the upstream
// timeout, and passive health routes around it once failLimit fills in a
// row were won by the shields while it had not answered (a late answer
// clears that). Every request carries the tier credential for
// its method and path.
type fetcher struct {
	static    []string
	route     Routing
	peer      bool
	noHandoff bool // Config.NoHandoff
	// auth signs every request: upstreams and owners check it. It is the
	// Server's tierAuth, shared so that a reload reaches every fetcher;
	// it holds nil on a node without tier_keys (only http routes), whose
	// fetchers sign nothing.
	auth       *atomic.Pointer[tierauth.Keyring]
	timeout    time.Duration
	hedgeAfter time.Duration // peer fetcher: hedge to the shields after this; 0 never
	tls        *tls.Config   // for https upstreams and owners; nil: system roots
	now        func() time.Time
	// stream makes the upstream clients stream response bodies and bound
	// response headers to maxHeader bytes (an http route's fetcher).
	stream    bool
	maxHeader int

	mu  sync.Mutex
	ups map[string]*upstream

	attempts     atomic.Int64 // upstream HTTP requests made
	failures     atomic.Int64 // attempts that failed
	peerAttempts atomic.Int64 // requests to owning edges
	peerFailures atomic.Int64 // of which failed (then filled from a shield)
	peerBytes    atomic.Int64 // body bytes received from owning edges
	skipped      atomic.Int64 // upstreams skipped as unhealthy
	peerSkipped  atomic.Int64 // owners skipped as unhealthy (filled from a shield)
	hedged       atomic.Int64 // peer fills also sent to the shields after hedgeAfter
	hedgeWins    atomic.Int64 // of which the shields answered first
	passedOn     atomic.Int64 // 502/504 passed on from further up: nobody blamed
	handoffs     atomic.Int64 // owner misses asked of the handoff peer first
	handoffHits  atomic.Int64 // of which it had the bytes
	// The handoffs of the current membership (ho.version): when most
	// miss (a POP starting cold, a track nobody held), stop asking
	// until the membership changes again.
	ho struct {
		version     atomic.Uint64
		tried, hits atomic.Int64
	}
}

// errNotCached is a handoff peer's answer that it does not hold the bytes.
var errNotCached = errors.New("handoff peer: not cached")

type upstream struct {
	base      string // e.g. "http://127.0.0.1:8081"
	hc        *fasthttp.HostClient
	fails     atomic.Int32
	downUntil atomic.Int64 // unix nanoseconds
	// downView is the edges' membership (Routing.Version) when the peer
	// was marked down: a peer edge that rejoins changes it, which clears
	// the mark at once (a restarted edge is asked again as soon as it
	// is back, not downFor later).
	downView atomic.Uint64
}

const (
	failLimit = 3
	downFor   = 10 * time.Second
)

var _ cache.Fetcher = (*fetcher)(nil)

func newFetcher(static []string, timeout time.Duration, tc *tls.Config, now func() time.Time) (*fetcher, error) {
	f := &fetcher{static: static, timeout: timeout, tls: tc, now: now, ups: map[string]*upstream{}}
	for _, b := range static {
		if _, err := f.upstream(b); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func (f *fetcher) upstream(base string) (*upstream, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if up := f.ups[base]; up != nil {
		return up, nil
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("upstream %q: not a base URL", base)
	}
	up := &upstream{
		base: base,
		hc: &fasthttp.HostClient{
			Addr:                u.Host,
			IsTLS:               u.Scheme == "https",
			TLSConfig:           f.tls,
			MaxConns:            512,
			ReadTimeout:         f.timeout,
			WriteTimeout:        f.timeout,
			MaxIdleConnDuration: 30 * time.Second,
			MaxResponseBodySize: 64 << 20,
		},
	}
	if f.stream {
		up.hc.StreamResponseBody = true
		up.hc.MaxResponseBodySize = 0
		up.hc.ReadBufferSize = f.maxHeader
		up.hc.DisablePathNormalizing = true
		up.hc.NoDefaultUserAgentHeader = true
		// One retry, and only for a kept-alive connection the upstream
		// had closed: a bad response (an oversized header) is an
		// answer, and failover to the next upstream is the caller's.
		up.hc.MaxIdemponentCallAttempts = 2
		up.hc.RetryIfErr = func(_ *fasthttp.Request, _ int, err error) (bool, bool) {
			return false, errors.Is(err, io.EOF) || errors.Is(err, fasthttp.ErrConnectionClosed)
		}
	}
	f.ups[base] = up
	return up, nil
}

// order returns the upstreams to try for name, first choice first,
// healthy ones before those passive health marks down.
func (f *fetcher) order(name string, dst []*upstream) []*upstream {
	return f.orderKey(catalog.KeyOfName(name), dst)
}

// orderKey is order for a hashed key.
func (f *fetcher) orderKey(key uint64, dst []*upstream) []*upstream {
	var bases []string
	if f.route != nil {
		var buf [16]string
		bases = f.route.Shields(key, buf[:0])
	}
	if len(bases) == 0 {
		bases = make([]string, 0, len(f.static))
		start := int(key % uint64(max(1, len(f.static))))
		for i := range f.static {
			bases = append(bases, f.static[(start+i)%len(f.static)])
		}
	}
	now := f.now().UnixNano()
	var down []*upstream
	for _, b := range bases {
		up, err := f.upstream(b)
		if err != nil {
			continue
		}
		if up.downUntil.Load() > now {
			f.skipped.Add(1)
			down = append(down, up)
			continue
		}
		dst = append(dst, up)
	}
	return append(dst, down...)
}

// Fetch implements cache.Fetcher.
func (f *fetcher) Fetch(ctx context.Context, name string, off, n int64) (cache.Meta, []byte, error) {
	shields := func() fill {
		var buf [8]*upstream
		var lastErr error = errors.New("no upstream")
		for _, up := range f.order(name, buf[:0]) {
			m, data, err := f.fetchOne(ctx, up, catalog.MediaPrefix+name, nil, off, n)
			if err == nil || errors.Is(err, cache.ErrNotFound) {
				return fill{m, data, false, err}
			}
			lastErr = err
			if ctx.Err() != nil {
				break
			}
		}
		return fill{err: lastErr}
	}
	if f.peer {
		r, ok := f.fromOwner(ctx, name, func(up *upstream, path string, hdr []string) fill {
			m, data, err := f.fetchOne(ctx, up, path, hdr, off, n)
			return fill{m, data, false, err}
		}, shields)
		if ok {
			return r.m, r.data, r.err
		}
	}
	if !f.peer && f.route != nil && !f.noHandoff {
		if m, data, ok := f.handoff(ctx, name, off, n); ok {
			return m, data, nil
		}
	}
	r := shields()
	return r.m, r.data, r.err
}

// handoff asks the track's handoff peer (Routing.Handoff) for the bytes
// it has cached; ok is false when there is none, it does not have them,
// or it fails: the caller then goes to the shields. A "not cached" answer
// does not count against the peer's health.
func (f *fetcher) handoff(ctx context.Context, name string, off, n int64) (cache.Meta, []byte, bool) {
	p, ok := f.route.Handoff(catalog.KeyOfName(name))
	if !ok {
		return cache.Meta{}, nil, false
	}
	if v := f.route.Version(); f.ho.version.Swap(v) != v {
		f.ho.tried.Store(0)
		f.ho.hits.Store(0)
	}
	if t := f.ho.tried.Load(); t >= handoffProbe && f.ho.hits.Load()*10 < t {
		return cache.Meta{}, nil, false
	}
	up, err := f.upstream(p.URL)
	if err != nil || f.peerDown(up) {
		return cache.Meta{}, nil, false
	}
	f.handoffs.Add(1)
	f.ho.tried.Add(1)
	hdr := []string{peerHopHeader, "1", onlyIfCachedHeader, "1",
		peerVersionHeader, strconv.FormatUint(f.route.Version(), 16)}
	m, data, err := f.fetchOne(ctx, up, peerPrefix+name, hdr, off, n)
	// Counted as a handoff, not as an upstream (shield) attempt.
	f.attempts.Add(-1)
	if err != nil {
		return cache.Meta{}, nil, false
	}
	f.handoffHits.Add(1)
	f.ho.hits.Add(1)
	f.peerBytes.Add(int64(len(data)))
	return m, data, true
}

// handoffProbe is how many handoffs of one membership are tried before
// their hit ratio may switch them off (below 10 %).
const handoffProbe = 64

// fill is the outcome of one fill attempt.
type fill struct {
	m           cache.Meta
	data        []byte
	notModified bool // Revalidate only
	err         error
}

// good reports whether the attempt gave an answer (ErrNotFound is one).
func (r fill) good() bool { return r.err == nil || errors.Is(r.err, cache.ErrNotFound) }

// fromOwner runs do against the track's owning edge, hedged to shields
// after hedgeAfter (never when shields is nil). ok is false when this node owns the track, or the
// owner is marked down, or it failed before the hedge: the caller then
// goes to the shields itself.
func (f *fetcher) fromOwner(ctx context.Context, name string, do func(up *upstream, path string, hdr []string) fill, shields func() fill) (fill, bool) {
	owner, self, done := f.route.Owner(catalog.KeyOfName(name))
	if self {
		done()
		return fill{}, false
	}
	up, err := f.upstream(owner.URL)
	if err != nil {
		done()
		return fill{}, false
	}
	if f.peerDown(up) {
		// Passive health: an owner that keeps failing is routed around
		// at once, before gossip declares it dead.
		done()
		f.peerSkipped.Add(1)
		return fill{}, false
	}
	f.peerAttempts.Add(1)
	path := peerPrefix + name
	hdr := []string{
		peerHopHeader, "1",
		peerVersionHeader, strconv.FormatUint(f.route.Version(), 16),
	}
	ownerDone := make(chan fill, 1)
	go func() {
		defer done()
		r := do(up, path, hdr)
		if r.good() {
			f.peerBytes.Add(int64(len(r.data)))
		} else {
			f.peerFailures.Add(1)
		}
		ownerDone <- r
	}()
	var hedge <-chan time.Time
	if f.hedgeAfter > 0 && shields != nil {
		t := time.NewTimer(f.hedgeAfter)
		defer t.Stop()
		hedge = t.C
	}
	select {
	case r := <-ownerDone:
		return r, r.good()
	case <-ctx.Done():
		return fill{err: ctx.Err()}, true
	case <-hedge:
	}
	// The owner is late: ask the shields too and take the first good
	// answer. The owner's attempt runs on to its own deadline; if it
	// ends unanswered it counts against the owner's health.
	f.hedged.Add(1)
	shieldDone := make(chan fill, 1)
	go func() { shieldDone <- shields() }()
	var last fill
	for pending := 2; pending > 0; pending-- {
		select {
		case r := <-ownerDone:
			if r.good() {
				return r, true
			}
			ownerDone, last = nil, r
		case r := <-shieldDone:
			if r.good() {
				f.hedgeWins.Add(1)
				if ownerDone != nil {
					// The owner has still not answered: a strike
					// against it, so that failLimit such fills in
					// a row route around a hung owner at once,
					// not after its upstream_timeout. Any answer
					// from it (healthy) clears them.
					f.late(up)
				}
				return r, true
			}
			shieldDone, last = nil, r
		case <-ctx.Done():
			return fill{err: ctx.Err()}, true
		}
	}
	return last, true
}

func (f *fetcher) fetchOne(ctx context.Context, up *upstream, path string, hdr []string, off, n int64) (cache.Meta, []byte, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(up.base + path)
	req.Header.SetMethod(fasthttp.MethodGet)
	req.Header.Set(tierauth.Header, f.auth.Load().Sign(fasthttp.MethodGet, path, f.now()))
	req.Header.SetByteRange(int(off), int(off+n-1))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if err := f.do(ctx, up, req, resp); err != nil {
		return cache.Meta{}, nil, err
	}
	switch code := resp.StatusCode(); code {
	case fasthttp.StatusPartialContent:
		r, size, ok := httprange.ParseContentRange(resp.Header.Peek("Content-Range"))
		if !ok || r.Start != off || r.Len() != int64(len(resp.Body())) {
			return cache.Meta{}, nil, f.failed(up, fmt.Errorf("%s: bad Content-Range %q for %d bytes", up.base, resp.Header.Peek("Content-Range"), len(resp.Body())))
		}
		f.healthy(up)
		return metaOf(resp, size), bytes.Clone(resp.Body()), nil
	case fasthttp.StatusOK:
		// The upstream ignored the range and sent the whole file.
		f.healthy(up)
		body := resp.Body()
		size := int64(len(body))
		if off >= size {
			return metaOf(resp, size), nil, nil
		}
		return metaOf(resp, size), bytes.Clone(body[off:min(off+n, size)]), nil
	case fasthttp.StatusRequestedRangeNotSatisfiable:
		// An offset past the end: the size is in "bytes */<size>".
		size, ok := httprange.ParseUnsatisfied(resp.Header.Peek("Content-Range"))
		if !ok {
			return cache.Meta{}, nil, f.failed(up, fmt.Errorf("%s: 416 without a size", up.base))
		}
		f.healthy(up)
		return metaOf(resp, size), nil, nil
	case fasthttp.StatusNotFound:
		f.healthy(up)
		return cache.Meta{}, nil, cache.ErrNotFound
	case fasthttp.StatusGatewayTimeout:
		if len(resp.Header.Peek(onlyIfCachedHeader)) > 0 {
			f.healthy(up)
			return cache.Meta{}, nil, errNotCached
		}
		return cache.Meta{}, nil, f.statusError(up, resp)
	default:
		return cache.Meta{}, nil, f.statusError(up, resp)
	}
}

// statusError is the error of an unexpected status: a failure of up, or,
// for a 502 or 504 marked with HeaderUpstreamError, one up passed on from
// further upstream, which does not count against up's health.
func (f *fetcher) statusError(up *upstream, resp *fasthttp.Response) error {
	code := resp.StatusCode()
	var err error = fmt.Errorf("%s: status %d", up.base, code)
	if code == fasthttp.StatusGatewayTimeout {
		err = fmt.Errorf("%s: status 504: %w", up.base, errTimeout)
	}
	if passedOn(resp) {
		f.passedOn.Add(1)
		return err
	}
	return f.failed(up, err)
}

// passedOn reports whether resp is a 502 or 504 its sender passed on from
// its own upstream (HeaderUpstreamError), rather than a failure of its own.
func passedOn(resp *fasthttp.Response) bool {
	code := resp.StatusCode()
	return (code == fasthttp.StatusBadGateway || code == fasthttp.StatusGatewayTimeout) &&
		len(resp.Header.Peek(HeaderUpstreamError)) > 0
}

// Revalidate implements cache.Fetcher with a conditional HEAD.
func (f *fetcher) Revalidate(ctx context.Context, name, etag string) (cache.Meta, bool, error) {
	return f.head(ctx, name, etag, nil)
}

// FetchMeta implements cache.MetaFetcher: a HEAD with the Range of the
// chunk the caller wants next, so that the upstream, when it is a cache
// that does not hold the object yet, learns the metadata with that chunk
// (which the caller asks for at once) rather than with chunk 0.
func (f *fetcher) FetchMeta(ctx context.Context, name string, off, n int64) (cache.Meta, error) {
	rng := "bytes=" + strconv.FormatInt(off, 10) + "-" + strconv.FormatInt(off+n-1, 10)
	m, _, err := f.head(ctx, name, "", []string{"Range", rng})
	return m, err
}

var _ cache.MetaFetcher = (*fetcher)(nil)

// head is a HEAD of name upstream (at the owner, for a peer fetcher, then
// the shields in order), conditional on etag when it is not "", with
// the extra headers extra.
func (f *fetcher) head(ctx context.Context, name, etag string, extra []string) (cache.Meta, bool, error) {
	head := func(up *upstream, path string, hdr []string) fill {
		// A fresh slice: hedged attempts may share hdr.
		h := append(append(make([]string, 0, len(hdr)+len(extra)), hdr...), extra...)
		m, nm, err := f.headOne(ctx, up, path, h, etag)
		return fill{m: m, notModified: nm, err: err}
	}
	shields := func() fill {
		var buf [8]*upstream
		var lastErr error = errors.New("no upstream")
		for _, up := range f.order(name, buf[:0]) {
			if r := head(up, catalog.MediaPrefix+name, nil); r.good() {
				return r
			} else {
				lastErr = r.err
			}
			if ctx.Err() != nil {
				break
			}
		}
		return fill{err: lastErr}
	}
	if f.peer {
		if r, ok := f.fromOwner(ctx, name, head, shields); ok {
			return r.m, r.notModified, r.err
		}
	}
	r := shields()
	return r.m, r.notModified, r.err
}

func (f *fetcher) headOne(ctx context.Context, up *upstream, path string, hdr []string, etag string) (cache.Meta, bool, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(up.base + path)
	req.Header.SetMethod(fasthttp.MethodHead)
	req.Header.Set(tierauth.Header, f.auth.Load().Sign(fasthttp.MethodHead, path, f.now()))
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if err := f.do(ctx, up, req, resp); err != nil {
		return cache.Meta{}, false, err
	}
	switch resp.StatusCode() {
	case fasthttp.StatusNotModified:
		f.healthy(up)
		return cache.Meta{}, true, nil
	case fasthttp.StatusOK:
		f.healthy(up)
		return metaOf(resp, int64(resp.Header.ContentLength())), false, nil
	case fasthttp.StatusPartialContent:
		// A HEAD with a Range (FetchMeta): the size is Content-Range's.
		_, size, ok := httprange.ParseContentRange(resp.Header.Peek("Content-Range"))
		if !ok {
			return cache.Meta{}, false, f.failed(up, fmt.Errorf("%s: HEAD 206 with a bad Content-Range %q", up.base, resp.Header.Peek("Content-Range")))
		}
		f.healthy(up)
		return metaOf(resp, size), false, nil
	case fasthttp.StatusRequestedRangeNotSatisfiable:
		size, ok := httprange.ParseUnsatisfied(resp.Header.Peek("Content-Range"))
		if !ok {
			return cache.Meta{}, false, f.failed(up, fmt.Errorf("%s: 416 without a size", up.base))
		}
		f.healthy(up)
		return metaOf(resp, size), false, nil
	case fasthttp.StatusNotFound:
		f.healthy(up)
		return cache.Meta{}, false, cache.ErrNotFound
	}
	return cache.Meta{}, false, f.statusError(up, resp)
}

// do runs one attempt with a deadline of the upstream timeout or ctx's,
// whichever is sooner.
func (f *fetcher) do(ctx context.Context, up *upstream, req *fasthttp.Request, resp *fasthttp.Response) error {
	f.attempts.Add(1)
	deadline := time.Now().Add(f.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	err := up.hc.DoDeadline(req, resp, deadline)
	if err != nil {
		if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrDialTimeout) {
			return f.failed(up, fmt.Errorf("%s: %w", up.base, errTimeout))
		}
		return f.failed(up, fmt.Errorf("%s: %w", up.base, err))
	}
	return nil
}

func (f *fetcher) failed(up *upstream, err error) error {
	f.failures.Add(1)
	if up.fails.Add(1) >= failLimit {
		f.markDown(up)
	}
	return err
}

// markDown makes passive health skip up for downFor (a peer edge: under
// the current membership only).
func (f *fetcher) markDown(up *upstream) {
	if f.route != nil {
		up.downView.Store(f.route.Version())
	}
	up.downUntil.Store(f.now().Add(downFor).UnixNano())
}

// peerDown reports whether passive health has marked a peer edge down
// under the current membership.
func (f *fetcher) peerDown(up *upstream) bool {
	return up.downUntil.Load() > f.now().UnixNano() && up.downView.Load() == f.route.Version()
}

// late counts against up an answer that took longer than a hedge: like
// a failure for passive health, without being one (nothing failed yet).
func (f *fetcher) late(up *upstream) {
	if up.fails.Add(1) >= failLimit {
		f.markDown(up)
	}
}

func (f *fetcher) healthy(up *upstream) {
	if up.fails.Load() != 0 {
		up.fails.Store(0)
		up.downUntil.Store(0)
	}
}

func metaOf(resp *fasthttp.Response, size int64) cache.Meta {
	lm, err := fasthttp.ParseHTTPDate(resp.Header.Peek("Last-Modified"))
	if err != nil {
		lm = time.Time{}
	}
	return cache.NewMeta(size, string(resp.Header.Peek("ETag")), lm, string(resp.Header.ContentType()))
}
