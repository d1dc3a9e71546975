// Package cachesim replays a workload's request stream through cache
// policies to compare their hit ratios without servers: the edge's chunk
// memory as it runs (Edge: cache.Memory, an LRU window in front of
// ristretto), plain ristretto configured as its main part (cost = bytes),
// a plain LRU of the same byte size, and two offline bounds, a static
// cache of the most requested objects and Belady's optimal (evict the
// object needed furthest in the future). ReplayRun replays a load run
// through a model of a whole POP's edges (POPConfig).
//
// The stream is of chunks, as the edge caches them: a range request for
// [off, off+len) of (track, tier) touches every ChunkSize-aligned chunk it
// covers. Chunks are all the same size but a file's last, so "object" and
// "byte" hit ratios differ only a little and Belady's rule, optimal for
// equal sizes, is a tight bound.
package cachesim

import (
	"container/heap"
	"container/list"
	"fmt"
	"sort"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/dgraph-io/ristretto/v2"

	"github.com/musiccdn/cdn/cache"
	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/loadtest/workload"
	"github.com/musiccdn/cdn/origin/media"
)

// Access is one chunk request: its key and its size in bytes.
type Access struct {
	Key  uint64
	Size int64
}

// Policy is a cache under study. Access looks key up and, on a miss,
// offers it for admission; it reports whether it was a hit.
type Policy interface {
	Name() string
	Access(i int, a Access) bool
}

// Stats counts the outcome of a replay.
type Stats struct {
	Requests, Hits  int64
	Bytes, HitBytes int64
}

// HitRatio is the share of requests that hit.
func (s Stats) HitRatio() float64 { return float64(s.Hits) / float64(max(s.Requests, 1)) }

// ByteHitRatio is the share of bytes that hit.
func (s Stats) ByteHitRatio() float64 { return float64(s.HitBytes) / float64(max(s.Bytes, 1)) }

// Replay runs stream through p; the first warmup accesses fill the cache
// and are not counted.
func Replay(p Policy, stream []Access, warmup int) Stats {
	var st Stats
	for i, a := range stream {
		hit := p.Access(i, a)
		if i < warmup {
			continue
		}
		st.Requests++
		st.Bytes += a.Size
		if hit {
			st.Hits++
			st.HitBytes += a.Size
		}
	}
	return st
}

// StreamConfig is the request stream of a study.
type StreamConfig struct {
	Workload workload.Config
	// Compression places the sessions' requests on one timeline, as in a
	// run; it only affects how sessions interleave. Default 60.
	Compression float64
	// ChunkSize is the edge's chunk size. Default 256 KiB, the cache
	// package's default.
	ChunkSize int64
	// Accesses is the number of chunk requests to generate.
	Accesses int
}

// Stream generates cfg.Accesses chunk requests of the workload, in the
// order they would reach an edge.
func Stream(cfg StreamConfig) ([]Access, error) {
	if cfg.ChunkSize <= 0 || cfg.Accesses <= 0 || !(cfg.Compression > 0) {
		return nil, fmt.Errorf("cachesim: chunk size, accesses and compression must be > 0")
	}
	g, err := workload.NewGenerator(cfg.Workload)
	if err != nil {
		return nil, err
	}
	cat := g.Catalog()
	type timed struct {
		at time.Duration
		a  Access
	}
	var all []timed
	// Sessions overlap: requests up to the start of the latest session are
	// complete (later ones would interleave with sessions not generated
	// yet), so generate until that prefix holds enough of them.
	var lastStart time.Duration
	for target := cfg.Accesses; ; {
		for len(all) < target {
			s := g.Next()
			lastStart = s.Start
			for _, p := range s.Plays {
				size := cat.Size(p.Track, s.Kbps)
				for _, f := range p.Fetches {
					at := s.Start + time.Duration(float64(f.At)/cfg.Compression)
					for idx := f.Off / cfg.ChunkSize; idx*cfg.ChunkSize < f.Off+f.Len; idx++ {
						all = append(all, timed{at, Access{
							Key:  ChunkKey(p.Track, s.Kbps, idx),
							Size: min(cfg.ChunkSize, size-idx*cfg.ChunkSize),
						}})
					}
				}
			}
		}
		sort.SliceStable(all, func(i, j int) bool { return all[i].at < all[j].at })
		complete := sort.Search(len(all), func(i int) bool { return all[i].at > lastStart })
		if complete >= cfg.Accesses {
			break
		}
		target = len(all) + (cfg.Accesses-complete)*2
	}
	out := make([]Access, cfg.Accesses)
	for i := range out {
		out[i] = all[i].a
	}
	return out, nil
}

