package cachesim

import (
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/musiccdn/cdn/cache"
	"github.com/musiccdn/cdn/cluster/rendezvous"
	"github.com/musiccdn/cdn/loadtest/workload"
)

// POPConfig is the edge tier of a POP as the model sees it (tier and pop
// packages): Edges edges named edge-1 to edge-N, each owning the tracks
// rendezvous hashing gives it (cluster/rendezvous over the names, key the
// xxhash of the track id, as tier.ClusterRouting at low load). An edge
// serves the tracks it owns from its memory (cache.Memory of EdgeBytes
// with an LRU window) and the others from its hot cache (a cache.Memory of
// HotBytes behind cache.RateAdmission: a chunk is kept once read
// HotMinReads times within about HotWindow), filling hot-cache misses from
// the owner. Prefetch warms, on the first request of a track, the first
// PrefetchSeconds of the next PrefetchTracks hinted tracks at their
// owners, once per PrefetchDedup per edge.
type POPConfig struct {
	Edges             int
	EdgeBytes         int64
	EdgeWindowPercent int
	HotBytes          int64
	HotWindowPercent  int
	HotMinReads       int
	HotWindow         time.Duration
	ChunkSize         int64
	Prefetch          bool
	PrefetchTracks    int
	PrefetchSeconds   int
	PrefetchDedup     time.Duration
	// ShieldBytes is the shield tier's cache (a cache.Memory with the
	// edge's window) in front of the origin, filled by the edges' misses.
	// 0: no shield model (OriginBytes stays 0).
	ShieldBytes int64
	// Allowed reports whether a listener in country may play track (a
	// 403 manifest: the player skips the track). Nil allows everything.
	Allowed func(track int, country string) bool
}

// RunConfig is a load-tool run (or a steady POP) replayed through a POP.
type RunConfig struct {
	Workload workload.Config
	// Compression is simulated seconds per wall-clock second.
	Compression float64
	// Duration is the wall-clock length: sessions arriving later are not
	// generated, requests due later are not sent (as loadtest.Run).
	Duration time.Duration
	// Warmup is the wall-clock time at the start whose requests fill the
	// caches but are not counted. 0 counts everything, as a run does.
	Warmup time.Duration
	POP    POPConfig
}

// POPStats is the outcome of a replay.
type POPStats struct {
	// Requests and Bytes are the players' range requests and their bytes;
	// HitRequests and HitBytes those whose every chunk was in the
	// receiving edge's store: the edge says "hit" in Cache-Status, which
	// is how the load tool's edge_hit_ratio and edge_byte_hit_ratio count.
	Requests, Bytes, HitRequests, HitBytes int64
	// Chunks, ChunkBytes, ChunkHits and ChunkHitBytes count the chunks
	// those requests touched at the receiving edge.
	Chunks, ChunkBytes, ChunkHits, ChunkHitBytes int64
	// OwnerReads and OwnerHits count the chunk reads of the edges' main
	// stores (players' requests at the owner and peer fills from other
	// edges' hot-cache misses): the edges' cache_hits_total and
	// cache_misses_total, whose ratio the load tool reports as
	// edge_chunk_hit_ratio.
	// OwnerWarmHits are the OwnerHits of chunks a request warmed ahead of
	// itself (see warmAhead): hits if the warm finished before the read,
	// misses joining the fill if not; a race the model does not time.
	// OwnerWarmPeerReads are the peer fills of warmed chunks a hot store
	// did not keep: a second owner read if the warm had finished, none
	// (the read joins the fill) if not.
	OwnerReads, OwnerHits, OwnerWarmHits, OwnerWarmPeerReads int64
	// FillBytes are the chunk bytes the edge tier fetched from shields,
	// for players and prefetch; PrefetchFillBytes the prefetch share.
	FillBytes, PrefetchFillBytes int64
	// OriginBytes are the fills the shield missed (with ShieldBytes).
	OriginBytes int64
	// PlayedBytes is the audio the counted plays played, at their tier:
	// Bytes/PlayedBytes is the players' over-fetch.
	PlayedBytes int64
	// Plays is the number of tracks started (allowed by rights);
	// PlayedSeconds the audio they played, cut at Duration.
	Plays         int64
	PlayedSeconds float64
	// SimSeconds is the counted wall-clock time (Duration - Warmup).
	SimSeconds float64
}

