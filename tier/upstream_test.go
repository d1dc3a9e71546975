package tier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/musiccdn/cdn/cache"
	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/tierauth"
)

// testPool is a pool on a clock and a membership version the test moves.
func testPool(t *testing.T) (*upstreamPool, *time.Time, *atomic.Uint64) {
	t.Helper()
	now := time.Unix(1_000_000, 0)
	view := new(atomic.Uint64)
	view.Store(1)
	p := newUpstreamPool(poolConfig{Timeout: time.Second, Now: func() time.Time { return now }, Version: view.Load})
	return p, &now, view
}

func mustGet(t *testing.T, p *upstreamPool, base string) *upstream {
	t.Helper()
	up, err := p.get(base)
	if err != nil {
		t.Fatal(err)
	}
	return up
}

// TestUpstreamAvailable: Available is healthy and not full. Catches:
// Available ignoring the down mark or the in-flight count, a mark that
// does not expire after downFor, a peer's mark not cleared by a new
// membership (or a shield's cleared by one), succeeded not clearing it,
// fewer or more than failLimit failures to mark an upstream down.
func TestUpstreamAvailable(t *testing.T) {
	p, now, view := testPool(t)
	up := mustGet(t, p, "http://127.0.0.1:1")
	if again := mustGet(t, p, "http://127.0.0.1:1"); again != up {
		t.Fatal("the pool made a second upstream for one base URL")
	}
	if _, err := p.get("no-scheme"); err == nil {
		t.Error("get of a base URL without a host: no error")
	}
	if !up.Available() {
		t.Fatal("a new upstream is not available")
	}

	// Full: as many in flight as its client has connections.
	up.inflight.Store(maxConns - 1)
	if !up.Available() {
		t.Errorf("%d in flight of %d: not available", maxConns-1, maxConns)
	}
	up.inflight.Store(maxConns)
	if up.Available() || !up.Full() || !up.Healthy() {
		t.Errorf("%d in flight: Available %v Full %v Healthy %v, want false true true", maxConns, up.Available(), up.Full(), up.Healthy())
	}
	up.inflight.Store(0)

	// Down: failLimit failures in a row, for downFor.
	for i := 1; i < failLimit; i++ {
		up.failed()
	}
	if !up.Available() {
		t.Fatalf("%d failures: down, want failLimit (%d)", failLimit-1, failLimit)
	}
	up.failed()
	if up.Available() || up.Healthy() {
		t.Fatalf("%d failures in a row: still available", failLimit)
	}
	view.Store(2) // a membership change does not clear a shield's mark
	if up.Healthy() {
		t.Error("a shield's down mark cleared by a change of the edges' membership")
	}
	*now = now.Add(downFor)
	if !up.Available() {
		t.Error("still down after downFor")
	}
	*now = now.Add(-downFor)
	up.succeeded()
	if !up.Available() || up.fails.Load() != 0 {
		t.Error("an answer did not clear the down mark")
	}

	// A peer edge's mark holds under the membership it was set in only.
	peer, err := p.peer("http://127.0.0.1:2")
	if err != nil {
		t.Fatal(err)
	}
	for range failLimit {
		peer.failed()
	}
	if peer.Healthy() {
		t.Fatal("peer not down after failLimit failures")
	}
	view.Store(3)
	if !peer.Available() {
		t.Error("a peer's down mark survived a change of membership")
	}
}

// fixedShields is a ShieldLister naming the same shields for every key.
type fixedShields []string

func (s fixedShields) Shields(_ uint64, dst []string) []string { return append(dst, s...) }

func bases(ups []*upstream) []string {
	var out []string
	for _, up := range ups {
		out = append(out, up.base)
	}
	return out
}

