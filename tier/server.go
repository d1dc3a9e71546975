package tier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/musiccdn/cdn/cache"
	"github.com/musiccdn/cdn/httprange"
	"github.com/musiccdn/cdn/origin/media"
	"github.com/musiccdn/cdn/urlsign"
)

// Server is one edge or shield node.
type Server struct {
	cfg     Config
	log     *slog.Logger
	store   *cache.Store
	fetch   *fetcher
	keys    *urlsign.Keyring // edge only
	now     func() time.Time
	prefix  []byte // "/a/" or "/media/"
	m       *metrics
	srv     *fasthttp.Server
	metrics fasthttp.RequestHandler

	cacheStatusHit   []byte
	cacheStatusMiss  []byte
	cacheStatusStale []byte

	draining atomic.Bool
	ln       net.Listener
	closed   atomic.Bool
}

// New builds a node from a validated configuration. reg receives the
// node's metrics (and is served on /metrics); now is the clock (time.Now
// if nil).
func New(cfg Config, logger *slog.Logger, reg *prometheus.Registry, now func() time.Time) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	if now == nil {
		now = time.Now
	}
	f, err := newFetcher(cfg.Upstreams, time.Duration(cfg.UpstreamTimeout))
	if err != nil {
		return nil, err
	}
	store, err := cache.New(cfg.Cache, f, now)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:              cfg,
		log:              logger.With("node", cfg.Name, "role", string(cfg.Role)),
		store:            store,
		fetch:            f,
		now:              now,
		prefix:           []byte("/media/"),
		cacheStatusHit:   []byte(cfg.Name + "; hit"),
		cacheStatusMiss:  []byte(cfg.Name + "; fwd=miss; stored"),
		cacheStatusStale: []byte(cfg.Name + "; hit; detail=stale"),
	}
	if cfg.Role == Edge {
		s.prefix = []byte("/a/")
		if s.keys, err = cfg.Keyring(); err != nil {
			return nil, err
		}
	}
	s.m = newMetrics(string(cfg.Role), reg, store, f)
	s.metrics = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	s.srv = &fasthttp.Server{
		Handler:                       s.Handle,
		Name:                          "musiccdn-" + string(cfg.Role),
		ReadTimeout:                   30 * time.Second,
		WriteTimeout:                  60 * time.Second,
		IdleTimeout:                   90 * time.Second,
		DisableHeaderNamesNormalizing: false,
		NoDefaultContentType:          true,
		NoDefaultDate:                 false,
		CloseOnShutdown:               true,
		ReduceMemoryUsage:             false,
		Logger:                        slogPrinter{s.log},
	}
	return s, nil
}

// Listen opens the listener (so its address is known before Serve).
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("%s: listen: %w", s.cfg.Name, err)
	}
	s.ln = ln
	return nil
}

// Addr is the listener's address, once Listen has run.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the node's base URL, once Listen has run.
func (s *Server) URL() string {
	if s.cfg.TLSCert != "" {
		return "https://" + s.Addr()
	}
	return "http://" + s.Addr()
}

// Serve serves on the listener opened by Listen until Shutdown.
func (s *Server) Serve() error {
	if s.ln == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	s.log.Info("serving", "addr", s.URL(), "upstreams", s.cfg.Upstreams)
	var err error
	if s.cfg.TLSCert != "" {
		err = s.srv.ServeTLS(s.ln, s.cfg.TLSCert, s.cfg.TLSKey)
	} else {
		err = s.srv.Serve(s.ln)
	}
	if s.closed.Load() {
		return nil
	}
	return err
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
	err := s.srv.ShutdownWithContext(ctx)
	s.store.Close()
	return err
}

// Store is the node's chunk store.
func (s *Server) Store() *cache.Store { return s.store }