// Add sums two replays' counts (ratios of the sum are pooled ratios).
func (s POPStats) Add(o POPStats) POPStats {
	s.Requests += o.Requests
	s.Bytes += o.Bytes
	s.HitRequests += o.HitRequests
	s.HitBytes += o.HitBytes
	s.Chunks += o.Chunks
	s.ChunkBytes += o.ChunkBytes
	s.ChunkHits += o.ChunkHits
	s.ChunkHitBytes += o.ChunkHitBytes
	s.OwnerReads += o.OwnerReads
	s.OwnerHits += o.OwnerHits
	s.OwnerWarmHits += o.OwnerWarmHits
	s.OwnerWarmPeerReads += o.OwnerWarmPeerReads
	s.FillBytes += o.FillBytes
	s.PrefetchFillBytes += o.PrefetchFillBytes
	s.OriginBytes += o.OriginBytes
	s.PlayedBytes += o.PlayedBytes
	s.Plays += o.Plays
	s.PlayedSeconds += o.PlayedSeconds
	s.SimSeconds += o.SimSeconds
	return s
}

// ByteHitRatio is HitBytes/Bytes: the load tool's edge_byte_hit_ratio.
func (s POPStats) ByteHitRatio() float64 { return ratio(s.HitBytes, s.Bytes) }

// HitRatio is HitRequests/Requests: the load tool's edge_hit_ratio.
func (s POPStats) HitRatio() float64 { return ratio(s.HitRequests, s.Requests) }

// ChunkByteHitRatio is the share of the chunk bytes requests touched that
// the receiving edge held.
func (s POPStats) ChunkByteHitRatio() float64 { return ratio(s.ChunkHitBytes, s.ChunkBytes) }

// OwnerHitRatio is the load tool's edge_chunk_hit_ratio (from the edges'
// metrics) between its bounds: every warmed-ahead chunk read as a miss
// (min) or as a hit (max).
func (s POPStats) OwnerHitRatio() (min, max float64) {
	return ratio(s.OwnerHits-s.OwnerWarmHits, s.OwnerReads-s.OwnerWarmPeerReads), ratio(s.OwnerHits, s.OwnerReads)
}

// Offload is 1 - FillBytes/Bytes: the load tool's edge_offload.
func (s POPStats) Offload() float64 { return 1 - float64(s.FillBytes)/float64(max(s.Bytes, 1)) }

func ratio(a, b int64) float64 { return float64(a) / float64(max(b, 1)) }

