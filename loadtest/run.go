package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/musiccdn/cdn/addrfile"
	"github.com/musiccdn/cdn/httprange"
	"github.com/musiccdn/cdn/loadtest/workload"
	"github.com/musiccdn/cdn/origin/api"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/musiccdn/cdn/origin/media"
)

// Config is one run of the load tool.
type Config struct {
	// Workload is what the simulated listeners do.
	Workload workload.Config
	// Duration is the wall-clock time during which sessions arrive and
	// requests are issued; requests still in flight at the end may finish
	// within RequestTimeout. Default 60s.
	Duration time.Duration
	// Compression is simulated seconds per wall-clock second: 60 plays an
	// hour of listening in a minute. Default 60.
	Compression float64
	// RequestTimeout bounds every request, headers and body. Requests due
	// before the end of the run but still unsent RequestTimeout after it
	// (the tool fell behind) are abandoned and counted as "late" errors.
	// Default 10s.
	RequestTimeout time.Duration
	// MaxSessions caps sessions in progress; an arrival past it is counted
	// as an "overload" error rather than queued, so the generator's memory
	// stays bounded when the target stalls. Default 50000.
	MaxSessions int
	// NoVerify skips checking the bytes (the lengths and Content-Range are
	// still checked). Default false: every byte is checked.
	NoVerify bool
	// CountryHeader names the header, set on requests to edges, that
	// carries the listener's country, as the POP's load balancer would set
	// it (edges refuse tokens of other countries). Empty sends none.
	// Default "X-Client-Country", pop's default.
	CountryHeader string
	// Failover retries a range request that failed (a transport error or
	// a 5xx) once at the next edge, and keeps the session there, as a
	// player behind a load balancer or DNS with failover would. The
	// request is timed from when it was due to the retry's answer.
	// Default false: every session is pinned to one edge.
	Failover bool
	// ManifestsFromEdges asks the session's edge for manifests (edges
	// with manifest.enabled mint them from a snapshot) instead of the
	// origin. With Failover, a failed manifest request is retried at the
	// next edge. Default false: the origin.
	ManifestsFromEdges bool
	// RequestLog, if not nil, receives one CSV line per range request and
	// track start ("t_ms,kind,edge,ttfb_ms,ok"), for cutting a run into
	// windows.
	RequestLog io.Writer
	// ScrapeEvery is how often every node's /metrics is scraped during
	// the run, so counter resets (a node restarted) are seen: the
	// figures sum each node's increases between scrapes. Default 5s.
	ScrapeEvery time.Duration
	// Progress, if not nil, receives a status line every ProgressEvery.
	Progress      io.Writer
	ProgressEvery time.Duration
	// Logger receives verify failures and errors (rate-limited). Default
	// discards.
	Logger *slog.Logger
	// Client is the HTTP client; nil means one tuned for many connections
	// to a few hosts.
	Client *http.Client
	// POP describes the target's edges and caches for the report's
	// "params" (see RunParams); nil when unknown. It does not change
	// what the run does.
	POP *POPParams
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Workload:       workload.DefaultConfig(),
		Duration:       60 * time.Second,
		Compression:    60,
		RequestTimeout: 10 * time.Second,
		MaxSessions:    50000,
		CountryHeader:  "X-Client-Country",
		ProgressEvery:  time.Second,
		ScrapeEvery:    5 * time.Second,
	}
}

// Validate reports the first field that is out of range.
func (c Config) Validate() error {
	if err := c.Workload.Validate(); err != nil {
		return err
	}
	switch {
	case c.Duration <= 0:
		return fmt.Errorf("loadtest: duration %v not > 0", c.Duration)
	case !(c.Compression > 0):
		return fmt.Errorf("loadtest: compression %v not > 0", c.Compression)
	case c.RequestTimeout <= 0:
		return fmt.Errorf("loadtest: request timeout %v not > 0", c.RequestTimeout)
	case c.MaxSessions < 1:
		return fmt.Errorf("loadtest: max sessions %d < 1", c.MaxSessions)
	}
	return nil
}

