package tier

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/musiccdn/cdn/cache"
	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/cluster"
	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/internal/wait"
	"github.com/musiccdn/cdn/tierauth"
)

// testCluster is a POP on loopback with real memberlist gossip (fast
// profile): edges and shields in front of a test origin.
type testCluster struct {
	*testPOP
	edges   []*Node
	shields []*Node
	key     string
}

func newTestCluster(t *testing.T, nEdges, nShields int, tweak func(*Config)) *testCluster {
	t.Helper()
	c := &testCluster{testPOP: &testPOP{}}
	c.start()
	c.origin = newTestOrigin(t, 200, c.clock)
	key := clusterKey(t)
	c.key = key
	var seeds []string
	var shieldURLs []string
	for i := range nShields + nEdges {
		cfg := DefaultShieldConfig()
		role := cluster.RoleShield
		cfg.Name = fmt.Sprintf("shield-%d", i+1)
		cfg.Upstreams = []string{c.origin.URL}
		if i >= nShields {
			cfg = DefaultEdgeConfig()
			role = cluster.RoleEdge
			cfg.Name = fmt.Sprintf("edge-%d", i-nShields+1)
			cfg.Keys = []Key{testKey}
			cfg.Upstreams = shieldURLs
			cfg.Prefetch.OriginURL = ""
		}
		cfg.TierKeys = []tierauth.KeyConfig{testTierKey}
		cfg.Cache.MemoryBytes = 128 << 20
		cfg.UpstreamTimeout = config.Duration(2 * time.Second)
		cfg.Cluster = cluster.DefaultConfig()
		cfg.Cluster.NodeName, cfg.Cluster.Role = cfg.Name, role
		cfg.Cluster.BindAddr, cfg.Cluster.BindPort = "127.0.0.1", 0
		cfg.Cluster.SecretKeys = []string{key}
		cfg.Cluster.Profile = cluster.ProfileFast
		if tweak != nil {
			tweak(&cfg)
		}
		n, err := NewNode(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), c.clock)
		if err != nil {
			t.Fatalf("NewNode(%s): %v", cfg.Name, err)
		}
		if len(seeds) > 0 {
			if err := n.Join(context.Background(), seeds); err != nil {
				t.Fatal(err)
			}
		}
		seeds = append(seeds, n.Members.Addr())
		serveNode(t, n)
		if role == cluster.RoleShield {
			c.shields = append(c.shields, n)
			shieldURLs = append(shieldURLs, n.URL())
		} else {
			c.edges = append(c.edges, n)
		}
	}
	for _, n := range append(append([]*Node{}, c.edges...), c.shields...) {
		c.waitView(t, n, nEdges, nShields)
	}
	c.edge = c.edges[0].Server
	c.keys, _ = c.edges[0].cfg.Keyring()
	c.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}, Timeout: 30 * time.Second}
	t.Cleanup(c.client.CloseIdleConnections)
	return c
}

// waitView waits, on membership's own notifications, until n sees the
// given numbers of live edges and shields.
func (c *testCluster) waitView(t *testing.T, n *Node, edges, shields int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := n.Members.WaitFor(ctx, func() bool {
		return len(n.Members.Members(cluster.RoleEdge)) == edges && len(n.Members.Members(cluster.RoleShield)) == shields
	})
	if err != nil {
		t.Fatalf("%s: view did not reach %d edges and %d shields: %v", n.cfg.Name, edges, shields, err)
	}
}

// urlAt is an edge URL for track at edge i.
func (c *testCluster) urlAt(i int, track string, kbps int) string {
	obj := fmt.Sprintf("%s/%d.ogg", track, kbps)
	return c.edges[i].URL() + "/a/" + obj + "?t=" + c.keys.Sign(obj, "SE", c.clock().Add(time.Hour))
}

