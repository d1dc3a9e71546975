package tier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/valyala/fasthttp"

	"github.com/musiccdn/cdn/cache"
)

// errTimeout marks an upstream failure that was a timeout (504, not 502).
var errTimeout = errors.New("upstream timeout")

// fetcher fills chunks from the next tier over HTTP. It implements
// cache.Fetcher. The first upstream tried for an object is chosen by
// hashing its track id, so each object is filled through one upstream and
// the upstreams' caches do not duplicate each other; on an error or a
// timeout the next one is tried, within the caller's deadline.
type fetcher struct {
	ups     []*upstream
	timeout time.Duration

	attempts atomic.Int64 // upstream HTTP requests made
	failures atomic.Int64 // attempts that failed
}

type upstream struct {
	base string // e.g. "http://127.0.0.1:8081"
	hc   *fasthttp.HostClient
}

var _ cache.Fetcher = (*fetcher)(nil)

func newFetcher(bases []string, timeout time.Duration) (*fetcher, error) {
	f := &fetcher{timeout: timeout}
	for _, b := range bases {
		u, err := url.Parse(b)
		if err != nil {
			return nil, fmt.Errorf("upstream %q: %w", b, err)
		}
		f.ups = append(f.ups, &upstream{
			base: b,
			hc: &fasthttp.HostClient{
				Addr:                          u.Host,
				IsTLS:                         u.Scheme == "https",
				MaxConns:                      512,
				ReadTimeout:                   timeout,
				WriteTimeout:                  timeout,
				MaxIdleConnDuration:           30 * time.Second,
				DisableHeaderNamesNormalizing: false,
				MaxResponseBodySize:           64 << 20,
			},
		})
	}
	return f, nil
}

// order returns the upstreams to try for name, first choice first.
func (f *fetcher) order(name string, dst []*upstream) []*upstream {
	track := name
	if i := len(name); i > 0 {
		if j := indexByte(name, '/'); j >= 0 {
			track = name[:j]
		}
	}
	start := int(xxhash.Sum64String(track) % uint64(len(f.ups)))
	for i := range f.ups {
		dst = append(dst, f.ups[(start+i)%len(f.ups)])
	}
	return dst
}

// Fetch implements cache.Fetcher.
func (f *fetcher) Fetch(ctx context.Context, name string, off, n int64) (cache.Meta, []byte, error) {
	var buf [8]*upstream
	var lastErr error
	for _, up := range f.order(name, buf[:0]) {
		m, data, err := f.fetchOne(ctx, up, name, off, n)
		if err == nil || errors.Is(err, cache.ErrNotFound) {
			return m, data, err
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return cache.Meta{}, nil, lastErr
}

func (f *fetcher) fetchOne(ctx context.Context, up *upstream, name string, off, n int64) (cache.Meta, []byte, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(up.base + "/media/" + name)
	req.Header.SetMethod(fasthttp.MethodGet)
	req.Header.SetByteRange(int(off), int(off+n-1))
	if err := f.do(ctx, up, req, resp); err != nil {
		return cache.Meta{}, nil, err
	}
	switch code := resp.StatusCode(); code {
	case fasthttp.StatusPartialContent:
		start, end, size, ok := parseContentRange(resp.Header.Peek("Content-Range"))
		if !ok || start != off || end-start+1 != int64(len(resp.Body())) || end >= size {
			return cache.Meta{}, nil, fmt.Errorf("%s: bad Content-Range %q for %d bytes", up.base, resp.Header.Peek("Content-Range"), len(resp.Body()))
		}
		return metaOf(resp, size), bytes.Clone(resp.Body()), nil
	case fasthttp.StatusOK:
		// The upstream ignored the range and sent the whole file.
		body := resp.Body()
		size := int64(len(body))
		if off >= size {
			return metaOf(resp, size), nil, nil
		}
		return metaOf(resp, size), bytes.Clone(body[off:min(off+n, size)]), nil
	case fasthttp.StatusRequestedRangeNotSatisfiable:
		// An offset past the end: the size is in "bytes */<size>".
		cr := resp.Header.Peek("Content-Range")
		if !bytes.HasPrefix(cr, []byte("bytes */")) {
			return cache.Meta{}, nil, fmt.Errorf("%s: 416 without size", up.base)
		}
		size, err := strconv.ParseInt(string(cr[len("bytes */"):]), 10, 64)
		if err != nil {
			return cache.Meta{}, nil, fmt.Errorf("%s: 416 with bad size", up.base)
		}
		return metaOf(resp, size), nil, nil
	case fasthttp.StatusNotFound:
		return cache.Meta{}, nil, cache.ErrNotFound
	case fasthttp.StatusGatewayTimeout:
		f.failures.Add(1)
		return cache.Meta{}, nil, fmt.Errorf("%s: status 504: %w", up.base, errTimeout)
	default:
		f.failures.Add(1)
		return cache.Meta{}, nil, fmt.Errorf("%s: status %d", up.base, code)
	}
}

// Revalidate implements cache.Fetcher with a conditional HEAD.
func (f *fetcher) Revalidate(ctx context.Context, name, etag string) (cache.Meta, bool, error) {
	var buf [8]*upstream
	var lastErr error
	for _, up := range f.order(name, buf[:0]) {
		req := fasthttp.AcquireRequest()
		resp := fasthttp.AcquireResponse()
		req.SetRequestURI(up.base + "/media/" + name)
		req.Header.SetMethod(fasthttp.MethodHead)
		req.Header.Set("If-None-Match", etag)
		err := f.do(ctx, up, req, resp)
		var m cache.Meta
		notModified := false
		if err == nil {
			switch resp.StatusCode() {
			case fasthttp.StatusNotModified:
				notModified = true
			case fasthttp.StatusOK:
				m = metaOf(resp, int64(resp.Header.ContentLength()))
			case fasthttp.StatusNotFound:
				err = cache.ErrNotFound
			default:
				f.failures.Add(1)
				err = fmt.Errorf("%s: status %d", up.base, resp.StatusCode())
			}
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
		if err == nil || errors.Is(err, cache.ErrNotFound) {
			return m, notModified, err
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return cache.Meta{}, false, lastErr
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
		f.failures.Add(1)
		if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrDialTimeout) {
			return fmt.Errorf("%s: %w", up.base, errTimeout)
		}
		return fmt.Errorf("%s: %w", up.base, err)
	}
	return nil
}

func metaOf(resp *fasthttp.Response, size int64) cache.Meta {
	lm, err := fasthttp.ParseHTTPDate(resp.Header.Peek("Last-Modified"))
	if err != nil {
		lm = time.Time{}
	}
	return cache.NewMeta(size, string(resp.Header.Peek("ETag")), lm, string(resp.Header.ContentType()))
}

// parseContentRange parses "bytes <start>-<end>/<size>".
func parseContentRange(b []byte) (start, end, size int64, ok bool) {
	rest, found := bytes.CutPrefix(b, []byte("bytes "))
	if !found {
		return 0, 0, 0, false
	}
	dash := bytes.IndexByte(rest, '-')
	slash := bytes.IndexByte(rest, '/')
	if dash < 0 || slash < dash {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	start, err1 = strconv.ParseInt(string(rest[:dash]), 10, 64)
	end, err2 = strconv.ParseInt(string(rest[dash+1:slash]), 10, 64)
	size, err3 = strconv.ParseInt(string(rest[slash+1:]), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || start < 0 || end < start {
		return 0, 0, 0, false
	}
	return start, end, size, true
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}
