package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/musiccdn/cdn/httprange"
	"github.com/musiccdn/cdn/loadtest/workload"
)

// testConfig is a short run of small requests (24 kbps only, ~100 req/s)
// so the tests stay quick under -race on a loaded machine: at 600x a
// session's tracks take a few seconds.
func testConfig(d time.Duration) Config {
	cfg := DefaultConfig()
	cfg.Workload.Tracks = 1000
	cfg.Workload.Seed = 3
	cfg.Workload.SessionRate = 2
	cfg.Workload.Classes = []workload.BandwidthClass{{Name: "2g", Weight: 1, MaxKbps: 24}}
	cfg.Duration = d
	cfg.Compression = 600
	cfg.RequestTimeout = 5 * time.Second
	return cfg
}

func serve(t *testing.T, h http.Handler) Targets {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return Targets{Origin: srv.URL, Edges: []string{srv.URL}}
}

func TestRunAgainstNullPOP(t *testing.T) {
	cfg := testConfig(2 * time.Second)
	res, err := Run(context.Background(), cfg, serve(t, NewNullPOP(cfg.Workload.Tracks, cfg.Workload.Seed)))
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests < 50 || res.Errors != 0 || res.VerifyFailures != 0 {
		t.Fatalf("requests %d, errors %d (%v), verify failures %d (%v): want many, 0, 0",
			res.Requests, res.Errors, res.ErrorsByKind, res.VerifyFailures, res.VerifyByKind)
	}
	if res.PlaysSent == 0 || res.PlaysUnsupported {
		t.Errorf("plays sent %d, unsupported %v: want some sent", res.PlaysSent, res.PlaysUnsupported)
	}
	if res.EdgeHitRatio != 1 {
		t.Errorf("edge hit ratio %v, want 1 (the null POP always says hit)", res.EdgeHitRatio)
	}
	if err := res.Check(0, 0); err != nil {
		t.Error(err)
	}
}

func TestRunNoPlayEndpoint(t *testing.T) {
	cfg := testConfig(time.Second)
	p := NewNullPOP(cfg.Workload.Tracks, cfg.Workload.Seed)
	p.NoPlays = true
	res, err := Run(context.Background(), cfg, serve(t, p))
	if err != nil {
		t.Fatal(err)
	}
	if res.PlaysSent != 0 || !res.PlaysUnsupported || res.Errors != 0 {
		t.Errorf("plays sent %d, unsupported %v, errors %v: want 0, true, none", res.PlaysSent, res.PlaysUnsupported, res.ErrorsByKind)
	}
}

// corruptOne flips one byte in the body of the n-th media response.
type corruptOne struct {
	h    http.Handler
	n    int64
	seen atomic.Int64
}

func (c *corruptOne) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/a/") && c.seen.Add(1) == c.n {
		rec := httptest.NewRecorder()
		c.h.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		body[len(body)/2] ^= 0x40
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body)
		return
	}
	c.h.ServeHTTP(w, r)
}

func TestRunCatchesCorruptByte(t *testing.T) {
	cfg := testConfig(time.Second)
	h := &corruptOne{h: NewNullPOP(cfg.Workload.Tracks, cfg.Workload.Seed), n: 10}
	res, err := Run(context.Background(), cfg, serve(t, h))
	if err != nil {
		t.Fatal(err)
	}
	if h.seen.Load() < 10 {
		t.Fatalf("only %d media requests: the corruption was never served", h.seen.Load())
	}
	if res.VerifyFailures != 1 || res.VerifyByKind["mismatch"] != 1 {
		t.Errorf("verify failures %d (%v), want 1 mismatch", res.VerifyFailures, res.VerifyByKind)
	}
	if err := res.Check(0, 0); err == nil {
		t.Error("Check(0, 0) passed a run with a verify failure")
	}
}

