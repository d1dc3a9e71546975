// Package cache is the chunk store shared by the edge and the shield. Each
// file of a (track, tier) is cut into fixed-size chunks; chunks live in a
// ristretto memory cache whose cost is their size in bytes, under a key
// that hashes the object, its ETag and the chunk index, so two versions of
// a file can never be stitched into one response. Small per-object
// metadata (size, ETag, Last-Modified) is kept beside the chunks.
//
// A miss fetches exactly the missing chunk, aligned to chunk boundaries,
// from a Fetcher (the next tier up). Concurrent misses of one chunk are
// collapsed into one upstream request whose result, or error, wakes every
// waiter. Metadata is revalidated with a conditional request after a TTL;
// when the upstream fails then, the cached version keeps being served
// (stale-if-error) and Stats.StaleServed counts it.
//
// The caller's loop for one request is:
//
//	m, st, err := s.Meta(ctx, ref)          // size and validators
//	for idx := first; idx <= last; idx++ { // chunks the range covers
//		data, hit, err := s.Chunk(ctx, ref, m, idx)
//		// write data[lo:hi]
//	}
//
// and, when Chunk returns ErrChanged, the object changed upstream while it
// was being read: start again from Meta, or abort if bytes have gone out.
package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/musiccdn/cdn/config"
)

// Config configures a Store. A zero ChunkSize, MemoryBytes, MaxObjects,
// MetaTTL, StaleRetry or FillTimeout means its default (New fills it in); a
// zero WindowPercent, DiskBytes or NegativeTTL means none of it (no window,
// no disk tier, no negative caching), so start from DefaultConfig.
type Config struct {
	// ChunkSize is the size of a chunk in bytes, a power of two from 4 KiB
	// to 4 MiB. Default 256 KiB: see DefaultChunkSize.
	ChunkSize config.Size `yaml:"chunk_size"`
	// MemoryBytes is the memory budget for chunk bytes. Default 1 GiB.
	MemoryBytes config.Size `yaml:"memory_bytes"`
	// MaxObjects bounds the number of objects whose metadata is kept.
	// Default 1 << 20 (about 150 MB of metadata at most).
	MaxObjects int `yaml:"max_objects"`
	// MetaTTL is how long metadata is trusted before it is revalidated
	// with a conditional request upstream. Audio files are immutable per
	// ETag; the TTL bounds how long a re-delivered file takes to show.
	// Default 5 minutes.
	MetaTTL config.Duration `yaml:"meta_ttl"`
	// StaleRetry is how long, after a failed revalidation, the stale
	// metadata is served before the upstream is asked again. Default 10 s.
	StaleRetry config.Duration `yaml:"stale_retry"`
	// WindowPercent is the share of MemoryBytes kept as an LRU window in
	// front of ristretto (see Memory), 0 to 50; 0 means no window (plain
	// ristretto), not the default. Default DefaultWindowPercent (25).
	WindowPercent int `yaml:"window_percent"`
	// DiskDir is a directory for a disk tier under the memory (a shield's
	// larger cache, kept across restarts). Empty: memory only (default).
	DiskDir string `yaml:"disk_dir"`
	// DiskBytes is the disk tier's budget. Default 0; required with
	// DiskDir.
	DiskBytes config.Size `yaml:"disk_bytes"`
	// FillTimeout bounds one upstream fill, whoever waits for it: a fill is
	// not cancelled when the request that started it goes away, because
	// others may be waiting. Default 10 s.
	FillTimeout config.Duration `yaml:"fill_timeout"`
	// NegativeTTL is how long an object the upstream answered 404 for
	// is answered "not found" from memory, without asking again: requests
	// for a missing file (a track withdrawn, a tier without a seek table)
	// cost one upstream request per TTL, collapsed like any miss. Only
	// 404 is cached, never an error (5xx, timeouts). Negative entries
	// count against MaxObjects. 0 disables it (unlike the fields above,
	// zero is not replaced by the default). Default 10 s.
	NegativeTTL config.Duration `yaml:"negative_ttl"`
}

