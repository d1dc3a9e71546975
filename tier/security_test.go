package tier

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/valyala/fasthttp"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/httprange"
	"github.com/musiccdn/cdn/httprange/httprangetest"
	"github.com/musiccdn/cdn/internal/wait"
)

// TestSecurityEdge runs the edge rows of issue 10's table ("Trust
// boundaries") through a real edge, shield and origin on loopback, with a
// country header configured (fail closed) and the default token_max_ttl.
// Every refused request is a 403 with its reason counted, and neither the
// shield nor the origin sees a request.
//
// Mutations tried, each caught here:
//   - the token_max_ttl check removed from authorize: rows "expiry year
//     33658" and "expiry beyond token_max_ttl" pass with 206.
//   - the country check back to "when present" (len(all)==0 accepted):
//     row "country header missing" passes with 206.
//   - Peek instead of PeekAll (first copy wins): rows "country header
//     twice" pass with 206.
//   - country.Valid dropped: row "unassigned" (XX) passes with 206; the
//     lower-case one is refused for the wrong reason (caught by the reason
//     check).
//   - the MAC over the track only (urlsign v1's binding): rows 9 "24 kbps
//     token used for 320 kbps" (206) and "seek table with the ogg token"
//     (404 instead of 403) fail; so do urlsign's TestVerify and origin's
//     TestManifest.
func TestSecurityEdge(t *testing.T) {
	p := newTestPOP(t, func(e, _ *Config) { e.CountryHeader = "X-Client-Country" })
	now := p.clock()
	sign := func(object, country string, exp time.Time) string {
		return "?t=" + p.keys.Sign(object, country, exp)
	}
	base := p.edge.URL() + "/a/"
	hour := now.Add(time.Hour)
	maxTTL := time.Duration(p.edge.cfg.TokenMaxTTL)
	cases := []struct {
		name    string
		url     string
		country []string // X-Client-Country values, one header line each
		reason  tokenReason
	}{
		{"row 9: 24 kbps token used for 320 kbps", base + "t1/320.ogg" + sign("t1/24.ogg", "SE", hour), []string{"SE"}, tokenSignature},
		{"row 9: seek table with the ogg token", base + "t1/24.seek" + sign("t1/24.ogg", "SE", hour), []string{"SE"}, tokenSignature},
		{"row 9: ogg with the seek token", base + "t1/24.ogg" + sign("t1/24.seek", "SE", hour), []string{"SE"}, tokenSignature},
		{"row 9: another track's token", base + "t2/24.ogg" + sign("t1/24.ogg", "SE", hour), []string{"SE"}, tokenSignature},
		{"row 9: expiry year 33658", base + "t1/24.ogg" + sign("t1/24.ogg", "SE", time.Unix(999_999_999_999, 0)), []string{"SE"}, tokenTTL},
		{"row 9: expiry beyond token_max_ttl", base + "t1/24.ogg" + sign("t1/24.ogg", "SE", now.Add(maxTTL+time.Second)), []string{"SE"}, tokenTTL},
		{"row 5: country header missing", base + "t1/24.ogg" + sign("t1/24.ogg", "SE", hour), nil, countryMissing},
		{"row 5: country header twice, same", base + "t1/24.ogg" + sign("t1/24.ogg", "SE", hour), []string{"SE", "SE"}, countryDuplicate},
		{"row 5: country header twice, first wins", base + "t1/24.ogg" + sign("t1/24.ogg", "SE", hour), []string{"SE", "NO"}, countryDuplicate},
		{"row 5: country header twice, last wins", base + "t1/24.ogg" + sign("t1/24.ogg", "SE", hour), []string{"NO", "SE"}, countryDuplicate},
		{"row 5: country header empty", base + "t1/24.ogg" + sign("t1/24.ogg", "SE", hour), []string{""}, countryInvalid},
		{"row 5: invalid country code, lower case", base + "t1/24.ogg" + sign("t1/24.ogg", "SE", hour), []string{"se"}, countryInvalid},
		{"row 5: invalid country code, unassigned", base + "t1/24.ogg" + sign("t1/24.ogg", "XX", hour), []string{"XX"}, countryInvalid},
		{"row 5: invalid country code, alpha-3", base + "t1/24.ogg" + sign("t1/24.ogg", "SE", hour), []string{"SWE"}, countryInvalid},
		{"row 5: token for another country", base + "t1/24.ogg" + sign("t1/24.ogg", "SE", hour), []string{"NO"}, tokenCountry},
	}
	for _, tc := range cases {
		before := counter(t, p.edge.m.tokens[tc.reason])
		req, _ := http.NewRequest("GET", tc.url, nil)
		req.Header.Set("Range", "bytes=0-99")
		if tc.country != nil {
			req.Header["X-Client-Country"] = tc.country
		}
		resp, err := p.client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Errorf("%s: status %d, want 403", tc.name, resp.StatusCode)
		}
		if got := counter(t, p.edge.m.tokens[tc.reason]) - before; got != 1 {
			t.Errorf("%s: reason %q counted %v times, want 1", tc.name, tokenReasonNames[tc.reason], got)
		}
	}
	if n := p.edge.fetch.attempts.Load(); n != 0 {
		t.Errorf("refused requests: the shield saw %d requests, want 0", n)
	}
	if n := p.origin.MediaRequests(); n != 0 {
		t.Errorf("refused requests: the origin saw %d requests, want 0", n)
	}

	// Controls: the same requests done right are served, so the refusals
	// above are the checks' doing.
	for _, ok := range []struct{ name, url string }{
		{"ogg token, ogg file", base + "t1/24.ogg" + sign("t1/24.ogg", "SE", hour)},
		{"320 token, 320 file", base + "t1/320.ogg" + sign("t1/320.ogg", "SE", hour)},
		{"expiry at exactly token_max_ttl", base + "t1/24.ogg" + sign("t1/24.ogg", "SE", now.Add(maxTTL))},
	} {
		if resp, _ := p.get(t, ok.url, "X-Client-Country", "SE", "Range", "bytes=0-99"); resp.StatusCode != 206 {
			t.Errorf("control %s: status %d, want 206", ok.name, resp.StatusCode)
		}
	}
}

