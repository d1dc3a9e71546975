package cachesim

import (
	"testing"
	"time"

	"github.com/musiccdn/cdn/loadtest/workload"
)

func popRun(edges int, edgeBytes, hotBytes int64, prefetch bool) RunConfig {
	w := workload.DefaultConfig()
	w.Tracks, w.SessionRate = 2000, 4
	return RunConfig{Workload: w, Compression: 60, Duration: 90 * time.Second, POP: POPConfig{
		Edges: edges, EdgeBytes: edgeBytes, EdgeWindowPercent: 25, HotBytes: hotBytes, HotWindowPercent: 25,
		HotMinReads: 4, HotWindow: 10 * time.Second, ChunkSize: 256 << 10,
		Prefetch: prefetch, PrefetchTracks: 3, PrefetchSeconds: 10, PrefetchDedup: 5 * time.Minute,
	}}
}

// TestReplayRunAccounting: with a cache larger than everything asked
// for and no seeks (a seek's metadata fetch fills a chunk 0 nobody
// reads), every chunk is fetched from the shields once: the fills are the
// chunk misses, and a request is a hit only when its chunks all are.
// Mutations caught: counting a fill on a hit, the request-level hit taken
// from the last chunk only (HitBytes > ChunkHitBytes possible), requests
// due after Duration replayed (Requests grows with Duration cut off).
func TestReplayRunAccounting(t *testing.T) {
	cfg := popRun(1, 1<<40, 0, false)
	cfg.Workload.SeekProb = 0
	st, err := ReplayRun(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st.Requests == 0 || st.Chunks < st.Requests {
		t.Fatalf("stats %+v", st)
	}
	if st.FillBytes != st.ChunkBytes-st.ChunkHitBytes {
		t.Errorf("fills %d, want chunk misses %d", st.FillBytes, st.ChunkBytes-st.ChunkHitBytes)
	}
	if st.HitRequests > st.ChunkHits || st.HitRequests == 0 {
		t.Errorf("request hits %d, chunk hits %d", st.HitRequests, st.ChunkHits)
	}
	short := popRun(1, 1<<40, 0, false)
	short.Duration = 45 * time.Second
	st2, err := ReplayRun(short)
	if err != nil {
		t.Fatal(err)
	}
	if !(st2.Requests < st.Requests) || st2.Plays == 0 || !(st2.PlayedBytes > 0) {
		t.Errorf("45 s replay %d requests, 90 s %d", st2.Requests, st.Requests)
	}
}

// TestReplayRunPOP: the model's structure shows in its ratios. Prefetch
// of hinted next tracks raises the hit ratio of a cache that holds
// everything (in a small one its fills can cost more than they bring:
// about a point less at 192 MiB here); with three edges and a one-chunk hot
// cache, a request reaching a non-owner (two in three) almost never hits, so the
// Cache-Status ratio falls below half of one edge with the same total
// memory, while the edge tier still holds the chunks (chunk fills stay
// close).
// Mutations caught: prefetch warming the next track's neighbour or the
// wrong tier (no gain), the receiving edge taken as the owner (no drop).
// Not caught: warming chunks 2..n instead of 1..n-1 (only 320 kbps warms
// more than chunk 0, which the metadata fetch brings).
func TestReplayRunPOP(t *testing.T) {
	const mem = 64 << 20
	off, err := ReplayRun(popRun(1, 1<<40, 0, false))
	if err != nil {
		t.Fatal(err)
	}
	on, err := ReplayRun(popRun(1, 1<<40, 0, true))
	if err != nil {
		t.Fatal(err)
	}
	if !(on.ByteHitRatio() > off.ByteHitRatio()+0.01) || on.PrefetchFillBytes == 0 {
		t.Errorf("prefetch: %.4f with, %.4f without (prefetch fills %d)", on.ByteHitRatio(), off.ByteHitRatio(), on.PrefetchFillBytes)
	}
	one, err := ReplayRun(popRun(1, 3*mem, 0, false))
	if err != nil {
		t.Fatal(err)
	}
	three, err := ReplayRun(popRun(3, mem, 256<<10, false))
	if err != nil {
		t.Fatal(err)
	}
	if !(three.ByteHitRatio() < one.ByteHitRatio()/2) {
		t.Errorf("3 edges, one-chunk hot caches: %.4f, one edge %.4f", three.ByteHitRatio(), one.ByteHitRatio())
	}
	if f1, f3 := float64(one.FillBytes), float64(three.FillBytes); f3 > 1.3*f1 {
		t.Errorf("3 edges fetched %.0f from shields, one edge %.0f", f3, f1)
	}
	if _, err := ReplayRun(RunConfig{POP: POPConfig{Edges: 0}}); err == nil {
		t.Errorf("no edges accepted")
	}
}