// Handle is the fasthttp request handler.
func (s *Server) Handle(ctx *fasthttp.RequestCtx) {
	start := s.now()
	path := ctx.Path()
	switch {
	case bytes.HasPrefix(path, s.prefix):
		s.serveObject(ctx, path[len(s.prefix):])
		s.m.observe(ctx.Response.StatusCode(), s.now().Sub(start))
		return
	case string(path) == "/metrics":
		s.metrics(ctx)
	case string(path) == "/healthz":
		ctx.SetBodyString("ok\n")
	case string(path) == "/readyz":
		if s.draining.Load() {
			ctx.Error("draining\n", fasthttp.StatusServiceUnavailable)
		} else {
			ctx.SetBodyString("ready\n")
		}
	default:
		// The edge is not an open proxy: only the audio and seek-table
		// paths are served.
		ctx.Error("not found\n", fasthttp.StatusNotFound)
	}
}

// serveObject answers GET or HEAD of "<track>/<kbps>.<ext>".
func (s *Server) serveObject(ctx *fasthttp.RequestCtx, name []byte) {
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Error("method not allowed\n", fasthttp.StatusMethodNotAllowed)
		ctx.Response.Header.Set("Allow", "GET, HEAD")
		return
	}
	track, ok := parseName(name)
	if !ok {
		ctx.Error("bad path\n", fasthttp.StatusBadRequest)
		return
	}
	if s.keys != nil && !s.authorize(ctx, track) {
		return
	}
	ref := cache.Ref{Key: cache.ObjectKey(name), Name: name}
	// An object that changes upstream while its chunks are read is served
	// again from the new version, once; nothing has been sent yet.
	for attempt := 0; ; attempt++ {
		err := s.respond(ctx, ref)
		if err == nil {
			return
		}
		if errors.Is(err, cache.ErrChanged) && attempt == 0 {
			ctx.Response.Reset()
			continue
		}
		s.fail(ctx, err)
		return
	}
}

// authorize checks the player's token; on failure it writes a 403 and
// nothing is fetched.
func (s *Server) authorize(ctx *fasthttp.RequestCtx, track []byte) bool {
	tok := ctx.QueryArgs().Peek("t")
	if len(tok) == 0 {
		s.m.tokenRejected(tokenMissing)
		ctx.Error("forbidden\n", fasthttp.StatusForbidden)
		return false
	}
	claims, err := s.keys.Verify(tok, track, s.now())
	if err != nil {
		s.m.tokenRejected(reasonOf(err))
		ctx.Error("forbidden\n", fasthttp.StatusForbidden)
		return false
	}
	if s.cfg.CountryHeader != "" {
		if cc := ctx.Request.Header.Peek(s.cfg.CountryHeader); len(cc) > 0 && !bytes.EqualFold(cc, claims.Country[:]) {
			s.m.tokenRejected(tokenCountry)
			ctx.Error("forbidden\n", fasthttp.StatusForbidden)
			return false
		}
	}
	return true
}

// respond writes the whole response for ref, or returns an error before
// anything is committed (the response is built in memory, except large
// bodies that stream: see streamRange).
func (s *Server) respond(ctx *fasthttp.RequestCtx, ref cache.Ref) error {
	m, st, err := s.store.Meta(ctx, ref)
	if err != nil {
		return err
	}
	h := &ctx.Response.Header
	h.Set("Accept-Ranges", "bytes")
	h.Set("ETag", m.ETag)
	if !m.LastModified.IsZero() {
		h.Set("Last-Modified", m.LastModifiedHTTP)
	}
	v := httprange.Validators{ETag: s2b(m.ETag), LastModified: m.LastModified}
	req := &ctx.Request.Header
	switch httprange.Evaluate(httprange.Preconditions{
		IfMatch:           nilIfAbsent(req.Peek("If-Match")),
		IfNoneMatch:       nilIfAbsent(req.Peek("If-None-Match")),
		IfModifiedSince:   nilIfAbsent(req.Peek("If-Modified-Since")),
		IfUnmodifiedSince: nilIfAbsent(req.Peek("If-Unmodified-Since")),
	}, v) {
	case httprange.NotModified:
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		s.setCacheStatus(ctx, st, true)
		return nil
	case httprange.PreconditionFailed:
		ctx.SetStatusCode(fasthttp.StatusPreconditionFailed)
		s.setCacheStatus(ctx, st, true)
		return nil
	}
	if m.ContentType != "" {
		h.SetContentType(m.ContentType)
	}

	var rbuf [4]httprange.Range
	ranges := rbuf[:0]
	if rh := req.Peek("Range"); len(rh) > 0 && httprange.RangeApplies(nilIfAbsent(req.Peek("If-Range")), v) {
		ranges, err = httprange.Parse(ranges, rh, m.Size, s.cfg.MaxRanges)
		switch {
		case errors.Is(err, httprange.ErrUnsatisfiable):
			// RFC 9110 §15.5.17.
			h.Set("Content-Range", "bytes */"+strconv.FormatInt(m.Size, 10))
			ctx.SetStatusCode(fasthttp.StatusRequestedRangeNotSatisfiable)
			s.setCacheStatus(ctx, st, true)
			return nil
		case err != nil:
			// Invalid or abusive: ignore the header, send it all
			// (RFC 9110 §14.2).
			ranges = ranges[:0]
		}
	}
	head := ctx.IsHead()
	allHit := true
	switch {
	case len(ranges) == 0:
		ctx.SetStatusCode(fasthttp.StatusOK)
		allHit, err = s.body(ctx, ref, m, httprange.Range{Start: 0, End: m.Size - 1}, head)
	case len(ranges) == 1:
		ctx.SetStatusCode(fasthttp.StatusPartialContent)
		h.SetContentRange(int(ranges[0].Start), int(ranges[0].End), int(m.Size))
		allHit, err = s.body(ctx, ref, m, ranges[0], head)
	default:
		ctx.SetStatusCode(fasthttp.StatusPartialContent)
		allHit, err = s.multipart(ctx, ref, m, ranges, head)
	}
	if err != nil {
		return err
	}
	s.setCacheStatus(ctx, st, allHit)
	return nil
}