// ReplayRun generates the run's sessions (the same Generator, so the same
// requests for the same workload), puts every request on the wall clock
// and replays them in order through the POP model.
func ReplayRun(cfg RunConfig) (POPStats, error) {
	p := cfg.POP
	switch {
	case p.Edges < 1 || p.EdgeBytes <= 0 || p.ChunkSize <= 0:
		return POPStats{}, fmt.Errorf("cachesim: pop needs edges, edge bytes and chunk size > 0")
	case !(cfg.Compression > 0) || cfg.Duration <= 0 || cfg.Warmup < 0 || cfg.Warmup >= cfg.Duration:
		return POPStats{}, fmt.Errorf("cachesim: run needs compression > 0 and 0 <= warmup < duration")
	}
	g, err := workload.NewGenerator(cfg.Workload)
	if err != nil {
		return POPStats{}, err
	}
	cat := g.Catalog()
	type event struct {
		at   time.Duration
		s    int32 // session index
		p, f int16 // play and fetch index
	}
	var sessions []workload.Session
	var events []event
	var st POPStats
	wall := func(s *workload.Session, at time.Duration) time.Duration {
		return s.Start + time.Duration(float64(at)/cfg.Compression)
	}
	for {
		s := g.Next()
		if s.Start >= cfg.Duration {
			break
		}
		si := int32(len(sessions))
		for pi, pl := range s.Plays {
			due := wall(&s, pl.Start)
			if due >= cfg.Duration {
				break
			}
			if p.Allowed != nil && !p.Allowed(pl.Track, s.Country) {
				continue
			}
			if due >= cfg.Warmup {
				st.Plays++
				sec := (min(wall(&s, pl.Start+pl.Played), cfg.Duration) - due).Seconds() * cfg.Compression
				st.PlayedSeconds += sec
				st.PlayedBytes += int64(sec * float64(s.Kbps) * 125)
			}
			for fi, f := range pl.Fetches {
				at := wall(&s, f.At)
				if at >= cfg.Duration {
					break
				}
				events = append(events, event{at: at, s: si, p: int16(pi), f: int16(fi)})
			}
		}
		sessions = append(sessions, s)
	}
	sort.SliceStable(events, func(i, j int) bool { return events[i].at < events[j].at })

	m, err := newPOPModel(p, func() time.Duration { return 0 })
	if err != nil {
		return POPStats{}, err
	}
	defer m.close()
	var now time.Duration
	m.now = func() time.Duration { return now }
	for _, e := range events {
		now = e.at
		s := &sessions[e.s]
		pl := &s.Plays[e.p]
		f := pl.Fetches[e.f]
		size := cat.Size(pl.Track, s.Kbps)
		counted := e.at >= cfg.Warmup
		recv := int(s.Pick % uint64(p.Edges))
		reads0, hits0, warm0, peer0, fill0, origin0 := m.ownerReads, m.ownerHits, m.ownerWarmHits, m.ownerWarmPeer, m.fillBytes, m.originBytes
		clear(m.warmed)
		allHit := true
		last := (f.Off + f.Len - 1) / p.ChunkSize
		for idx := f.Off / p.ChunkSize; idx <= last; idx++ {
			csize := min(p.ChunkSize, size-idx*p.ChunkSize)
			if allHit && idx < last {
				m.warmAhead(recv, pl.Track, s.Kbps, idx, last, size)
			}
			hit := m.read(recv, pl.Track, s.Kbps, idx, csize, size)
			allHit = allHit && hit
			if counted {
				st.Chunks++
				st.ChunkBytes += csize
				if hit {
					st.ChunkHits++
					st.ChunkHitBytes += csize
				}
			}
		}
		if counted {
			st.Requests++
			st.Bytes += f.Len
			if allHit {
				st.HitRequests++
				st.HitBytes += f.Len
			}
		}
		pf0 := m.fillBytes
		if f.Off/p.ChunkSize == 0 && p.Prefetch {
			m.prefetch(recv, s, pl, cat.Size)
		}
		if counted {
			st.FillBytes += m.fillBytes - fill0
			st.PrefetchFillBytes += m.fillBytes - pf0
			st.OriginBytes += m.originBytes - origin0
			st.OwnerReads += m.ownerReads - reads0
			st.OwnerHits += m.ownerHits - hits0
			st.OwnerWarmHits += m.ownerWarmHits - warm0
			st.OwnerWarmPeerReads += m.ownerWarmPeer - peer0
		}
	}
	st.SimSeconds = (cfg.Duration - cfg.Warmup).Seconds()
	return st, nil
}

// popModel is the edges' stores.
type popModel struct {
	cfg     POPConfig
	ring    *rendezvous.Map
	main    []*Edge
	hot     []*Edge
	sh      *Edge
	admit   []*cache.RateAdmission
	dedup   []map[uint64]time.Duration // per edge: (track, kbps) -> prefetched at
	meta    []map[uint64]bool          // per edge: objects whose metadata the main store holds
	hotMeta []map[uint64]bool          // per edge: objects whose metadata the hot store holds
	// Counters: main-store chunk reads and hits (POPStats.OwnerReads),
	// bytes edges fetched from shields and shields from the origin.
	ownerReads, ownerHits, ownerWarmHits, ownerWarmPeer, fillBytes, originBytes int64
	warmed                                                                      map[uint64]bool // chunks the current request warmed
	now                                                                         func() time.Duration
	epoch                                                                       time.Time
	payload                                                                     []byte
}