// Targets are the POP's base URLs, in the JSON shape cmd/pop writes to its
// address file: the public ones players use, and the internal listeners
// whose /metrics the tool scrapes before and after a run.
type Targets struct {
	Origin  string   `json:"origin"`
	Shields []string `json:"shields"`
	Edges   []string `json:"edges"`
	// Internal are the internal listeners (where /metrics is served).
	// Empty: metrics are scraped from the public URLs (a POP without
	// the split, such as the null POP).
	Internal InternalTargets `json:"internal"`
	// Users are the POP's demo users with their bearer tokens; each
	// listener acts as the first user of its country. Empty (a null
	// target): requests carry no token.
	Users []User `json:"users"`
}

// InternalTargets are the base URLs of the nodes' internal listeners, as
// the address file gives them.
type InternalTargets = addrfile.Internal

// metricsTargets are the URLs to scrape: the internal listeners when
// known.
func (t Targets) metricsTargets() (origin string, edges, shields []string) {
	origin, edges, shields = t.Origin, t.Edges, t.Shields
	if t.Internal.Origin != "" {
		origin = t.Internal.Origin
	}
	if len(t.Internal.Edges) > 0 {
		edges = t.Internal.Edges
	}
	if len(t.Internal.Shields) > 0 {
		shields = t.Internal.Shields
	}
	return origin, edges, shields
}

// User is a user the load tool may act as (the addr file's "users").
type User = addrfile.User

// userFor returns the first user of country cc.
func (t *Targets) userFor(cc string) (User, bool) {
	for _, u := range t.Users {
		if u.Country == cc {
			return u, true
		}
	}
	return User{}, false
}

// LoadTargets reads an address file written by cmd/pop --addr-file.
func LoadTargets(path string) (Targets, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Targets{}, fmt.Errorf("loadtest: read addr file: %w", err)
	}
	var t Targets
	if err := json.Unmarshal(b, &t); err != nil {
		return Targets{}, fmt.Errorf("loadtest: parse addr file %s: %w", path, err)
	}
	if t.Origin == "" || len(t.Edges) == 0 {
		return Targets{}, fmt.Errorf("loadtest: addr file %s: need an origin and at least one edge", path)
	}
	return t, nil
}

// Manifest is the origin's playback manifest for one track.
type Manifest = api.Manifest

// ManifestTier is one tier's file in a Manifest.
type ManifestTier = api.Tier

// PlayEvent is what a player reports to the origin's POST /v1/plays.
type PlayEvent = api.PlayEvent

// Run drives the workload against the targets until cfg.Duration has
// passed and returns what it measured. It fails only when the run cannot
// start (bad config, no targets); errors during the run are counted.
func Run(ctx context.Context, cfg Config, t Targets) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if t.Origin == "" || len(t.Edges) == 0 {
		return nil, errors.New("loadtest: need an origin and at least one edge")
	}
	gen, err := workload.NewGenerator(cfg.Workload)
	if err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, t: t, gen: gen, cat: gen.Catalog(), log: cfg.Logger, client: cfg.Client}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.client == nil {
		r.client = NewClient()
	}
	counters := newCounterDeltas()
	counters.add(scrapeNodes(ctx, r.client, t))

	start := time.Now()
	r.start = start
	r.deadline = start.Add(cfg.Duration)
	r.rec = newRecorder(start)
	if cfg.RequestLog != nil {
		bw := bufio.NewWriterSize(cfg.RequestLog, 64<<10)
		r.rec.log = &requestLog{w: bw}
		defer func() {
			r.rec.mu.Lock()
			bw.Flush()
			r.rec.mu.Unlock()
		}()
	}
	stopScrape := make(chan struct{})
	scrapeDone := make(chan struct{})
	go func() {
		defer close(scrapeDone)
		every := cfg.ScrapeEvery
		if every <= 0 {
			every = 5 * time.Second
		}
		tk := time.NewTicker(every)
		defer tk.Stop()
		for {
			select {
			case <-tk.C:
				counters.add(scrapeNodes(ctx, r.client, t))
			case <-stopScrape:
				return
			}
		}
	}()

	progressDone := make(chan struct{})
	stopProgress := make(chan struct{})
	go func() {
		defer close(progressDone)
		r.progressLoop(stopProgress)
	}()

	var wg sync.WaitGroup
	var active atomic.Int64
	for {
		s := gen.Next()
		if s.Start >= cfg.Duration {
			break
		}
		if !sleepUntil(ctx, start.Add(s.Start)) {
			break
		}
		r.rec.sessionStarted()
		if active.Load() >= int64(cfg.MaxSessions) {
			r.rec.fail(time.Now(), "overload")
			continue
		}
		active.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer active.Add(-1)
			r.session(ctx, s)
		}()
	}
	wg.Wait()
	end := time.Now()
	close(stopProgress)
	<-progressDone

	close(stopScrape)
	<-scrapeDone
	counters.add(scrapeNodes(ctx, r.client, t))
	before, after := counters.snapshots()
	res := r.rec.result(end.Sub(start))
	res.PlaysUnsupported = r.playsUnsupported.Load()
	res.applyMetrics(before, after)
	res.Seed = cfg.Workload.Seed
	res.Catalog = cfg.Workload.Tracks
	res.Skew = cfg.Workload.Skew
	p := cfg.Params()
	res.Params = &p
	return res, nil
}

