package tier

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/musiccdn/cdn/cluster"
	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/tierauth"
)

// frozenListener accepts connections and never reads from or answers
// them: a SIGSTOPped process as its peers see it (the kernel still
// completes the handshake).
func frozenListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// TestPeerHedgeFrozenOwner: an owner that accepts and never answers costs
// another edge's listener the hedge budget, not the upstream timeout: the
// fill goes to the shields too, and the client gets the right bytes.
// After failLimit such fills in a row the owner is skipped outright.
// Catches: no hedge (each request waits upstream_timeout, 60 s, far above
// the bound), a hedge that waits for the owner's answer anyway, hedged
// fills not counted, a lost hedge not counted against the owner (every
// fill keeps paying the budget).
func TestPeerHedgeFrozenOwner(t *testing.T) {
	frozen := frozenListener(t)
	const upstreamTimeout = 60 * time.Second
	c := newTestCluster(t, 2, 1, func(cfg *Config) {
		if cfg.Role == Edge {
			cfg.UpstreamTimeout = config.Duration(upstreamTimeout)
			cfg.PeerHedgeAfter = config.Duration(20 * time.Millisecond)
		}
		if cfg.Name == "edge-2" {
			cfg.Cluster.HTTPAddr = frozen // gossip alive, HTTP hung
		}
	})
	var tracks []int
	for i := 0; len(tracks) < 2*failLimit; i++ {
		if c.owner(fmt.Sprintf("t%d", i)) == 1 {
			tracks = append(tracks, i)
		}
	}
	for _, i := range tracks {
		start := time.Now()
		resp, body := c.get(t, c.urlAt(0, fmt.Sprintf("t%d", i), 64), "Range", "bytes=0-999")
		took := time.Since(start)
		if resp.StatusCode != 206 || !bytes.Equal(body, c.expect(i, 64, 0, 999)) {
			t.Fatalf("t%d: status %d", i, resp.StatusCode)
		}
		// A bound, not a figure: well under upstream_timeout, which is
		// what a fill waited for before hedging.
		if took > upstreamTimeout/4 {
			t.Errorf("t%d through a frozen owner took %v (upstream_timeout %v)", i, took, upstreamTimeout)
		}
	}
	f := c.edges[0].hotFetch
	if f.hedged.Load() == 0 || f.hedgeWins.Load() == 0 {
		t.Errorf("hedged %d, won by shields %d: want both > 0", f.hedged.Load(), f.hedgeWins.Load())
	}
	// After failLimit hedges in a row won by the shields, the owner is
	// routed around without waiting even the hedge budget.
	if f.peerSkipped.Load() == 0 || f.hedged.Load() > failLimit {
		t.Errorf("owner skipped %d times after %d hedges: want it skipped after %d", f.peerSkipped.Load(), f.hedged.Load(), failLimit)
	}
}

// TestPeerBlamePassedOn: while the origin fails, owners pass its 502 on
// marked as upstream-caused; the edges that asked do not mark the owners
// (or the shield) down, so peer fills resume the moment the origin is
// back. Catches: the HeaderUpstreamError mark dropped from fail (the
// owner is skipped for downFor after the origin recovers), passed-on
// errors counted by failed.
func TestPeerBlamePassedOn(t *testing.T) {
	c := newTestCluster(t, 2, 1, nil)
	var tracks []int
	for i := 0; len(tracks) < failLimit+2; i++ {
		if c.owner(fmt.Sprintf("t%d", i)) == 1 {
			tracks = append(tracks, i)
		}
	}
	c.origin.FailNext(-1, 500, false)
	for _, i := range tracks[:failLimit+1] {
		resp, _ := c.get(t, c.urlAt(0, fmt.Sprintf("t%d", i), 64), "Range", "bytes=0-999")
		if resp.StatusCode != 502 {
			t.Fatalf("t%d with the origin failing: status %d, want 502", i, resp.StatusCode)
		}
	}
	c.origin.Heal()
	f := c.edges[0].hotFetch
	attempts := f.peerAttempts.Load()
	i := tracks[failLimit+1]
	resp, body := c.get(t, c.urlAt(0, fmt.Sprintf("t%d", i), 64), "Range", "bytes=0-999")
	if resp.StatusCode != 206 || !bytes.Equal(body, c.expect(i, 64, 0, 999)) {
		t.Fatalf("t%d after the origin is back: status %d", i, resp.StatusCode)
	}
	if f.peerAttempts.Load() == attempts || f.peerSkipped.Load() != 0 {
		t.Errorf("after the outage: %d peer fills (want > 0), %d owners skipped (want 0): the owner was blamed for the origin's 502s",
			f.peerAttempts.Load()-attempts, f.peerSkipped.Load())
	}
	if f.passedOn.Load() < failLimit+1 {
		t.Errorf("passed-on errors seen %d, want at least %d", f.passedOn.Load(), failLimit+1)
	}
}

