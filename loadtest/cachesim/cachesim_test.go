package cachesim

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// refLRU is the simplest LRU there is: a slice in recency order.
type refLRU struct {
	capacity int64
	items    []Access // most recent last
}

func (c *refLRU) access(a Access) bool {
	for i, it := range c.items {
		if it.Key == a.Key {
			c.items = append(append(c.items[:i:i], c.items[i+1:]...), it)
			return true
		}
	}
	if a.Size > c.capacity {
		return false
	}
	c.items = append(c.items, a)
	used := int64(0)
	for _, it := range c.items {
		used += it.Size
	}
	for used > c.capacity {
		used -= c.items[0].Size
		c.items = c.items[1:]
	}
	return false
}

func randomStream(seed uint64, n, keys int) []Access {
	r := rand.New(rand.NewPCG(seed, 0))
	z := make([]Access, n)
	for i := range z {
		k := uint64(r.IntN(keys))
		if r.IntN(2) == 0 {
			k = uint64(r.IntN(keys / 10)) // a hot set
		}
		z[i] = Access{Key: k, Size: int64(1 + k%4)}
	}
	return z
}

func TestLRUMatchesReference(t *testing.T) {
	for seed := range uint64(20) {
		stream := randomStream(seed, 3000, 200)
		capacity := int64(10 + seed*7)
		lru, ref := NewLRU(capacity), &refLRU{capacity: capacity}
		for i, a := range stream {
			if got, want := lru.Access(i, a), ref.access(a); got != want {
				t.Fatalf("seed %d access %d (%+v): LRU hit = %v, want %v", seed, i, a, got, want)
			}
		}
	}
}

// TestBeladyBoundsOthers: with equal sizes Belady's rule is optimal, so no
// policy may beat it; and every policy misses each key's first request.
func TestBeladyBoundsOthers(t *testing.T) {
	for seed := range uint64(10) {
		stream := randomStream(seed, 5000, 300)
		for i := range stream {
			stream[i].Size = 1
		}
		distinct := map[uint64]bool{}
		for _, a := range stream {
			distinct[a.Key] = true
		}
		for _, capacity := range []int64{1, 5, 30, 100, 400} {
			b := Replay(NewBelady(capacity, stream), stream, 0)
			l := Replay(NewLRU(capacity), stream, 0)
			s := Replay(NewStatic(capacity, stream), stream, 0)
			if l.Hits > b.Hits || s.Hits > b.Hits {
				t.Errorf("seed %d capacity %d: belady %d hits, lru %d, static %d: belady must be highest", seed, capacity, b.Hits, l.Hits, s.Hits)
			}
			if maxHits := int64(len(stream) - len(distinct)); b.Hits > maxHits {
				t.Errorf("seed %d capacity %d: belady %d hits > %d non-first requests", seed, capacity, b.Hits, maxHits)
			}
			if capacity >= int64(len(distinct)) && b.Hits != int64(len(stream)-len(distinct)) {
				t.Errorf("seed %d capacity %d: belady %d hits, want every non-first request (%d)", seed, capacity, b.Hits, len(stream)-len(distinct))
			}
		}
	}
}

func TestBeladyByHand(t *testing.T) {
	// Capacity 2, a b c a b: Belady keeps a and b (c is never needed
	// again, so it is not admitted): hits on the second a and b.
	keys := []uint64{1, 2, 3, 1, 2}
	var stream []Access
	for _, k := range keys {
		stream = append(stream, Access{Key: k, Size: 1})
	}
	b := NewBelady(2, stream)
	var got []bool
	for i, a := range stream {
		got = append(got, b.Access(i, a))
	}
	if want := []bool{false, false, false, true, true}; !reflect.DeepEqual(got, want) {
		t.Errorf("Belady(2) on %v = %v, want %v", keys, got, want)
	}
	if lru := Replay(NewLRU(2), stream, 0); lru.Hits != 0 {
		t.Errorf("LRU(2) on %v: %d hits, want 0", keys, lru.Hits)
	}
}

func TestRistrettoCaches(t *testing.T) {
	r, err := NewRistretto(64<<20, 256<<10)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	stream := randomStream(1, 20000, 100)
	for i := range stream {
		stream[i].Size = 256 << 10
	}
	// 100 keys of 256 KiB fit in 64 MiB: after the first pass all hit
	// except what admission turned away.
	st := Replay(r, stream, 2000)
	if st.HitRatio() < 0.9 {
		t.Errorf("ristretto large enough for every key: hit ratio %.3f, want >= 0.9", st.HitRatio())
	}
}

func TestStreamDeterministic(t *testing.T) {
	cfg := DefaultStudyConfig().Stream
	cfg.Workload.Tracks = 500
	cfg.Accesses = 20000
	a, err := Stream(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Stream(cfg)
	if len(a) != cfg.Accesses || !reflect.DeepEqual(a, b) {
		t.Fatalf("Stream: %d accesses, equal %v: want %d and deterministic", len(a), reflect.DeepEqual(a, b), cfg.Accesses)
	}
	for _, x := range a {
		if x.Size <= 0 || x.Size > cfg.ChunkSize {
			t.Fatalf("access %+v: size outside (0, %d]", x, cfg.ChunkSize)
		}
	}
}

func TestStudyTable(t *testing.T) {
	cfg := DefaultStudyConfig()
	cfg.Stream.Workload.Tracks = 300
	cfg.Stream.Accesses = 20000
	cfg.Skews = []float64{0.8, 1.2}
	cfg.Fractions = []float64{0.01, 0.1}
	rows, err := Study(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2*2*5 {
		t.Fatalf("Study: %d rows, want 20", len(rows))
	}
	hits := map[[2]float64]map[string]float64{}
	for _, r := range rows {
		k := [2]float64{r.Skew, r.Fraction}
		if hits[k] == nil {
			hits[k] = map[string]float64{}
		}
		hits[k][r.Policy] = r.Stats.HitRatio()
	}
	for k, h := range hits {
		if h["belady"]+1e-9 < h["lru"] || h["belady"]+1e-9 < h["ristretto"] || h["belady"]+1e-9 < h["edge"] {
			t.Errorf("skew %v size %v: %v: belady below an online policy", k[0], k[1], h)
		}
	}
	if hits[[2]float64{1.2, 0.1}]["lru"] <= hits[[2]float64{0.8, 0.01}]["lru"] {
		t.Errorf("LRU hit ratio does not grow with skew and size: %v", hits)
	}
	var buf bytes.Buffer
	if err := WriteTable(&buf, rows); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(buf.String(), "\n"); lines != 5 {
		t.Errorf("WriteTable: %d lines, want header + 4:\n%s", lines, buf.String())
	}
}