// NewClient returns an HTTP client for many concurrent requests to a few
// hosts: a large idle pool, no transparent decompression, no proxy.
func NewClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        0,
			MaxIdleConnsPerHost: 1024,
			IdleConnTimeout:     30 * time.Second,
			DisableCompression:  true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

type runner struct {
	cfg      Config
	t        Targets
	gen      *workload.Generator
	cat      *media.Synthetic
	log      *slog.Logger
	client   *http.Client
	rec      *recorder
	start    time.Time
	deadline time.Time

	playsUnsupported atomic.Bool
	logged           atomic.Int64
}

// wall maps a session's simulated time to the wall clock.
func (r *runner) wall(s *workload.Session, at time.Duration) time.Time {
	return r.start.Add(s.Start + time.Duration(float64(at)/r.cfg.Compression))
}

// session plays s's tracks in order, each request at its due time. A
// request that is late because the previous one was slow is still timed
// from when it was due.
func (r *runner) session(ctx context.Context, s workload.Session) {
	first := int(s.Pick % uint64(len(r.t.Edges)))
	h := &home{first: first, cur: first}
	user := User{UserID: "u" + strconv.Itoa(s.User)}
	if len(r.t.Users) > 0 {
		var ok bool
		if user, ok = r.t.userFor(s.Country); !ok {
			// The POP has no user in this country: its listeners
			// cannot get a manifest at all.
			r.rec.failN(time.Now(), "no_user_for_country", int64(len(s.Plays)))
			return
		}
	}
	for _, p := range s.Plays {
		due := r.wall(&s, p.Start)
		if !due.Before(r.deadline) || !sleepUntil(ctx, due) {
			return
		}
		if r.late() {
			// The target (or this machine) is so slow that requests due
			// before the end are still unsent a timeout after it: count
			// them rather than run on unbounded.
			n := int64(1)
			for _, f := range p.Fetches {
				if r.wall(&s, f.At).Before(r.deadline) {
					n++
				}
			}
			r.rec.failN(time.Now(), "late", n)
			continue
		}
		id := r.cat.ID(p.Track)
		m, ok := r.trackStart(ctx, due, h, id, s.Country, user.Token)
		if !ok {
			continue
		}
		authorized := time.Now()
		tier, ok := pickTier(m, s.Kbps)
		if !ok {
			r.rec.fail(time.Now(), "manifest_no_tier")
			continue
		}
		if tier.Bytes != r.cat.Size(p.Track, tier.Kbps) || tier.ETag != r.cat.ETag(p.Track, tier.Kbps, 0) {
			r.rec.fail(time.Now(), "manifest_catalog_mismatch")
			r.logf("manifest disagrees with the synthetic catalog (check --catalog and --seed)",
				"track", id, "kbps", tier.Kbps, "bytes", tier.Bytes, "etag", tier.ETag)
			continue
		}
		hints := nextHeader(r.cat, p.Next)
		for k, f := range p.Fetches {
			fdue := r.wall(&s, f.At)
			if !fdue.Before(r.deadline) || !sleepUntil(ctx, fdue) {
				break
			}
			if r.late() {
				r.rec.failN(time.Now(), "late", 1)
				continue
			}
			hh := ""
			if k == 0 {
				hh = hints
			}
			r.fetchFailover(ctx, fdue, h, tier.URL, p.Track, tier.Kbps, f.Off, f.Len, hh, s.Country)
		}
		played := p.Played
		end := r.wall(&s, p.Start+p.Played)
		if end.After(r.deadline) {
			end = r.deadline
			played = time.Duration(float64(r.deadline.Sub(due)) * r.cfg.Compression)
		}
		if played >= r.cfg.Workload.PlayThreshold && !r.playsUnsupported.Load() {
			if !sleepUntil(ctx, end) {
				return
			}
			// The origin refuses a play longer than the time since its
			// ticket was issued: under compression the report carries
			// the wall time the play really took, so compressed plays
			// mostly do not qualify for royalties (they still exercise
			// ingest, tickets and the stage).
			ms := min(played.Milliseconds(), time.Since(authorized).Milliseconds())
			playID := m.PlayID
			if playID == "" {
				playID = newPlayID() // a target without tickets (the null POP)
			}
			r.sendPlay(ctx, user.Token, PlayEvent{
				PlayID: playID, UserID: user.UserID, TrackID: id, Country: s.Country,
				TierKbps: tier.Kbps, MSPlayed: ms, TS: time.Now().UTC().Format(time.RFC3339Nano), Ticket: m.PlayTicket,
			})
		}
	}
}

