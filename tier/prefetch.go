package tier

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/musiccdn/cdn/cache"
	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/tierauth"
)

// PrefetchConfig configures next-track prefetch at an edge.
type PrefetchConfig struct {
	// Enabled turns prefetch on. Default true on edges.
	Enabled bool `yaml:"enabled"`
	// Tracks is how many next tracks are warmed. Default 3.
	Tracks int `yaml:"tracks"`
	// Seconds of audio warmed at the start of each, at the tier being
	// played (rounded up to whole chunks). Default 10.
	Seconds int `yaml:"seconds"`
	// Workers bounds the prefetches in flight. Default 2.
	Workers int `yaml:"workers"`
	// Queue bounds the prefetches waiting; beyond it they are dropped, so
	// prefetch never delays or piles up behind player requests.
	// Default 64.
	Queue int `yaml:"queue"`
	// OriginURL is the base URL of the origin's internal listener, for
	// the next-track list when a player sends no X-Next-Tracks hint, and
	// for the rights of hinted tracks; both calls carry the tier
	// credential. Empty: hints are not checked against rights and are the
	// only source (a hinted track the country may not play is still
	// refused by its own token when requested).
	OriginURL string `yaml:"origin_url"`
	// Dedup is how long a prefetched (track, tier) is not prefetched
	// again. Default 5m.
	Dedup config.Duration `yaml:"dedup"`
}

// DefaultPrefetchConfig returns the defaults.
func DefaultPrefetchConfig() PrefetchConfig {
	return PrefetchConfig{Enabled: true, Tracks: 3, Seconds: 10, Workers: 2, Queue: 64, Dedup: config.Duration(5 * time.Minute)}
}

// Validate reports every invalid field.
func (c PrefetchConfig) Validate() error {
	var errs []error
	if c.Tracks < 0 || c.Tracks > 10 {
		errs = append(errs, config.Errorf("tracks", "must be from 0 to 10"))
	}
	if c.Seconds < 1 || c.Seconds > 120 {
		errs = append(errs, config.Errorf("seconds", "must be from 1 to 120"))
	}
	if c.Workers < 1 || c.Queue < 1 {
		errs = append(errs, config.Errorf("workers", "workers and queue must be positive"))
	}
	// The dedup window is what bounds the warms repeated starts of one
	// track cost.
	if c.Dedup <= 0 {
		errs = append(errs, config.Errorf("dedup", "must be positive"))
	}
	if c.OriginURL != "" {
		if u, err := url.Parse(c.OriginURL); err != nil || u.Host == "" {
			errs = append(errs, config.Errorf("origin_url", "%q is not a base URL", c.OriginURL))
		}
	}
	return errors.Join(errs...)
}

// prefetcher warms the first chunks of the tracks likely to follow the one
// a player starts, at their owning edges, so the next track starts from
// cache. It is low priority: a bounded queue and worker pool, duplicates
// and overflow dropped, nothing on the request path but a non-blocking
// send. It reaches its edge only through a prefetchNode.
type prefetcher struct {
	node   prefetchNode
	cfg    PrefetchConfig
	log    *slog.Logger
	queue  chan prefetchJob
	client *http.Client

	mu     sync.Mutex
	recent map[string]time.Time // "track/kbps" -> prefetched at
	warmed map[string]bool      // "track/kbps" prefetched and not yet asked for

	allowed expiring[bool]     // "track|country" -> the origin's rights answer
	next    expiring[[]string] // "track|country" -> the origin's next tracks

	issued, useful, dropped, failed atomic.Int64
	jobs                            atomic.Int64 // player starts handled (their hint or recs examined)

	stop chan struct{}
	wg   sync.WaitGroup
}

type prefetchJob struct {
	track, country string
	kbps           int
	hints          string
}

// expiring holds the origin's answers until they expire; past 100,000
// entries it is emptied whole (bounded memory, no eviction bookkeeping).
type expiring[V any] struct {
	mu sync.Mutex
	m  map[string]expiringValue[V]
}

type expiringValue[V any] struct {
	v   V
	exp time.Time
}

// get returns k's value if it has not expired at now.
func (e *expiring[V]) get(k string, now time.Time) (V, bool) {
	e.mu.Lock()
	c, ok := e.m[k]
	e.mu.Unlock()
	if !ok || !now.Before(c.exp) {
		var zero V
		return zero, false
	}
	return c.v, true
}