// TestCountryHeaderOff: with country_header empty (cmd/pop on loopback)
// nothing is checked; the token's own country still binds nothing else.
func TestCountryHeaderOff(t *testing.T) {
	p := newTestPOP(t, nil)
	if resp, _ := p.get(t, p.url("t1", 24, "SE"), "Range", "bytes=0-9"); resp.StatusCode != 206 {
		t.Errorf("no header, no check: status %d", resp.StatusCode)
	}
}

// TestHintAmplification is issue 10 row 2: one player request with 1,300
// ids in X-Next-Tracks once cost 1,234 manifest requests at the origin.
// Now at most prefetch.tracks ids are examined: the origin (a real HTTP
// server, counting) sees at most that many rights look-ups and warms.
//
// Mutations caught: dropping the examined bound (counting accepted ids
// only, as before) makes case "1,300 unknown ids" cost 362 look-ups (every
// id in the first KiB); dropping catalog.MaxHintBytes makes case "id past 1 KiB"
// look the id up.
func TestHintAmplification(t *testing.T) {
	p := newTestPOP(t, func(e, _ *Config) { e.Prefetch.OriginURL = testOriginURL })
	// Short distinct ids ("a", ..., "zz"), so 1,300 of them fit in the
	// edge's 4 KiB of request headers.
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	short := func(i int) string {
		if i < len(alnum) {
			return alnum[i : i+1]
		}
		i -= len(alnum)
		return alnum[i/len(alnum)%len(alnum):][:1] + alnum[i%len(alnum):][:1]
	}
	ids := func(n int, f func(i int) string) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(f(i))
		}
		return b.String()
	}
	tracks := p.edge.cfg.Prefetch.Tracks
	cases := []struct {
		name              string
		hint              string
		maxLookups, warms int64
	}{
		{"row 2: 1,300 unknown ids", ids(1300, short), int64(tracks), 0},
		{"row 2: 1,300 ids, the first of the catalog", "t20,t21,t22," + ids(1297, short), int64(tracks), int64(tracks)},
		{"row 2: 1,300 copies of one id", ids(1300, func(int) string { return "t9" }), 1, 1},
		{"row 2: 1,300 invalid ids", ids(1300, func(int) string { return "." }), 0, 0},
		// Without the cap, t91 would be the second id examined.
		{"row 2: id past 1 KiB", strings.Repeat(".", catalog.MaxHintBytes) + ",t91", 0, 0},
	}
	for i, tc := range cases {
		jobs := p.edge.prefetch.jobs.Load()
		lookups := p.origin.RightsRequests()
		media := p.origin.MediaRequests()
		// A track start (first chunk) of a track not used elsewhere.
		track := fmt.Sprintf("t%d", 10+i)
		resp, _ := p.get(t, p.url(track, 24, "SE"), "Range", "bytes=0-99", catalog.HeaderNextTracks, tc.hint)
		if resp.StatusCode != 206 {
			t.Fatalf("%s: status %d", tc.name, resp.StatusCode)
		}
		wait.For(t, 10*time.Second, "the prefetch job", func() bool { return p.edge.prefetch.jobs.Load() > jobs })
		// Each warm is one metadata fill at the shield, one origin
		// request; the player's own request was one more.
		wait.For(t, 10*time.Second, "the warms to reach the origin", func() bool { return p.origin.MediaRequests()-media >= 1+tc.warms })
		if got := p.origin.RightsRequests() - lookups; got > tc.maxLookups {
			t.Errorf("%s: %d manifest look-ups at the origin, want at most %d", tc.name, got, tc.maxLookups)
		}
		if got := p.origin.MediaRequests() - media - 1; got != tc.warms {
			t.Errorf("%s: %d prefetch requests at the origin, want %d", tc.name, got, tc.warms)
		}
	}
}

