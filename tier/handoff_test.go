package tier

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/musiccdn/cdn/tierauth"
)

// handoffRouting is a Routing whose handoff peer is fixed: this node owns
// everything and fills from shields, after asking peer.
type handoffRouting struct {
	peer    Peer
	shields []string
}

func (r handoffRouting) Owner(uint64) (Peer, bool, Load) { return Peer{}, true, Load{} }
func (r handoffRouting) Self(uint64) bool                { return true }
func (r handoffRouting) Shields(_ uint64, dst []string) []string {
	return append(dst, r.shields...)
}
func (r handoffRouting) Version() uint64             { return 1 }
func (r handoffRouting) Handoff(uint64) (Peer, bool) { return r.peer, true }

// TestHandoffFill: an owner's miss is answered by the handoff peer when
// it holds the bytes (no shield request), and goes to the shields when it
// does not; the peer, asked only-if-cached, fetches nothing. Mutations
// caught: the only-if-cached check removed from serveObject (the peer
// fills t8 from its shield), Fetch not asking the handoff peer (a shield
// request for t7), a 504 "not cached" counted against the peer's health.
func TestHandoffFill(t *testing.T) {
	c := newTestCluster(t, 2, 1, nil)
	peer := c.edges[c.owner("t7")]
	if resp, _ := c.get(t, c.urlAt(c.owner("t7"), "t7", 96), "Range", "bytes=0-1000"); resp.StatusCode != 206 {
		t.Fatalf("warm-up: %d", resp.StatusCode)
	}
	peer.Store().Wait()
	kr, err := tierauth.New([]tierauth.KeyConfig{testTierKey})
	if err != nil {
		t.Fatal(err)
	}
	auth := new(atomic.Pointer[tierauth.Keyring])
	auth.Store(kr)
	route := handoffRouting{peer: Peer{Name: peer.cfg.Name, URL: peer.InternalURL()}, shields: []string{c.shields[0].URL()}}
	pool := newUpstreamPool(poolConfig{Timeout: 5 * time.Second, Now: c.clock, Version: route.Version})
	f, err := newHandoffFetcher(pool, nil, route, auth)
	if err != nil {
		t.Fatal(err)
	}

	const cs = 256 << 10
	_, data, err := f.Fetch(context.Background(), "t7/96.ogg", 0, cs)
	if err != nil || !bytes.Equal(data, c.expect(7, 96, 0, cs-1)) {
		t.Fatalf("handoff fill of t7: %v", err)
	}
	if f.handoffHits.Load() != 1 || f.attempts.Load() != 0 {
		t.Fatalf("t7: handoff hits %d, shield attempts %d: want 1 and 0", f.handoffHits.Load(), f.attempts.Load())
	}
	fills := peer.Store().Stats.Fills.Load()
	_, data, err = f.Fetch(context.Background(), "t8/96.ogg", 0, cs)
	if err != nil || !bytes.Equal(data, c.expect(8, 96, 0, cs-1)) {
		t.Fatalf("fill of t8: %v", err)
	}
	if f.handoffs.Load() != 2 || f.handoffHits.Load() != 1 || f.attempts.Load() != 1 {
		t.Errorf("t8: handoffs %d, hits %d, shield attempts %d: want 2, 1, 1", f.handoffs.Load(), f.handoffHits.Load(), f.attempts.Load())
	}
	if got := peer.Store().Stats.Fills.Load(); got != fills {
		t.Errorf("the handoff peer filled %d chunks for an only-if-cached request", got-fills)
	}
	up, _ := pool.peer(peer.InternalURL())
	if up.fails.Load() != 0 {
		t.Error("a not-cached answer counted against the peer's health")
	}
}
