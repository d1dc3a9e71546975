package tier

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/internal/wait"
	"github.com/musiccdn/cdn/origin/media"
	"github.com/musiccdn/cdn/origin/origintest"
	"github.com/musiccdn/cdn/tierauth"
)

// TestByteExact fetches random ranges of every tier through the edge,
// many straddling chunk boundaries, and compares them with the origin's
// bytes.
func TestByteExact(t *testing.T) {
	p := newTestPOP(t, nil)
	rng := mrand.New(mrand.NewPCG(1, 2))
	cs := p.edge.Store().ChunkSize()
	for _, kbps := range catalog.Tiers {
		for n := 0; n < 12; n++ {
			i := rng.IntN(5)
			size := p.origin.cat.Size(i, kbps)
			var start, end int64
			if n%2 == 0 {
				// Straddle a chunk boundary.
				b := (1 + rng.Int64N(size/cs)) * cs
				start = max(0, b-1-rng.Int64N(cs))
				end = min(size-1, b+rng.Int64N(cs))
			} else {
				start = rng.Int64N(size)
				end = min(size-1, start+rng.Int64N(3*cs))
			}
			resp, body := p.get(t, p.url(fmt.Sprintf("t%d", i), kbps, "SE"), "Range", fmt.Sprintf("bytes=%d-%d", start, end))
			if resp.StatusCode != 206 {
				t.Fatalf("t%d/%d bytes=%d-%d: status %d", i, kbps, start, end, resp.StatusCode)
			}
			if !bytes.Equal(body, p.expect(i, kbps, start, end)) {
				t.Fatalf("t%d/%d bytes=%d-%d: body differs from origin", i, kbps, start, end)
			}
		}
	}
	// A whole file, streamed (larger than MaxBufferedBody at 320 kbps).
	resp, body := p.get(t, p.url("t3", 320, "SE"))
	size := p.origin.cat.Size(3, 320)
	if resp.StatusCode != 200 || int64(len(body)) != size || !bytes.Equal(body, p.expect(3, 320, 0, size-1)) {
		t.Fatalf("whole file: status %d, %d bytes of %d, or bytes differ", resp.StatusCode, len(body), size)
	}
}

// TestCollapsing sends 200 concurrent requests for one cold chunk to one
// edge: the shield and the origin each see one request. The origin
// (origintest) holds the fill until every request has joined it.
// Mutation caught: cache.Store.startFill never joining a fill in flight
// (the edge sends 200 requests to the shield, the shield 201 upstream).
func TestCollapsing(t *testing.T) {
	p := newTestPOP(t, nil)
	// Warm the object's metadata so the test isolates one cold chunk
	// (chunk 0 comes with the metadata).
	p.get(t, p.url("t7", 160, "SE"), "Range", "bytes=0-0")
	before := p.origin.MediaRequests()
	edgeBefore := p.edge.fetch.attempts.Load()
	p.origin.Hold() // hold the fill until every request is waiting
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	url := p.url("t7", 160, "SE")
	want := p.expect(7, 160, 3*262144+10, 3*262144+5000)
	for range n {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", 3*262144+10, 3*262144+5000))
			resp, err := p.client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 206 || !bytes.Equal(b, want) {
				errs <- fmt.Errorf("status %d, %d bytes", resp.StatusCode, len(b))
			}
		})
	}
	// Wait until all requests have joined the edge's fill: one miss, the
	// rest collapsed.
	wait.For(t, 10*time.Second, "every request to join the fill", func() bool {
		return p.edge.store.Stats.Misses.Load()-0 >= n && p.origin.MediaRequests() > before
	})
	p.origin.Heal()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := p.origin.MediaRequests() - before; got != 1 {
		t.Errorf("origin saw %d requests for the chunk, want 1", got)
	}
	if got := p.edge.fetch.attempts.Load() - edgeBefore; got != 1 {
		t.Errorf("edge sent %d requests to the shield for the chunk, want 1", got)
	}
	if got := p.shield.fetch.attempts.Load(); got != 2 {
		t.Errorf("shield made %d upstream requests, want 2 (metadata+chunk 0, then chunk 3)", got)
	}
	if got := p.edge.store.Stats.Collapsed.Load(); got != n-1 {
		t.Errorf("edge collapsed %d requests, want %d", got, n-1)
	}
}