// TestMultipartMemory is issue 10 row 6: 16 requests at once, each for 16
// large ranges of a multi-MB object, once held every body in memory
// (twice). Now each body is a stream read from the store while it is
// written: the heap grows by a few part headers per request, not by the
// body. The clients read only the headers, so every response is in
// flight when the heap is measured.
//
// Mutations caught: building the body in memory again (as before: a
// bytes.Buffer then SetBody) grows the heap by about 2 x 16 x 4 MB and
// fails the bound; the IsBodyStream assertion fails too. Reading the bytes
// wrong fails httprangetest.CheckMultipart.
func TestMultipartMemory(t *testing.T) {
	p := newTestPOP(t, func(e, _ *Config) { e.MaxBufferedBody = 64 << 10 })
	const track, kbps = 3, 320
	size := p.origin.cat.Size(track, kbps)
	if size < 4<<20 {
		t.Fatalf("object of %d bytes: want a multi-MB one", size)
	}
	obj := fmt.Sprintf("t%d/%d.ogg", track, kbps)
	url := p.signed(obj, "SE")
	// Warm the whole object, so the heap measured below holds it already.
	if resp, body := p.get(t, url); resp.StatusCode != 200 || int64(len(body)) != size {
		t.Fatalf("warm-up: %d, %d bytes", resp.StatusCode, len(body))
	}
	p.edge.store.Wait()

	// 16 ranges of size/40 each, 1/40 apart: about 40 % of the object.
	var want []httprange.Range
	var spec []string
	step := size / 40
	for i := int64(0); i < 16; i++ {
		r := httprange.Range{Start: 2 * i * step, End: 2*i*step + step - 1}
		want = append(want, r)
		spec = append(spec, fmt.Sprintf("%d-%d", r.Start, r.End))
	}
	rangeHdr := "bytes=" + strings.Join(spec, ",")
	bodyLen := 16 * step

	// By design: the handler hands fasthttp a stream, never a body.
	var req fasthttp.Request
	req.SetRequestURI(url[strings.Index(url, "/a/"):])
	req.Header.Set("Range", rangeHdr)
	var rc fasthttp.RequestCtx
	rc.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, nil)
	p.edge.Handle(&rc)
	if rc.Response.StatusCode() != 206 || !rc.Response.IsBodyStream() {
		t.Fatalf("multipart response: status %d, stream %v; want 206 and a body stream", rc.Response.StatusCode(), rc.Response.IsBodyStream())
	}
	rc.Response.Reset()

	// Measured: 16 at once, each stalled after its headers.
	const n = 16
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	before := heap()
	type inflight struct {
		conn net.Conn
		resp *http.Response
	}
	var open []inflight
	defer func() {
		for _, f := range open {
			f.conn.Close()
		}
	}()
	for range n {
		c, err := net.Dial("tcp", p.edge.Addr())
		if err != nil {
			t.Fatal(err)
		}
		hreq, _ := http.NewRequest("GET", url, nil)
		hreq.Header.Set("Range", rangeHdr)
		if err := hreq.Write(c); err != nil {
			t.Fatal(err)
		}
		open = append(open, inflight{conn: c})
	}
	for i := range open {
		hreq, _ := http.NewRequest("GET", url, nil)
		resp, err := http.ReadResponse(bufio.NewReaderSize(open[i].conn, 4096), hreq)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 206 || resp.ContentLength < bodyLen {
			t.Fatalf("status %d, Content-Length %d", resp.StatusCode, resp.ContentLength)
		}
		open[i].resp = resp
	}
	grew := int64(heap()) - int64(before)
	// Bound: the brief's max_buffered_body per request, plus one chunk
	// per request in flight and 4 MiB of slack for the runtime.
	limit := int64(n)*(int64(p.edge.cfg.MaxBufferedBody)+p.edge.store.ChunkSize()) + 4<<20
	t.Logf("heap grew %d KiB with %d multipart responses of %d KiB in flight (limit %d KiB)", grew>>10, n, bodyLen>>10, limit>>10)
	if grew > limit {
		t.Errorf("heap grew %d bytes with %d multipart responses in flight, want at most %d", grew, n, limit)
	}
	// HEAD announces the same length as GET sends.
	head, _ := http.NewRequest("HEAD", url, nil)
	head.Header.Set("Range", rangeHdr)
	if resp, err := p.client.Do(head); err != nil || resp.StatusCode != 206 || resp.ContentLength != open[0].resp.ContentLength {
		t.Errorf("HEAD: %v, %v; want 206 with Content-Length %d", resp, err, open[0].resp.ContentLength)
	} else {
		resp.Body.Close()
	}
	// And every body is right.
	var wg sync.WaitGroup
	for _, f := range open {
		wg.Go(func() {
			body, err := io.ReadAll(f.resp.Body)
			if err != nil {
				t.Errorf("reading body: %v", err)
				return
			}
			httprangetest.CheckMultipart(t, f.resp, body, size, want, func(a, b int64) []byte { return p.expect(track, kbps, a, b) })
		})
	}
	wg.Wait()
}