// TestShieldSelector: the configured list from the key's hash, or the
// live shields when membership names any; available upstreams first,
// the others last (still tried), the unhealthy counted as skipped.
// Catches: a static order not starting at key mod n, live shields
// ignored (or static ones used beside them), down or full upstreams
// dropped or left in place, full ones counted as skipped.
func TestShieldSelector(t *testing.T) {
	p, _, _ := testPool(t)
	static := []string{"http://s0:1", "http://s1:1", "http://s2:1"}
	var skipped atomic.Int64
	sel, err := newShieldSelector(p, static, nil, &skipped)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newShieldSelector(p, []string{"::"}, nil, nil); err == nil {
		t.Error("a static base URL that does not parse: no error")
	}
	for key := uint64(0); key < 6; key++ {
		got := bases(sel.Select(p, key, nil))
		var want []string
		for i := range static {
			want = append(want, static[(int(key)+i)%3])
		}
		if !slices.Equal(got, want) {
			t.Errorf("Select(key %d) = %v, want %v", key, got, want)
		}
	}
	// s1 down, s2 full: s0 first, then the unavailable ones in order.
	for range failLimit {
		mustGet(t, p, "http://s1:1").failed()
	}
	mustGet(t, p, "http://s2:1").inflight.Store(maxConns)
	if got, want := bases(sel.Select(p, 1, nil)), []string{"http://s0:1", "http://s1:1", "http://s2:1"}; !slices.Equal(got, want) {
		t.Errorf("with s1 down and s2 full: Select(key 1) = %v, want %v", got, want)
	}
	if skipped.Load() != 1 {
		t.Errorf("skipped %d, want 1 (s1; a full upstream is not unhealthy)", skipped.Load())
	}

	live := newSelectorWith(t, p, static, fixedShields{"http://l0:1", "http://l1:1"})
	if got, want := bases(live.Select(p, 2, nil)), []string{"http://l0:1", "http://l1:1"}; !slices.Equal(got, want) {
		t.Errorf("with live shields: %v, want %v", got, want)
	}
	none := newSelectorWith(t, p, static, fixedShields{})
	if got := bases(none.Select(p, 0, nil)); len(got) != 3 || got[0] != "http://s0:1" {
		t.Errorf("live naming none: %v, want the static list", got)
	}
}