// DefaultChunkSize is 256 KiB, chosen with BenchmarkChunkSize: a cold
// start of the first 10 s of a 160 kbps track (200 KB) costs 13, 4, 1 and 1
// upstream fetches at 16, 64, 256 and 1024 KiB chunks, and fetches 1.07,
// 1.31, 1.31 and 5.24 times the bytes it needs; the hit path's cost for a
// 64 KiB read does not depend on the chunk size beyond noise. 256 KiB is
// the smallest chunk that starts a track in one round trip, without the
// 1 MiB chunk's fivefold over-fetch for listeners who skip (it is about
// 6.5 s of audio at 320 kbps, 87 s at 24 kbps). nginx's slice module is
// commonly run at the same size, which keeps bench/vs-nginx.sh fair.
const DefaultChunkSize = 256 << 10

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		ChunkSize:     DefaultChunkSize,
		MemoryBytes:   1 << 30,
		MaxObjects:    1 << 20,
		WindowPercent: DefaultWindowPercent,
		MetaTTL:       config.Duration(5 * time.Minute),
		StaleRetry:    config.Duration(10 * time.Second),
		FillTimeout:   config.Duration(10 * time.Second),
		NegativeTTL:   config.Duration(10 * time.Second),
	}
}

// Validate reports every invalid field, named by its YAML key.
func (c Config) Validate() error {
	var errs config.Errors
	if c.ChunkSize < 4<<10 || c.ChunkSize > 4<<20 || c.ChunkSize&(c.ChunkSize-1) != 0 {
		errs.Add("chunk_size", "%v is not a power of two from 4KiB to 4MiB", c.ChunkSize)
	}
	if c.MemoryBytes < c.ChunkSize {
		errs.Add("memory_bytes", "%v is less than one chunk", c.MemoryBytes)
	}
	if c.MaxObjects < 1 {
		errs.Add("max_objects", "must be positive")
	}
	if c.DiskDir != "" && c.DiskBytes < c.ChunkSize {
		errs.Add("disk_bytes", "a disk tier needs a budget of at least one chunk")
	}
	if c.WindowPercent < 0 || c.WindowPercent > 50 {
		errs.Add("window_percent", "must be from 0 to 50")
	}
	for _, d := range []struct {
		name string
		v    config.Duration
	}{{"meta_ttl", c.MetaTTL}, {"stale_retry", c.StaleRetry}, {"fill_timeout", c.FillTimeout}} {
		if d.v <= 0 {
			errs.Add(d.name, "must be positive")
		}
	}
	if c.NegativeTTL < 0 {
		errs.Add("negative_ttl", "must not be negative")
	}
	return errs.Err()
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.ChunkSize == 0 {
		c.ChunkSize = d.ChunkSize
	}
	if c.MemoryBytes == 0 {
		c.MemoryBytes = d.MemoryBytes
	}
	if c.MaxObjects == 0 {
		c.MaxObjects = d.MaxObjects
	}
	if c.MetaTTL == 0 {
		c.MetaTTL = d.MetaTTL
	}
	if c.StaleRetry == 0 {
		c.StaleRetry = d.StaleRetry
	}
	if c.FillTimeout == 0 {
		c.FillTimeout = d.FillTimeout
	}
	return c
}

// Ref names an object. Name is "<track>/<kbps>.<ext>", the path of the
// object below the upstream's /media/; Key is ObjectKey(Name). Name is only
// read during the call, and only converted to a string on a miss, so the
// caller may pass a slice of its request buffer.
type Ref struct {
	Key  uint64
	Name []byte
}

// ObjectKey is the key of the object named name.
func ObjectKey(name []byte) uint64 { return xxhash.Sum64(name) }

// Meta is one version of an object's metadata. It is immutable.
type Meta struct {
	Size         int64
	ETag         string // strong, quoted
	LastModified time.Time
	// LastModifiedHTTP is LastModified as an IMF-fixdate, formatted once.
	LastModifiedHTTP string
	ContentType      string

	etagKey uint64
	checked time.Time // when last confirmed upstream
	retry   time.Time // after a failed revalidation: ask again at
	stale   bool      // last revalidation failed
	missing bool      // a negative entry: the upstream said 404 at checked
}

// Chunks is the number of chunks of the object at chunk size cs.
func (m *Meta) Chunks(cs int64) int64 { return (m.Size + cs - 1) / cs }

// NewMeta makes metadata for a fetched response.
func NewMeta(size int64, etag string, lastModified time.Time, contentType string) Meta {
	return Meta{
		Size:             size,
		ETag:             etag,
		LastModified:     lastModified,
		LastModifiedHTTP: lastModified.UTC().Format(httpTimeFormat),
		ContentType:      contentType,
		etagKey:          xxhash.Sum64String(etag),
	}
}

const httpTimeFormat = "Mon, 02 Jan 2006 15:04:05 GMT"