// TestNegativeCaching is issue 10 row 11: 20 requests for a missing .seek
// once cost 20 origin 404s. Now each node remembers a 404 for
// negative_ttl: 20 requests cost one request at the shield and one at the
// origin per TTL, concurrent ones are collapsed, and a 5xx is never
// remembered. Counted at the real upstream servers.
//
// Mutations caught: no negative entry (20 origin requests); an entry that
// ignores the TTL (no request after it); caching every error (the 500
// case sees 1, not 20); the shield not caching (case "edge off" sees 20
// at the origin).
func TestNegativeCaching(t *testing.T) {
	p := newTestPOP(t, nil)
	const seek = "t1/96.seek" // the synthetic catalog has no seek tables
	get20 := func(obj string, parallel bool) {
		url := p.signed(obj, "SE")
		var wg sync.WaitGroup
		for range 20 {
			do := func() {
				resp, _ := p.get(t, url)
				if resp.StatusCode != 404 && resp.StatusCode != 502 {
					t.Errorf("%s: status %d", obj, resp.StatusCode)
				}
			}
			if parallel {
				wg.Go(do)
			} else {
				do()
			}
		}
		wg.Wait()
	}
	path := "/media/" + seek
	get20(seek, false)
	if n := p.origin.Count(path); n != 1 {
		t.Errorf("row 11: 20 requests for a missing .seek: %d origin requests, want 1", n)
	}
	if n := p.edge.fetch.attempts.Load(); n != 1 {
		t.Errorf("row 11: 20 requests for a missing .seek: %d shield requests, want 1", n)
	}
	// After the TTL: asked again, once.
	p.advance(time.Duration(p.edge.cfg.Cache.NegativeTTL))
	get20(seek, false)
	if n := p.origin.Count(path); n != 2 {
		t.Errorf("after negative_ttl: %d origin requests, want 2", n)
	}
	// Concurrent misses of a missing object: collapsed at each node.
	get20("t2/96.seek", true)
	if n := p.origin.Count("/media/t2/96.seek"); n != 1 {
		t.Errorf("20 concurrent requests: %d origin requests, want 1", n)
	}
	// A 5xx is never remembered: every request is tried again.
	p.origin.FailNext(-1, 500, false)
	get20("t3/96.seek", false)
	p.origin.Heal()
	if n := p.origin.Count("/media/t3/96.seek"); n != 20 {
		t.Errorf("origin failing: %d origin requests for 20, want 20 (5xx not cached)", n)
	}
}

// TestNegativeCachingPerNode: with the edge's negative cache off, the
// shield's still holds the origin to one request per TTL.
func TestNegativeCachingPerNode(t *testing.T) {
	p := newTestPOP(t, func(e, _ *Config) { e.Cache.NegativeTTL = 0 })
	url := p.signed("t1/96.seek", "SE")
	for range 20 {
		if resp, _ := p.get(t, url); resp.StatusCode != 404 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if n := p.edge.fetch.attempts.Load(); n != 20 {
		t.Errorf("edge negative_ttl 0: %d shield requests, want 20", n)
	}
	if n := p.origin.Count("/media/t1/96.seek"); n != 1 {
		t.Errorf("edge negative_ttl 0: %d origin requests, want 1 (the shield caches)", n)
	}
}

// counter reads a Prometheus counter.
func counter(t testing.TB, c interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
