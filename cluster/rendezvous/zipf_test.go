package rendezvous

import (
	"math/rand/v2"
	"testing"

	"github.com/musiccdn/cdn/zipf"
)

// TestZipfPeakToMean reports, for Zipf(s=1) requests over 100K tracks on 5
// equal edges, the peak-to-mean of requests per edge when each request goes
// to its track's owner, and when it goes by OwnerBounded (c = 1.25) with
// each request in flight for the next `window` requests. It asserts the
// bound: no edge above ceil(1.25 x mean in-flight) at any time, which
// keeps the request totals within about 1.25 x the mean.
func TestZipfPeakToMean(t *testing.T) {
	const (
		tracks   = 100_000
		edges    = 5
		requests = 200_000
		window   = 100 // requests in flight at once
	)
	m := New(namedNodes(edges))
	keys := trackKeys(tracks)
	z := zipf.New(tracks, 1.0)
	r := rand.New(rand.NewPCG(5, 6))

	owner := make([]int, edges)
	bounded := make([]int, edges)
	loads := make([]int64, edges)
	ring := make([]int, window) // node of each in-flight request
	for i := range ring {
		ring[i] = -1
	}
	load := func(i int) int64 { return loads[i] }
	for q := 0; q < requests; q++ {
		k := keys[z.Draw(r)]
		owner[m.Owner(k)]++
		if old := ring[q%window]; old >= 0 {
			loads[old]--
		}
		var total int64
		for _, l := range loads {
			total += l
		}
		i := m.OwnerBounded(k, load, 1.25)
		if capacity := m.Capacity(total, i, 1.25); loads[i]+1 > capacity {
			t.Fatalf("request %d: edge %d at %d, above capacity %d", q, i, loads[i]+1, capacity)
		}
		loads[i]++
		ring[q%window] = i
		bounded[i]++
	}
	ptm := func(c []int) float64 {
		peak := 0
		for _, n := range c {
			peak = max(peak, n)
		}
		return float64(peak) / (float64(requests) / edges)
	}
	t.Logf("Zipf(1.0), %d tracks, %d edges, %d requests: peak-to-mean by owner %.3f %v; bounded load c=1.25 (%d in flight) %.3f %v",
		tracks, edges, requests, ptm(owner), owner, window, ptm(bounded), bounded)
	if got := ptm(bounded); got > 1.25 {
		t.Errorf("bounded-load peak-to-mean %.3f, want <= 1.25", got)
	}
}