func newPOPModel(p POPConfig, now func() time.Duration) (*popModel, error) {
	m := &popModel{cfg: p, now: now, warmed: map[uint64]bool{}, epoch: time.Unix(1_700_000_000, 0), payload: make([]byte, p.ChunkSize)}
	nodes := make([]rendezvous.Node, p.Edges)
	for i := range nodes {
		nodes[i] = rendezvous.Node{ID: "edge-" + strconv.Itoa(i+1)}
	}
	m.ring = rendezvous.New(nodes)
	clock := func() time.Time { return m.epoch.Add(m.now()) }
	if p.ShieldBytes > 0 {
		sh, err := NewEdge(p.ShieldBytes, p.ChunkSize, p.EdgeWindowPercent)
		if err != nil {
			return nil, err
		}
		m.sh = sh
	}
	for range p.Edges {
		e, err := NewEdge(p.EdgeBytes, p.ChunkSize, p.EdgeWindowPercent)
		if err != nil {
			m.close()
			return nil, err
		}
		m.main = append(m.main, e)
		m.dedup = append(m.dedup, map[uint64]time.Duration{})
		m.meta = append(m.meta, map[uint64]bool{})
		m.hotMeta = append(m.hotMeta, map[uint64]bool{})
		if p.Edges > 1 && p.HotBytes > 0 {
			h, err := NewEdge(p.HotBytes, p.ChunkSize, p.HotWindowPercent)
			if err != nil {
				m.close()
				return nil, err
			}
			m.hot = append(m.hot, h)
			m.admit = append(m.admit, cache.NewRateAdmission(p.HotMinReads, p.HotWindow, clock))
		}
	}
	return m, nil
}

func (m *popModel) close() {
	for _, e := range append(m.main, m.hot...) {
		e.Close()
	}
	if m.sh != nil {
		m.sh.Close()
	}
}

func (m *popModel) owner(track int) int {
	return m.ring.Owner(xxhash.Sum64String("t" + strconv.Itoa(track)))
}

// get looks key up in e; on a miss, set stores it (as a fill would).
func (e *Edge) get(key uint64) bool {
	_, ok := e.m.Get(key)
	return ok
}

func (e *Edge) set(key uint64, size int64) {
	e.m.Set(key, e.payload[:min(size, int64(len(e.payload)))])
	e.m.Wait()
}

// read serves chunk idx of (track, kbps) at edge recv: hit is the
// receiving store's answer (what its Cache-Status says), fill the bytes
// fetched from shields. As cache.Store does, a store that does not know
// an object yet fetches its metadata with chunk 0 (kept by a store without
// admission: the owner's), so the owner's first read of chunk 0 counts as
// a hit in its metrics while the response still says miss; and a hot
// store's metadata fetch is a read of chunk 0 at the owner.
func (m *popModel) read(recv, track, kbps int, idx, size, objSize int64) (hit bool) {
	key := ChunkKey(track, kbps, idx)
	obj := uint64(track)<<10 | uint64(kbps)
	o := m.owner(track)
	if o == recv || len(m.hot) == 0 {
		newMeta := m.ownerMeta(o, track, kbps, objSize)
		return m.ownerRead(o, key, size) == 0 && !newMeta && !m.warmed[key]
	}
	newMeta := false
	if !m.hotMeta[recv][obj] {
		m.hotMeta[recv][obj], newMeta = true, true
		m.ownerMeta(o, track, kbps, objSize)
		m.ownerRead(o, ChunkKey(track, kbps, 0), min(m.cfg.ChunkSize, objSize))
	}
	m.admit[recv].Record(key)
	if m.hot[recv].get(key) {
		return !newMeta && !m.warmed[key]
	}
	m.ownerMeta(o, track, kbps, objSize)
	if m.warmed[key] {
		m.ownerWarmPeer++
	}
	m.ownerRead(o, key, size)
	if m.admit[recv].Admit(key) {
		m.hot[recv].set(key, size)
	}
	return false
}