// owner is the index of the edge owning track, by the first edge's view.
func (c *testCluster) owner(track string) int {
	v := c.edges[0].Members.View(cluster.RoleEdge)
	name := v.Nodes[v.Ring.Owner(xxhash.Sum64String(track))].Name
	for i, e := range c.edges {
		if e.cfg.Name == name {
			return i
		}
	}
	return -1
}

// TestClusterFetchesOnce: requests for random tracks and ranges spread
// over all edges reach the shields once per chunk, and the origin at most
// once per chunk.
//
// Hedging is off: a hedged fill goes to the shields beside the owner by
// design (counted in edge_peer_hedged_total), and under the race detector
// owners answer past any small budget. TestPeerHedgeFrozenOwner covers it.
func TestClusterFetchesOnce(t *testing.T) {
	// No handoff fills: the cluster has just formed, so every edge is
	// within HandoffWindow of a membership change, and a handoff that
	// finds a chunk at the edge that briefly owned it saves a shield
	// request: the count would depend on the timing of the formation.
	c := newTestCluster(t, 3, 2, func(cfg *Config) { cfg.PeerHedgeAfter = 0; cfg.NoHandoff = true })
	rng := rand.New(rand.NewPCG(5, 6))
	const cs = 256 << 10
	type chunkID struct {
		obj string
		idx int64
	}
	want := map[chunkID]bool{}
	type req struct {
		edge       int
		track      string
		kbps       int
		start, end int64
	}
	var reqs []req
	for range 150 {
		i := rng.IntN(20)
		kbps := []int{96, 160}[rng.IntN(2)]
		size := c.origin.cat.Size(i, kbps)
		start := rng.Int64N(size)
		end := min(size-1, start+rng.Int64N(400_000))
		reqs = append(reqs, req{rng.IntN(3), fmt.Sprintf("t%d", i), kbps, start, end})
		obj := fmt.Sprintf("t%d/%d", i, kbps)
		// No chunk 0 for the metadata: it comes with the first chunk a
		// request wants (cold seek in one round trip).
		for idx := start / cs; idx <= end/cs; idx++ {
			want[chunkID{obj, idx}] = true
		}
	}
	var wg sync.WaitGroup
	work := make(chan req)
	for range 6 {
		wg.Go(func() {
			for r := range work {
				resp, body := c.get(t, c.urlAt(r.edge, r.track, r.kbps), "Range", fmt.Sprintf("bytes=%d-%d", r.start, r.end))
				var i int
				fmt.Sscanf(r.track, "t%d", &i)
				if resp.StatusCode != 206 || !bytes.Equal(body, c.expect(i, r.kbps, r.start, r.end)) {
					t.Errorf("%s/%d %d-%d at edge %d: status %d or bytes differ", r.track, r.kbps, r.start, r.end, r.edge, resp.StatusCode)
				}
			}
		})
	}
	for _, r := range reqs {
		work <- r
	}
	close(work)
	wg.Wait()
	var toShields, failed, peerFallbacks int64
	for _, e := range c.edges {
		toShields += e.fetch.attempts.Load()
		failed += e.fetch.failures.Load()
		peerFallbacks += e.hotFetch.peerFailures.Load()
	}
	// A failed attempt (a timeout on a loaded machine) is retried at the
	// next shield: that is failover, not a hole in collapsing, so only
	// the attempts that succeeded must be one per chunk.
	if toShields-failed != int64(len(want)) || peerFallbacks != 0 {
		t.Errorf("edges sent %d chunk requests to the shields (%d failed) for %d distinct chunks (peer fallbacks %d): want one each", toShields, failed, len(want), peerFallbacks)
	}
	for k, n := range c.origin.Requests() {
		if n > 1 {
			t.Errorf("origin got %s %d times", k, n)
		}
	}
}