// ChunkKey is the cache key of chunk idx of (track, kbps).
func ChunkKey(track, kbps int, idx int64) uint64 {
	var b [24]byte
	for i, v := range []uint64{uint64(track), uint64(kbps), uint64(idx)} {
		for j := range 8 {
			b[i*8+j] = byte(v >> (8 * j))
		}
	}
	return xxhash.Sum64(b[:])
}

// CatalogBytes is the size of every tier of every track of the synthetic
// catalog (n, seed).
func CatalogBytes(n int, seed uint64) int64 {
	cat := media.NewSynthetic(n, seed)
	var sum int64
	for i := range n {
		for _, k := range catalog.Tiers {
			sum += cat.Size(i, k)
		}
	}
	return sum
}

// LRU evicts the least recently used object.
type LRU struct {
	capacity, used int64
	ll             *list.List
	m              map[uint64]*list.Element
}

type lruEntry struct {
	key  uint64
	size int64
}

// NewLRU returns an LRU of capacity bytes.
func NewLRU(capacity int64) *LRU {
	return &LRU{capacity: capacity, ll: list.New(), m: make(map[uint64]*list.Element)}
}

// Name implements Policy.
func (c *LRU) Name() string { return "lru" }

// Access implements Policy.
func (c *LRU) Access(_ int, a Access) bool {
	if e, ok := c.m[a.Key]; ok {
		c.ll.MoveToFront(e)
		return true
	}
	if a.Size > c.capacity {
		return false
	}
	c.m[a.Key] = c.ll.PushFront(lruEntry{a.Key, a.Size})
	c.used += a.Size
	for c.used > c.capacity {
		e := c.ll.Back()
		en := e.Value.(lruEntry)
		c.ll.Remove(e)
		delete(c.m, en.key)
		c.used -= en.size
	}
	return false
}

// Ristretto is plain ristretto, configured as cache.Memory configures its
// main part (NumCounters ten per chunk that fits, MaxCost the byte budget,
// cost the chunk's size), without the LRU window the edge's chunk cache
// (cache.Memory, see Edge) keeps in front of it: the baseline the
// window is measured against. Each Set is waited for, so the replay is not at the mercy
// of ristretto's dropped buffered writes (the edge, under real
// concurrency, can only do worse on that count). Close it after use.
type Ristretto struct {
	c *ristretto.Cache[uint64, struct{}]
}

// NewRistretto returns a ristretto cache of capacity bytes for chunks of
// chunkSize.
func NewRistretto(capacity, chunkSize int64) (*Ristretto, error) {
	items := capacity / chunkSize
	c, err := ristretto.NewCache(&ristretto.Config[uint64, struct{}]{
		NumCounters:        max(10*items, 1000),
		MaxCost:            capacity,
		BufferItems:        64,
		IgnoreInternalCost: true,
	})
	if err != nil {
		return nil, fmt.Errorf("cachesim: ristretto: %w", err)
	}
	return &Ristretto{c: c}, nil
}

// Name implements Policy.
func (c *Ristretto) Name() string { return "ristretto" }

// Access implements Policy.
func (c *Ristretto) Access(_ int, a Access) bool {
	if _, ok := c.c.Get(a.Key); ok {
		return true
	}
	if c.c.Set(a.Key, struct{}{}, a.Size) {
		c.c.Wait()
	}
	return false
}

// Close releases the cache.
func (c *Ristretto) Close() { c.c.Close() }

// Edge is the edge's chunk memory as it runs: cache.Memory, an LRU window
// of windowPercent of the bytes in front of ristretto (W-TinyLFU). Close
// it after use.
type Edge struct {
	m       *cache.Memory
	payload []byte
}

// NewEdge returns the edge's memory of capacity bytes with windowPercent
// of them in the LRU window.
func NewEdge(capacity, chunkSize int64, windowPercent int) (*Edge, error) {
	m, err := cache.NewMemory(capacity, capacity*int64(windowPercent)/100, chunkSize)
	if err != nil {
		return nil, fmt.Errorf("cachesim: edge: %w", err)
	}
	return &Edge{m: m, payload: make([]byte, chunkSize)}, nil
}