// warmAhead is tier's chunk(): when chunk idx of a request is not in the
// receiving store and the request is all hits so far, the store warms
// idx+1..last (at most 15) before waiting for idx: uncounted fills, so the
// later chunks' reads count as hits in the metrics (the response still
// says miss). A hot store's warm is a peer fill, read at the owner, kept
// if admitted.
func (m *popModel) warmAhead(recv, track, kbps int, idx, last, objSize int64) {
	o := m.owner(track)
	hot := o != recv && len(m.hot) > 0
	store := m.main[o]
	if hot {
		store = m.hot[recv]
	}
	if store.get(ChunkKey(track, kbps, idx)) {
		return
	}
	for j := idx + 1; j <= last && j < idx+16; j++ {
		key := ChunkKey(track, kbps, j)
		size := min(m.cfg.ChunkSize, objSize-j*m.cfg.ChunkSize)
		if store.get(key) {
			continue
		}
		m.warmed[key] = true
		if !hot {
			store.set(key, size)
			m.fill(key, size)
			continue
		}
		m.ownerMeta(o, track, kbps, objSize)
		m.ownerRead(o, key, size)
		if m.admit[recv].Admit(key) {
			store.set(key, size)
		}
	}
}

// ownerMeta makes owner o know (track, kbps), filling chunk 0 with the
// metadata when it did not; it reports whether it did not.
func (m *popModel) ownerMeta(o, track, kbps int, objSize int64) bool {
	obj := uint64(track)<<10 | uint64(kbps)
	if m.meta[o][obj] {
		return false
	}
	m.meta[o][obj] = true
	key := ChunkKey(track, kbps, 0)
	size := min(m.cfg.ChunkSize, objSize)
	m.main[o].set(key, size)
	m.fill(key, size)
	return true
}

// ownerRead is a counted read of key at owner o, filled on a miss; it
// returns the bytes filled.
func (m *popModel) ownerRead(o int, key uint64, size int64) int64 {
	m.ownerReads++
	if m.main[o].get(key) {
		m.ownerHits++
		if m.warmed[key] {
			m.ownerWarmHits++
		}
		return 0
	}
	m.main[o].set(key, size)
	m.fill(key, size)
	return size
}

// fill counts an edge fill of key from the shields, and the shield's
// fetch from the origin when it misses.
func (m *popModel) fill(key uint64, size int64) {
	m.fillBytes += size
	m.originBytes += m.shield(size, key)
}

// shield passes an edge fill of fill bytes (0: none) of key to the shield
// and returns the bytes the shield fetched from the origin.
func (m *popModel) shield(fill int64, key uint64) int64 {
	if fill == 0 || m.sh == nil {
		return 0
	}
	if m.sh.get(key) {
		return 0
	}
	m.sh.set(key, fill)
	return fill
}

// prefetch warms the next tracks of pl for edge recv, as tier's
// prefetcher does: at an owner, metadata (with chunk 0) and Warm of the
// next chunks, uncounted; elsewhere a range request to the owner, whose
// chunk reads its metrics count.
func (m *popModel) prefetch(recv int, s *workload.Session, pl *workload.Play, sizeOf func(int, int) int64) {
	n := 0
	for _, t := range pl.Next {
		if n == m.cfg.PrefetchTracks {
			break
		}
		if t == pl.Track || (m.cfg.Allowed != nil && !m.cfg.Allowed(t, s.Country)) {
			continue
		}
		n++
		k := uint64(t)<<10 | uint64(s.Kbps)
		if at, ok := m.dedup[recv][k]; ok && m.now()-at < m.cfg.PrefetchDedup {
			continue
		}
		m.dedup[recv][k] = m.now()
		size := sizeOf(t, s.Kbps)
		chunks := max(1, (int64(m.cfg.PrefetchSeconds)*int64(s.Kbps)*125+m.cfg.ChunkSize-1)/m.cfg.ChunkSize)
		o := m.owner(t)
		m.ownerMeta(o, t, s.Kbps, size)
		for idx := int64(0); idx < chunks && idx*m.cfg.ChunkSize < size; idx++ {
			key := ChunkKey(t, s.Kbps, idx)
			csize := min(m.cfg.ChunkSize, size-idx*m.cfg.ChunkSize)
			if o != recv && len(m.hot) > 0 {
				m.ownerRead(o, key, csize)
				continue
			}
			if idx > 0 && !m.main[o].get(key) {
				m.main[o].set(key, csize)
				m.fill(key, csize)
			}
		}
	}
}