// late reports whether the run is past its end by a request timeout, when
// requests still unsent are abandoned.
func (r *runner) late() bool {
	return time.Now().After(r.deadline.Add(r.cfg.RequestTimeout))
}

func pickTier(m Manifest, kbps int) (ManifestTier, bool) {
	best, ok := ManifestTier{}, false
	for _, t := range m.Tiers {
		if t.Kbps <= kbps && (!ok || t.Kbps > best.Kbps) && t.URL != "" {
			best, ok = t, true
		}
	}
	return best, ok
}

func nextHeader(cat *media.Synthetic, next []int) string {
	ids := make([]string, len(next))
	for i, t := range next {
		ids[i] = cat.ID(t)
	}
	return strings.Join(ids, ",")
}

// home is the edge a listener's session is on, and the one it was on
// before its last failover: a request is counted against the edge the
// listener was on when the request was due (a request due while the
// session still waited on a hung edge is that edge's, even if it is sent
// to the next one).
type home struct {
	first     int // the edge the session started on
	cur, prev int
	since     time.Time // when cur became the session's edge
}

func (h *home) at(due time.Time) int {
	if due.Before(h.since) {
		return h.prev
	}
	return h.cur
}

func (h *home) move(to int, now time.Time) {
	if to != h.cur {
		h.prev, h.cur, h.since = h.cur, to, now
	}
}

// trackStart fetches a track's manifest from the origin, or from the
// session's edge with ManifestsFromEdges (failing over to the next edge
// once with Failover).
func (r *runner) trackStart(ctx context.Context, due time.Time, h *home, id, country, token string) (Manifest, bool) {
	if !r.cfg.ManifestsFromEdges {
		m, ok, _ := r.manifest(ctx, due, r.t.Origin, -1, h.first, id, country, token, false)
		return m, ok
	}
	attr := h.at(due)
	retry := r.cfg.Failover && len(r.t.Edges) > 1
	m, ok, retriable := r.manifest(ctx, due, r.t.Edges[h.cur], attr, h.first, id, country, token, retry)
	if !ok && retriable && retry && ctx.Err() == nil {
		r.rec.failover()
		h.move((h.cur+1)%len(r.t.Edges), time.Now())
		m, ok, _ = r.manifest(ctx, due, r.t.Edges[h.cur], attr, h.first, id, country, token, false)
	}
	return m, ok
}