func TestRunCatchesWrongContentRangeAndShortBody(t *testing.T) {
	cfg := testConfig(time.Second)
	null := NewNullPOP(cfg.Workload.Tracks, cfg.Workload.Seed)
	var n atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/a/") {
			null.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		null.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		body := rec.Body.Bytes()
		switch n.Add(1) {
		case 5: // claims one byte more at the start than was asked for
			cr, size, _ := httprange.ParseContentRange([]byte(rec.Header().Get("Content-Range")))
			a, b := cr.Start, cr.End
			w.Header().Set("Content-Range", "bytes "+itoa(a+1)+"-"+itoa(b)+"/"+itoa(size))
			w.Header().Set("Content-Length", itoa(int64(len(body)-1)))
			w.WriteHeader(rec.Code)
			_, _ = w.Write(body[1:])
			return
		case 8: // cut short, and the length says so
			w.Header().Set("Content-Length", itoa(int64(len(body)-7)))
			w.WriteHeader(rec.Code)
			_, _ = w.Write(body[:len(body)-7])
			return
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body)
	})
	res, err := Run(context.Background(), cfg, serve(t, h))
	if err != nil {
		t.Fatal(err)
	}
	if res.VerifyByKind["content_range"] != 1 || res.VerifyByKind["short"] != 1 || res.VerifyFailures != 2 {
		t.Errorf("verify failures %v, want 1 content_range and 1 short", res.VerifyByKind)
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// stallOnce blocks every request that arrives in [from, from+d) (since its
// creation) until from+d: a server that freezes for d.
type stallOnce struct {
	h     http.Handler
	start time.Time
	from  time.Duration
	d     time.Duration
}

func (s *stallOnce) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if el := time.Since(s.start); el >= s.from && el < s.from+s.d {
		// The fault being injected, not synchronisation: the server hangs.
		time.Sleep(s.from + s.d - el)
	}
	s.h.ServeHTTP(w, r)
}

// TestStallShowsInPercentiles: a 1 s freeze in a 3 s run. Sessions wait
// for their slow request, but the requests due meanwhile are timed from
// when they were due, so the stall is in p99.9 (a closed-loop tool would
// record a handful of slow requests and hide the rest).
func TestStallShowsInPercentiles(t *testing.T) {
	cfg := testConfig(3 * time.Second)
	h := &stallOnce{h: NewNullPOP(cfg.Workload.Tracks, cfg.Workload.Seed), start: time.Now(), from: 1200 * time.Millisecond, d: time.Second}
	res, err := Run(context.Background(), cfg, serve(t, h))
	if err != nil {
		t.Fatal(err)
	}
	if res.TTFBP999MS < 800 {
		t.Errorf("p99.9 TTFB = %.1f ms, want >= 800 ms after a 1 s stall", res.TTFBP999MS)
	}
	// Coordinated omission corrected: far more than the requests in flight
	// when the stall began are slow, enough to move p99.
	if res.TTFBP99MS < 300 {
		t.Errorf("p99 TTFB = %.1f ms, want >= 300 ms: the stall is a third of the run", res.TTFBP99MS)
	}
	if res.Errors != 0 || res.VerifyFailures != 0 {
		t.Errorf("errors %v, verify %v: a stall shorter than the timeout is not an error", res.ErrorsByKind, res.VerifyByKind)
	}
}

func TestReports(t *testing.T) {
	cfg := testConfig(time.Second)
	res, err := Run(context.Background(), cfg, serve(t, NewNullPOP(cfg.Workload.Tracks, cfg.Workload.Seed)))
	if err != nil {
		t.Fatal(err)
	}
	var js bytes.Buffer
	if err := res.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(js.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"requests", "errors", "verify_failures", "bytes", "duration_s", "rps", "mbps",
		"ttfb_p50_ms", "ttfb_p99_ms", "ttfb_p999_ms", "edge_hit_ratio", "edge_byte_hit_ratio",
		"shield_hit_ratio", "origin_requests", "plays_sent"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON report lacks key %q", k)
		}
	}
	var html bytes.Buffer
	if err := res.WriteHTML(&html); err != nil {
		t.Fatal(err)
	}
	page := html.String()
	for _, title := range ChartTitles {
		if !strings.Contains(page, "<figcaption>"+title+"</figcaption>") {
			t.Errorf("HTML report lacks chart %q", title)
		}
	}
	if n := strings.Count(page, `src="data:image/svg+xml;base64,`); n != len(ChartTitles) {
		t.Errorf("HTML report has %d inline SVG charts, want %d", n, len(ChartTitles))
	}
	for _, ext := range []string{"<script", "<link", `src="http`} {
		if strings.Contains(page, ext) {
			t.Errorf("HTML report contains %q: it must be self-contained", ext)
		}
	}
	var text bytes.Buffer
	if err := res.WriteText(&text); err != nil || !strings.Contains(text.String(), "ttfb p50/p99/p99.9") {
		t.Errorf("text report = %q, %v", text.String(), err)
	}
}

