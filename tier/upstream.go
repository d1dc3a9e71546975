package tier

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// upstream is one node a fetcher fills from, by its base URL: a shield,
// the origin, an http route's upstream, or another edge's internal
// listener (a peer). It carries the one HTTP client to it and its passive
// health. Upstreams are made by an upstreamPool and shared by every
// fetcher of that pool, so what one fill learns about an upstream's
// health the next fill of any store uses.
type upstream struct {
	base   string // e.g. "http://127.0.0.1:8081"
	scheme string // of base, for requests forwarded as they came (http routes)
	host   string
	hc     *fasthttp.HostClient
	pool   *upstreamPool // its clock and the membership version
	// peer marks another edge of the POP: its down mark holds only
	// under the membership it was set in (see markDown).
	peer bool

	inflight atomic.Int32 // requests sent and not yet answered
	fails    atomic.Int32 // failures in a row
	// downUntil is when passive health stops skipping the upstream
	// (unix nanoseconds; 0: not marked).
	downUntil atomic.Int64
	// downView is the edges' membership (PeerPicker.Version) when a peer
	// was marked down: a peer edge that rejoins changes it, which clears
	// the mark at once (a restarted edge is asked again as soon as it is
	// back, not downFor later).
	downView atomic.Uint64
}

// Passive health: an upstream that fails failLimit times in a row (or,
// an owning edge, is that many times slower than a hedge) is skipped for
// downFor, unless every upstream is.
const (
	failLimit = 3
	downFor   = 10 * time.Second
)

// Available reports whether up may be sent a request now: healthy and
// not full. Selectors put the available upstreams first.
func (up *upstream) Available() bool { return up.Healthy() && !up.Full() }

// Healthy reports whether passive health has not marked up down (a peer
// edge: under the current membership).
func (up *upstream) Healthy() bool {
	if up.downUntil.Load() <= up.pool.now().UnixNano() {
		return true
	}
	return up.peer && up.downView.Load() != up.pool.version()
}

// Full reports whether up has as many requests in flight as its client
// has connections: one more would fail at once (fasthttp's
// ErrNoFreeConns) and count against its health for no fault of its own.
func (up *upstream) Full() bool { return int(up.inflight.Load()) >= up.hc.MaxConns }

// succeeded records an answer from up: it clears its failures and any
// down mark.
func (up *upstream) succeeded() {
	if up.fails.Load() != 0 {
		up.fails.Store(0)
		up.downUntil.Store(0)
	}
}

// failed records a failure of up's own; the failLimit-th in a row marks
// it down. A fill that was only slow (the late owner of a hedged fill)
// counts here too: like a failure for passive health, without being one.
func (up *upstream) failed() {
	if up.fails.Add(1) >= failLimit {
		up.markDown()
	}
}

// markDown makes passive health skip up for downFor (a peer edge: under
// the current membership only).
func (up *upstream) markDown() {
	up.downView.Store(up.pool.version())
	up.downUntil.Store(up.pool.now().Add(downFor).UnixNano())
}

// upstreamPool holds a node's upstreams by base URL, each created once
// with its client, and shared by the fetchers that fill with the same
// client settings (an edge's main and hot stores share one pool; each
// http route has its own, whose clients stream).
type upstreamPool struct {
	cfg poolConfig

	mu  sync.Mutex
	ups map[string]*upstream
}

// poolConfig is how a pool's clients talk to their upstreams.
type poolConfig struct {
	// Timeout bounds each attempt (Config.UpstreamTimeout).
	Timeout time.Duration
	// TLS is for https upstreams; nil: the system's roots.
	TLS *tls.Config
	// Now is the clock of passive health and of the tier credential.
	Now func() time.Time
	// Version is the edges' membership (PeerPicker.Version); nil: 0, a
	// node with no peers.
	Version func() uint64
	// Stream makes the clients stream response bodies and bound response
	// headers to MaxHeader bytes (an http route's pool).
	Stream    bool
	MaxHeader int
}

// maxConns is each upstream client's connection limit, and so the
// in-flight requests beyond which the upstream is full.
const maxConns = 512

func newUpstreamPool(cfg poolConfig) *upstreamPool {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &upstreamPool{cfg: cfg, ups: map[string]*upstream{}}
}

func (p *upstreamPool) now() time.Time { return p.cfg.Now() }

func (p *upstreamPool) version() uint64 {
	if p.cfg.Version == nil {
		return 0
	}
	return p.cfg.Version()
}

// get returns the upstream at base, creating it on first use.
func (p *upstreamPool) get(base string) (*upstream, error) { return p.upstream(base, false) }

// peer returns the upstream of another edge of the POP at base (its
// internal listener).
func (p *upstreamPool) peer(base string) (*upstream, error) { return p.upstream(base, true) }

func (p *upstreamPool) upstream(base string, peer bool) (*upstream, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if up := p.ups[base]; up != nil {
		return up, nil
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("upstream %q: not a base URL", base)
	}
	up := &upstream{
		base:   base,
		scheme: u.Scheme,
		host:   u.Host,
		pool:   p,
		peer:   peer,
		hc: &fasthttp.HostClient{
			Addr:                u.Host,
			IsTLS:               u.Scheme == "https",
			TLSConfig:           p.cfg.TLS,
			MaxConns:            maxConns,
			ReadTimeout:         p.cfg.Timeout,
			WriteTimeout:        p.cfg.Timeout,
			MaxIdleConnDuration: 30 * time.Second,
			MaxResponseBodySize: 64 << 20,
		},
	}
	if p.cfg.Stream {
		up.hc.StreamResponseBody = true
		up.hc.MaxResponseBodySize = 0
		up.hc.ReadBufferSize = p.cfg.MaxHeader
		up.hc.DisablePathNormalizing = true
		up.hc.NoDefaultUserAgentHeader = true
		// One retry, and only for a kept-alive connection the upstream
		// had closed: a bad response (an oversized header) is an
		// answer, and failover to the next upstream is the caller's.
		up.hc.MaxIdemponentCallAttempts = 2
		up.hc.RetryIfErr = func(_ *fasthttp.Request, _ int, err error) (bool, bool) {
			return false, errors.Is(err, io.EOF) || errors.Is(err, fasthttp.ErrConnectionClosed)
		}
	}
	p.ups[base] = up
	return up, nil
}