// With quiet set, a transport error or a 5xx is not recorded (the caller
// retries elsewhere) and retriable reports it.
// A 403 (rights deny the country) is what a player meets in normal use:
// it is counted as denied, not as an error, and the track is skipped.
func (r *runner) manifest(ctx context.Context, due time.Time, base string, edge, home int, id, country, token string, quiet bool) (_ Manifest, ok, retriable bool) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	u := base + "/v1/manifest/" + url.PathEscape(id) + "?country=" + url.QueryEscape(country)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		r.rec.fail(time.Now(), "manifest_request")
		return Manifest{}, false, false
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := r.client.Do(req)
	if err != nil && quiet {
		return Manifest{}, false, true
	}
	if err != nil {
		r.rec.fail(time.Now(), "manifest_"+netKind(err))
		r.rec.trackStart(time.Now(), due, edge, home, true)
		r.logf("manifest", "url", u, "err", err)
		return Manifest{}, false, false
	}
	defer drain(resp.Body)
	var m Manifest
	switch {
	case resp.StatusCode == http.StatusForbidden:
		r.rec.manifest(time.Now(), due, true)
		r.rec.trackStart(time.Now(), due, edge, home, false)
		return Manifest{}, false, false
	case resp.StatusCode >= 500 && quiet:
		return Manifest{}, false, true
	case resp.StatusCode != http.StatusOK:
		r.rec.fail(time.Now(), "manifest_http_"+strconv.Itoa(resp.StatusCode))
		r.rec.trackStart(time.Now(), due, edge, home, true)
		return Manifest{}, false, false
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&m); err != nil {
		r.rec.fail(time.Now(), "manifest_decode")
		r.rec.trackStart(time.Now(), due, edge, home, true)
		r.logf("manifest decode", "url", u, "err", err)
		return Manifest{}, false, false
	}
	r.rec.manifest(time.Now(), due, false)
	r.rec.trackStart(time.Now(), due, edge, home, false)
	return m, true, false
}

// bufPool holds pairs of 64 KiB buffers: what was read, and what it
// should be.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 128<<10); return &b }}

// fetchFailover makes one range request at the session's edge and
// records it; with Config.Failover, a request that failed with a
// transport error or a 5xx is retried once at the next edge (timed from
// the same due time), where the session then stays.
func (r *runner) fetchFailover(ctx context.Context, due time.Time, h *home, path string, track, kbps int, off, n int64, hints, country string) {
	attr := h.at(due)
	o := r.fetch(ctx, due, r.t.Edges[h.cur]+path, track, kbps, off, n, hints, country)
	if r.cfg.Failover && len(r.t.Edges) > 1 && retriable(o) && ctx.Err() == nil {
		r.rec.failover()
		h.move((h.cur+1)%len(r.t.Edges), time.Now())
		o = r.fetch(ctx, due, r.t.Edges[h.cur]+path, track, kbps, off, n, hints, country)
	}
	o.Edge, o.Home = attr, h.first
	r.rec.observe(time.Now(), o)
}

// retriable reports whether a load balancer would retry o elsewhere: a
// transport failure or a 5xx, never a verify failure or a 4xx.
func retriable(o Observation) bool {
	return o.Err != "" && (!strings.HasPrefix(o.Err, "http_") || strings.HasPrefix(o.Err, "http_5"))
}