// TestTokens: every bad token is a 403 and nothing goes upstream. The
// cases of issue 10 (object binding, lifetime, country header) are in
// TestSecurityEdge.
func TestTokens(t *testing.T) {
	p := newTestPOP(t, func(e, _ *Config) { e.CountryHeader = "X-Client-Country" })
	const obj = "t1/96.ogg"
	good := p.keys.Sign(obj, "SE", p.clock().Add(time.Hour))
	expired := p.keys.Sign(obj, "SE", p.clock().Add(-time.Second))
	other := p.keys.Sign("t2/96.ogg", "SE", p.clock().Add(time.Hour))
	tampered := []byte(good)
	tampered[len(tampered)-3] ^= 1
	wrongKey := strings.Replace(good, "k1.", "k9.", 1)
	base := p.edge.URL() + "/a/" + obj
	cases := []struct {
		name, url string
		country   string
	}{
		{"missing", base, "SE"},
		{"empty", base + "?t=", "SE"},
		{"tampered", base + "?t=" + string(tampered), "SE"},
		{"expired", base + "?t=" + expired, "SE"},
		{"other track", base + "?t=" + other, "SE"},
		{"unknown key", base + "?t=" + wrongKey, "SE"},
		{"garbage", base + "?t=a.b.c.d", "SE"},
		{"other country", base + "?t=" + good, "NO"},
	}
	for _, tc := range cases {
		resp, _ := p.get(t, tc.url, "X-Client-Country", tc.country)
		if resp.StatusCode != 403 {
			t.Errorf("%s: status %d, want 403", tc.name, resp.StatusCode)
		}
	}
	if n := p.origin.MediaRequests(); n != 0 {
		t.Errorf("origin saw %d requests, want 0", n)
	}
	if n := p.edge.fetch.attempts.Load(); n != 0 {
		t.Errorf("edge made %d upstream requests, want 0", n)
	}
	// The right country, and the good token, pass.
	if resp, _ := p.get(t, base+"?t="+good, "X-Client-Country", "SE", "Range", "bytes=0-0"); resp.StatusCode != 206 {
		t.Errorf("good token: status %d", resp.StatusCode)
	}
	// Not an open proxy.
	for _, path := range []string{"/media/t1/96.ogg", "/a/t1/96.mp3?t=" + good, "/a/../media/t1/96.ogg", "/x"} {
		resp, _ := p.get(t, p.edge.URL()+path)
		if resp.StatusCode != 404 && resp.StatusCode != 400 {
			t.Errorf("%s: status %d, want 400 or 404", path, resp.StatusCode)
		}
	}
	if resp, _ := p.get(t, p.edge.URL()+"/a/t%2F1/96.ogg?t="+good); resp.StatusCode != 400 && resp.StatusCode != 403 {
		t.Errorf("bad id: status %d", resp.StatusCode)
	}
}

// TestFaults: a failing origin gives 502/504, nothing is cached, and the
// edge serves correctly once the origin is back. The faults are
// origintest's, in front of the real origin. Mutation caught: the
// origin's body not truncated (origintest.Truncate a no-op: the cut case
// gets a 206 and caches it).
func TestFaults(t *testing.T) {
	p := newTestPOP(t, func(e, s *Config) {
		s.UpstreamTimeout = config.Duration(300 * time.Millisecond)
		s.Cache.FillTimeout = config.Duration(400 * time.Millisecond)
		e.UpstreamTimeout = config.Duration(2 * time.Second)
	})
	for i, tc := range []struct {
		fault  string
		inject func()
		codes  []int
	}{
		{"500", func() { p.origin.FailNext(-1, 500, false) }, []int{502}},
		{"stall", func() { p.origin.Hold() }, []int{504}},
		// The origin announces the whole chunk, sends 1000 bytes and
		// aborts the connection.
		{"cut", func() { p.origin.Truncate(1000) }, []int{502}},
	} {
		track := fmt.Sprintf("t%d", 10+i)
		tc.inject()
		resp, body := p.get(t, p.url(track, 64, "SE"), "Range", "bytes=0-99")
		if !containsInt(tc.codes, resp.StatusCode) {
			t.Errorf("fault %s: status %d, want %v", tc.fault, resp.StatusCode, tc.codes)
		}
		if strings.Contains(string(body), "127.0.0.1") || strings.Contains(string(body), "status") {
			t.Errorf("fault %s: internal detail in body %q", tc.fault, body)
		}
		p.origin.Heal()
		before := p.origin.MediaRequests()
		resp, body = p.get(t, p.url(track, 64, "SE"), "Range", "bytes=0-99")
		if resp.StatusCode != 206 || !bytes.Equal(body, p.expect(10+i, 64, 0, 99)) {
			t.Errorf("fault %s cleared: status %d or bytes differ", tc.fault, resp.StatusCode)
		}
		if p.origin.MediaRequests() == before {
			t.Errorf("fault %s: the error was cached (no new origin request)", tc.fault)
		}
	}
}