// Fetcher is the next tier up. Implementations must be safe for
// concurrent use and honour ctx.
type Fetcher interface {
	// Fetch returns bytes [off, off+n) of the object (fewer at its end)
	// and the metadata of the version they belong to. A missing object is
	// ErrNotFound. An offset at or past the end returns the metadata and
	// no bytes.
	Fetch(ctx context.Context, name string, off, n int64) (Meta, []byte, error)
	// Revalidate asks whether etag is still current. It returns
	// notModified, or the new metadata; with etag "" it returns the
	// current metadata (a store with admission learns metadata so).
	Revalidate(ctx context.Context, name, etag string) (m Meta, notModified bool, err error)
}

// MetaFetcher is implemented by a Fetcher that can learn an object's
// metadata while telling the upstream which bytes [off, off+n) the caller
// will ask for next (a HEAD with that Range): an upstream cache then
// fills that chunk with the metadata instead of chunk 0. A store with
// admission, which learns metadata without keeping a chunk, uses it when
// its Fetcher has it (Revalidate with etag "" otherwise).
type MetaFetcher interface {
	FetchMeta(ctx context.Context, name string, off, n int64) (Meta, error)
}

// Errors callers branch on.
var (
	// ErrNotFound is returned when the upstream has no such object.
	ErrNotFound = errors.New("cache: not found")
	// ErrChanged means the object's ETag changed upstream while a
	// response was being assembled from the previous version.
	ErrChanged = errors.New("cache: object changed upstream")
)

// Status tells where metadata came from.
type Status int

const (
	// Hit means cached and fresh.
	Hit Status = iota
	// Miss means fetched upstream now.
	Miss
	// Stale means cached, revalidation failed, served anyway.
	Stale
)

// Stats are the store's counters, read with atomic loads.
type Stats struct {
	Hits          atomic.Int64 // chunk reads served without a fill: from memory or the disk tier
	Misses        atomic.Int64 // chunk reads that needed a fill
	Fills         atomic.Int64 // upstream chunk fetches started
	FillErrors    atomic.Int64 // upstream fetches that failed
	Collapsed     atomic.Int64 // chunk or metadata reads that joined a fill in flight
	Revalidations atomic.Int64 // conditional requests upstream
	StaleServed   atomic.Int64 // responses served stale after a failed revalidation
	Invalidations atomic.Int64 // versions dropped because the ETag changed
	NegativeHits  atomic.Int64 // Meta calls answered ErrNotFound from a negative entry
	Purged        atomic.Int64 // objects dropped by Purge
	Discarded     atomic.Int64 // fills whose result was discarded because their object was purged meanwhile
	WarmMetas     atomic.Int64 // metadata loaded from the disk tier instead of upstream
}

// Store is a chunk cache in front of a Fetcher. It is safe for concurrent
// use.
type Store struct {
	cfg    Config
	up     Fetcher
	now    func() time.Time
	chunks *Memory
	disk   *Disk // nil: memory only
	flight group

	// Stats is updated atomically by the store.
	Stats Stats

	metas [metaShards]metaShard
	// purges counts Purge calls; a fill records it when it starts, and
	// before installing what it fetched, checks whether its object was
	// purged since (metaShard.purged).
	purges atomic.Uint64

	admit Admission // nil: keep every filled chunk

	// publishHook, when set (tests only), runs each time metadata is
	// installed, in the installing goroutine.
	publishHook func(objKey uint64, m *Meta)
}

// Option configures a Store beyond its Config.
type Option func(*Store)

// WithAdmission makes the store keep only the filled chunks a admits; the
// others are handed to their waiters and dropped.
func WithAdmission(a Admission) Option { return func(s *Store) { s.admit = a } }

const metaShards = 64

type metaShard struct {
	mu sync.RWMutex
	m  map[uint64]*Meta
	// purged maps an object purged recently to the value of Store.purges
	// its purge made, and when. An entry outlives every fill that may
	// have started before it (2 x FillTimeout), then is pruned.
	purged  map[uint64]purgeMark
	pruneAt int // prune purged when it reaches this size
}

type purgeMark struct {
	gen uint64
	at  time.Time
}