// TestPassedOnTable: which answers count against an upstream.
func TestPassedOnTable(t *testing.T) {
	for _, tc := range []struct {
		code   int
		marked bool
		want   bool
	}{
		{502, true, true}, {504, true, true},
		{502, false, false}, {504, false, false},
		{500, true, false}, // a 500 is the answering node's own
		{503, true, false},
	} {
		var r fasthttp.Response
		r.SetStatusCode(tc.code)
		if tc.marked {
			r.Header.Set(HeaderUpstreamError, "1")
		}
		if got := passedOn(&r); got != tc.want {
			t.Errorf("passedOn(%d, marked %v) = %v, want %v", tc.code, tc.marked, got, tc.want)
		}
	}
}

// TestWarnLimiter: one warning per key per interval, with the count held
// back. Catches: a limiter keyed globally (b is held back), no reset of
// the count.
func TestWarnLimiter(t *testing.T) {
	w := newWarnLimiter(10 * time.Second)
	t0 := time.Unix(1000, 0)
	steps := []struct {
		key  string
		at   time.Duration
		ok   bool
		held int
	}{
		{"a", 0, true, 0},
		{"a", time.Second, false, 0},
		{"a", 2 * time.Second, false, 0},
		{"b", 2 * time.Second, true, 0},
		{"a", 10 * time.Second, true, 2},
		{"a", 11 * time.Second, false, 0},
		{"a", 30 * time.Second, true, 1},
	}
	for i, s := range steps {
		ok, held := w.allow(s.key, t0.Add(s.at))
		if ok != s.ok || held != s.held {
			t.Errorf("step %d: allow(%q, +%v) = %v, %d; want %v, %d", i, s.key, s.at, ok, held, s.ok, s.held)
		}
	}
	if got := upstreamOf(fmt.Errorf("chunk 3: %w", fmt.Errorf("http://10.0.0.1:8181: status 502"))); got != "http://10.0.0.1:8181" {
		t.Errorf("upstreamOf = %q", got)
	}
}

// newClusterNode builds an unserved-by-test cluster node on loopback.
func newClusterNode(t *testing.T, name string, role Role, key string, upstreams []string) *Node {
	t.Helper()
	cfg := DefaultShieldConfig()
	crole := cluster.RoleShield
	if role == Edge {
		cfg = DefaultEdgeConfig()
		crole = cluster.RoleEdge
		cfg.Keys = []Key{testKey}
		cfg.Prefetch.OriginURL = ""
	}
	cfg.Name = name
	cfg.Upstreams = upstreams
	cfg.TierKeys = []tierauth.KeyConfig{testTierKey}
	cfg.Cache.MemoryBytes = 16 << 20
	cfg.Cluster = clusterDefaults()
	cfg.Cluster.Role = crole
	cfg.Cluster.BindAddr, cfg.Cluster.BindPort = "127.0.0.1", 0
	cfg.Cluster.SecretKeys = []string{key}
	cfg.Cluster.Profile = cluster.ProfileFast
	n, err := NewNode(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatalf("NewNode(%s): %v", name, err)
	}
	if n.Members.Self().Name != name {
		t.Errorf("node_name defaulted to %q, want the node's name %q", n.Members.Self().Name, name)
	}
	serveNode(t, n)
	return n
}

// clusterKey is a fresh gossip key.
func clusterKey(t testing.TB) string {
	t.Helper()
	key, err := cluster.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// serveNode serves n until the test ends, then shuts it down.
func serveNode(t testing.TB, n *Node) {
	done := make(chan error, 1)
	go func() { done <- n.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Shutdown(ctx)
		<-done
	})
}

