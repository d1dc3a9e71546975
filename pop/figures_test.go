package pop

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/tier"
	"github.com/musiccdn/cdn/zipf"
)

// listeners is a small closed-loop load on a POP: workers that start
// Zipf-popular tracks (s = 1.0) at random edges, each start reading the
// first 1 MiB of the 96 kbps file in 256 KiB ranges, as a player's
// start and first buffer do. Manifests are fetched once per track.
type listeners struct {
	p      *POP
	tracks int
	bytes  atomic.Int64 // body bytes received
	errors atomic.Int64
	stop   chan struct{}
	wg     sync.WaitGroup

	mu   sync.Mutex
	urls map[int]string
}

func startListeners(t testing.TB, p *POP, tracks, workers int) *listeners {
	l := &listeners{p: p, tracks: tracks, stop: make(chan struct{}), urls: map[int]string{}}
	z := zipf.New(tracks, 1.0)
	client := &http.Client{Timeout: 10 * time.Second}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				select {
				case <-l.stop:
					return
				case <-time.After(20 * time.Millisecond): // a listener's pace, not a flood
				}
				i := z.Draw(rng)
				url := l.url(t, i)
				edges := l.p.Addrs().Edges
				e := edges[rng.IntN(len(edges))]
				for off := int64(0); off < 1<<20; off += 256 << 10 {
					req, _ := http.NewRequest("GET", e+url, nil)
					req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+256<<10-1))
					resp, err := client.Do(req)
					if err != nil {
						l.errors.Add(1)
						break
					}
					n, _ := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 206 {
						l.errors.Add(1)
						break
					}
					l.bytes.Add(n)
				}
			}
		}()
	}
	return l
}

func (l *listeners) url(t testing.TB, i int) string {
	l.mu.Lock()
	u, ok := l.urls[i]
	l.mu.Unlock()
	if ok {
		return u
	}
	u, code := manifestURL(t, l.p, "t"+strconv.Itoa(i), 96)
	if code != 200 {
		u, _ = manifestURL(t, l.p, "t0", 96) // a track SE may not play
	}
	l.mu.Lock()
	l.urls[i] = u
	l.mu.Unlock()
	return u
}

func (l *listeners) close() { close(l.stop); l.wg.Wait() }

// scrape sums the samples of the named metrics over the shields'
// internal /metrics.
func scrapeShields(t testing.TB, p *POP, names ...string) map[string]float64 {
	return scrape(t, p.Addrs().Internal.Shields, names...)
}

func scrape(t testing.TB, urls []string, names ...string) map[string]float64 {
	out := map[string]float64{}
	for _, u := range urls {
		resp, err := http.Get(u + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			for _, n := range names {
				if strings.HasPrefix(line, n+" ") || strings.HasPrefix(line, n+"{") {
					f := strings.Fields(line)
					v, _ := strconv.ParseFloat(f[len(f)-1], 64)
					out[n] += v
				}
			}
		}
		resp.Body.Close()
	}
	return out
}

type phase struct {
	name                 string
	secs                 float64
	clientBytes          int64
	shieldBytes, shieldN float64
}

func (ph phase) String() string {
	return fmt.Sprintf("%-28s %5.1fs  byte hit ratio %.4f  shield requests %6.1f/s  shield MB %7.1f  player MB %7.1f",
		ph.name, ph.secs, 1-ph.shieldBytes/float64(ph.clientBytes), ph.shieldN/ph.secs, ph.shieldBytes/1e6, float64(ph.clientBytes)/1e6)
}

func measure(t testing.TB, p *POP, l *listeners, name string, during func()) phase {
	names := []string{"shield_bytes_served_total", "shield_requests_total"}
	b0, m0, s0 := l.bytes.Load(), scrapeShields(t, p, names...), time.Now()
	during()
	b1, m1, s1 := l.bytes.Load(), scrapeShields(t, p, names...), time.Now()
	return phase{name: name, secs: s1.Sub(s0).Seconds(), clientBytes: b1 - b0,
		shieldBytes: m1[names[0]] - m0[names[0]], shieldN: m1[names[1]] - m0[names[1]]}
}