// New returns a store over up. now is the clock (time.Now if nil).
func New(cfg Config, up Fetcher, now func() time.Time, opts ...Option) (*Store, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	c, err := NewMemory(int64(cfg.MemoryBytes), int64(cfg.MemoryBytes)*int64(cfg.WindowPercent)/100, int64(cfg.ChunkSize))
	if err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, up: up, now: now, chunks: c}
	if cfg.DiskDir != "" {
		if s.disk, err = OpenDisk(cfg.DiskDir, int64(cfg.DiskBytes)); err != nil {
			c.Close()
			return nil, err
		}
	}
	for _, o := range opts {
		o(s)
	}
	s.flight.m = make(map[uint64]*call)
	for i := range s.metas {
		s.metas[i].m = make(map[uint64]*Meta)
		s.metas[i].purged = make(map[uint64]purgeMark)
	}
	return s, nil
}

// ChunkSize is the configured chunk size.
func (s *Store) ChunkSize() int64 { return int64(s.cfg.ChunkSize) }

// Close releases the memory cache and finishes the disk tier's writes.
// Safe to call twice.
func (s *Store) Close() {
	s.chunks.Close()
	if s.disk != nil {
		s.disk.Close()
	}
}

// Disk is the store's disk tier, or nil.
func (s *Store) Disk() *Disk { return s.disk }

// Wait blocks until buffered cache writes are applied (for tests).
func (s *Store) Wait() { s.chunks.Wait() }

// Meta returns the current metadata of ref, fetching it (with the first
// chunk) on a miss and revalidating it after the TTL. The result must not
// be modified.
func (s *Store) Meta(ctx context.Context, ref Ref) (*Meta, Status, error) {
	return s.MetaAt(ctx, ref, 0)
}

// MetaAt is Meta for a request that wants the bytes from offset off
// first: on a miss, the metadata comes with the chunk holding off (its
// Content-Range gives the size, its ETag the version), so a cold seek
// costs one round trip upstream, not chunk 0 and then the wanted one. An
// offset past the end costs one request too (the upstream's 416 gives the
// size). off is a hint; a negative one means 0.
func (s *Store) MetaAt(ctx context.Context, ref Ref, off int64) (*Meta, Status, error) {
	if m := s.heldMeta(ref.Key); m != nil {
		now := s.now()
		if m.missing {
			if now.Sub(m.checked) < time.Duration(s.cfg.NegativeTTL) {
				s.Stats.NegativeHits.Add(1)
				return nil, Hit, ErrNotFound
			}
			return s.fetchMeta(ctx, ref, off)
		}
		if now.Sub(m.checked) < time.Duration(s.cfg.MetaTTL) {
			if m.stale {
				s.Stats.StaleServed.Add(1)
				return m, Stale, nil
			}
			return m, Hit, nil
		}
		if m.stale && now.Before(m.retry) {
			s.Stats.StaleServed.Add(1)
			return m, Stale, nil
		}
		return s.revalidate(ctx, ref, m)
	}
	return s.fetchMeta(ctx, ref, off)
}

// CachedMeta returns the metadata of ref if the store holds it (in memory
// or on disk), fresh or not, without asking upstream; a negative entry is
// not held.
func (s *Store) CachedMeta(ref Ref) (*Meta, bool) {
	m := s.heldMeta(ref.Key)
	if m == nil || m.missing {
		return nil, false
	}
	return m, true
}

// Chunk returns chunk idx of the version m of ref. hit reports whether it
// came from the cache (memory or the disk tier) without a fill. The returned slice is shared: callers must not modify
// it.
func (s *Store) Chunk(ctx context.Context, ref Ref, m *Meta, idx int64) (data []byte, hit bool, err error) {
	key := chunkKey(ref.Key, m.etagKey, idx)
	if s.admit != nil {
		s.admit.Record(key)
	}
	if b, ok := s.chunks.Get(key); ok {
		s.Stats.Hits.Add(1)
		return b, true, nil
	}
	if s.disk != nil {
		if b, ok := s.disk.Get(key); ok {
			// Back in memory: the next reads are memory hits.
			s.disk.Touch(diskMetaKey(ref.Key))
			s.chunks.Set(key, b)
			s.Stats.Hits.Add(1)
			return b, true, nil
		}
	}
	s.Stats.Misses.Add(1)
	c, joined := s.startFill(ref, m, idx, key)
	if joined {
		s.Stats.Collapsed.Add(1)
	}
	b, err := c.wait(ctx)
	return b, false, err
}

// Cached reports whether chunk idx of version m is in memory or on the
// disk tier, without counting a hit or a miss.
func (s *Store) Cached(ref Ref, m *Meta, idx int64) bool {
	key := chunkKey(ref.Key, m.etagKey, idx)
	if _, ok := s.chunks.Get(key); ok {
		return true
	}
	return s.disk != nil && s.disk.Has(key)
}