// body sends the bytes of r: assembled in memory up to MaxBufferedBody,
// streamed beyond.
func (s *Server) body(ctx *fasthttp.RequestCtx, ref cache.Ref, m *cache.Meta, r httprange.Range, head bool) (allHit bool, err error) {
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
		s.streamRange(ctx, ref, m, r)
		return false, nil
	}
	allHit, err = s.appendRange(&ctx.Response, ctx, ref, m, r)
	if err == nil {
		s.m.bytes.Add(float64(n))
	}
	return allHit, err
}

// appendRange appends bytes r of version m to resp's body, one copy per
// byte. On the first missing chunk it starts fills for all the later
// missing ones, so a cold multi-chunk range costs one round trip, not one
// per chunk.
func (s *Server) appendRange(resp *fasthttp.Response, ctx context.Context, ref cache.Ref, m *cache.Meta, r httprange.Range) (allHit bool, err error) {
	cs := s.store.ChunkSize()
	first, last := r.Start/cs, r.End/cs
	allHit = true
	for idx := first; idx <= last; idx++ {
		data, hit, err := s.chunk(ctx, ref, m, idx, last, &allHit)
		if err != nil {
			return false, err
		}
		_ = hit
		base := idx * cs
		lo := max(r.Start-base, 0)
		hi := min(r.End+1-base, int64(len(data)))
		resp.AppendBody(data[lo:hi])
	}
	return allHit, nil
}

// chunk reads chunk idx, warming idx+1..last the first time it misses.
func (s *Server) chunk(ctx context.Context, ref cache.Ref, m *cache.Meta, idx, last int64, allHit *bool) ([]byte, bool, error) {
	if *allHit && idx < last && !s.store.Cached(ref, m, idx) {
		for j := idx + 1; j <= last && j < idx+maxWarm; j++ {
			s.store.Warm(ref, m, j)
		}
	}
	data, hit, err := s.store.Chunk(ctx, ref, m, idx)
	if !hit {
		*allHit = false
	}
	if err == nil && int64(len(data)) < min(s.store.ChunkSize(), m.Size-idx*s.store.ChunkSize()) {
		err = fmt.Errorf("chunk %d: %d bytes", idx, len(data))
	}
	return data, hit, err
}

// maxWarm bounds the fills one request starts ahead of the chunk it waits
// for.
const maxWarm = 16