// TestRollingRestartFigure measures a POP's byte hit ratio and its
// shields' request rate through a rolling restart of every edge (drain,
// leave, start, rejoin, one at a time) under load, against the same
// length of time without a restart just before (same POP, same load),
// for memory-only edges
// with and without handoff fills and for edges with a disk tier. A
// figure, not a guarantee: run it with
//
//	OPS_ROLLING_FIGURE=1 go test ./pop -run RollingRestartFigure -v -timeout 20m
func TestRollingRestartFigure(t *testing.T) {
	if os.Getenv("OPS_ROLLING_FIGURE") == "" {
		t.Skip("set OPS_ROLLING_FIGURE=1 to measure")
	}
	warm := envDuration("OPS_WARM", 20*time.Second)
	for _, v := range []struct {
		name string
		edit func(*tier.Config, string)
	}{
		{"memory edges, no handoff", func(c *tier.Config, _ string) { c.NoHandoff = true }},
		{"memory edges, handoff", func(c *tier.Config, _ string) {}},
		{"disk edges, no handoff", func(c *tier.Config, dir string) {
			c.Cache.DiskDir, c.Cache.DiskBytes = dir+"/"+c.Name, 1<<30
			c.NoHandoff = true
		}},
		{"disk edges, handoff", func(c *tier.Config, dir string) {
			c.Cache.DiskDir, c.Cache.DiskBytes = dir+"/"+c.Name, 1<<30
		}},
	} {
		if only := os.Getenv("OPS_VARIANT"); only != "" && !strings.Contains(v.name, only) {
			continue
		}
		dir := t.TempDir()
		p2, err := startFigurePOP(t, func(c *tier.Config) {
			c.DrainDelay = config.Duration(2 * time.Second)
			v.edit(c, dir)
		})
		if err != nil {
			t.Fatal(err)
		}
		l := startListeners(t, p2, 1000, 6)
		time.Sleep(warm)
		phaseLen := envDuration("OPS_PHASE", 25*time.Second)
		steady := measure(t, p2, l, v.name+": steady", func() { time.Sleep(phaseLen) })
		var restartSecs float64
		var during, after phase
		var handoffs, hits int64
		rolling := measure(t, p2, l, v.name+": rolling restart", func() {
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			during = measure(t, p2, l, "  of which restarting", func() {
				for i := range p2.Edges() {
					h, ok := p2.Edges()[i].Handoffs()
					handoffs, hits = handoffs+h, hits+ok
					if err := p2.RestartEdge(ctx, i); err != nil {
						t.Error(err)
					}
				}
			})
			restartSecs = time.Since(start).Seconds()
			// The same length as the steady phase, and at least 10 s
			// after the last rejoin, when its misses come.
			after = measure(t, p2, l, "  of which after", func() {
				time.Sleep(max(10*time.Second, phaseLen-time.Since(start)))
			})
		})
		l.close()
		for _, e := range p2.Edges() {
			h, ok := e.Handoffs()
			handoffs += h
			hits += ok
		}
		t.Logf("%v", steady)
		t.Logf("%v   (restarts took %.1fs; handoff fills %d, answered %d; listener errors %d)", rolling, restartSecs, handoffs, hits, l.errors.Load())
		t.Logf("%v", during)
		t.Logf("%v", after)
		t.Logf("  edges since their restart: %v", scrape(t, p2.Addrs().Internal.Edges, "edge_peer_misrouted_total", "edge_peer_fill_failures_total",
			"edge_upstream_fetches_total", "edge_disk_hits_total", "edge_warm_metas_total", "edge_revalidations_total", "edge_upstream_skipped_total"))
		p2.Close()
	}
}

func startFigurePOP(t testing.TB, edit func(*tier.Config)) (*POP, error) {
	cfg := DefaultConfig()
	cfg.Catalog, cfg.Seed = "synthetic:1000", 3
	// Deployment timers: under load on a small machine the fast profile
	// suspects healthy nodes, and the figure would measure that.
	cfg.GossipProfile = "lan"
	cfg.EdgeCache, cfg.ShieldCache = 96<<20, 512<<20
	cfg.ShieldDisk = 0
	p, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler), WithEdgeConfig(edit))
	if err == nil {
		t.Cleanup(func() { p.Close() })
	}
	return p, err
}

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return d
	}
	return def
}

// TestPurgeFigure measures the time from the admin purge call until every
// node of the POP has dropped the track (the call returns then), over 100
// purges of popular tracks while listeners load the POP:
//
//	OPS_PURGE_FIGURE=1 go test ./pop -run PurgeFigure -v
func TestPurgeFigure(t *testing.T) {
	if os.Getenv("OPS_PURGE_FIGURE") == "" {
		t.Skip("set OPS_PURGE_FIGURE=1 to measure")
	}
	p, _ := startOpsPOP(t, nil)
	l := startListeners(t, p, 1000, 8)
	defer l.close()
	time.Sleep(envDuration("OPS_WARM", 10*time.Second))
	token := p.Addrs().AdminToken
	var took []time.Duration
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100 {
		track := "t" + strconv.Itoa(rng.IntN(50)) // popular: cached everywhere
		start := time.Now()
		code, body := adminCall(t, p, "/v1/admin/purge", token, `{"tracks":["`+track+`"]}`)
		took = append(took, time.Since(start))
		if code != 200 {
			t.Fatalf("purge: %d %s", code, body)
		}
	}
	slices.Sort(took)
	q := func(f float64) time.Duration { return took[min(len(took)-1, int(f*float64(len(took))))] }
	t.Logf("100 purges under load (8 listeners, %d nodes): p50 %v  p90 %v  p99 %v  max %v  (player MB during: %.1f, listener errors %d)",
		len(p.Addrs().Edges)+len(p.Addrs().Shields), q(0.5), q(0.9), q(0.99), took[len(took)-1], float64(l.bytes.Load())/1e6, l.errors.Load())
}
