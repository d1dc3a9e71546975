package tier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/musiccdn/cdn/httpcache"
	"github.com/musiccdn/cdn/tierauth"
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
		f := &fetcher{static: bases, timeout: time.Duration(cfg.UpstreamTimeout), now: s.now, tls: s.fetch.tls,
			ups: map[string]*upstream{}, stream: true, maxHeader: int(r.MaxHeaderBytes), auth: s.tierAuth}
		if len(r.Upstreams) == 0 && s.route != nil {
			f.route = s.route // the live shields, in rendezvous order
		}
		for _, b := range bases {
			if _, err := f.upstream(b); err != nil {
				return err
			}
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
// path's choice and failover: the key's first upstream, then the others
// on transport errors and timeouts (never for POST and PATCH, which are
// not idempotent), with passive health.
type httpUpstream struct{ f *fetcher }

func (u httpUpstream) Do(ctx context.Context, key uint64, req *fasthttp.Request, resp *fasthttp.Response) error {
	var buf [8]*upstream
	ups := u.f.orderKey(key, buf[:0])
	if len(ups) == 0 {
		return errors.New("no upstream")
	}
	retry := !req.Header.IsPost() && !req.Header.IsPatch()
	var err error
	for _, up := range ups {
		bu, perr := url.Parse(up.base)
		if perr != nil {
			continue
		}
		req.URI().SetScheme(bu.Scheme)
		req.SetHost(bu.Host)
		if kr := u.f.auth.Load(); kr != nil {
			// Shields and the origin's internal listener take http
			// route fills only with the tier credential.
			req.Header.Set(tierauth.Header, kr.Sign(string(req.Header.Method()), string(req.URI().RequestURI()), u.f.now()))
		}
		if err = u.f.do(ctx, up, req, resp); err == nil {
			u.f.healthy(up)
			return nil
		}
		stream := resp.StreamBody
		resp.Reset()
		resp.StreamBody = stream
		if !retry || ctx.Err() != nil {
			break
		}
	}
	if errors.Is(err, errTimeout) {
		return fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
	}
	return err
}
