package tier

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkHit measures the edge's cached hit path, token check included,
// for a range of each size: handler work only, no sockets. It must report
// 0 allocs/op.
func BenchmarkHit(b *testing.B) {
	// The country check is part of the hit path in production.
	p := newTestPOP(b, func(e, _ *Config) { e.CountryHeader = "X-Client-Country" })
	// So is the revocation list, after some takedowns: the hit path
	// looks the track up in it (t5 is not revoked).
	var down []string
	for i := range 1000 {
		down = append(down, fmt.Sprintf("down%d", i))
	}
	p.edge.revoke(down, 1<<40)
	for _, size := range []int64{4 << 10, 64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("range=%dKiB", size>>10), func(b *testing.B) {
			url := p.url("t5", 320, "SE")
			path := url[strings.Index(url, "/a/"):]
			// Straddle a chunk boundary, as a player's reads do.
			start := int64(262144 - 1000)
			rng := fmt.Sprintf("bytes=%d-%d", start, start+size-1)
			if resp, _ := p.get(b, url, "Range", rng, "X-Client-Country", "SE"); resp.StatusCode != 206 {
				b.Fatalf("warm-up: %d", resp.StatusCode)
			}
			p.edge.store.Wait()
			var req fasthttp.Request
			req.SetRequestURI(path)
			req.Header.Set("Range", rng)
			req.Header.Set("X-Client-Country", "SE")
			var ctx fasthttp.RequestCtx
			ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, nil)
			hits := p.edge.store.Stats.Hits.Load()
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				ctx.Response.Reset()
				p.edge.Handle(&ctx)
			}
			if ctx.Response.StatusCode() != 206 || int64(len(ctx.Response.Body())) != size {
				b.Fatalf("status %d, %d bytes", ctx.Response.StatusCode(), len(ctx.Response.Body()))
			}
			if p.edge.store.Stats.Hits.Load() == hits {
				b.Fatal("no cache hits counted")
			}
		})
	}
}