// Warm starts filling chunk idx of version m if it is not in memory and
// not already being filled, and returns at once. A request that covers
// several chunks warms the later ones before it waits for the first, so
// their fills overlap.
func (s *Store) Warm(ref Ref, m *Meta, idx int64) {
	key := chunkKey(ref.Key, m.etagKey, idx)
	if _, ok := s.chunks.Get(key); ok {
		return
	}
	if s.disk != nil && s.disk.Has(key) {
		return
	}
	s.startFill(ref, m, idx, key)
}

// startFill returns the fill in flight for key, starting one if there is
// none; joined reports whether it was already in flight.
func (s *Store) startFill(ref Ref, m *Meta, idx int64, key uint64) (c *call, joined bool) {
	c, leader := s.flight.join(key)
	if !leader {
		return c, true
	}
	name := string(ref.Name)
	gen := s.purges.Load()
	go func() {
		data, err := s.fill(ref.Key, gen, name, m, idx, key)
		c.data, c.err = data, err
		s.flight.finish(key, c)
	}()
	return c, false
}

func (s *Store) fill(objKey, gen uint64, name string, m *Meta, idx int64, key uint64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(s.cfg.FillTimeout))
	defer cancel()
	s.Stats.Fills.Add(1)
	cs := int64(s.cfg.ChunkSize)
	off := idx * cs
	got, data, err := s.up.Fetch(ctx, name, off, cs)
	if err == nil && got.ETag != m.ETag {
		// The object changed upstream: these bytes belong to another
		// version. Adopt it so later requests use it, and make this
		// request's caller start again from the new metadata.
		nm := got
		nm.checked = s.now()
		s.replaceMetaGen(objKey, gen, &nm)
		err = ErrChanged
	} else if err == nil && int64(len(data)) != min(cs, m.Size-off) {
		err = fmt.Errorf("cache: fill of %s chunk %d: got %d bytes, want %d", name, idx, len(data), min(cs, m.Size-off))
	}
	if err != nil {
		s.Stats.FillErrors.Add(1)
		return nil, err
	}
	if s.admit != nil && !s.admit.Admit(key) {
		if !s.unpurged(objKey, gen, nil) {
			return nil, s.discarded()
		}
		return data, nil
	}
	// The chunk is in the window, visible, before the fill leaves the
	// flight group, so a request arriving just after does not fetch it
	// again.
	if !s.unpurged(objKey, gen, func() { s.setChunk(key, data) }) {
		return nil, s.discarded()
	}
	if s.disk != nil {
		s.disk.Touch(diskMetaKey(objKey))
	}
	return data, nil
}

// setChunk stores a chunk in memory and on disk.
func (s *Store) setChunk(key uint64, data []byte) {
	s.chunks.Set(key, data)
	if s.cfg.WindowPercent == 0 {
		s.chunks.Wait()
	}
	if s.disk != nil {
		s.disk.Set(key, data)
	}
}

// errPurged is a fill's error when its object was purged while it was in
// flight: its bytes may be the purged version, so they are neither kept
// nor handed to the waiters, who start again from Meta.
var errPurged = fmt.Errorf("cache: purged during the fill: %w", ErrChanged)

func (s *Store) discarded() error {
	s.Stats.Discarded.Add(1)
	return errPurged
}

// unpurged runs install (if not nil) and returns true unless the object
// was purged after the fill that recorded gen started. install runs
// under the shard's read lock, so a Purge either happens before it (and
// the fill is discarded) or after it (and drops what it installed).
func (s *Store) unpurged(objKey, gen uint64, install func()) bool {
	sh := &s.metas[objKey%metaShards]
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if s.purges.Load() != gen {
		if p, ok := sh.purged[objKey]; ok && p.gen > gen {
			return false
		}
	}
	if install != nil {
		install()
	}
	return true
}

// fetchMeta fetches an object's metadata together with the chunk holding
// off (the first a request wants), collapsed per object.
func (s *Store) fetchMeta(ctx context.Context, ref Ref, off int64) (*Meta, Status, error) {
	m, err := s.metaFlight(ctx, mix(ref.Key^metaSalt), ref, func(name string, gen uint64) (*Meta, error) {
		return s.fillMeta(ref.Key, gen, name, off)
	})
	return m, Miss, err
}

