package player

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/origin/api"

	"github.com/musiccdn/cdn/player/abr"
	"github.com/musiccdn/cdn/seektable"
)

// Manifest is the origin's playback manifest of a track
// (GET /v1/manifest/<id>?country=CC).
type Manifest = api.Manifest

// ManifestTier is one tier of a manifest; URL and SeekURL are paths
// relative to any edge base URL.
type ManifestTier = api.Tier

// ErrDenied is returned when the origin refuses a track (403).
var ErrDenied = errors.New("player: not licensed in this country")

// ErrUnauthorized is returned when the origin refuses the player's bearer
// token (401): none configured, or expired.
var ErrUnauthorized = errors.New("player: no valid session (bearer token)")

// errForbidden is an edge's 403: the signed URL expired or is bad.
var errForbidden = errors.New("edge refused the URL (403)")

// ErrUnknownTrack is returned for a track the origin does not know (404).
var ErrUnknownTrack = errors.New("player: unknown track")

// client talks HTTP to the origin and the edges and feeds the throughput
// estimator. It is safe for concurrent use.
type client struct {
	hc      *http.Client
	origin  string
	edges   []string
	country string
	token   string // bearer token; "" sends none

	mu  sync.Mutex
	est *abr.Estimator

	requests atomic.Int64 // edge requests made (ranges, seek tables)
}

func (c *client) manifest(ctx context.Context, id string) (*Manifest, error) {
	// No ?country=: the origin takes the country from the token.
	u := strings.TrimRight(c.origin, "/") + "/v1/manifest/" + url.PathEscape(id)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	c.authorize(req)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("player: manifest %s: %w", id, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized:
		return nil, fmt.Errorf("%w: manifest %s", ErrUnauthorized, id)
	case http.StatusForbidden:
		return nil, fmt.Errorf("%w: %s in %s", ErrDenied, id, c.country)
	case http.StatusNotFound:
		return nil, fmt.Errorf("%w: %s", ErrUnknownTrack, id)
	default:
		return nil, fmt.Errorf("player: manifest %s: %s", id, resp.Status)
	}
	var m Manifest
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&m); err != nil {
		return nil, fmt.Errorf("player: manifest %s: %w", id, err)
	}
	if len(m.Tiers) == 0 {
		return nil, fmt.Errorf("player: manifest %s: no tiers", id)
	}
	return &m, nil
}

// authorize adds the bearer token to a request to the origin.
func (c *client) authorize(req *http.Request) {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
}

// edgeFor orders the edges for a track: a stable first choice per track
// (so one edge's cache serves it), the others as fallbacks.
func (c *client) edgeFor(id string) []string {
	if len(c.edges) == 0 {
		return nil
	}
	h := fnv.New32a()
	h.Write([]byte(id))
	i := int(h.Sum32() % uint32(len(c.edges)))
	return append(append([]string(nil), c.edges[i:]...), c.edges[:i]...)
}

// get fetches path from an edge with an optional range [from, to) (to < 0
// for the end of file), sending X-Next-Tracks. The body is wrapped to count
// bytes into fetched and to sample throughput.
func (c *client) get(ctx context.Context, id, path string, from, to int64, next string, fetched *atomic.Int64) (io.ReadCloser, error) {
	var lastErr error
	for _, base := range c.edgeFor(id) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+path, nil)
		if err != nil {
			return nil, err
		}
		if from > 0 || to >= 0 {
			if to >= 0 {
				req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", from, to-1))
			} else {
				req.Header.Set("Range", fmt.Sprintf("bytes=%d-", from))
			}
		}
		if next != "" {
			req.Header.Set(catalog.HeaderNextTracks, next)
		}
		c.requests.Add(1)
		start := time.Now()
		resp, err := c.hc.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			lastErr = err
			continue // try the next edge
		}
		wantPartial := from > 0 || to >= 0
		if resp.StatusCode == http.StatusOK && !wantPartial || resp.StatusCode == http.StatusPartialContent {
			return &meter{rc: resp.Body, c: c, fetched: fetched, wait: time.Since(start)}, nil
		}
		resp.Body.Close()
		lastErr = fmt.Errorf("GET %s: %s", path, resp.Status)
		if resp.StatusCode == http.StatusForbidden {
			lastErr = fmt.Errorf("GET %s: %w", path, errForbidden)
		}
		if resp.StatusCode < 500 {
			break // the same on every edge
		}
	}
	if lastErr == nil {
		lastErr = errors.New("no edges")
	}
	return nil, fmt.Errorf("player: %w", lastErr)
}

func (c *client) getAll(ctx context.Context, id, path string, next string, fetched *atomic.Int64) ([]byte, error) {
	rc, err := c.get(ctx, id, path, 0, -1, next, fetched)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("player: %s: %w", path, err)
	}
	return b, nil
}

func (c *client) seekTable(ctx context.Context, id, path, next string, fetched *atomic.Int64) (*seektable.Table, error) {
	b, err := c.getAll(ctx, id, path, next, fetched)
	if err != nil {
		return nil, err
	}
	return seektable.Decode(b)
}

func (c *client) sample(n int64, d time.Duration) {
	c.mu.Lock()
	c.est.Sample(n, d)
	c.mu.Unlock()
}

func (c *client) choose(buffer time.Duration) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.est.Choose(buffer)
}

// meter counts a body's bytes and measures throughput from the time spent
// waiting for them (time spent not reading, while the player's buffer is
// full, is not counted, so backpressure does not look like a slow link).
type meter struct {
	rc      io.ReadCloser
	c       *client
	fetched *atomic.Int64
	n       int64
	wait    time.Duration
	closed  bool
}

const sampleEvery = 64 << 10

func (m *meter) Read(p []byte) (int, error) {
	start := time.Now()
	n, err := m.rc.Read(p)
	m.wait += time.Since(start)
	m.n += int64(n)
	if m.fetched != nil {
		m.fetched.Add(int64(n))
	}
	if m.n >= sampleEvery || (err != nil && m.n > 0) {
		m.c.sample(m.n, m.wait)
		m.n, m.wait = 0, 0
	}
	return n, err
}

func (m *meter) Close() error {
	if m.closed {
		return nil
	}
	m.closed = true
	if m.n > 0 {
		m.c.sample(m.n, m.wait)
	}
	return m.rc.Close()
}