func TestParseMetricsAndApply(t *testing.T) {
	scrape := func(text string) Snapshot {
		s, err := ParseMetrics(strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := scrape(`# HELP edge_requests_total Requests.
# TYPE edge_requests_total counter
edge_requests_total{code="200"} 3
edge_requests_total{code="206"} 4
# TYPE edge_cache_hits_total counter
edge_cache_hits_total 90
`)
	if s["edge_requests_total"] != 7 || s["edge_cache_hits_total"] != 90 {
		t.Fatalf("ParseMetrics = %v, want edge_requests_total 7, edge_cache_hits_total 90", s)
	}
	before := tierSnapshots{
		edge:   Snapshot{"edge_cache_hits_total": 10, "edge_cache_misses_total": 10},
		shield: Snapshot{"shield_cache_hits_total": 0, "shield_bytes_served_total": 100},
		origin: Snapshot{"origin_media_requests_total": 5},
	}
	after := tierSnapshots{
		edge:   Snapshot{"edge_cache_hits_total": 100, "edge_cache_misses_total": 20},
		shield: Snapshot{"shield_cache_hits_total": 3, "shield_cache_misses_total": 1, "shield_bytes_served_total": 1100},
		origin: Snapshot{"origin_media_requests_total": 6},
	}
	res := &Result{Bytes: 10000}
	res.applyMetrics(before, after)
	if res.EdgeChunkHitRatio == nil || *res.EdgeChunkHitRatio != 0.9 {
		t.Errorf("edge chunk hit ratio = %v, want 0.9", res.EdgeChunkHitRatio)
	}
	if res.EdgeOffload == nil || *res.EdgeOffload != 0.9 {
		t.Errorf("edge offload = %v, want 0.9", res.EdgeOffload)
	}
	if res.ShieldHitRatio == nil || *res.ShieldHitRatio != 0.75 {
		t.Errorf("shield hit ratio = %v, want 0.75", res.ShieldHitRatio)
	}
	if res.OriginRequests == nil || *res.OriginRequests != 1 {
		t.Errorf("origin requests = %v, want 1", res.OriginRequests)
	}
	// Unscraped tiers leave the ratios null.
	res = &Result{Bytes: 10}
	res.applyMetrics(tierSnapshots{errs: []string{"x"}}, tierSnapshots{errs: []string{"x"}})
	if res.ShieldHitRatio != nil || res.OriginRequests != nil || res.EdgeOffload != nil || res.MetricsNote == "" {
		t.Errorf("without scrapes: %+v", res)
	}
}

func TestLoadTargets(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		body string
		ok   bool
	}{
		{`{"origin":"http://127.0.0.1:1","shields":["http://127.0.0.1:2"],"edges":["http://127.0.0.1:3"],"kafka":"x"}`, true},
		{`{"origin":"http://127.0.0.1:1","edges":[]}`, false},
		{`{"edges":["http://127.0.0.1:3"]}`, false},
		{`not json`, false},
	}
	for i, tt := range tests {
		path := filepath.Join(dir, strconv.Itoa(i)+".json")
		if err := os.WriteFile(path, []byte(tt.body), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadTargets(path)
		if (err == nil) != tt.ok {
			t.Errorf("LoadTargets(%q) error = %v, want ok %v", tt.body, err, tt.ok)
		}
	}
	// The internal listeners, where the metrics are scraped.
	path := filepath.Join(dir, "internal.json")
	os.WriteFile(path, []byte(`{"origin":"http://o","shields":["http://s"],"edges":["http://e"],"internal":{"origin":"http://oi","edges":["http://ei"],"shields":["http://si"]}}`), 0o644)
	tg, err := LoadTargets(path)
	if err != nil {
		t.Fatal(err)
	}
	if o, e, s := tg.MetricsURLs(); o != "http://oi" || e[0] != "http://ei" || s[0] != "http://si" {
		t.Errorf("metrics targets %s %v %v, want the internal listeners", o, e, s)
	}
	plain := Targets{Origin: "http://o", Edges: []string{"http://e"}, Shields: []string{"http://s"}}
	if o, e, s := plain.MetricsURLs(); o != "http://o" || e[0] != "http://e" || s[0] != "http://s" {
		t.Errorf("metrics targets without internal: %s %v %v", o, e, s)
	}
}

func FuzzParseMetrics(f *testing.F) {
	f.Add("# TYPE a_total counter\na_total{code=\"200\"} 3\n")
	f.Add("x 1\ny{a=\"b\"} NaN\n")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = ParseMetrics(strings.NewReader(s))
	})
}