// TestAbortMidBody: when a streamed body's later chunk fails once the
// status and headers are sent, the edge aborts the connection (fewer bytes
// than Content-Length) and counts it; it never ends with a body that looks
// complete. Both bodies that stream: a whole file (200) and a multipart
// response (206), whose first part (from the cached chunk 0) is large
// enough that the status and headers are flushed before the second part
// fails.
//
// Mutations tried: not counting the abort in bodyStream.Read is caught
// (aborted responses 0, both rows). Returning io.EOF instead of the error
// from bodyStream.next is not caught, and cannot be from outside: fasthttp's
// fixed-size body writer turns a stream shorter than Content-Length into
// an error and closes the connection itself. The guarantee holds in two
// layers; this test pins the observable one.
func TestAbortMidBody(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tweak func(e, s *Config)
		track int
		rng   func(size int64) string // the Range header; "" for none
		want  int
	}{
		{"whole file", func(e, s *Config) { e.MaxBufferedBody = 64 << 10 }, 20,
			func(int64) string { return "" }, 200},
		{"multipart", func(e, s *Config) {
			s.UpstreamTimeout = config.Duration(300 * time.Millisecond)
			s.Cache.FillTimeout = config.Duration(400 * time.Millisecond)
			e.UpstreamTimeout = config.Duration(time.Second)
			e.Cache.FillTimeout = config.Duration(time.Second)
		}, 4, func(size int64) string { return fmt.Sprintf("bytes=0-199999,%d-%d", size-100, size-1) }, 206},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestPOP(t, tc.tweak)
			url := p.url(fmt.Sprintf("t%d", tc.track), 320, "SE")
			// Metadata and chunk 0 cached; the last chunk will fail.
			if resp, _ := p.get(t, url, "Range", "bytes=0-0"); resp.StatusCode != 206 {
				t.Fatal("warm-up")
			}
			p.origin.FailNext(-1, 500, false)
			req, _ := http.NewRequest("GET", url, nil)
			if rng := tc.rng(p.origin.cat.Size(tc.track, 320)); rng != "" {
				req.Header.Set("Range", rng)
			}
			resp, err := p.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d (chunk 0 is cached)", resp.StatusCode, tc.want)
			}
			body, err := io.ReadAll(resp.Body)
			if err == nil || int64(len(body)) >= resp.ContentLength {
				t.Errorf("read %d of %d bytes, err %v: want a cut connection", len(body), resp.ContentLength, err)
			}
			if counter(t, p.edge.m.aborted) != 1 {
				t.Errorf("aborted responses %v, want 1", counter(t, p.edge.m.aborted))
			}
		})
	}
}

// TestETagChange: when the origin republishes a file, no response mixes
// the two versions: cached ranges of the old version stay consistent until
// the TTL, a response that needs a chunk of the new version is rebuilt
// from the new version, and after the TTL the old chunks are gone.
func TestETagChange(t *testing.T) {
	p := newTestPOP(t, func(e, s *Config) {
		e.MaxBufferedBody = 16 << 20
		s.MaxBufferedBody = 16 << 20
	})
	url := p.url("t30", 96, "SE")
	size := p.origin.cat.Size(30, 96)
	version := func(gen uint64, start, end int64) []byte {
		b := make([]byte, end-start+1)
		p.origin.cat.Fill(b, 30, 96, gen, start)
		return b
	}
	resp, body := p.get(t, url, "Range", "bytes=0-600000")
	old := resp.Header.Get("ETag")
	if !bytes.Equal(body, version(0, 0, 600000)) {
		t.Fatal("first read differs")
	}
	p.origin.Republish("t30")
	// Before the TTL a cached range is the old version, whole.
	resp, body = p.get(t, url, "Range", "bytes=0-600000")
	if resp.Header.Get("ETag") != old || !bytes.Equal(body, version(0, 0, 600000)) {
		t.Fatal("cached range before the TTL: not the old version")
	}
	// A response needing uncached chunks meets the new version upstream
	// and is rebuilt from it.
	resp, body = p.get(t, url)
	if resp.StatusCode != 200 || resp.Header.Get("ETag") == old || !bytes.Equal(body, version(1, 0, size-1)) {
		t.Fatalf("whole file after republish: status %d, etag %s: not entirely the new version", resp.StatusCode, resp.Header.Get("ETag"))
	}
	resp, body = p.get(t, url, "Range", "bytes=0-600000")
	if !bytes.Equal(body, version(1, 0, 600000)) {
		t.Fatal("old chunks still served after the new version was seen")
	}
	if p.edge.store.Stats.Invalidations.Load() == 0 {
		t.Error("edge did not drop the old version")
	}
	// A second republish is found by revalidation after the TTL.
	p.origin.Republish("t30")
	p.advance(10 * time.Minute)
	resp, body = p.get(t, url, "Range", "bytes=0-600000")
	if !bytes.Equal(body, version(2, 0, 600000)) {
		t.Fatal("after the TTL: not the newest version")
	}
	if p.edge.store.Stats.Revalidations.Load() == 0 {
		t.Error("edge did not revalidate")
	}
}

