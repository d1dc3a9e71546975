package player

import (
	"context"
	"io"
	"sort"
	"testing"
	"time"

	"github.com/musiccdn/cdn/player/playertest"
)

// BenchmarkFirstAudio measures the wall time from starting a session to
// its first rendered frame against a local server (manifest, seek table,
// first bytes, decoder start), 100 starts per run, and reports the p50 and
// p95 in milliseconds.
func BenchmarkFirstAudio(b *testing.B) {
	p := benchPlayer(b)
	buf := make([]float32, 2*1024)
	var all []time.Duration
	for b.Loop() {
		for i := range 100 {
			start := time.Now()
			s := p.Start(context.Background(), []string{ids[i%len(ids)]})
			n, err := s.Render(buf)
			d := time.Since(start)
			s.Close()
			if n == 0 || err != nil && err != io.EOF {
				b.Fatalf("Render = %d, %v", n, err)
			}
			all = append(all, d)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	ms := func(q float64) float64 { return float64(all[int(q*float64(len(all)-1))]) / 1e6 }
	b.ReportMetric(ms(0.5), "p50-ms")
	b.ReportMetric(ms(0.95), "p95-ms")
}

// BenchmarkSkipSession plays a queue of six tracks, skipping each after
// 0.5 s, and reports the bytes fetched and the bytes fetched but never
// played (skipped remainders, prefetched heads).
func BenchmarkSkipSession(b *testing.B) {
	p := benchPlayer(b)
	queue := []string{"t0", "t1", "t2", "t0", "t1", "t2"}
	var fetched, wasted int64
	for b.Loop() {
		s := p.Start(context.Background(), queue)
		buf := make([]float32, 2*2205) // 50 ms
		last, since := -1, 0
		for {
			n, err := s.Render(buf)
			if c := s.Current(); c != last {
				last, since = c, 0
			}
			since += n
			if since >= 22050 {
				s.Skip()
				since = -1 << 30
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		s.Close()
		for _, st := range s.Stats() {
			fetched += st.Fetched
			wasted += st.Wasted
		}
	}
	b.ReportMetric(float64(fetched)/float64(b.N), "fetched-B/session")
	b.ReportMetric(float64(wasted)/float64(b.N), "unplayed-B/session")
}

// benchPlayer is a player over a local stand-in server of the test
// catalog, closed with the benchmark.
func benchPlayer(b *testing.B) *Player {
	if catalogDir == "" {
		b.Skip("oggenc not installed")
	}
	srv := playertest.NewServer(b, catalogDir)
	b.Cleanup(srv.Close)
	p, err := New(config(srv))
	if err != nil {
		b.Fatal(err)
	}
	return p
}