func newSelectorWith(t *testing.T, p *upstreamPool, static []string, live ShieldLister) *shieldSelector {
	t.Helper()
	s, err := newShieldSelector(p, static, live, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fakePeers is a PeerPicker whose owner is fixed, counting loads.
type fakePeers struct {
	owner Peer
	self  bool
	load  atomic.Int64
}

func (f *fakePeers) Owner(uint64) (Peer, bool, Load) {
	if f.self {
		return Peer{}, true, Load{}
	}
	f.load.Add(1)
	return f.owner, false, Load{&f.load}
}
func (f *fakePeers) Self(uint64) bool            { return f.self }
func (f *fakePeers) Version() uint64             { return 1 }
func (f *fakePeers) Handoff(uint64) (Peer, bool) { return Peer{}, false }

// TestOwnerSelector: the owner when it is available, with its load held
// until Done; nothing (and the load ended) when this node owns the key
// or the owner is down or full. Catches: a load leaked on any path, a
// down owner selected, a full one selected, a full one counted as
// skipped by passive health.
func TestOwnerSelector(t *testing.T) {
	p, _, _ := testPool(t)
	peers := &fakePeers{owner: Peer{Name: "e1", URL: "http://e1:1"}}
	var skipped atomic.Int64
	sel := ownerSelector{peers: peers, skipped: &skipped}

	up, load := sel.Select(p, 7)
	if up == nil || up.base != "http://e1:1" || !up.peer {
		t.Fatalf("Select = %v, want the owner e1 as a peer", up)
	}
	if peers.load.Load() != 1 {
		t.Errorf("load %d while the fill runs, want 1", peers.load.Load())
	}
	load.Done()
	if peers.load.Load() != 0 {
		t.Errorf("load %d after Done, want 0", peers.load.Load())
	}

	up.inflight.Store(maxConns)
	if got, _ := sel.Select(p, 7); got != nil || peers.load.Load() != 0 || skipped.Load() != 0 {
		t.Errorf("full owner: selected %v, load %d, skipped %d; want nil, 0, 0", got, peers.load.Load(), skipped.Load())
	}
	up.inflight.Store(0)
	for range failLimit {
		up.failed()
	}
	if got, _ := sel.Select(p, 7); got != nil || peers.load.Load() != 0 || skipped.Load() != 1 {
		t.Errorf("down owner: selected %v, load %d, skipped %d; want nil, 0, 1", got, peers.load.Load(), skipped.Load())
	}
	peers.self = true
	if got, _ := sel.Select(p, 7); got != nil {
		t.Errorf("this node owns the key: selected %v", got)
	}
}

// TestFailoverBlame: the one failover loop stops at the first answer (a
// 404 is one), blames an upstream for its own failures only, and gives
// the last error when none answers. Catches: a passed-on 502 counted
// against the upstream that passed it on, a 404 tried elsewhere, own
// failures not counted, no failover after a failure, errNoUpstream lost
// for an empty list.
func TestFailoverBlame(t *testing.T) {
	p, _, _ := testPool(t)
	f, err := newFetcher(p, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := mustGet(t, p, "http://a:1"), mustGet(t, p, "http://b:1"), mustGet(t, p, "http://c:1")
	own := errors.New("http://a:1: status 500")
	passed := passedOnError{fmt.Errorf("http://b:1: status 502")}
	answers := map[*upstream]error{a: own, b: passed, c: cache.ErrNotFound}
	var tried []*upstream
	try := func(up *upstream) error {
		tried = append(tried, up)
		return answers[up]
	}
	err = f.failover(context.Background(), []*upstream{a, b, c, a}, try)
	if !errors.Is(err, cache.ErrNotFound) || !slices.Equal(tried, []*upstream{a, b, c}) {
		t.Fatalf("failover = %v after %v, want ErrNotFound after a, b, c", err, bases(tried))
	}
	if a.fails.Load() != 1 || b.fails.Load() != 0 || c.fails.Load() != 0 {
		t.Errorf("fails a=%d b=%d c=%d, want 1 0 0 (b passed a 502 on)", a.fails.Load(), b.fails.Load(), c.fails.Load())
	}
	if f.failures.Load() != 1 || f.passedOn.Load() != 1 || f.attempts.Load() != 3 {
		t.Errorf("failures %d, passed on %d, attempts %d; want 1 1 3", f.failures.Load(), f.passedOn.Load(), f.attempts.Load())
	}
	tried = nil
	if err := f.failover(context.Background(), []*upstream{a, b}, try); !errors.Is(err, passed.error) {
		t.Errorf("none answering: %v, want the last error", err)
	}
	if err := f.failover(context.Background(), nil, try); !errors.Is(err, errNoUpstream) {
		t.Errorf("no upstream: %v", err)
	}
	// An answer clears the failures: a's two are forgotten.
	answers[a] = nil
	if err := f.failover(context.Background(), []*upstream{a}, try); err != nil || a.fails.Load() != 0 {
		t.Errorf("answer: err %v, a's fails %d, want nil and 0", err, a.fails.Load())
	}
}

// fakeNode is a prefetchNode that records what it is asked to warm.
type fakeNode struct {
	owned string // the track this node owns
	mu    sync.Mutex
	local []string
	owner []string
	fail  bool
}

func (n *fakeNode) chunkSize() int64              { return 64 << 10 }
func (n *fakeNode) owns(key uint64) bool          { return key == catalog.Key(n.owned) }
func (n *fakeNode) signOrigin(_, _ string) string { return "" }
func (n *fakeNode) now() time.Time                { return time.Unix(1_000_000, 0) }
func (n *fakeNode) warmLocal(_ context.Context, name string, chunks int64) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.local = append(n.local, fmt.Sprintf("%s x%d", name, chunks))
	return nil
}
func (n *fakeNode) warmAtOwner(_ context.Context, key uint64, name string, size int64) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if key != catalog.KeyOfName(name) {
		return fmt.Errorf("key %x is not %s's", key, name)
	}
	n.owner = append(n.owner, fmt.Sprintf("%s %d", name, size))
	if n.fail {
		return errors.New("owner unavailable")
	}
	return nil
}

// TestPrefetcherWarms: through its prefetchNode alone, the prefetcher
// warms the hinted next tracks (of the first Tracks ids of the hint, the
// current one left out), owned ones locally and the others at their owner, Seconds of
// audio rounded up to whole chunks, each once per Dedup. Catches: the
// owner check inverted, a warm size not in whole chunks, the current
// track warmed, more than Tracks warmed, dedup lost, failures not counted.
func TestPrefetcherWarms(t *testing.T) {
	node := &fakeNode{owned: "t2"}
	cfg := DefaultPrefetchConfig()
	cfg.Tracks, cfg.Seconds = 3, 10
	p := newPrefetcher(node, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer p.close()
	job := prefetchJob{track: "t1", kbps: 96, country: "SE", hints: "t1,t2,t3,t4,t5"}
	p.run(job)
	// 10 s at 96 kbps is 120,000 bytes: two 64 KiB chunks.
	if want := []string{"t2/96.ogg x2"}; !slices.Equal(node.local, want) {
		t.Errorf("warmed locally %v, want %v", node.local, want)
	}
	if want := []string{"t3/96.ogg 131072"}; !slices.Equal(node.owner, want) {
		t.Errorf("warmed at owners %v, want %v", node.owner, want)
	}
	if p.issued.Load() != 2 || p.failed.Load() != 0 {
		t.Errorf("issued %d, failed %d; want 2, 0", p.issued.Load(), p.failed.Load())
	}
	p.run(job)
	if len(node.local)+len(node.owner) != 2 {
		t.Errorf("a second start within dedup warmed again: %v %v", node.local, node.owner)
	}
	node.fail = true
	p.run(prefetchJob{track: "t1", kbps: 160, country: "SE", hints: "t3"})
	if p.failed.Load() != 1 {
		t.Errorf("failed %d after the owner failed, want 1", p.failed.Load())
	}
	p.requested([]byte("t3/96.ogg"))
	if p.useful.Load() != 1 {
		t.Errorf("useful %d after a player asked for a warmed track, want 1", p.useful.Load())
	}
}

// handoffPeers is a PeerPicker whose handoff peer is fixed, under a
// membership version the test moves.
type handoffPeers struct {
	fakePeers
	peer    Peer
	version atomic.Uint64
}

func (h *handoffPeers) Version() uint64                         { return h.version.Load() }
func (h *handoffPeers) Handoff(uint64) (Peer, bool)             { return h.peer, true }
func (h *handoffPeers) Shields(_ uint64, dst []string) []string { return dst }

// TestHandoffProbe: over real HTTP, a handoff peer that holds nothing is
// asked handoffProbe times under one membership, then no more until the
// membership changes; its "not cached" answers never count against its
// health, and every fill is still served by the shield. Catches: the
// switch-off removed (65 handoffs), not reset by a new membership, a
// "not cached" blamed on the peer.
func TestHandoffProbe(t *testing.T) {
	var peerAsked, shieldAsked atomic.Int64
	peerSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peerAsked.Add(1)
		if r.Header.Get(onlyIfCachedHeader) == "" {
			t.Errorf("handoff request without %s", onlyIfCachedHeader)
		}
		w.Header().Set(onlyIfCachedHeader, "miss")
		w.WriteHeader(http.StatusGatewayTimeout)
	}))
	defer peerSrv.Close()
	shieldSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		shieldAsked.Add(1)
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Content-Range", "bytes 0-99/1000")
		w.WriteHeader(http.StatusPartialContent)
		w.Write(make([]byte, 100))
	}))
	defer shieldSrv.Close()

	peers := &handoffPeers{peer: Peer{Name: "e0", URL: peerSrv.URL}}
	peers.version.Store(1)
	pool := newUpstreamPool(poolConfig{Timeout: 10 * time.Second, Version: peers.Version})
	f, err := newHandoffFetcher(pool, []string{shieldSrv.URL}, peers, new(atomic.Pointer[tierauth.Keyring]))
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(n int) {
		t.Helper()
		for i := range n {
			if _, data, err := f.Fetch(context.Background(), fmt.Sprintf("t%d/96.ogg", i), 0, 100); err != nil || len(data) != 100 {
				t.Fatalf("fill %d: %d bytes, %v", i, len(data), err)
			}
		}
	}
	fetch(handoffProbe + 10)
	if peerAsked.Load() != handoffProbe || f.handoffs.Load() != handoffProbe || f.handoffHits.Load() != 0 {
		t.Errorf("peer asked %d times (handoffs %d, hits %d), want %d: no hits switch handoffs off",
			peerAsked.Load(), f.handoffs.Load(), f.handoffHits.Load(), handoffProbe)
	}
	if shieldAsked.Load() != handoffProbe+10 {
		t.Errorf("shield asked %d times, want %d", shieldAsked.Load(), handoffProbe+10)
	}
	up, _ := pool.peer(peerSrv.URL)
	if up.fails.Load() != 0 || !up.Available() {
		t.Errorf("not-cached answers counted against the peer: %d fails", up.fails.Load())
	}
	peers.version.Store(2)
	fetch(1)
	if peerAsked.Load() != handoffProbe+1 {
		t.Errorf("after a membership change the peer was asked %d times in all, want %d", peerAsked.Load(), handoffProbe+1)
	}
}