// metaFlight runs fill (in its own goroutine, so that it outlives a
// caller that gives up) once for all callers that ask under key at the
// same time, and waits for its metadata.
func (s *Store) metaFlight(ctx context.Context, key uint64, ref Ref, fill func(name string, gen uint64) (*Meta, error)) (*Meta, error) {
	c, leader := s.flight.join(key)
	if !leader {
		s.Stats.Collapsed.Add(1)
	} else {
		name := string(ref.Name)
		gen := s.purges.Load()
		go func() {
			c.meta, c.err = fill(name, gen)
			s.flight.finish(key, c)
		}()
	}
	if _, err := c.wait(ctx); err != nil {
		return nil, err
	}
	return c.meta, nil
}

func (s *Store) fillMeta(objKey, gen uint64, name string, off int64) (*Meta, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(s.cfg.FillTimeout))
	defer cancel()
	s.Stats.Fills.Add(1)
	if s.admit != nil {
		// A store with admission must not keep chunk 0 of every object
		// it is asked about: it learns the metadata alone, and chunk 0
		// goes through admission like any other.
		var got Meta
		var err error
		if mf, ok := s.up.(MetaFetcher); ok {
			cs := int64(s.cfg.ChunkSize)
			got, err = mf.FetchMeta(ctx, name, max(off, 0)/cs*cs, cs)
		} else {
			got, _, err = s.up.Revalidate(ctx, name, "")
		}
		if err != nil {
			s.Stats.FillErrors.Add(1)
			s.notFound(objKey, gen, err)
			return nil, err
		}
		m := got
		m.checked = s.now()
		if !s.replaceMetaGen(objKey, gen, &m) {
			return nil, s.discarded()
		}
		return &m, nil
	}
	cs := int64(s.cfg.ChunkSize)
	idx := max(off, 0) / cs
	got, data, err := s.up.Fetch(ctx, name, idx*cs, cs)
	if want := min(cs, max(got.Size-idx*cs, 0)); err == nil && int64(len(data)) != want {
		err = fmt.Errorf("cache: fill of %s chunk %d: got %d bytes, want %d", name, idx, len(data), want)
	}
	if err != nil {
		s.Stats.FillErrors.Add(1)
		s.notFound(objKey, gen, err)
		return nil, err
	}
	m := got
	m.checked = s.now()
	m.etagKey = xxhash.Sum64String(m.ETag)
	// The chunk goes into the cache before the metadata is published:
	// a request that finds the metadata then finds the chunk too, and
	// does not fetch it again under the chunk's own flight key (issue
	// 12: the origin saw chunk 0 twice when the metadata went first).
	// Both steps are discarded if the object was purged meanwhile.
	if len(data) > 0 {
		install := func() { s.setChunk(chunkKey(objKey, m.etagKey, idx), data) }
		if !s.unpurged(objKey, gen, install) {
			return nil, s.discarded()
		}
	}
	if !s.replaceMetaGen(objKey, gen, &m) {
		return nil, s.discarded()
	}
	return &m, nil
}

// revalidate asks the upstream whether m is still current; collapsed per
// object. On an upstream error the stale version is served and the
// upstream is asked again after StaleRetry.
func (s *Store) revalidate(ctx context.Context, ref Ref, m *Meta) (*Meta, Status, error) {
	nm, err := s.metaFlight(ctx, mix(ref.Key^revalSalt), ref, func(name string, gen uint64) (*Meta, error) {
		return s.fillRevalidate(ref.Key, gen, name, m)
	})
	if err != nil {
		return nil, Miss, err
	}
	if nm.stale {
		s.Stats.StaleServed.Add(1)
		return nm, Stale, nil
	}
	return nm, Hit, nil
}

func (s *Store) fillRevalidate(objKey, gen uint64, name string, m *Meta) (*Meta, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(s.cfg.FillTimeout))
	defer cancel()
	s.Stats.Revalidations.Add(1)
	got, notModified, err := s.up.Revalidate(ctx, name, m.ETag)
	now := s.now()
	switch {
	case errors.Is(err, ErrNotFound):
		// Withdrawn upstream: forget it, so it is not served any more.
		s.dropMeta(objKey, m)
		s.notFound(objKey, gen, err)
		return nil, err
	}
	var nm Meta
	switch {
	case err != nil:
		nm = *m
		nm.stale, nm.retry = true, now.Add(time.Duration(s.cfg.StaleRetry))
	case notModified || got.ETag == m.ETag:
		nm = *m
		nm.checked, nm.stale = now, false
	default:
		nm = got
		nm.checked = now
	}
	if !s.replaceMetaGen(objKey, gen, &nm) {
		return nil, s.discarded()
	}
	return &nm, nil
}

