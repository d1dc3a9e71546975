package tier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
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

// fetcher fills a store's chunks over HTTP, in the shape of a reverse
// proxy: a pool of upstreams (upstreamPool; each with its client and
// passive health, Available when healthy and not full), a selector that
// orders them for a key, and one failover loop (failover) that tries them
// in order within the caller's deadline and stops at the first answer.
// It implements cache.Fetcher and cache.MetaFetcher, for GET fills,
// conditional HEADs (Revalidate) and metadata HEADs (FetchMeta) alike:
// every request is built by one builder (request) and read by one reader
// (exchange).
//
// Its constructors say where a store fills from:
//
//   - newFetcher: the shields (shieldSelector: the live shields from
//     membership in the track's rendezvous order, else the configured
//     list from the track's hash). A shield's store, an edge's without a
//     cluster, an http route's.
//   - newHandoffFetcher: an owning edge's main store. Within
//     HandoffWindow of a membership change, a GET asks the edge that held
//     the track before (PeerPicker.Handoff) for what it has cached
//     (only-if-cached) before the shields; when fewer than 10 % of a
//     membership's first handoffProbe handoffs hit, it stops asking until
//     the membership changes again.
//   - newPeerFetcher: an edge's hot store. A fill goes first to the
//     track's owning edge (ownerSelector: the peer picker's owner with
//     bounded load) over the peer endpoint of its internal listener, and
//     to the shields when this node owns the track or the owner is not
//     available. When the owner has not answered within hedgeAfter, the
//     same fill goes to the shields too and the first good answer wins (a
//     hedged request): a hung owner costs other edges' listeners at most
//     hedgeAfter per fill, not the upstream timeout, and a hedge won by
//     the shields while the owner had not answered is a strike against it
//     (failLimit in a row mark it down; any answer from it clears them).
//
// Blame (blame): an upstream is marked failing only for its own failures
// (no answer, a broken answer, a 5xx of its own). A 502 or 504 carrying
// HeaderUpstreamError was passed on from the tier above it: the request
// goes on to the next upstream, but the one that passed it on keeps its
// health, so an origin outage does not make edges route around owners
// that are fine. Every request carries the tier credential for its
// method and path.
type fetcher struct {
	pool    *upstreamPool
	shields selector
	// owners, for an edge's hot store: fill from the owning edge first,
	// hedged to the shields after hedgeAfter (0: never).
	owners     *ownerSelector
	hedgeAfter time.Duration
	// handoff, for an owning edge's main store: ask the handoff peer
	// first.
	handoff PeerPicker
	// auth signs every request: upstreams and owners check it. It is the
	// Server's tierAuth, shared so that a reload reaches every fetcher;
	// it holds nil on a node without tier_keys (only http routes), whose
	// fetchers sign nothing.
	auth *atomic.Pointer[tierauth.Keyring]

	attempts     atomic.Int64 // upstream HTTP requests made (owners included, handoffs not)
	failures     atomic.Int64 // attempts that failed
	peerAttempts atomic.Int64 // requests to owning edges
	peerFailures atomic.Int64 // of which failed (then filled from a shield)
	peerBytes    atomic.Int64 // body bytes received from owning edges and handoff peers
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

var (
	_ cache.Fetcher     = (*fetcher)(nil)
	_ cache.MetaFetcher = (*fetcher)(nil)
)

// newFetcher returns a fetcher that fills from the shields: live's in
// the track's rendezvous order, or, when live is nil or names none, the
// static base URLs (made in pool here: one that does not parse is an
// error).
func newFetcher(pool *upstreamPool, static []string, live ShieldLister, auth *atomic.Pointer[tierauth.Keyring]) (*fetcher, error) {
	f := &fetcher{pool: pool, auth: auth}
	sel, err := newShieldSelector(pool, static, live, &f.skipped)
	if err != nil {
		return nil, err
	}
	f.shields = sel
	return f, nil
}

// newHandoffFetcher returns the fetcher of an owning edge's main store:
// as newFetcher's, asking route's handoff peer first (see fetcher).
func newHandoffFetcher(pool *upstreamPool, static []string, route Routing, auth *atomic.Pointer[tierauth.Keyring]) (*fetcher, error) {
	f, err := newFetcher(pool, static, route, auth)
	if err != nil {
		return nil, err
	}
	f.handoff = route
	return f, nil
}

// newPeerFetcher returns the fetcher of an edge's hot store: from the
// owning edge route picks, hedged to the shields after hedgeAfter (0:
// never), else from the shields (see fetcher).
func newPeerFetcher(pool *upstreamPool, static []string, route Routing, hedgeAfter time.Duration, auth *atomic.Pointer[tierauth.Keyring]) (*fetcher, error) {
	f, err := newFetcher(pool, static, route, auth)
	if err != nil {
		return nil, err
	}
	f.owners = &ownerSelector{peers: route, skipped: &f.peerSkipped}
	f.hedgeAfter = hedgeAfter
	return f, nil
}

// Fetch implements cache.Fetcher.
func (f *fetcher) Fetch(ctx context.Context, name string, off, n int64) (cache.Meta, []byte, error) {
	r := f.fill(ctx, &call{method: fasthttp.MethodGet, name: name, off: off, n: n})
	return r.m, r.data, r.err
}

// Revalidate implements cache.Fetcher with a conditional HEAD.
func (f *fetcher) Revalidate(ctx context.Context, name, etag string) (cache.Meta, bool, error) {
	r := f.fill(ctx, &call{method: fasthttp.MethodHead, name: name, etag: etag})
	return r.m, r.notModified, r.err
}

// FetchMeta implements cache.MetaFetcher: a HEAD with the Range of the
// chunk the caller wants next, so that the upstream, when it is a cache
// that does not hold the object yet, learns the metadata with that chunk
// (which the caller asks for at once) rather than with chunk 0.
func (f *fetcher) FetchMeta(ctx context.Context, name string, off, n int64) (cache.Meta, error) {
	rng := "bytes=" + strconv.FormatInt(off, 10) + "-" + strconv.FormatInt(off+n-1, 10)
	r := f.fill(ctx, &call{method: fasthttp.MethodHead, name: name, hdr: []string{"Range", rng}})
	return r.m, r.err
}

// call is one request of a fill, whichever upstream it goes to.
type call struct {
	method string   // GET or HEAD
	name   string   // the object, "<track>/<kbps>.<ext>"
	off, n int64    // GET: the bytes asked for
	etag   string   // HEAD: If-None-Match, when not ""
	hdr    []string // extra header pairs: FetchMeta's Range, a warm's X-Prefetch
}

// fill is the outcome of one fill attempt.
type fill struct {
	m           cache.Meta
	data        []byte
	notModified bool // a conditional HEAD
	err         error
}

// good reports whether the attempt gave an answer (ErrNotFound is one).
func (r fill) good() bool { return answered(r.err) }

// answered reports whether err ends a fill: none, or ErrNotFound (a 404
// is an answer, not a failure to try elsewhere).
func answered(err error) bool { return err == nil || errors.Is(err, cache.ErrNotFound) }

// fill gets c from the owning edge, the handoff peer or the shields, as
// the fetcher is made to (see fetcher).
func (f *fetcher) fill(ctx context.Context, c *call) fill {
	key := catalog.KeyOfName(c.name)
	if f.owners != nil {
		if r, ok := f.fromOwner(ctx, key, c, true); ok {
			return r
		}
	}
	if f.handoff != nil && c.method == fasthttp.MethodGet {
		if r, ok := f.fromHandoff(ctx, key, c); ok {
			return r
		}
	}
	return f.fromShields(ctx, key, c)
}

// fromShields gets c from the shields the selector orders for key.
func (f *fetcher) fromShields(ctx context.Context, key uint64, c *call) fill {
	var buf [8]*upstream
	var r fill
	err := f.failover(ctx, f.shields.Select(f.pool, key, buf[:0]), func(up *upstream) error {
		r = f.exchange(ctx, up, catalog.MediaPrefix, c, nil)
		return r.err
	})
	if !answered(err) {
		return fill{err: err}
	}
	return r
}

// errNoUpstream is the failure of a fill with nowhere to go.
var errNoUpstream = errors.New("no upstream")

// failover is the one retry loop of every fill: it tries ups in order
// until try gets an answer (see answered), and stops early when ctx ends.
// Each attempt's outcome goes to blame. It returns the last attempt's
// error, or errNoUpstream when ups is empty.
func (f *fetcher) failover(ctx context.Context, ups []*upstream, try func(up *upstream) error) error {
	err := errNoUpstream
	for _, up := range ups {
		f.attempts.Add(1)
		err = try(up)
		f.blame(up, err)
		if answered(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// blame records the outcome of one attempt on up's passive health. An
// answer (a 404, and a handoff peer's "not cached", are answers) clears
// its failures; a failure of its own counts against it; a 502 or 504 it
// passed on from further up (passedOnError) counts against nobody.
func (f *fetcher) blame(up *upstream, err error) {
	var po passedOnError
	switch {
	case err == nil, errors.Is(err, cache.ErrNotFound), errors.Is(err, errNotCached):
		up.succeeded()
	case errors.As(err, &po):
		f.passedOn.Add(1)
	default:
		f.failures.Add(1)
		up.failed()
	}
}

// fromOwner gets c from the owning edge of key, hedged to the shields
// after hedgeAfter when hedge is set. ok is false when there is no owner
// to ask (this node owns the track, or the owner is not available) or it
// failed before the hedge: the caller then goes to the shields itself.
func (f *fetcher) fromOwner(ctx context.Context, key uint64, c *call, hedge bool) (fill, bool) {
	up, load := f.owners.Select(f.pool, key)
	if up == nil {
		return fill{}, false
	}
	f.peerAttempts.Add(1)
	hdr := peerHeaders(f.owners.peers.Version(), false)
	ownerDone := make(chan fill, 1)
	go func() {
		defer load.Done()
		f.attempts.Add(1)
		r := f.exchange(ctx, up, peerPrefix, c, hdr)
		f.blame(up, r.err)
		if r.good() {
			f.peerBytes.Add(int64(len(r.data)))
		} else {
			f.peerFailures.Add(1)
		}
		ownerDone <- r
	}()
	var hedgeAt <-chan time.Time
	if hedge && f.hedgeAfter > 0 {
		t := time.NewTimer(f.hedgeAfter)
		defer t.Stop()
		hedgeAt = t.C
	}
	select {
	case r := <-ownerDone:
		return r, r.good()
	case <-ctx.Done():
		return fill{err: ctx.Err()}, true
	case <-hedgeAt:
	}
	// The owner is late: ask the shields too and take the first good
	// answer. The owner's attempt runs on to its own deadline; if it
	// ends unanswered it counts against the owner's health.
	f.hedged.Add(1)
	shieldDone := make(chan fill, 1)
	go func() { shieldDone <- f.fromShields(ctx, key, c) }()
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
					up.failed()
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

// errNotCached is a handoff peer's answer that it does not hold the bytes.
var errNotCached = errors.New("handoff peer: not cached")

// handoffProbe is how many handoffs of one membership are tried before
// their hit ratio may switch them off (below 10 %).
const handoffProbe = 64

// fromHandoff asks the handoff peer of key (PeerPicker.Handoff) for the
// bytes it has cached; ok is false when there is none, it is not
// available, it does not have them, or it fails: the caller then goes to
// the shields. A "not cached" answer does not count against the peer's
// health.
func (f *fetcher) fromHandoff(ctx context.Context, key uint64, c *call) (fill, bool) {
	p, ok := f.handoff.Handoff(key)
	if !ok {
		return fill{}, false
	}
	if v := f.handoff.Version(); f.ho.version.Swap(v) != v {
		f.ho.tried.Store(0)
		f.ho.hits.Store(0)
	}
	if t := f.ho.tried.Load(); t >= handoffProbe && f.ho.hits.Load()*10 < t {
		return fill{}, false
	}
	up, err := f.pool.peer(p.URL)
	if err != nil || !up.Available() {
		return fill{}, false
	}
	// Counted as a handoff, not as an upstream (shield) attempt.
	f.handoffs.Add(1)
	f.ho.tried.Add(1)
	hdr := peerHeaders(f.handoff.Version(), true)
	r := f.exchange(ctx, up, peerPrefix, c, hdr)
	f.blame(up, r.err)
	if r.err != nil {
		return fill{}, false
	}
	f.handoffHits.Add(1)
	f.ho.hits.Add(1)
	f.peerBytes.Add(int64(len(r.data)))
	return r, true
}

// peerHeaders are the headers of a request to another edge: one hop
// (never forwarded again), the membership it was routed by, and, for a
// handoff, only-if-cached.
func peerHeaders(version uint64, onlyIfCached bool) []string {
	hdr := []string{peerHopHeader, "1", peerVersionHeader, strconv.FormatUint(version, 16)}
	if onlyIfCached {
		hdr = append(hdr, onlyIfCachedHeader, "1")
	}
	return hdr
}

// warmAtOwner fills the first n bytes of name at the owning edge of key,
// marked as a prefetch. It is not hedged: a warm is background work, and
// sending it to the shields as well would fill the POP twice.
func (f *fetcher) warmAtOwner(ctx context.Context, key uint64, name string, n int64) error {
	r, ok := f.fromOwner(ctx, key, &call{method: fasthttp.MethodGet, name: name, off: 0, n: n, hdr: []string{"X-Prefetch", "1"}}, false)
	if !ok {
		return errors.New("owner unavailable")
	}
	return r.err
}

// request builds c's request to up at prefix+name: method, path, the
// tier credential, the range (GET) or validator (HEAD), c's extra
// headers and hdr (the peer path's).
func (f *fetcher) request(req *fasthttp.Request, up *upstream, prefix string, c *call, hdr []string) {
	path := prefix + c.name
	req.SetRequestURI(up.base + path)
	req.Header.SetMethod(c.method)
	f.sign(&req.Header, c.method, path)
	if c.method == fasthttp.MethodGet {
		req.Header.SetByteRange(int(c.off), int(c.off+c.n-1))
	}
	if c.etag != "" {
		req.Header.Set("If-None-Match", c.etag)
	}
	for _, h := range [2][]string{hdr, c.hdr} {
		for i := 0; i+1 < len(h); i += 2 {
			req.Header.Set(h[i], h[i+1])
		}
	}
}

// sign sets the tier credential for method and target (the request's
// path and query).
func (f *fetcher) sign(h *fasthttp.RequestHeader, method, target string) {
	if kr := f.auth.Load(); kr != nil {
		h.Set(tierauth.Header, kr.Sign(method, target, f.pool.now()))
	}
}

// exchange sends c to up at prefix and reads the answer. It judges the
// answer (a broken one is an error naming up) but not up's health: the
// caller hands the error to blame.
func (f *fetcher) exchange(ctx context.Context, up *upstream, prefix string, c *call, hdr []string) fill {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	f.request(req, up, prefix, c, hdr)
	if err := f.do(ctx, up, req, resp); err != nil {
		return fill{err: err}
	}
	head := c.method == fasthttp.MethodHead
	switch code := resp.StatusCode(); {
	case code == fasthttp.StatusPartialContent:
		r, size, ok := httprange.ParseContentRange(resp.Header.Peek("Content-Range"))
		if head {
			// A HEAD with a Range (FetchMeta): the size is Content-Range's.
			if !ok {
				return fill{err: fmt.Errorf("%s: HEAD 206 with a bad Content-Range %q", up.base, resp.Header.Peek("Content-Range"))}
			}
			return fill{m: metaOf(resp, size)}
		}
		if !ok || r.Start != c.off || r.Len() != int64(len(resp.Body())) {
			return fill{err: fmt.Errorf("%s: bad Content-Range %q for %d bytes", up.base, resp.Header.Peek("Content-Range"), len(resp.Body()))}
		}
		return fill{m: metaOf(resp, size), data: bytes.Clone(resp.Body())}
	case code == fasthttp.StatusOK && head:
		return fill{m: metaOf(resp, int64(resp.Header.ContentLength()))}
	case code == fasthttp.StatusOK:
		// The upstream ignored the range and sent the whole file.
		body := resp.Body()
		size := int64(len(body))
		if c.off >= size {
			return fill{m: metaOf(resp, size)}
		}
		return fill{m: metaOf(resp, size), data: bytes.Clone(body[c.off:min(c.off+c.n, size)])}
	case code == fasthttp.StatusNotModified && head:
		return fill{notModified: true}
	case code == fasthttp.StatusRequestedRangeNotSatisfiable:
		// An offset past the end: the size is in "bytes */<size>".
		size, ok := httprange.ParseUnsatisfied(resp.Header.Peek("Content-Range"))
		if !ok {
			return fill{err: fmt.Errorf("%s: 416 without a size", up.base)}
		}
		return fill{m: metaOf(resp, size)}
	case code == fasthttp.StatusNotFound:
		return fill{err: cache.ErrNotFound}
	case code == fasthttp.StatusGatewayTimeout && len(resp.Header.Peek(onlyIfCachedHeader)) > 0:
		return fill{err: errNotCached}
	}
	return fill{err: statusError(up, resp)}
}

// do runs one attempt with a deadline of the upstream timeout or ctx's,
// whichever is sooner, counted in flight at up meanwhile.
func (f *fetcher) do(ctx context.Context, up *upstream, req *fasthttp.Request, resp *fasthttp.Response) error {
	deadline := time.Now().Add(f.pool.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	up.inflight.Add(1)
	err := up.hc.DoDeadline(req, resp, deadline)
	up.inflight.Add(-1)
	if err != nil {
		if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrDialTimeout) {
			return fmt.Errorf("%s: %w", up.base, errTimeout)
		}
		return fmt.Errorf("%s: %w", up.base, err)
	}
	return nil
}

// statusError is the error of an unexpected status: a failure of up, or,
// for a 502 or 504 marked with HeaderUpstreamError, a passedOnError.
func statusError(up *upstream, resp *fasthttp.Response) error {
	code := resp.StatusCode()
	var err error = fmt.Errorf("%s: status %d", up.base, code)
	if code == fasthttp.StatusGatewayTimeout {
		err = fmt.Errorf("%s: status 504: %w", up.base, errTimeout)
	}
	if passedOn(resp) {
		return passedOnError{err}
	}
	return err
}

// passedOnError is a 502 or 504 an upstream passed on from its own
// upstream: the fill failed, but not by that upstream's fault.
type passedOnError struct{ error }

func (e passedOnError) Unwrap() error { return e.error }

// passedOn reports whether resp is a 502 or 504 its sender passed on from
// its own upstream (HeaderUpstreamError), rather than a failure of its own.
func passedOn(resp *fasthttp.Response) bool {
	code := resp.StatusCode()
	return (code == fasthttp.StatusBadGateway || code == fasthttp.StatusGatewayTimeout) &&
		len(resp.Header.Peek(HeaderUpstreamError)) > 0
}

func metaOf(resp *fasthttp.Response, size int64) cache.Meta {
	lm, err := fasthttp.ParseHTTPDate(resp.Header.Peek("Last-Modified"))
	if err != nil {
		lm = time.Time{}
	}
	return cache.NewMeta(size, string(resp.Header.Peek("ETag")), lm, string(resp.Header.ContentType()))
}