// TestReadyzAfterJoin: /readyz is 200 only once the node has joined and,
// for an edge, sees a shield. Catches: ready not wired into /readyz
// (200 before the join), the shield condition dropped (a lone edge
// ready), joined never set (never ready).
func TestReadyzAfterJoin(t *testing.T) {
	key := clusterKey(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	readyz := func(n *Node) int {
		resp, err := http.Get(n.InternalURL() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	shield := newClusterNode(t, "shield-r", Shield, key, []string{"http://127.0.0.1:1"})
	if got := readyz(shield); got != 503 {
		t.Errorf("shield before joining: /readyz %d, want 503", got)
	}
	if err := shield.Join(ctx, []string{}); err != nil { // the first node: no seeds
		t.Fatal(err)
	}
	if got := readyz(shield); got != 200 {
		t.Errorf("shield after joining: /readyz %d, want 200", got)
	}

	lone := newClusterNode(t, "edge-lone", Edge, key, []string{shield.URL()})
	if err := lone.Join(ctx, []string{}); err != nil {
		t.Fatal(err)
	}
	if got := readyz(lone); got != 503 {
		t.Errorf("edge joined to no one, seeing no shield: /readyz %d, want 503", got)
	}

	edge := newClusterNode(t, "edge-r", Edge, key, []string{shield.URL()})
	if got := readyz(edge); got != 503 {
		t.Errorf("edge before joining: /readyz %d, want 503", got)
	}
	if err := edge.Join(ctx, []string{shield.Members.Addr()}); err != nil {
		t.Fatal(err)
	}
	if err := edge.Members.WaitFor(ctx, func() bool { return len(edge.Members.Members(cluster.RoleShield)) == 1 }); err != nil {
		t.Fatal(err)
	}
	if got := readyz(edge); got != 200 {
		t.Errorf("edge joined and seeing a shield: /readyz %d, want 200", got)
	}
}

// TestDuplicateNodeName: a second node with a live node's name fails to
// join (cmd/edge and cmd/shield then exit).
func TestDuplicateNodeName(t *testing.T) {
	key := clusterKey(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := newClusterNode(t, "edge-same", Edge, key, []string{"http://127.0.0.1:1"})
	b := newClusterNode(t, "edge-same", Edge, key, []string{"http://127.0.0.1:1"})
	err := b.Join(ctx, []string{a.Members.Addr()})
	if err == nil || !strings.Contains(err.Error(), "node_name") {
		t.Fatalf("second edge-same joined: %v", err)
	}
	if resp, err := http.Get(b.InternalURL() + "/readyz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != 503 {
			t.Errorf("duplicate: /readyz %d, want 503", resp.StatusCode)
		}
	}
}

// TestFillTLS: an edge fills from a TLS shield when fill_ca verifies the
// shield's certificate; with another CA, CheckFills (start-up) fails
// naming fill_ca, and no fill silently falls back. Catches: FillCA not
// given to the fill clients (the first GET fails), CheckFills not
// verifying (wrong CA accepted), an error that does not name the field.
func TestFillTLS(t *testing.T) {
	cert, key := selfSigned(t, t.TempDir())
	wrong, _ := selfSigned(t, t.TempDir())
	p := newTestPOP(t, func(e, s *Config) {
		s.TLSCert, s.TLSKey = cert, key
		e.FillCA = cert
	})
	if !strings.HasPrefix(p.edge.cfg.Upstreams[0], "https://") {
		t.Fatalf("edge fills from %v, want the shield's https listener", p.edge.cfg.Upstreams)
	}
	if err := p.edge.CheckFills(context.Background()); err != nil {
		t.Fatalf("CheckFills with the right CA: %v", err)
	}
	resp, body := p.get(t, p.url("t3", 64, "SE"), "Range", "bytes=0-999")
	if resp.StatusCode != 206 || !bytes.Equal(body, p.expect(3, 64, 0, 999)) {
		t.Fatalf("fill over TLS: status %d", resp.StatusCode)
	}

	cfg := p.edge.cfg
	cfg.FillCA = wrong
	cfg.Listen, cfg.InternalAddr = "127.0.0.1:0", "127.0.0.1:0"
	s, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = s.CheckFills(context.Background())
	if err == nil || !strings.Contains(err.Error(), "fill_ca") || !strings.Contains(err.Error(), "upstreams[0]") {
		t.Fatalf("CheckFills with a wrong CA = %v, want an error naming fill_ca and upstreams[0]", err)
	}
}

// TestConfigErrors: TLS, peer and prefetch misconfigurations are start-up
// errors naming the field.
func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := dir + "/garbage.pem"
	if err := writeFile(garbage, "not a certificate"); err != nil {
		t.Fatal(err)
	}
	base := DefaultEdgeConfig()
	base.Upstreams = []string{"https://127.0.0.1:1"}
	base.Keys = []Key{testKey}
	base.TierKeys = []tierauth.KeyConfig{testTierKey}
	base.Listen, base.InternalAddr = "0.0.0.0:8443", "10.0.0.1:9000"
	base.Cluster.Role = "edge"
	base.Cluster.SecretKeys = []string{"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}
	for _, tc := range []struct {
		name  string
		tweak func(*Config)
		field string
	}{
		{"missing CA file", func(c *Config) { c.FillCA = dir + "/none.pem" }, "fill_ca"},
		{"CA file without a certificate", func(c *Config) { c.FillCA = garbage }, "fill_ca"},
		{"https peer address", func(c *Config) { c.Cluster.HTTPAddr = "https://10.0.0.1:9000" }, "cluster.http_addr"},
		{"peers at the public port", func(c *Config) { c.Cluster.HTTPAddr = "0.0.0.0:8443" }, "cluster.http_addr"},
		{"hedge past the timeout", func(c *Config) { c.PeerHedgeAfter = c.UpstreamTimeout }, "peer_hedge_after"},
		{"no prefetch dedup window", func(c *Config) { c.Prefetch.Dedup = 0 }, "prefetch.dedup"},
	} {
		c := base
		tc.tweak(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: Validate() = %v, want an error naming %s", tc.name, err, tc.field)
		}
	}
	if err := base.Validate(); err != nil {
		t.Errorf("base: %v", err)
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }
