package tier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/musiccdn/cdn/httpcache"
)

// httpRoute is a route in http mode: a shared RFC 9111 cache (package
// httpcache) for a path prefix, beside the audio path.
//
// Who may call: at an edge, anyone who reaches its public listener, like
// the audio path but without a token (these are public images and API
// responses); at a shield with tier_keys, only edges (tier credential),
// as for /media/.
// What one request may cost: GET and HEAD are answered from the cache or
// with one upstream request (two when a stored partial response cannot be
// completed), collapsed per URL; CONNECT and TRACE get 405; every other
// method is forwarded as it is (its body bounded by the server's 1 MiB
// request limit, maxRouteBody) and invalidates what it changes (RFC 9111
// §4.4). Response bodies above the route's max_object_size are
// streamed through, never buffered whole; upstream response headers are
// bounded by max_header_bytes; every upstream attempt by
// upstream_timeout.
type httpRoute struct {
	prefix []byte
	cache  *httpcache.Cache
}

// newHTTPRoutes builds the http routes of cfg, longest prefix first.
func (s *Server) newHTTPRoutes(cfg Config, reg prometheus.Registerer) error {
	var m *httpcache.Metrics
	for _, r := range cfg.routes() {
		if r.Mode != ModeHTTP {
			continue
		}
		if m == nil {
			m = httpcache.NewMetrics(string(cfg.Role), reg)
		}
		bases := r.Upstreams
		if len(bases) == 0 {
			bases = cfg.Upstreams
		}
		// Each route has its own pool: its clients stream bodies and
		// bound headers to the route's max_header_bytes.
		pool := newUpstreamPool(poolConfig{Timeout: time.Duration(cfg.UpstreamTimeout), TLS: s.fillTLS, Now: s.now,
			Stream: true, MaxHeader: int(r.MaxHeaderBytes)})
		var live ShieldLister
		if len(r.Upstreams) == 0 && s.route != nil {
			live = s.route // the live shields, in rendezvous order
		}
		f, err := newFetcher(pool, bases, live, s.tierAuth)
		if err != nil {
			return err
		}
		c := httpcache.New(httpcache.Config{
			Node:          cfg.Name,
			Route:         r.Prefix,
			MaxObjectSize: int64(r.MaxObjectSize),
			MaxEntries:    r.MaxEntries,
			StaleOnError:  max(time.Duration(r.StaleOnError), 0),
			Timeout:       time.Duration(cfg.UpstreamTimeout) * 2,
		}, httpUpstream{f}, s.store, m, s.log, s.now)
		s.httpRoutes = append(s.httpRoutes, httpRoute{prefix: []byte(r.Prefix), cache: c})
	}
	slices.SortStableFunc(s.httpRoutes, func(a, b httpRoute) int { return len(b.prefix) - len(a.prefix) })
	return nil
}

// serveHTTPRoute hands the request to the longest http route matching
// path, reporting whether there was one.
func (s *Server) serveHTTPRoute(ctx *fasthttp.RequestCtx, path []byte) bool {
	for i := range s.httpRoutes {
		if bytes.HasPrefix(path, s.httpRoutes[i].prefix) {
			if s.cfg.Role == Shield && s.tierAuth.Load() != nil && !s.tierAuthorized(ctx) {
				return true // a shield serves its edges only
			}
			s.httpRoutes[i].cache.Handle(ctx)
			return true
		}
	}
	return false
}

// httpUpstream sends an http route's requests upstream with the audio
// path's choice and failover (the fetcher's selector and failover loop):
// the key's first upstream, then the others on transport errors and
// timeouts (never for POST and PATCH, which are not idempotent), with
// passive health. Any status is an answer: the cache judges it.
type httpUpstream struct{ f *fetcher }

func (u httpUpstream) Do(ctx context.Context, key uint64, req *fasthttp.Request, resp *fasthttp.Response) error {
	f := u.f
	var buf [8]*upstream
	ups := f.shields.Select(f.pool, key, buf[:0])
	if len(ups) > 1 && (req.Header.IsPost() || req.Header.IsPatch()) {
		ups = ups[:1]
	}
	err := f.failover(ctx, ups, func(up *upstream) error {
		req.URI().SetScheme(up.scheme)
		req.SetHost(up.host)
		// Shields and the origin's internal listener take http route
		// fills only with the tier credential.
		f.sign(&req.Header, string(req.Header.Method()), string(req.URI().RequestURI()))
		err := f.do(ctx, up, req, resp)
		if err != nil {
			stream := resp.StreamBody
			resp.Reset()
			resp.StreamBody = stream
		}
		return err
	})
	if errors.Is(err, errTimeout) {
		return fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
	}
	return err
}