// Name implements Policy.
func (c *Edge) Name() string { return "edge" }

// Access implements Policy. Writes to ristretto behind the window are
// waited for, as for Ristretto.
func (c *Edge) Access(_ int, a Access) bool {
	if _, ok := c.m.Get(a.Key); ok {
		return true
	}
	c.m.Set(a.Key, c.payload[:min(a.Size, int64(len(c.payload)))])
	c.m.Wait()
	return false
}

// Close releases the memory.
func (c *Edge) Close() { c.m.Close() }

// Static holds the objects with the most requests (per byte) over the
// whole stream that fit: the best a cache whose contents never change can
// do. Like every policy here it cannot hit an object's first request (a
// compulsory miss): the bound is on the choice of contents, not on
// knowing objects before anyone asks for them.
type Static struct {
	in   map[uint64]bool
	seen map[uint64]bool
}

// NewStatic returns the static cache of capacity bytes for stream.
func NewStatic(capacity int64, stream []Access) *Static {
	type obj struct {
		key   uint64
		size  int64
		count int
	}
	idx := make(map[uint64]int)
	var objs []obj
	for _, a := range stream {
		i, ok := idx[a.Key]
		if !ok {
			i = len(objs)
			idx[a.Key] = i
			objs = append(objs, obj{key: a.Key, size: a.Size})
		}
		objs[i].count++
	}
	sort.SliceStable(objs, func(i, j int) bool {
		return float64(objs[i].count)/float64(objs[i].size) > float64(objs[j].count)/float64(objs[j].size)
	})
	s := &Static{in: make(map[uint64]bool), seen: make(map[uint64]bool)}
	used := int64(0)
	for _, o := range objs {
		if used+o.size <= capacity {
			s.in[o.key] = true
			used += o.size
		}
	}
	return s
}

// Name implements Policy.
func (s *Static) Name() string { return "static" }

// Access implements Policy.
func (s *Static) Access(_ int, a Access) bool {
	if !s.in[a.Key] {
		return false
	}
	if s.seen[a.Key] {
		return true
	}
	s.seen[a.Key] = true
	return false
}

// Belady evicts the object whose next request is furthest in the future,
// and does not admit an object requested later than everything it holds.
// It must be replayed over the stream it was built for, in order.
type Belady struct {
	capacity, used int64
	next           []int // next[i]: index of the next request of stream[i]'s key, or never
	in             map[uint64]*bEntry
	h              bHeap
}

const never = int(^uint(0) >> 1)

type bEntry struct {
	key   uint64
	size  int64
	next  int
	index int
}

// NewBelady returns Belady's policy of capacity bytes for stream.
func NewBelady(capacity int64, stream []Access) *Belady {
	next := make([]int, len(stream))
	last := make(map[uint64]int)
	for i := len(stream) - 1; i >= 0; i-- {
		if j, ok := last[stream[i].Key]; ok {
			next[i] = j
		} else {
			next[i] = never
		}
		last[stream[i].Key] = i
	}
	return &Belady{capacity: capacity, next: next, in: make(map[uint64]*bEntry)}
}

// Name implements Policy.
func (b *Belady) Name() string { return "belady" }

// Access implements Policy.
func (b *Belady) Access(i int, a Access) bool {
	if e, ok := b.in[a.Key]; ok {
		e.next = b.next[i]
		heap.Fix(&b.h, e.index)
		return true
	}
	if b.next[i] == never || a.Size > b.capacity {
		return false
	}
	e := &bEntry{key: a.Key, size: a.Size, next: b.next[i]}
	heap.Push(&b.h, e)
	b.in[a.Key] = e
	b.used += a.Size
	for b.used > b.capacity {
		v := heap.Pop(&b.h).(*bEntry)
		delete(b.in, v.key)
		b.used -= v.size
	}
	return false
}

// bHeap is a max-heap on next use.
type bHeap []*bEntry

func (h bHeap) Len() int           { return len(h) }
func (h bHeap) Less(i, j int) bool { return h[i].next > h[j].next }
func (h bHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *bHeap) Push(x any) {
	e := x.(*bEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *bHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