// fetch makes one range request and checks every byte of the answer; the
// caller records the observation.
func (r *runner) fetch(ctx context.Context, due time.Time, u string, track, kbps int, off, n int64, hints, country string) Observation {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Observation{Kbps: kbps, Err: "request", TTFB: time.Since(due), Total: time.Since(due)}
	}
	last := off + n - 1
	req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-"+strconv.FormatInt(last, 10))
	if hints != "" {
		req.Header.Set("X-Next-Tracks", hints)
	}
	if r.cfg.CountryHeader != "" {
		req.Header.Set(r.cfg.CountryHeader, country)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		r.logf("fetch", "url", u, "range", req.Header.Get("Range"), "err", err)
		return Observation{Kbps: kbps, Err: netKind(err), TTFB: time.Since(due), Total: time.Since(due)}
	}
	defer drain(resp.Body)
	ttfb := time.Since(due)
	size := r.cat.Size(track, kbps)
	o := Observation{Kbps: kbps, Outcome: httprange.ParseCacheStatus(resp.Header.Get("Cache-Status")), TTFB: ttfb}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		cr, total, ok := httprange.ParseContentRange([]byte(resp.Header.Get("Content-Range")))
		if !ok || cr.Start != off || cr.End != last || total != size {
			o.Verify = "content_range"
			r.logf("verify failure: wrong Content-Range", "url", u, "range", req.Header.Get("Range"),
				"content_range", resp.Header.Get("Content-Range"), "size", size)
		}
	case http.StatusOK:
		if off != 0 || n != size {
			o.Verify = "content_range"
			r.logf("verify failure: 200 to a partial range", "url", u, "range", req.Header.Get("Range"))
		}
	default:
		o.Err = "http_" + strconv.Itoa(resp.StatusCode)
		o.Total = time.Since(due)
		r.logf("fetch status", "url", u, "range", req.Header.Get("Range"), "status", resp.StatusCode)
		return o
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf, want := (*bp)[:64<<10], (*bp)[64<<10:]
	pos := off
	bad := o.Verify != ""
	for {
		k, err := resp.Body.Read(buf)
		if k > 0 {
			if !bad && !r.cfg.NoVerify && pos+int64(k) <= off+n {
				// Fill and memcmp: several times faster than Verify's
				// byte loop, which is kept to locate a mismatch.
				r.cat.Fill(want[:k], track, kbps, 0, pos)
				if !bytes.Equal(buf[:k], want[:k]) {
					i := r.cat.Verify(buf[:k], track, kbps, 0, pos)
					bad = true
					o.Verify = "mismatch"
					r.logf("verify failure: byte mismatch", "url", u, "range", req.Header.Get("Range"), "offset", pos+int64(i))
				}
			}
			pos += int64(k)
			o.Bytes += int64(k)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			o.Err = "body_" + netKind(err)
			break
		}
	}
	o.Total = time.Since(due)
	if o.Err == "" && !bad && o.Bytes != n {
		o.Verify = "short"
		if o.Bytes > n {
			o.Verify = "long"
		}
		r.logf("verify failure: body length", "url", u, "range", req.Header.Get("Range"), "got", o.Bytes, "want", n)
	}
	return o
}

// sendPlay posts one play event, retrying with the same play id until the
// origin acknowledges it. A 404 means the origin has no play endpoint: no
// more events are sent and the report says so.
func (r *runner) sendPlay(ctx context.Context, token string, ev PlayEvent) {
	body, _ := json.Marshal([]PlayEvent{ev})
	kind := ""
	for attempt := range 3 {
		if attempt > 0 && !sleepUntil(ctx, time.Now().Add(time.Duration(attempt)*200*time.Millisecond)) {
			return
		}
		rctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
		req, err := http.NewRequestWithContext(rctx, http.MethodPost, r.t.Origin+"/v1/plays", bytes.NewReader(body))
		if err != nil {
			cancel()
			return
		}
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := r.client.Do(req)
		if err != nil {
			cancel()
			kind = "play_" + netKind(err)
			continue
		}
		drain(resp.Body)
		cancel()
		switch {
		case resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK:
			r.rec.playSent()
			return
		case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed:
			r.playsUnsupported.Store(true)
			return
		case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
			kind = "play_http_" + strconv.Itoa(resp.StatusCode)
			continue
		default:
			r.rec.fail(time.Now(), "play_http_"+strconv.Itoa(resp.StatusCode))
			return
		}
	}
	r.rec.fail(time.Now(), kind)
}

func (r *runner) logf(msg string, args ...any) {
	// The first 100 problems are logged in full; counts tell the rest.
	if r.logged.Add(1) <= 100 {
		r.log.Warn(msg, args...)
	}
}

func newPlayID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// netKind names a transport error for the errors-by-kind table.
func netKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case strings.Contains(err.Error(), "connection refused"):
		return "refused"
	case strings.Contains(err.Error(), "reset"), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "reset"
	}
	return "transport"
}

func drain(rc io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, rc, 256<<10)
	_ = rc.Close()
}

// sleepUntil waits for t or ctx; it reports whether t was reached.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Outcome is a response's cache outcome at the edge, from Cache-Status
// (httprange reads it, as tier writes it).
type Outcome = httprange.CacheOutcome

// Outcomes, from the edge's (the last) Cache-Status member.
const (
	OutcomeNone  = httprange.CacheNone  // no Cache-Status
	OutcomeHit   = httprange.CacheHit   // "; hit"
	OutcomeMiss  = httprange.CacheMiss  // "; fwd=miss" (or any other fwd)
	OutcomeStale = httprange.CacheStale // served stale
)