// replaceMetaGen installs nm as the current metadata of the object, as
// replaceMeta, unless the object was purged after the fill that recorded
// gen started; it reports whether it did.
func (s *Store) replaceMetaGen(objKey, gen uint64, nm *Meta) bool {
	nm.etagKey = xxhash.Sum64String(nm.ETag)
	sh := &s.metas[objKey%metaShards]
	sh.mu.Lock()
	if s.purges.Load() != gen {
		if p, ok := sh.purged[objKey]; ok && p.gen > gen {
			sh.mu.Unlock()
			return false
		}
	}
	s.replaceMetaLocked(sh, objKey, nm)
	return true
}

// replaceMeta installs nm as the current metadata of the object and, when
// it replaces a different version, drops that version's chunks. With a
// disk tier the metadata is written there too, so a restarted node
// serves the chunks it holds without asking upstream.
func (s *Store) replaceMeta(objKey uint64, nm *Meta) {
	nm.etagKey = xxhash.Sum64String(nm.ETag)
	sh := &s.metas[objKey%metaShards]
	sh.mu.Lock()
	s.replaceMetaLocked(sh, objKey, nm)
}

// replaceMetaLocked is replaceMeta with sh locked; it unlocks it.
func (s *Store) replaceMetaLocked(sh *metaShard, objKey uint64, nm *Meta) {
	old := sh.m[objKey]
	if old == nil && len(sh.m) >= max(1, s.cfg.MaxObjects/metaShards) {
		// Evict an arbitrary entry; its chunks age out of the memory
		// cache on their own.
		for k := range sh.m {
			delete(sh.m, k)
			break
		}
	}
	sh.m[objKey] = nm
	if s.disk != nil && !nm.missing {
		// Under the lock, so a Purge (which flushes the disk writes
		// queued before it) always comes after this write.
		s.disk.Put(diskMetaKey(objKey), encodeMeta(nm))
	}
	sh.mu.Unlock()
	if s.publishHook != nil {
		s.publishHook(objKey, nm)
	}
	if old != nil && !old.missing && !nm.missing && old.etagKey != nm.etagKey {
		s.Stats.Invalidations.Add(1)
		s.dropChunks(objKey, old)
	}
}

// notFound installs a negative entry for the object when err is
// ErrNotFound (never for another error: a failing upstream must be asked
// again at once) and negative caching is on.
func (s *Store) notFound(objKey, gen uint64, err error) {
	if s.cfg.NegativeTTL <= 0 || !errors.Is(err, ErrNotFound) {
		return
	}
	s.replaceMetaGen(objKey, gen, &Meta{missing: true, checked: s.now()})
}

func (s *Store) dropMeta(objKey uint64, m *Meta) {
	sh := &s.metas[objKey%metaShards]
	sh.mu.Lock()
	if sh.m[objKey] == m {
		delete(sh.m, objKey)
		if s.disk != nil {
			s.disk.Del(diskMetaKey(objKey))
		}
	}
	sh.mu.Unlock()
	s.dropChunks(objKey, m)
}

// Purge drops every version of the objects named: metadata (negative
// entries too), chunks in memory and on disk, metadata on disk. A fill of
// one of them in flight keeps nothing and gives its waiters ErrChanged
// instead of its bytes, so they start again from Meta. Once Purge
// returns, no read of the store returns a byte it held of them before:
// the next read fills anew from upstream. It costs a disk flush (the
// writes queued before it) and one delete per chunk held.
func (s *Store) Purge(names ...[]byte) {
	now := s.now()
	var dropped []*Meta
	keys := make([]uint64, 0, len(names))
	for _, name := range names {
		objKey := ObjectKey(name)
		keys = append(keys, objKey)
		sh := &s.metas[objKey%metaShards]
		sh.mu.Lock()
		sh.purged[objKey] = purgeMark{gen: s.purges.Add(1), at: now}
		s.prunePurgedLocked(sh, now)
		m := sh.m[objKey]
		delete(sh.m, objKey)
		sh.mu.Unlock()
		if m != nil && !m.missing {
			dropped = append(dropped, m)
		} else {
			dropped = append(dropped, nil)
		}
		s.Stats.Purged.Add(1)
	}
	if s.disk != nil {
		// Writes queued before the purge marks (chunks and metadata of
		// fills that installed just before) land first, then go.
		s.disk.Flush()
	}
	for i, objKey := range keys {
		if m := dropped[i]; m != nil {
			s.dropChunks(objKey, m)
		}
		if s.disk == nil {
			continue
		}
		if dm := s.diskMeta(objKey); dm != nil && (dropped[i] == nil || dm.etagKey != dropped[i].etagKey) {
			s.dropChunks(objKey, dm)
		}
		s.disk.Del(diskMetaKey(objKey))
	}
}