// put keeps v for k until exp.
func (e *expiring[V]) put(k string, v V, exp time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil || len(e.m) > 100_000 {
		e.m = map[string]expiringValue[V]{}
	}
	e.m[k] = expiringValue[V]{v: v, exp: exp}
}

// prefetchNode is what the prefetcher needs of its edge. Its methods
// may be called from several workers at once.
type prefetchNode interface {
	// chunkSize is the main store's chunk size in bytes.
	chunkSize() int64
	// owns reports whether this node owns the track of key
	// (catalog.Key): its warms go to its own store.
	owns(key uint64) bool
	// warmLocal loads name's metadata into this node's store and starts
	// fills of its chunks 1 to n-1 (chunk 0 comes with the metadata).
	warmLocal(ctx context.Context, name string, n int64) error
	// warmAtOwner fills the first n bytes of name at the owning edge of
	// key.
	warmAtOwner(ctx context.Context, key uint64, name string, n int64) error
	// signOrigin returns the tier credential of a request to the origin
	// ("" without tier keys).
	signOrigin(method, target string) string
	// now is the node's clock.
	now() time.Time
}

func newPrefetcher(node prefetchNode, cfg PrefetchConfig, log *slog.Logger) *prefetcher {
	p := &prefetcher{
		node: node, cfg: cfg, log: log,
		queue:  make(chan prefetchJob, cfg.Queue),
		client: &http.Client{Timeout: 2 * time.Second},
		recent: map[string]time.Time{},
		warmed: map[string]bool{},
		stop:   make(chan struct{}),
	}
	for range cfg.Workers {
		p.wg.Add(1)
		go p.work()
	}
	return p
}

func (p *prefetcher) close() {
	close(p.stop)
	p.wg.Wait()
}

// started is called when a player's request covers the first chunk of
// track at kbps. It must not block.
func (p *prefetcher) started(track []byte, kbps int, country [2]byte, hints []byte) {
	if len(hints) > catalog.MaxHintBytes {
		hints = hints[:catalog.MaxHintBytes]
	}
	job := prefetchJob{track: string(track), kbps: kbps, country: string(country[:]), hints: string(hints)}
	select {
	case p.queue <- job:
	default:
		p.dropped.Add(1)
	}
}

// requested notes a player's request for the first chunk of name: if it
// was prefetched, the prefetch was useful.
func (p *prefetcher) requested(name []byte) {
	p.mu.Lock()
	if p.warmed[string(name)] {
		delete(p.warmed, string(name))
		p.useful.Add(1)
	}
	p.mu.Unlock()
}

func (p *prefetcher) work() {
	defer p.wg.Done()
	for {
		select {
		case <-p.stop:
			return
		case job := <-p.queue:
			p.run(job)
			p.jobs.Add(1)
		}
	}
}

func (p *prefetcher) run(job prefetchJob) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, id := range p.nextTracks(ctx, job) {
		name := catalog.Name(id, job.kbps, catalog.Audio)
		if !p.claim(name) {
			continue
		}
		p.issued.Add(1)
		if err := p.warm(ctx, id, name, job.kbps); err != nil {
			p.failed.Add(1)
			p.log.Debug("prefetch failed", "object", name, "err", err)
			continue
		}
		p.mu.Lock()
		p.warmed[name] = true
		p.mu.Unlock()
	}
}

// nextTracks returns the tracks to warm: of the player's hint, the first
// Tracks ids, limited to valid ids the token's country may play; or else
// the origin's next-track list for the country. At most Tracks ids are
// ever examined, so at most Tracks rights look-ups go to the origin (a
// hint of 1,300 unknown ids once cost one look-up each: issue 10 row 2).
func (p *prefetcher) nextTracks(ctx context.Context, job prefetchJob) []string {
	if job.hints != "" {
		return p.hinted(ctx, job)
	}
	if p.cfg.OriginURL == "" {
		return nil
	}
	return p.recommended(ctx, job.track, job.country)
}

func (p *prefetcher) hinted(ctx context.Context, job prefetchJob) []string {
	out := make([]string, 0, p.cfg.Tracks)
	catalog.NextTracks(job.hints, job.track, p.cfg.Tracks, func(id string) bool {
		if p.cfg.OriginURL == "" || p.allowedIn(ctx, id, job.country) {
			out = append(out, id)
		}
		return true
	})
	return out
}