// streamRange sends a large body chunk by chunk. The status line has gone
// out before the later chunks are read, so a failure then closes the
// connection: the client sees fewer bytes than Content-Length, never a
// short body that looks complete.
func (s *Server) streamRange(ctx *fasthttp.RequestCtx, ref cache.Ref, m *cache.Meta, r httprange.Range) {
	sr := &streamReader{s: s, ref: cache.Ref{Key: ref.Key, Name: bytes.Clone(ref.Name)}, m: m, pos: r.Start, end: r.End + 1}
	ctx.Response.SetBodyStream(sr, int(r.Len()))
}

type streamReader struct {
	s        *Server
	ref      cache.Ref
	m        *cache.Meta
	pos, end int64
}

func (sr *streamReader) Read(p []byte) (int, error) {
	if sr.pos >= sr.end {
		return 0, io.EOF
	}
	cs := sr.s.store.ChunkSize()
	idx := sr.pos / cs
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(sr.s.cfg.Cache.FillTimeout+sr.s.cfg.UpstreamTimeout))
	defer cancel()
	hit := true
	data, _, err := sr.s.chunk(ctx, sr.ref, sr.m, idx, sr.end/cs, &hit)
	if err != nil {
		sr.s.log.Warn("aborting response mid-body", "object", string(sr.ref.Name), "offset", sr.pos, "err", err)
		sr.s.m.aborted.Inc()
		return 0, err
	}
	lo := sr.pos - idx*cs
	hi := min(sr.end-idx*cs, int64(len(data)))
	n := copy(p, data[lo:hi])
	sr.pos += int64(n)
	sr.s.m.bytes.Add(float64(n))
	return n, nil
}

// multipart sends several ranges as multipart/byteranges (RFC 9110
// §14.6).
func (s *Server) multipart(ctx *fasthttp.RequestCtx, ref cache.Ref, m *cache.Meta, ranges []httprange.Range, head bool) (allHit bool, err error) {
	boundary := fmt.Sprintf("%016x%016x", rand.Uint64(), rand.Uint64())
	ctx.Response.Header.SetContentType("multipart/byteranges; boundary=" + boundary)
	var body bytes.Buffer
	allHit = true
	total := int64(0)
	for _, r := range ranges {
		fmt.Fprintf(&body, "\r\n--%s\r\nContent-Type: %s\r\nContent-Range: bytes %d-%d/%d\r\n\r\n", boundary, m.ContentType, r.Start, r.End, m.Size)
		if head {
			total += int64(body.Len()) + r.Len()
			body.Reset()
			continue
		}
		var part fasthttp.Response
		hit, err := s.appendRange(&part, ctx, ref, m, r)
		if err != nil {
			return false, err
		}
		allHit = allHit && hit
		body.Write(part.Body())
	}
	fmt.Fprintf(&body, "\r\n--%s--\r\n", boundary)
	if head {
		ctx.Response.Header.SetContentLength(int(total) + body.Len())
		ctx.Response.SkipBody = true
		return true, nil
	}
	s.m.bytes.Add(float64(body.Len()))
	ctx.Response.SetBody(body.Bytes())
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
	s.log.Warn("upstream failure", "path", string(ctx.Path()), "err", err)
}

// parseName checks "<track>/<kbps>.<ogg|seek>" and returns the track id.
func parseName(name []byte) (track []byte, ok bool) {
	slash := bytes.IndexByte(name, '/')
	if slash < 0 {
		return nil, false
	}
	track, file := name[:slash], name[slash+1:]
	dot := bytes.IndexByte(file, '.')
	if dot < 0 || !media.ValidIDBytes(track) {
		return nil, false
	}
	kbps, ext := file[:dot], file[dot+1:]
	if string(ext) != "ogg" && string(ext) != "seek" {
		return nil, false
	}
	n := 0
	if len(kbps) == 0 || len(kbps) > 3 || kbps[0] == '0' {
		return nil, false
	}
	for _, c := range kbps {
		if c < '0' || c > '9' {
			return nil, false
		}
		n = n*10 + int(c-'0')
	}
	return track, media.ValidTier(n)
}

// s2b views a string's bytes without copying; the result must not be
// modified.
func s2b(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

func nilIfAbsent(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// slogPrinter adapts slog to fasthttp's Logger.
type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Printf(format string, args ...any) { p.l.Debug(fmt.Sprintf(format, args...)) }
