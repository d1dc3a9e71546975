package tier

import (
	"context"
	"io"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/musiccdn/cdn/cache"
	"github.com/musiccdn/cdn/httprange"
)

// multipart sends several ranges as multipart/byteranges (RFC 9110
// §14.6), streamed part by part and chunk by chunk from the store, as
// net/http's fs.go does: the body is never assembled in memory, so 16
// requests of 16 large ranges each hold a few part headers and the chunk
// being written, not 16 whole bodies (issue 10 row 6). The parts'
// delimiters and headers are computed first, so Content-Length is exact.
func (s *Server) multipart(ctx *fasthttp.RequestCtx, store *cache.Store, ref cache.Ref, m *cache.Meta, ranges []httprange.Range, head bool) (allHit bool, err error) {
	var b [32]byte
	boundary := string(strconv.AppendUint(strconv.AppendUint(b[:0], rand.Uint64()|1<<63, 16), rand.Uint64()|1<<63, 16))
	ctx.Response.Header.SetContentType(httprange.MultipartType(boundary))
	parts := make([]streamPart, len(ranges))
	total := int64(0)
	for i, r := range ranges {
		h := httprange.AppendPartHeader(make([]byte, 0, 80+len(boundary)+len(m.ContentType)), boundary, m.ContentType, r, m.Size)
		parts[i] = streamPart{header: h, start: r.Start, end: r.End + 1}
		total += int64(len(h)) + r.Len()
	}
	tail := httprange.AppendPartsEnd(nil, boundary)
	total += int64(len(tail))
	if head {
		ctx.Response.Header.SetContentLength(int(total))
		ctx.Response.SkipBody = true
		return true, nil
	}
	return s.stream(ctx, store, ref, m, parts, tail)
}

// streamPart is one range of a streamed body: header (multipart only),
// then bytes [start, end) of the object.
type streamPart struct {
	header     []byte
	start, end int64
}

// stream sends parts, then tail, as the response body, read chunk by chunk
// from store while the response is written. The first chunk is read
// before anything is committed, so a cold object whose upstream fails is
// still a clean 502 or 504 (and ErrChanged restarts the request). After
// that the status line has gone out, and a failed chunk aborts the
// connection: the client sees fewer bytes than Content-Length, never a
// short body that looks complete.
func (s *Server) stream(ctx *fasthttp.RequestCtx, store *cache.Store, ref cache.Ref, m *cache.Meta, parts []streamPart, tail []byte) (allHit bool, err error) {
	cs := store.ChunkSize()
	total := int64(len(tail))
	allHit = true
	for _, p := range parts {
		total += int64(len(p.header)) + p.end - p.start
		for idx := p.start / cs; idx <= (p.end-1)/cs && allHit; idx++ {
			allHit = store.Cached(ref, m, idx)
		}
	}
	p0 := parts[0]
	firstIdx := p0.start / cs
	hit := true
	first, _, err := chunk(ctx, store, ref, m, firstIdx, (p0.end-1)/cs, &hit)
	if err != nil {
		return false, err
	}
	bs := &bodyStream{
		s: s, store: store, m: m,
		// The request's buffer is reused once the handler returns.
		ref:   cache.Ref{Key: ref.Key, Name: append([]byte(nil), ref.Name...)},
		parts: parts, tail: tail, pos: p0.start,
		first: first, firstIdx: firstIdx,
	}
	ctx.Response.SetBodyStream(bs, int(total))
	return allHit && hit, nil
}

// bodyStream is a response body read from the store while it is written.
// fasthttp calls WriteTo, which hands each chunk's bytes straight to the
// connection's writer: no copy of its own. Read is there for any other
// consumer (one copy).
type bodyStream struct {
	s     *Server
	store *cache.Store
	ref   cache.Ref
	m     *cache.Meta
	parts []streamPart
	tail  []byte

	i        int    // current part
	pos      int64  // next object byte of parts[i]
	pending  []byte // bytes ready to go out
	first    []byte // chunk firstIdx, read before the response was committed
	firstIdx int64
}

var _ io.WriterTo = (*bodyStream)(nil)

// next makes pending non-empty, or returns io.EOF at the end of the body.
func (b *bodyStream) next() error {
	for len(b.pending) == 0 {
		if b.i == len(b.parts) {
			if b.tail == nil {
				return io.EOF
			}
			b.pending, b.tail = b.tail, nil
			continue
		}
		p := &b.parts[b.i]
		if p.header != nil {
			b.pending, p.header = p.header, nil
			continue
		}
		if b.pos >= p.end {
			b.i++
			if b.i < len(b.parts) {
				b.pos = b.parts[b.i].start
			}
			continue
		}
		cs := b.store.ChunkSize()
		idx := b.pos / cs
		data := b.first
		if data == nil || idx != b.firstIdx {
			var err error
			if data, err = b.chunk(idx, (p.end-1)/cs); err != nil {
				b.s.log.Warn("aborting response mid-body", "object", string(b.ref.Name), "offset", b.pos, "err", err)
				b.s.m.aborted.Inc()
				return err
			}
		}
		b.first = nil
		lo := b.pos - idx*cs
		hi := min(p.end-idx*cs, int64(len(data)))
		b.pending = data[lo:hi]
		b.pos += hi - lo
	}
	return nil
}

func (b *bodyStream) chunk(idx, last int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(b.s.cfg.Cache.FillTimeout+b.s.cfg.UpstreamTimeout))
	defer cancel()
	hit := true
	data, _, err := chunk(ctx, b.store, b.ref, b.m, idx, last, &hit)
	return data, err
}

// WriteTo writes the rest of the body to w.
func (b *bodyStream) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for {
		if err := b.next(); err != nil {
			if err == io.EOF {
				err = nil
			}
			return n, err
		}
		k, err := w.Write(b.pending)
		n += int64(k)
		b.s.m.bytes.Add(float64(k))
		b.pending = b.pending[k:]
		if err != nil {
			return n, err
		}
	}
}

// Read implements io.Reader.
func (b *bodyStream) Read(p []byte) (int, error) {
	if err := b.next(); err != nil {
		return 0, err
	}
	k := copy(p, b.pending)
	b.pending = b.pending[k:]
	b.s.m.bytes.Add(float64(k))
	return k, nil
}