// allowedIn asks the origin (cached) whether country may play id: its
// rights check (GET /v1/rights/<id>?country=CC) is 204 only when rights
// allow it. This is off the request path; the edge never calls the origin
// to authorize a player's request.
func (p *prefetcher) allowedIn(ctx context.Context, id, country string) bool {
	k := id + "|" + country
	now := p.node.now()
	if v, ok := p.allowed.get(k, now); ok {
		return v
	}
	resp, err := p.get(ctx, "/v1/rights/"+url.PathEscape(id)+"?country="+url.QueryEscape(country))
	if err != nil {
		return false
	}
	resp.Body.Close()
	v := resp.StatusCode == http.StatusNoContent
	p.allowed.put(k, v, now.Add(10*time.Minute))
	return v
}

// get asks the origin's internal listener for target (path and query),
// with the tier credential.
func (p *prefetcher) get(ctx context.Context, target string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.cfg.OriginURL+target, nil)
	if err != nil {
		return nil, err
	}
	if cred := p.node.signOrigin(http.MethodGet, target); cred != "" {
		req.Header.Set(tierauth.Header, cred)
	}
	return p.client.Do(req)
}

func (p *prefetcher) recommended(ctx context.Context, track, country string) []string {
	k := track + "|" + country
	now := p.node.now()
	if ids, ok := p.next.get(k, now); ok {
		return ids
	}
	resp, err := p.get(ctx, "/v1/recs/next/"+url.PathEscape(track)+"?n="+strconv.Itoa(p.cfg.Tracks)+"&country="+url.QueryEscape(country))
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var body struct {
		Tracks []string `json:"tracks"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&body) != nil {
		return nil
	}
	var ids []string
	for _, id := range body.Tracks {
		if catalog.ValidID(id) && id != track && len(ids) < p.cfg.Tracks {
			ids = append(ids, id)
		}
	}
	p.next.put(k, ids, now.Add(time.Minute))
	return ids
}

// claim reports whether name was not prefetched within the dedup window,
// and marks it.
func (p *prefetcher) claim(name string) bool {
	now := p.node.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if t, ok := p.recent[name]; ok && now.Sub(t) < time.Duration(p.cfg.Dedup) {
		return false
	}
	if len(p.recent) > 100_000 {
		for k, t := range p.recent {
			if now.Sub(t) >= time.Duration(p.cfg.Dedup) {
				delete(p.recent, k)
			}
		}
	}
	p.recent[name] = now
	return true
}

// warm fills the first chunks of name at its owner: this node's own store
// if it owns the track, else the owner's, through the peer endpoint.
func (p *prefetcher) warm(ctx context.Context, id, name string, kbps int) error {
	cs := p.node.chunkSize()
	n := max(1, (int64(p.cfg.Seconds)*int64(kbps)*125+cs-1)/cs)
	key := catalog.Key(id)
	if p.node.owns(key) {
		return p.node.warmLocal(ctx, name, n)
	}
	return p.node.warmAtOwner(ctx, key, name, n*cs)
}

// edgeNode is an edge's prefetchNode: its main store, its peer picker
// (nil: it owns every track), its hot store's fetcher (which reaches the
// owners) and its tier keyring.
type edgeNode struct {
	store *cache.Store
	peers PeerPicker
	owner *fetcher
	auth  *atomic.Pointer[tierauth.Keyring]
	clock func() time.Time
}

var _ prefetchNode = edgeNode{}

// prefetchNode is s seen by its prefetcher.
func (s *Server) prefetchNode() edgeNode {
	return edgeNode{store: s.store, peers: s.route, owner: s.hotFetch, auth: s.tierAuth, clock: s.now}
}

func (e edgeNode) chunkSize() int64 { return e.store.ChunkSize() }

func (e edgeNode) owns(key uint64) bool { return e.peers == nil || e.peers.Self(key) }

func (e edgeNode) warmLocal(ctx context.Context, name string, n int64) error {
	ref := cache.Ref{Key: cache.ObjectKey([]byte(name)), Name: []byte(name)}
	m, _, err := e.store.Meta(ctx, ref)
	if err != nil {
		return err
	}
	cs := e.store.ChunkSize()
	for i := int64(1); i < n && i < m.Chunks(cs); i++ {
		e.store.Warm(ref, m, i)
	}
	return nil
}

func (e edgeNode) warmAtOwner(ctx context.Context, key uint64, name string, n int64) error {
	return e.owner.warmAtOwner(ctx, key, name, n)
}

func (e edgeNode) signOrigin(method, target string) string {
	if kr := e.auth.Load(); kr != nil {
		return kr.Sign(method, target, e.clock())
	}
	return ""
}

func (e edgeNode) now() time.Time { return e.clock() }