// prunePurgedLocked forgets purge marks older than any fill can be (two
// fill timeouts), amortized: only when the shard's marks doubled since
// the last pruning.
func (s *Store) prunePurgedLocked(sh *metaShard, now time.Time) {
	if len(sh.purged) < sh.pruneAt {
		return
	}
	cutoff := now.Add(-2 * time.Duration(s.cfg.FillTimeout))
	for k, p := range sh.purged {
		if p.at.Before(cutoff) {
			delete(sh.purged, k)
		}
	}
	sh.pruneAt = max(256, 2*len(sh.purged))
}

// heldMeta returns the metadata the store holds for objKey, negative
// entries included, or nil. After a restart it comes from the disk tier:
// what that held is served as it was, and revalidated when its TTL runs
// out, as if it had never left memory.
func (s *Store) heldMeta(objKey uint64) *Meta {
	sh := &s.metas[objKey%metaShards]
	sh.mu.RLock()
	m := sh.m[objKey]
	sh.mu.RUnlock()
	if m == nil && s.disk != nil {
		m = s.loadMeta(objKey)
	}
	return m
}

// loadMeta installs the object's metadata from the disk tier, if it has
// it and the object is not in memory (nil otherwise).
func (s *Store) loadMeta(objKey uint64) *Meta {
	gen := s.purges.Load()
	m := s.diskMeta(objKey)
	if m == nil {
		return nil
	}
	sh := &s.metas[objKey%metaShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if p, ok := sh.purged[objKey]; ok && p.gen > gen {
		return nil // purged while it was read
	}
	if cur := sh.m[objKey]; cur != nil {
		return cur
	}
	if len(sh.m) >= max(1, s.cfg.MaxObjects/metaShards) {
		return nil
	}
	sh.m[objKey] = m
	s.Stats.WarmMetas.Add(1)
	return m
}

// diskMeta reads the object's metadata from the disk tier.
func (s *Store) diskMeta(objKey uint64) *Meta {
	b, ok := s.disk.Get(diskMetaKey(objKey))
	if !ok {
		return nil
	}
	m, err := decodeMeta(b)
	if err != nil {
		s.disk.Del(diskMetaKey(objKey))
		return nil
	}
	return m
}

func (s *Store) dropChunks(objKey uint64, m *Meta) {
	n := m.Chunks(int64(s.cfg.ChunkSize))
	for idx := int64(0); idx < n; idx++ {
		s.chunks.Del(chunkKey(objKey, m.etagKey, idx))
		if s.disk != nil {
			s.disk.Del(chunkKey(objKey, m.etagKey, idx))
		}
	}
}

const (
	metaSalt  = 0x6d657461_6d657461
	revalSalt = 0x72657661_6c696461
)

// chunkKey hashes (object, version, index). The version is part of the key
// so that chunks of two versions can never be confused.
func chunkKey(objKey, etagKey uint64, idx int64) uint64 {
	return mix(objKey ^ mix(etagKey+uint64(idx)*0x9e3779b97f4a7c15))
}

// mix is splitmix64's finalizer.
func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// group collapses concurrent fills of one key into one.
type group struct {
	mu sync.Mutex
	m  map[uint64]*call
}

// call is one fill in flight. Its result fields are written before done is
// closed and read only after.
type call struct {
	done chan struct{}
	data []byte
	meta *Meta
	err  error
}

func (g *group) join(key uint64) (c *call, leader bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c := g.m[key]; c != nil {
		return c, false
	}
	c = &call{done: make(chan struct{})}
	g.m[key] = c
	return c, true
}

func (g *group) finish(key uint64, c *call) {
	g.mu.Lock()
	delete(g.m, key)
	g.mu.Unlock()
	close(c.done)
}

func (c *call) wait(ctx context.Context) ([]byte, error) {
	select {
	case <-c.done:
		return c.data, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// SetMemoryBytes changes the memory budget at run time (a configuration
// reload), keeping the window's share.
func (s *Store) SetMemoryBytes(n int64) error {
	if n < int64(s.cfg.ChunkSize) {
		return fmt.Errorf("cache: memory_bytes %d is less than one chunk", n)
	}
	return s.chunks.Resize(n, n*int64(s.cfg.WindowPercent)/100)
}