// TestETagChangeStreaming: a streamed body that meets a new version after
// its status line went out is aborted, never completed with mixed bytes.
func TestETagChangeStreaming(t *testing.T) {
	p := newTestPOP(t, func(e, s *Config) { e.MaxBufferedBody = 64 << 10 })
	url := p.url("t32", 320, "SE")
	size := p.origin.cat.Size(32, 320)
	p.get(t, url, "Range", "bytes=0-0")
	p.origin.Republish("t32")
	resp, err := p.client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		// Completed: then it must be one version, whole.
		want := make([]byte, size)
		p.origin.cat.Fill(want, 32, 320, 0, 0)
		if !bytes.Equal(body, want) {
			t.Fatal("a complete streamed body mixes versions")
		}
	}
}

// TestChangeDuringFill: the origin republishes between the edge learning
// the metadata and filling a later chunk; the response is all new or the
// request fails, never mixed.
func TestChangeDuringFill(t *testing.T) {
	p := newTestPOP(t, nil)
	url := p.url("t31", 320, "SE")
	p.get(t, url, "Range", "bytes=0-0") // metadata of version 0 at both tiers
	p.origin.Republish("t31")
	p.advance(10 * time.Minute) // the shield revalidates; the edge too
	resp, body := p.get(t, url, "Range", "bytes=0-1000000")
	if resp.StatusCode != 206 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if !bytes.Equal(body, p.expect(31, 320, 0, 1000000)) {
		t.Fatal("mixed or old bytes after a change")
	}
}

// TestStaleIfError: when revalidation fails, the cached version is served
// and counted.
func TestStaleIfError(t *testing.T) {
	p := newTestPOP(t, nil)
	url := p.url("t40", 24, "SE")
	resp, want := p.get(t, url, "Range", "bytes=0-1000")
	p.origin.FailNext(-1, 500, false)
	p.advance(10 * time.Minute)
	resp, body := p.get(t, url, "Range", "bytes=0-1000")
	if resp.StatusCode != 206 || !bytes.Equal(body, want) {
		t.Fatalf("stale read: status %d", resp.StatusCode)
	}
	if p.shield.store.Stats.StaleServed.Load() == 0 {
		t.Error("shield did not count a stale serve")
	}
	if !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
		t.Errorf("Cache-Status %q", resp.Header.Get("Cache-Status"))
	}
}

// TestHTTPS: the edge serves players over TLS when configured.
func TestHTTPS(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	p := newTestPOP(t, func(e, s *Config) { e.TLSCert, e.TLSKey = cert, key })
	if !strings.HasPrefix(p.edge.URL(), "https://") {
		t.Fatalf("edge URL %s", p.edge.URL())
	}
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(cert)
	pool.AppendCertsFromPEM(pem)
	p.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, body := p.get(t, p.url("t1", 64, "SE"), "Range", "bytes=5-50")
	if resp.StatusCode != 206 || resp.TLS == nil || !bytes.Equal(body, p.expect(1, 64, 5, 50)) {
		t.Fatalf("https: status %d tls %v", resp.StatusCode, resp.TLS != nil)
	}
}