// TestClusterKillEdge: a crashed edge is dropped (the time is logged
// against the fast profile's bound, not asserted); its tracks move to the others, and a client retrying
// once sees no error.
func TestClusterKillEdge(t *testing.T) {
	c := newTestCluster(t, 3, 2, nil)
	victim := 2
	var tracks []string
	for i := 0; len(tracks) < 5; i++ {
		if tr := fmt.Sprintf("t%d", i); c.owner(tr) == victim {
			tracks = append(tracks, tr)
		}
	}
	for _, tr := range tracks {
		c.get(t, c.urlAt(0, tr, 64), "Range", "bytes=0-1000")
	}
	start := time.Now()
	c.edges[victim].Kill()
	bound := c.edges[0].cfg.Cluster.FailureDetectionBound(5)
	for _, i := range []int{0, 1} {
		// Real timers: a busy machine runs the probes late, so the
		// wait is generous and the time is logged against the bound.
		ctx, cancel := context.WithTimeout(context.Background(), 10*bound)
		err := c.edges[i].Members.WaitFor(ctx, func() bool { return len(c.edges[i].Members.Members(cluster.RoleEdge)) == 2 })
		cancel()
		if err != nil {
			t.Fatalf("edge %d still routes to the dead edge after %v (bound %v)", i, time.Since(start), bound)
		}
	}
	t.Logf("dead edge dropped by both others after %v (bound %v, within: %v)", time.Since(start), bound, time.Since(start) <= bound)
	for _, tr := range tracks {
		var i int
		fmt.Sscanf(tr, "t%d", &i)
		for attempt := 0; ; attempt++ {
			resp, body := c.getErr(c.urlAt(0, tr, 64), "Range", "bytes=500-300000")
			if resp != nil && resp.StatusCode == 206 && bytes.Equal(body, c.expect(i, 64, 500, 300000)) {
				break
			}
			if attempt == 1 {
				t.Fatalf("%s: error after a retry: %v", tr, resp)
			}
		}
	}
}

// TestClusterKillShield: edges fail over to the other shield with no
// client-visible error, even before membership notices.
func TestClusterKillShield(t *testing.T) {
	c := newTestCluster(t, 2, 2, nil)
	c.shields[0].Kill()
	for i := 0; i < 30; i++ {
		tr := fmt.Sprintf("t%d", 100+i)
		resp, body := c.get(t, c.urlAt(i%2, tr, 24), "Range", "bytes=0-70000")
		if resp.StatusCode != 206 || !bytes.Equal(body, c.expect(100+i, 24, 0, 70000)) {
			t.Fatalf("%s: status %d after a shield died", tr, resp.StatusCode)
		}
	}
}

// TestClusterNoLoop: a peer request for a track the receiver does not
// believe it owns (the sender's view differs) is served from upstream, not
// forwarded: no request goes on to another edge.
func TestClusterNoLoop(t *testing.T) {
	c := newTestCluster(t, 3, 1, nil)
	tr := ""
	for i := 0; tr == ""; i++ {
		if c.owner(fmt.Sprintf("t%d", i)) == 2 {
			tr = fmt.Sprintf("t%d", i)
		}
	}
	// Edge 0 is asked, as a peer, to fill a track edge 2 owns.
	path := peerPrefix + tr + "/96.ogg"
	req, _ := http.NewRequest("GET", c.edges[0].InternalURL()+path, nil)
	req.Header.Set("Range", "bytes=0-99")
	req.Header.Set(tierauth.Header, c.edges[1].hotFetch.auth.Load().Sign("GET", path, c.clock()))
	req.Header.Set(peerHopHeader, "1")
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var i int
	fmt.Sscanf(tr, "t%d", &i)
	if resp.StatusCode != 206 || !bytes.Equal(body, c.expect(i, 96, 0, 99)) {
		t.Fatalf("misrouted peer request: status %d", resp.StatusCode)
	}
	if c.edges[0].misroute.Load() != 1 {
		t.Errorf("misrouted count %d, want 1", c.edges[0].misroute.Load())
	}
	for j, e := range c.edges {
		if n := e.hotFetch.peerAttempts.Load(); n != 0 {
			t.Errorf("edge %d forwarded %d peer requests", j, n)
		}
	}
	// Without the tier credential the peer door is shut, token or not.
	req, _ = http.NewRequest("GET", c.edges[0].InternalURL()+path+"?t="+c.keys.Sign(tr+"/96.ogg", "SE", c.clock().Add(time.Hour)), nil)
	req.Header.Set(tierauth.Header, "123.abc")
	if resp, err := c.client.Do(req); err != nil || resp.StatusCode != 403 {
		t.Fatalf("forged peer auth: %v %v", resp, err)
	}
}

