package tier

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/musiccdn/cdn/cache"
	"github.com/musiccdn/cdn/cluster/rendezvous"
	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/zipf"
)

// tinyFetcher serves 4 KiB objects of zeros: the content does not matter
// to a load model.
type tinyFetcher struct{ fetches atomic.Int64 }

func (f *tinyFetcher) Fetch(ctx context.Context, name string, off, n int64) (cache.Meta, []byte, error) {
	f.fetches.Add(1)
	return cache.NewMeta(4096, `"v"`, time.Time{}, ""), make([]byte, 4096), nil
}

func (f *tinyFetcher) Revalidate(ctx context.Context, name, etag string) (cache.Meta, bool, error) {
	return cache.NewMeta(4096, `"v"`, time.Time{}, ""), false, nil
}

// TestZipfSpread models a POP of 5 edges behind a load balancer that
// spreads Zipf(s=1.0) requests over 100K tracks evenly, with the real
// rendezvous map deciding owners and the real hot store (rate admission,
// ristretto) at each edge. An edge's load is the player requests it
// serves plus the peer requests it serves as an owner. It reports the
// peak-to-mean load with and without the hot cache, and requires at most
// 1.25 with it.
func TestZipfSpread(t *testing.T) {
	const (
		edges    = 5
		tracks   = 100_000
		requests = 200_000
	)
	nodes := make([]rendezvous.Node, edges)
	for i := range nodes {
		nodes[i] = rendezvous.Node{ID: fmt.Sprintf("edge-%d", i+1)}
	}
	ring := rendezvous.New(nodes)
	z := zipf.New(tracks, 1.0)
	run := func(hotBytes int64) float64 {
		var now atomic.Int64
		clock := func() time.Time { return time.Unix(0, now.Load()) }
		var hot []*cache.Store
		for range edges {
			if hotBytes == 0 {
				hot = append(hot, nil)
				continue
			}
			s, err := cache.New(cache.Config{ChunkSize: 4096, MemoryBytes: config.Size(hotBytes), MaxObjects: 1 << 16}, &tinyFetcher{}, clock,
				cache.WithAdmission(cache.NewRateAdmission(4, 10*time.Second, clock)))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			hot = append(hot, s)
		}
		load := make([]int64, edges)
		rng := rand.New(rand.NewPCG(7, 8))
		ctx := context.Background()
		for range requests {
			now.Add(int64(time.Millisecond)) // 1000 requests/s
			track := fmt.Sprintf("t%d", z.Draw(rng))
			e := rng.IntN(edges)
			load[e]++
			o := ring.Owner(xxhash.Sum64String(track))
			if o == e {
				continue
			}
			if hot[e] != nil {
				name := []byte(track + "/160.ogg")
				ref := cache.Ref{Key: cache.ObjectKey(name), Name: name}
				m, _, err := hot[e].Meta(ctx, ref)
				if err != nil {
					t.Fatal(err)
				}
				if _, hit, _ := hot[e].Chunk(ctx, ref, m, 0); hit {
					continue
				}
			}
			load[o]++ // the owner serves the peer fill
		}
		var peak, sum int64
		for _, l := range load {
			peak, sum = max(peak, l), sum+l
		}
		return float64(peak) / (float64(sum) / edges)
	}
	without := run(0)
	with := run(4 << 20) // 1024 chunks: about 1 % of the catalog per edge
	t.Logf("Zipf(1.0), 100K tracks, 5 edges, %d requests: peak-to-mean load %.3f without the hot cache, %.3f with it", requests, without, with)
	if with > 1.25 {
		t.Errorf("peak-to-mean with the hot cache %.3f, want <= 1.25", with)
	}
	if with >= without {
		t.Errorf("the hot cache does not flatten load: %.3f with, %.3f without", with, without)
	}
}