// TestDrain: on shutdown /readyz fails while requests still complete.
func TestDrain(t *testing.T) {
	p := newTestPOP(t, nil)
	resp, _ := p.get(t, p.edge.URL()+"/readyz")
	if resp.StatusCode != 200 {
		t.Fatalf("readyz %d", resp.StatusCode)
	}
	p.edge.draining.Store(true)
	resp, _ = p.get(t, p.edge.URL()+"/readyz")
	if resp.StatusCode != 503 {
		t.Fatalf("readyz while draining %d", resp.StatusCode)
	}
	resp, _ = p.get(t, p.url("t1", 24, "SE"), "Range", "bytes=0-9")
	if resp.StatusCode != 206 {
		t.Fatalf("request while draining %d", resp.StatusCode)
	}
	resp, body := p.get(t, p.edge.InternalURL()+"/metrics")
	for _, name := range []string{"edge_requests_total", "edge_cache_hits_total", "edge_cache_misses_total", "edge_upstream_fetches_total", "edge_collapsed_total", "edge_bytes_served_total", "edge_request_duration_seconds"} {
		if !strings.Contains(string(body), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	_, body = p.get(t, p.shield.InternalURL()+"/metrics")
	for _, name := range []string{"shield_requests_total", "shield_cache_hits_total", "shield_cache_misses_total", "shield_upstream_fetches_total", "shield_collapsed_total"} {
		if !strings.Contains(string(body), name) {
			t.Errorf("shield /metrics lacks %s", name)
		}
	}
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

// TestSeekTableCompressed: a whole seek table is sent zstd or gzip
// compressed when accepted, with its own ETag; ranges stay identity.
func TestSeekTableCompressed(t *testing.T) {
	dir := t.TempDir()
	table := bytes.Repeat([]byte("0\t0\t4096\n1\t44100\t20480\n"), 400)
	os.MkdirAll(filepath.Join(dir, "song"), 0o755)
	os.WriteFile(filepath.Join(dir, "song", "160.seek"), table, 0o644)
	os.WriteFile(filepath.Join(dir, "song", "160.ogg"), table, 0o644)
	cat, err := media.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The real origin over that directory, on the POP's clock (which
	// this test does not advance).
	origin := origintest.Start(t, origintest.Config{Source: cat, TierKeys: []tierauth.KeyConfig{testTierKey},
		Clock: func() time.Time { return testEpoch }})
	p := newTestPOP(t, func(e, s *Config) { s.Upstreams = []string{origin.URL} })
	url := p.signed("song/160.seek", "SE")
	for _, tc := range []struct{ accept, enc string }{{"gzip, zstd", "zstd"}, {"gzip", "gzip"}, {"zstd;q=0, gzip;q=0.5", "gzip"}, {"", ""}, {"br", ""}} {
		req, _ := http.NewRequest("GET", url, nil)
		if tc.accept != "" {
			req.Header.Set("Accept-Encoding", tc.accept)
		}
		resp, err := p.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := resp.Header.Get("Content-Encoding"); got != tc.enc {
			t.Fatalf("Accept-Encoding %q: Content-Encoding %q, want %q", tc.accept, got, tc.enc)
		}
		var plain []byte
		switch tc.enc {
		case "zstd":
			d, _ := zstd.NewReader(nil)
			plain, err = d.DecodeAll(raw, nil)
			d.Close()
		case "gzip":
			var zr *gzip.Reader
			if zr, err = gzip.NewReader(bytes.NewReader(raw)); err == nil {
				plain, err = io.ReadAll(zr)
			}
		default:
			plain = raw
		}
		if err != nil || !bytes.Equal(plain, table) {
			t.Fatalf("Accept-Encoding %q: decoded body differs (%v)", tc.accept, err)
		}
		if tc.enc != "" && (len(raw) >= len(table) || !strings.Contains(resp.Header.Get("ETag"), "-"+tc.enc)) {
			t.Errorf("Accept-Encoding %q: %d bytes, ETag %s", tc.accept, len(raw), resp.Header.Get("ETag"))
		}
		if resp.Header.Get("Vary") != "Accept-Encoding" {
			t.Errorf("Vary %q", resp.Header.Get("Vary"))
		}
	}
	resp, body := p.get(t, url, "Accept-Encoding", "zstd", "Range", "bytes=10-19")
	if resp.StatusCode != 206 || resp.Header.Get("Content-Encoding") != "" || !bytes.Equal(body, table[10:20]) {
		t.Fatalf("ranged seek table: %d %q", resp.StatusCode, resp.Header.Get("Content-Encoding"))
	}
}