// TestClusterPrefetch: playing track X with hint Y makes the first chunk
// of Y a hit at Y's owner before Y is requested.
func TestClusterPrefetch(t *testing.T) {
	c := newTestCluster(t, 3, 1, nil)
	x, y := "t1", ""
	for i := 2; y == ""; i++ {
		if c.owner(fmt.Sprintf("t%d", i)) != 0 {
			y = fmt.Sprintf("t%d", i)
		}
	}
	resp, _ := c.get(t, c.urlAt(0, x, 160), "Range", "bytes=0-65535", catalog.HeaderNextTracks, y+",t%2F,"+x)
	if resp.StatusCode != 206 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	p := c.edges[0].prefetch
	wait.For(t, 10*time.Second, "the hinted track to be warmed", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.warmed[y+"/160.ogg"]
	})
	o := c.owner(y)
	name := []byte(y + "/160.ogg")
	ref := cache.Ref{Key: cache.ObjectKey(name), Name: name}
	owner := c.edges[o]
	m, st, err := owner.store.Meta(context.Background(), ref)
	if err != nil || st != cache.Hit || !owner.store.Cached(ref, m, 0) {
		t.Fatalf("first chunk of %s not cached at its owner edge %d: %v %v", y, o, st, err)
	}
	resp, _ = c.get(t, c.urlAt(o, y, 160), "Range", "bytes=0-65535")
	if cs := resp.Header.Get("Cache-Status"); !strings.HasSuffix(cs, "; hit") {
		t.Errorf("Cache-Status of the prefetched track at its owner: %q", cs)
	}
	if p.issued.Load() != 1 {
		t.Errorf("prefetches issued %d, want 1 (the invalid and self hints skipped)", p.issued.Load())
	}
}

// getErr is get without failing the test on a transport error.
func (p *testPOP) getErr(url string, hdr ...string) (*http.Response, []byte) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil
	}
	return resp, body
}

// TestClusterPeerPassiveHealth: an owner whose HTTP side is dead while its
// gossip still looks alive (a hung process) is routed around after a few
// failures, without waiting for memberlist, and clients see no error.
func TestClusterPeerPassiveHealth(t *testing.T) {
	c := newTestCluster(t, 3, 1, nil)
	victim := 2
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c.edges[victim].Server.Shutdown(ctx) // HTTP gone, membership alive
	var tracks []string
	for i := 0; len(tracks) < 12; i++ {
		if tr := fmt.Sprintf("t%d", i); c.owner(tr) == victim {
			tracks = append(tracks, tr)
		}
	}
	for _, tr := range tracks {
		var i int
		fmt.Sscanf(tr, "t%d", &i)
		resp, body := c.get(t, c.urlAt(0, tr, 64), "Range", "bytes=0-999")
		if resp.StatusCode != 206 || !bytes.Equal(body, c.expect(i, 64, 0, 999)) {
			t.Fatalf("%s: status %d", tr, resp.StatusCode)
		}
	}
	if got := c.edges[0].hotFetch.peerAttempts.Load(); got != failLimit {
		t.Errorf("edge 0 tried the dead owner %d times, want %d before routing around it", got, failLimit)
	}
	if len(c.edges[0].Members.Members(cluster.RoleEdge)) != 3 {
		t.Fatal("membership dropped the victim: the test did not isolate passive health")
	}
}
